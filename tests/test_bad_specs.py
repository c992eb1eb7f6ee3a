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

from seqgen.errors import Diagnostic, SeqgenError, SpecErrors, raise_all
from seqgen.lang.parser import parse_partial

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
    ("input 3x8x8\nbatchnorm2d eps=32\n", "batchnorm2d's eps is 32, far above any real use"),
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


# ------------------------------------------------------------------ hints are lines seqgen accepts


def errors_of(text: str) -> list[Diagnostic]:
    """Every error seqgen reports for a spec text: parse and bind errors together, else the
    trace's (as `seqgen check` finds them)."""
    from seqgen.api import trace_spec
    from seqgen.layers.preflight import layer_errors

    try:
        spec, errors = parse_partial(text, "t.seq")
        if errors:
            raise_all(errors + (layer_errors(spec.layers, spec.blocks) if spec else []))
        if spec is not None:
            trace_spec(spec)
    except SpecErrors as e:
        return [x.diagnostic for x in e.errors]
    except SeqgenError as e:
        return [e.diagnostic]
    return []


def with_fix(text: str, d: Diagnostic) -> str:
    """The spec text with the hint's corrected line in place of the line the error is on."""
    assert d.location is not None and d.fix is not None
    lines = text.splitlines()
    lines[d.location.line - 1] = d.fix
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("spec", BAD, ids=lambda p: p.stem)
def test_applying_a_hint_leaves_no_error_on_its_line(spec: Path) -> None:
    try:
        text = spec.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        return
    fixed = [d for d in errors_of(text) if d.fix is not None]
    assert fixed or not spec.stem.startswith("habit_")  # each PyTorch habit gets a line
    for d in fixed:
        assert d.location is not None and d.hint is not None and d.fix is not None
        # the hint spells the line it carries, unless the fix only re-indents it
        assert d.fix.strip() in d.hint or d.fix.strip() == d.location.text.strip()
        after = errors_of(with_fix(text, d))
        assert not [e for e in after if e.location and e.location.line == d.location.line], (
            d.render(),
            [e.render() for e in after],
        )


# PyTorch habits applied to every layer line with arguments of the example specs: commas between
# arguments, Python call syntax, an `nn.` prefix. Each must be refused with a fix that checks.
# (A spec with a `use` line imports from its own folder: tests/test_custom_layers.py has those.)
EXAMPLES = sorted(
    p
    for p in (HERE.parent / "generated_examples").glob("*.seq")
    if not any(line.startswith("use ") for line in p.read_text(encoding="utf-8").splitlines())
)


def habits(line: str) -> list[str]:
    """`conv2d 16 3 p=1` as `conv2d 16, 3, p=1`, `conv2d(16, 3, p=1)`, `nn.conv2d(16, 3, p=1)`
    (a layer line whose arguments are single words; a block use keeps its own rules)."""
    code = line.split("#")[0]
    name, *args = code.split()
    indent = line[: len(line) - len(line.lstrip())]
    if not args or not name.islower() or any(not a[-1].isalnum() for a in args) or "(" in code:
        return []
    called = f"{name}({', '.join(args)})"
    commas = [f"{indent}{name} {', '.join(args)}"] if len(args) > 1 else []
    return [*commas, f"{indent}{called}", f"{indent}nn.{called}"]


@pytest.mark.slow
@pytest.mark.parametrize("spec", EXAMPLES, ids=lambda p: p.stem)
def test_pytorch_habits_on_real_lines_get_fixes_that_check(spec: Path) -> None:
    text = spec.read_text(encoding="utf-8")
    lines = text.splitlines()
    assert errors_of(text) == []
    tried = 0
    for n, line in enumerate(lines):
        if not line.strip() or line.split()[0] in (
            "model",
            "input",
            "block",
            "repeat",
            "head",
            "#",
        ):
            continue
        for bad in habits(line):
            broken = "\n".join([*lines[:n], bad, *lines[n + 1 :]]) + "\n"
            found = [d for d in errors_of(broken) if d.location and d.location.line == n + 1]
            assert found and found[0].fix is not None, (bad, [d.render() for d in found])
            after = errors_of(with_fix(broken, found[0]))
            assert not [e for e in after if e.location and e.location.line == n + 1], (
                bad,
                found[0].fix,
                [e.render() for e in after],
            )
            tried += 1
    assert tried > 0
