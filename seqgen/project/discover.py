"""Which specs a command means: files, quoted globs, folders, or (no argument) the project's.

A folder means every `*.seq` file below it; no argument means every spec of the project that
the current directory is in: below the `specs` folders of its `[tool.seqgen]` table, else below
its root. Hidden folders, virtualenvs, `build`, `dist`, `node_modules`, `site-packages` and
`*.egg-info` are never entered. No torch here.
"""

from __future__ import annotations

import glob
import os
from pathlib import Path

from seqgen.project.config import load_config
from seqgen.project.finder import SKIP_DIRS
from seqgen.project.layout import project_root

SPEC_SUFFIX = ".seq"


def specs_below(folder: Path) -> list[Path]:
    """The spec files below `folder`, in path order."""
    found: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(folder):
        here = Path(dirpath)
        dirnames[:] = sorted(
            d
            for d in dirnames
            if not d.startswith(".")
            and d not in SKIP_DIRS
            and not d.endswith(".egg-info")
            and not (here / d / "pyvenv.cfg").exists()
        )
        found.extend(here / name for name in sorted(filenames) if name.endswith(SPEC_SUFFIX))
    return found


def _shown(path: Path) -> str:
    """A path relative to the current directory where one exists (as messages show it)."""
    try:
        return os.path.relpath(path)
    except ValueError:  # another drive (Windows)
        return str(path)


def project_specs(start: Path | None = None) -> list[str]:
    """Every spec of the project that `start` (the current directory) is in."""
    root, marked = project_root(start if start is not None else Path.cwd())
    folders = load_config(root).spec_folders() if marked else (root,)
    seen: dict[Path, None] = {}
    for folder in folders:
        seen.update((p.resolve(), None) for p in specs_below(folder) if folder.is_dir())
    return [_shown(p) for p in seen]


def expand_specs(args: list[str] | tuple[str, ...]) -> list[str]:
    """The spec files (and generated `.py` files) that command-line arguments mean: quoted
    globs expanded (shells expand the others; pre-commit and Windows do not), folders replaced
    by their specs, and no argument at all by the project's specs."""
    if not args:
        return project_specs()
    out: list[str] = []
    for arg in args:
        if Path(arg).is_dir():
            out.extend(_shown(p) for p in specs_below(Path(arg)))
            continue
        matches = sorted(glob.glob(arg, recursive=True)) if any(c in arg for c in "*?[") else []
        out.extend(matches or [arg])
    return out
