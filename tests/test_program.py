"""`seqgen` run as a program ends without Python's teardown (seqgen/cli/program.py), and
otherwise exactly as the ordinary exit would: the status, the output, the atexit handlers."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from seqgen import __version__
from seqgen.cli.program import run_as_program

END = """\
import atexit, sys, threading, time
from seqgen.cli.program import end_now
atexit.register(print, "atexit ran")
print("before", end=" ")
{extra}
end_now({code})
print("returned", end=" ")
raise SystemExit({code})
"""

# a module global whose finaliser prints: it runs in the teardown, and only there
PROGRAM = """\
import sys
class Noisy:
    def __del__(self):
        print("teardown")
noisy = Noisy()
sys.argv[:] = [{argv0!r}, "--version"]
from seqgen.cli import main
main({args})
"""


def python(code: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=cwd)


@pytest.mark.parametrize(("code", "status"), [("None", 0), ("0", 0), ("3", 3)])
def test_end_now_runs_atexit_flushes_and_exits(code: str, status: int) -> None:
    out = python(END.format(code=code, extra=""))
    assert (out.returncode, out.stdout, out.stderr) == (status, "before atexit ran\n", "")


@pytest.mark.parametrize(
    ("code", "extra", "status"),
    [
        ("'bye'", "", 1),  # a message: Python prints it and exits 1
        ("300", "", 300 % 256),  # a status the OS wraps
        ("3", "threading.Thread(target=time.sleep, args=(0.2,)).start()", 3),  # waited for
    ],
)
def test_end_now_leaves_other_exits_to_python(code: str, extra: str, status: int) -> None:
    out = python(END.format(code=code, extra=extra))
    assert out.returncode == status and out.stdout == "before returned atexit ran\n", out


def test_run_as_the_program_it_skips_the_teardown_only() -> None:
    """As `seqgen` (argv[0]) the process ends before the teardown finalises module globals;
    called with arguments, or as another program, the CLI exits the ordinary way."""
    fast = python(PROGRAM.format(argv0="/usr/bin/seqgen", args=""))
    assert (fast.returncode, fast.stdout) == (0, f"seqgen, version {__version__}\n"), fast
    assert "teardown" not in fast.stdout
    for argv0, args in (("/usr/bin/seqgen", "['--version']"), ("other", "")):
        slow = python(PROGRAM.format(argv0=argv0, args=args))
        assert slow.returncode == 0 and slow.stdout.endswith("teardown\n"), slow
    assert not run_as_program()  # pytest


@pytest.mark.slow  # a trace in a fresh interpreter
def test_the_program_keeps_its_statuses_and_output(tmp_path: Path) -> None:
    """`python -m seqgen` (a pipe, not a terminal): output flushed, the same exit codes."""
    spec = tmp_path / "m.seq"
    spec.write_text("input 4\nlinear 2\n")
    runs = {
        args: subprocess.run(
            [sys.executable, "-m", "seqgen", *args], capture_output=True, text=True, cwd=tmp_path
        )
        for args in (("new", "m.seq"), ("new", "missing.seq"), ("--bogus",))
    }
    made, missing, usage = runs.values()
    assert made.returncode == 0 and "wrote " in made.stdout.splitlines()[-1], made
    assert (tmp_path / "m.py").is_file()
    assert missing.returncode == 1 and "no such file" in missing.stderr
    assert usage.returncode == 2 and "No such option" in usage.stderr


@pytest.mark.slow  # two traces in a fresh interpreter
def test_the_collector_is_paused_for_the_first_spec_only(tmp_path: Path) -> None:
    """Run as the program, the first spec is generated with the cyclic garbage collector
    paused, and the collector runs again (over what the first spec left, frozen) after it."""
    for name in ("a", "b"):
        (tmp_path / f"{name}.seq").write_text("input 4\nlinear 2\n")
    code = """\
import gc, sys
import seqgen.api as api
generate = api.generate
def watched(*args, **kwargs):
    print("collector", gc.isenabled(), gc.get_freeze_count() > 0)
    return generate(*args, **kwargs)
api.generate = watched
sys.argv[:] = ["seqgen", "new", "-q", "a.seq", "b.seq"]
from seqgen.cli import main
main()
"""
    out = python(code, cwd=tmp_path)
    assert out.returncode == 0, out
    assert [line for line in out.stdout.splitlines() if line.startswith("collector")] == [
        "collector False False",
        "collector True True",
    ]


def test_a_collector_paused_by_the_host_stays_paused() -> None:
    code = """\
import gc
from seqgen.cli.program import pause_gc, spec_done
pause_gc(); paused = not gc.isenabled(); spec_done()
print(paused, gc.isenabled())
gc.disable(); pause_gc(); spec_done()
print(gc.isenabled())
"""
    assert python(code).stdout.split() == ["True", "True", "False"]
