"""Golden cases: each folder under tests/golden has a spec and the files seqgen must generate.

`python tests/golden_cases.py` regenerates the expected files; read the diff before committing.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

GOLDEN = Path(__file__).resolve().parent / "golden"
# case name -> (model dir, tests dir), relative to the case's expected/ folder
LAYOUTS = {"split_dirs": ("models", "tests"), "in_package": ("mypkg/models", "tests")}
# cases whose model dir is a package (its folders get an __init__.py when rendered)
PACKAGES = {"in_package"}


def cases() -> list[Path]:
    return sorted(p for p in GOLDEN.iterdir() if p.is_dir())


def render_case(case: Path, root: Path) -> dict[str, str]:
    """Generate a case with `root` as its project root (the spec copied there, so headers name
    it the same way wherever the case is rendered); return {relative path: text}."""
    from seqgen.api import generate, options_for

    model_dir, tests_dir = LAYOUTS.get(case.name, (".", "."))
    if case.name in PACKAGES:
        folder = root
        for part in Path(model_dir).parts:
            folder = folder / part
            folder.mkdir(exist_ok=True)
            (folder / "__init__.py").touch()
    spec = root / f"{case.name}.seq"
    spec.write_bytes((case / f"{case.name}.seq").read_bytes())
    options = options_for(
        str(spec), str(root / model_dir), str(root / tests_dir), project_root=root
    )
    result = generate(str(spec), options)
    return {Path(f.path).relative_to(root).as_posix(): f.text for f in result.files}


def regenerate() -> None:
    for case in cases():
        expected = case / "expected"
        with tempfile.TemporaryDirectory() as tmp:
            rendered = render_case(case, Path(tmp))
        for rel, text in rendered.items():
            target = expected / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text, encoding="utf-8")
            print(f"wrote {target.relative_to(GOLDEN.parent.parent)}")


if __name__ == "__main__":
    sys.path.insert(0, str(GOLDEN.parent.parent))
    regenerate()
