"""Golden files: every template's output compared whole, and every output actually run.

generated_examples/ is compared with what seqgen generates today by .ci/run (regenerate, then
`git diff` and `git status`, which also catches files nobody committed), not here.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import EXAMPLE_SPECS, EXAMPLES, run_generated_tests
from golden_cases import cases, render_case

from seqgen.api import generate, options_for
from seqgen.project.header import body_of
from seqgen.render import format_source


@pytest.mark.parametrize("case", cases(), ids=lambda p: p.name)
def test_golden_case(case: Path, tmp_path: Path) -> None:
    rendered = render_case(case, tmp_path)
    expected_dir = case / "expected"
    expected = {
        p.relative_to(expected_dir).as_posix(): p.read_text(encoding="utf-8")
        for p in expected_dir.rglob("*.py")
    }
    assert sorted(rendered) == sorted(expected), "run `python tests/golden_cases.py`"
    for rel, text in rendered.items():
        assert text == expected[rel], (
            f"{rel} differs: run `python tests/golden_cases.py`, read the diff"
        )


@pytest.mark.slow
@pytest.mark.parametrize("case", cases(), ids=lambda p: p.name)
def test_golden_case_output_passes_its_own_tests(case: Path, tmp_path: Path) -> None:
    for rel, text in render_case(case, tmp_path).items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text, encoding="utf-8")
    run_generated_tests(tmp_path)


@pytest.mark.parametrize("spec_path", EXAMPLE_SPECS, ids=lambda p: p.stem)
def test_formatting_is_stable(spec_path: Path) -> None:
    for f in generate(str(spec_path), options_for(str(spec_path))).files:
        body = body_of(f.text)
        assert format_source(body) == body  # black's own stability check: format twice


def test_output_is_byte_identical_across_runs_and_directories(tmp_path: Path) -> None:
    spec = EXAMPLES / "cnn.seq"
    project = tmp_path / "elsewhere"  # another checkout: same paths below its project root
    copy = project / "generated_examples" / "cnn.seq"
    copy.parent.mkdir(parents=True)
    (project / "pyproject.toml").write_text("")
    copy.write_bytes(spec.read_bytes())
    first = generate(str(spec), options_for(str(spec)))
    second = generate(str(copy), options_for(str(copy)))
    assert [f.text for f in first.files] == [f.text for f in second.files]
    assert str(tmp_path) not in "".join(f.text for f in second.files)
