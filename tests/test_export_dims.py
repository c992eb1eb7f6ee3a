"""The generated `test_exports_with_dynamic_dims` on models whose free input sizes meet
ceil_mode pooling: torch.export adds a guard there that it cannot prove (the last window starts
inside the input, `2 * (h // 2) - 2 < h`), always true, which a named `torch.export.Dim` refuses
as a constraint violation. Such a size is `Dim.DYNAMIC` with seqgen's bounds, and the exported
program runs at the test's small and large sizes (GoogLeNet with free sizes hit this)."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import run_generated_tests

from seqgen.api import generate, options_for
from seqgen.project.write import write_files

CEIL = """\
model CeilNet(num_classes=10)
input (3, h=32, w=33)
conv2d 8 k=3 p=1
relu
maxpool2d 3 s=2 ceil_mode=True
conv2d 8 k=3 p=1
maxpool2d 2 ceil_mode=True
adaptiveavgpool2d 1
flatten
linear num_classes
"""


def _generate(tmp_path: Path, text: str) -> tuple[str, Path]:
    spec = tmp_path / "ceil_net.seq"
    spec.write_text(text, encoding="utf-8")
    result = generate(str(spec), options_for(str(spec), str(tmp_path)))
    write_files(list(result.files))
    test = next(Path(f.path) for f in result.files if Path(f.path).name.startswith("test_"))
    return test.read_text(encoding="utf-8"), test


def test_ceil_mode_sizes_export_as_dynamic(tmp_path: Path) -> None:
    source, test = _generate(tmp_path, CEIL)
    assert "2: torch.export.Dim.DYNAMIC(min=" in source
    assert "3: torch.export.Dim.DYNAMIC(min=" in source
    assert "ceil_mode pooling's (true) guard" in source
    run = run_generated_tests(test)
    assert run.exit_code == 0


@pytest.mark.parametrize("pool", ["maxpool2d 3 s=2", "maxpool2d 3 s=2 ceil_mode=False"])
def test_without_ceil_mode_sizes_stay_named(tmp_path: Path, pool: str) -> None:
    """Elsewhere a named Dim stays: it refuses any guard, so export proves more."""
    text = CEIL.replace("maxpool2d 3 s=2 ceil_mode=True", pool).replace(
        "maxpool2d 2 ceil_mode=True", "maxpool2d 2"
    )
    source, _ = _generate(tmp_path, text)
    assert '2: torch.export.Dim("h", min=' in source
    assert "DYNAMIC" not in source


@pytest.mark.parametrize(
    ("text", "note"),
    [
        # unflatten's literal sizes fix the free size wd (found by fuzz/differential.py --pytest,
        # seed 105 spec 1)
        ("input (4, wd=37)\nunflatten 2 (1, 37)\nflatten\nlinear 3\n", "wd == 37"),
        # a constructor argument's size fixes the free t: t == 2 * (l // 3) (seed 103 spec 5)
        ("input (2, l=8, wd=7, t=4)\nunflatten -1 (l // 3, 2)\nflatten\nlinear 8\n", "t == 2"),
        # a merge with an input of literal sizes fixes wd (seed 104 spec 7)
        (
            "input image (1, wd=20)\ninput side (1, 20)\nconcat dim=1:\n    branch:\n"
            "        identity\n    branch from=side:\n        identity\nmean 2\nlinear 2\n",
            "wd == 20",
        ),
    ],
)
def test_a_free_size_a_rule_fixes_exports_static(tmp_path: Path, text: str, note: str) -> None:
    source, test = _generate(tmp_path, "model Net\n" + text)
    assert "static, the built model fixes it (" + note in source
    run = run_generated_tests(test)
    assert run.exit_code == 0
