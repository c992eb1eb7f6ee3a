"""Failure cases are data: each tests/bad_specs/*.seq has the message `seqgen check` must print."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
BAD = sorted((HERE / "bad_specs").glob("*.seq"))


@pytest.fixture(scope="module", params=["check", "new"])
def reports(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    """One run of `seqgen check|new` over every bad spec: (exit code, stderr, output dir)."""
    out_dir = tmp_path_factory.mktemp(request.param)
    args = [sys.executable, "-m", "seqgen", request.param, *(f"bad_specs/{p.name}" for p in BAD)]
    if request.param == "new":
        args += ["-o", str(out_dir)]
    out = subprocess.run(args, capture_output=True, text=True, cwd=HERE)
    return out.returncode, out.stderr + out.stdout, out_dir


@pytest.mark.parametrize("spec", BAD, ids=lambda p: p.stem)
def test_bad_spec_message_without_traceback(spec: Path, reports) -> None:
    code, output, out_dir = reports
    expected = spec.with_suffix(".expected").read_text(encoding="utf-8").strip()
    assert code == 1
    assert expected in output
    assert "Traceback" not in output
    assert list(out_dir.iterdir()) == []  # an error writes nothing


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
    spec = tmp_path / "w.seq"
    spec.write_text(text)
    out = subprocess.run(
        [sys.executable, "-m", "seqgen", "check", str(spec)], capture_output=True, text=True
    )
    assert out.returncode == 0 and hint in out.stderr and "warning:" in out.stderr
    strict = subprocess.run(
        [sys.executable, "-m", "seqgen", "check", "--strict", str(spec)],
        capture_output=True,
        text=True,
    )
    assert strict.returncode == 1


def test_every_warning_has_a_stable_code() -> None:
    from seqgen.report.lint import CODES

    assert len({c.split()[0] for c in CODES}) == len(CODES)
    assert all(c.split()[0].startswith("W") and len(c.split()) == 2 for c in CODES)


def test_clean_spec_has_no_warnings() -> None:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "seqgen",
            "check",
            "--strict",
            str(HERE.parent / "generated_examples" / "cnn.seq"),
        ],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0 and "no problems found" in out.stdout
