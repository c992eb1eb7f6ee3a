"""The generated `test_exports_with_dynamic_dims` on models whose free input sizes meet
ceil_mode pooling: torch.export adds a guard there that it cannot prove (the last window starts
inside the input, `2 * (h // 2) - 2 < h`), always true, which a named `torch.export.Dim` refuses
as a constraint violation. Such a size is `Dim.DYNAMIC` with seqgen's bounds, and the exported
program runs at the test's small and large sizes (GoogLeNet with free sizes hit this)."""

from __future__ import annotations

import importlib.util
import sys
import warnings
from pathlib import Path

import pytest
from conftest import run_generated_tests

from seqgen.api import generate, options_for
from seqgen.project.write import write_files
from seqgen.render.export import FLAT_WEIGHTS

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


def test_recurrent_export_tests_filter_torchs_flat_weights_warning(tmp_path: Path) -> None:
    """torch.export warns that nn.LSTM assigns its own `_flat_weights` (torch's code, harmless):
    the generated export test filters exactly that warning, so `pytest -W error` stays green.
    Runs the generated test with the mark's filter as pytest would apply it: no warning left."""
    text = "model R(hidden=8)\ninput (seq=6, 4)\nlstm hidden take=last\nlinear 2\n"
    spec = tmp_path / "rec_net.seq"
    spec.write_text(text, encoding="utf-8")
    result = generate(str(spec), options_for(str(spec), str(tmp_path)))
    write_files(list(result.files))
    test = tmp_path / "test_rec_net.py"
    assert f'@pytest.mark.filterwarnings("{FLAT_WEIGHTS}")' in test.read_text(encoding="utf-8")
    action, message, category = FLAT_WEIGHTS.split(":")
    sys.path.insert(0, str(tmp_path))
    try:
        module_spec = importlib.util.spec_from_file_location("test_rec_net", test)
        assert module_spec is not None and module_spec.loader is not None
        module = importlib.util.module_from_spec(module_spec)
        module_spec.loader.exec_module(module)
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always")
            warnings.filterwarnings(action, message, UserWarning)  # type: ignore[arg-type]
            module.test_exports_with_dynamic_dims()
        assert category == "UserWarning"
        assert not [w for w in seen if issubclass(w.category, UserWarning)], seen
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("rec_net", None)


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
