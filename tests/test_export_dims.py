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
