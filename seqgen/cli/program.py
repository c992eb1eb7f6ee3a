"""The `seqgen` command run as a program: end the process without Python's teardown.

After a trace, the interpreter holds torch, sympy and every module they import; the ordinary
exit then clears each module and collects every object one by one, which took 0.2-0.3 s on the
2-core machine (BENCHMARKS.md), a fifth of a cold `seqgen new`, all after the last file was
written. Run as a program (`seqgen ...`, `python -m seqgen ...`: click reads sys.argv), the
command ends the way the teardown would end it, less the teardown: the atexit handlers run
(logging's flush, weakref finalizers, torch's own), stdout and stderr are flushed, and the
process exits with the same status. Anything else (non-daemon threads still running, an exit
status that is not a number, a flush that fails, as on a closed pipe) takes the ordinary exit.
Called from Python with arguments (tests, click's CliRunner), nothing changes.

The program also runs its first spec with Python's cyclic garbage collector paused. Importing
torch and sympy leaves millions of objects behind, and each full collection then walks all of
them: four of them took 0.35-0.5 s of a cold `seqgen new cnn.seq` on the loaded 2-core
machine, 1.0 s of a 1000-layer spec, for garbage that ended up 1-7 MB of peak memory. After
the first spec (`spec_done`), what exists is frozen (gc.freeze: never walked again) and the
collector runs again, so a run over many specs does not pile up their garbage.
"""

from __future__ import annotations

import atexit
import gc
import os
import sys
import threading
from typing import Any

import click


def run_as_program() -> bool:
    """Whether this process is the `seqgen` program: its console script or `python -m seqgen`,
    not a Python program that calls the CLI."""
    spec = getattr(sys.modules.get("__main__"), "__spec__", None)
    if spec is not None and spec.name == "seqgen.__main__":
        return True
    return os.path.splitext(os.path.basename(sys.argv[0]))[0] in ("seqgen", "seqgen-script")


def end_now(code: object) -> None:
    """End the process with `code` (a SystemExit's) as the ordinary exit would, without the
    teardown; return only when that cannot be done safely (then raise the SystemExit)."""
    if code is None:
        status = 0
    elif isinstance(code, int) and not isinstance(code, bool) and 0 <= code <= 255:
        status = code
    else:  # a message (Python prints it and exits 1), or a status the OS would wrap
        return
    if threading.active_count() > 1:  # the ordinary exit waits for them
        return
    try:
        atexit._run_exitfuncs()
        sys.stdout.flush()
        sys.stderr.flush()
    except BaseException:  # whatever it is, the ordinary exit reports it
        return
    os._exit(status)


_paused: list[bool] = []  # [True] while the program keeps the collector paused


def pause_gc() -> None:
    """Pause the cyclic garbage collector for the first spec (see the module's docstring)."""
    if gc.isenabled():
        gc.disable()
        _paused.append(True)


def spec_done() -> None:
    """After a spec: if the program paused the collector, freeze what exists and resume it."""
    if _paused:
        _paused.clear()
        gc.freeze()
        gc.enable()


class Program(click.Group):
    """A click group whose run as the `seqgen` program ends through `end_now`."""

    def main(
        self,
        args: Any = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        if args is not None or not standalone_mode or not run_as_program():
            return super().main(args, prog_name, complete_var, standalone_mode, **extra)
        pause_gc()
        try:
            return super().main(args, prog_name, complete_var, standalone_mode, **extra)
        except SystemExit as e:
            end_now(e.code)
            raise
