"""Finding generated files on disk by their headers. No torch here."""

from __future__ import annotations

import os
from pathlib import Path

from seqgen.project.header import read_recorded
from seqgen.project.layout import Recorded, project_root

# Folders a search for generated files never enters (besides hidden ones and virtualenvs)
SKIP_DIRS = frozenset({"__pycache__", "node_modules", "site-packages", "build", "dist"})
MAX_SCANNED = 20_000  # .py files read per search: a bound for huge trees


class Finder:
    """Finds generated files by reading headers; remembers each folder it has searched."""

    def __init__(self) -> None:
        self._seen: dict[tuple[Path, bool], list[Recorded]] = {}

    def search(self, folder: Path, recursive: bool) -> list[Recorded]:
        """Generated files in `folder` (and below it, with `recursive`), in path order."""
        key = (folder.resolve(), recursive)
        if key not in self._seen:
            self._seen[key] = list(self._walk(key[0], recursive))
        return self._seen[key]

    @staticmethod
    def _walk(folder: Path, recursive: bool) -> list[Recorded]:
        found: list[Recorded] = []
        scanned = 0
        for dirpath, dirnames, filenames in os.walk(folder):
            here = Path(dirpath)
            dirnames[:] = sorted(
                d
                for d in dirnames
                if recursive
                and not d.startswith(".")
                and d not in SKIP_DIRS
                and not d.endswith(".egg-info")
                and not (here / d / "pyvenv.cfg").exists()
            )
            for name in sorted(filenames):
                if not name.endswith(".py"):
                    continue
                scanned += 1
                if scanned > MAX_SCANNED:
                    return found
                recorded = read_recorded(here / name)
                if recorded is not None:
                    found.append(recorded)
        return found

    def layouts_of(self, spec: Path, default_module: Path) -> list[Recorded]:
        """Model files generated from `spec`: at the default place, else anywhere in its
        project (a marker-found root), else in its own folder."""
        spec = spec.resolve()
        at_default = read_recorded(default_module)
        if at_default is not None and at_default.spec_path == spec:
            return [at_default]
        root, marked = project_root(spec.parent)
        folder = root if marked else spec.parent
        return [
            r for r in self.search(folder, recursive=marked) if r.is_model and r.spec_path == spec
        ]
