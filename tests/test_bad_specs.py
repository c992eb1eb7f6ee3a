"""Failure cases are data: each tests/bad_specs/*.seq has the message `seqgen` must print.

The messages are checked in this process (click's CliRunner, `seqgen new`, which also must write
nothing); one subprocess checks `seqgen check`'s exit code and that no traceback reaches the
terminal.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from conftest import seqgen_cli

HERE = Path(__file__).resolve().parent
BAD = sorted((HERE / "bad_specs").glob("*.seq"))


def seqgen(*args: str, cwd: Path) -> tuple[int, str]:
    """`seqgen ARGS` run in `cwd`, in this process: (exit code, stderr + stdout)."""
    ran = seqgen_cli(*args, cwd=cwd)
    return ran.returncode, ran.stderr + ran.stdout


@pytest.mark.parametrize("spec", BAD, ids=lambda p: p.stem)
def test_bad_spec_message_without_traceback(spec: Path, tmp_path: Path) -> None:
    code, output = seqgen("new", f"bad_specs/{spec.name}", "-o", str(tmp_path), cwd=HERE)
    expected = spec.with_suffix(".expected").read_text(encoding="utf-8").strip()
    assert code == 1
    assert expected in output
    assert "Traceback" not in output
    assert list(tmp_path.iterdir()) == []  # an error writes nothing


@pytest.mark.slow
def test_bad_specs_exit_1_without_traceback_in_a_subprocess() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "seqgen", "check", *(f"bad_specs/{p.name}" for p in BAD)],
        capture_output=True,
        text=True,
        cwd=HERE,
    )
    assert out.returncode == 1
    assert "Traceback" not in out.stderr + out.stdout
    assert out.stderr.count("error") >= len(BAD)


WARNINGS = [
    ("input 3x8x8\nconv2d 4 3\nlinear 10\n", "did you forget `flatten` before it?"),
    ("input 10\nlinear 4\nsoftmax dim=1\n", "CrossEntropyLoss expects raw logits"),
    ("input 3x8x8\nconv2d 4 3\nbatchnorm2d\n", "add bias=False to line 2"),
    ("input 10\nlinear 4\ndropout\n", "dropout is the last layer"),
    ("input 3x4x4\nmaxpool2d 4\nconv2d 4 1\n", "spatial size is reduced to 1"),
    ("input 10\nlinear 4\nsoftmax\nlinear 2\n", "torch picks dim=1"),
]


@pytest.mark.parametrize("text, hint", WARNINGS)
def test_warnings_exit_0_unless_strict(text: str, hint: str, tmp_path: Path) -> None:
    (tmp_path / "w.seq").write_text(text)
    code, output = seqgen("check", "w.seq", cwd=tmp_path)
    assert code == 0 and hint in output and "warning:" in output
    assert seqgen("check", "--strict", "w.seq", cwd=tmp_path)[0] == 1


def test_every_warning_has_a_stable_code() -> None:
    from seqgen.report.lint import CODES

    assert len({c.split()[0] for c in CODES}) == len(CODES)
    assert all(c.split()[0].startswith("W") and len(c.split()) == 2 for c in CODES)


def test_clean_spec_has_no_warnings() -> None:
    code, output = seqgen("check", "--strict", "generated_examples/cnn.seq", cwd=HERE.parent)
    assert code == 0 and "no problems found" in output
