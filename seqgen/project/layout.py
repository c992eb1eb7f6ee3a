"""The project root, and the layout every generated file records in its header. No torch here.

The project root is the nearest folder, from the spec's folder upward, that holds a
`pyproject.toml`, `setup.cfg`, `setup.py` or `.git`; without one, the current directory.
Headers record paths relative to it, in POSIX form, so they are the same on every machine, and
`seqgen new SPEC` with no options finds a spec's outputs again from those headers.
"""

from __future__ import annotations

import json
import keyword
import os
import posixpath
import shlex
from dataclasses import asdict, dataclass
from pathlib import Path

MARKERS = ("pyproject.toml", "setup.cfg", "setup.py", ".git")


def project_root(start: Path) -> tuple[Path, bool]:
    """The project root for files in `start`, and whether a marker file found it."""
    start = start.resolve()
    for folder in (start, *start.parents):
        if any((folder / m).exists() for m in MARKERS):
            return folder, True
    return Path.cwd().resolve(), False


def relative(path: Path, root: Path) -> str:
    """`path` relative to `root` in POSIX form (`..` where it lies outside)."""
    try:
        return Path(os.path.relpath(path.resolve(), root)).as_posix()
    except ValueError:  # another drive (Windows): nothing relative exists
        return path.resolve().as_posix()


def package_of(folder: Path) -> tuple[str, ...]:
    """The dotted package a folder is, from its chain of `__init__.py` files (() if none)."""
    parts: list[str] = []
    current = folder.resolve()
    while (current / "__init__.py").is_file() and current.parent != current:
        if not current.name.isidentifier() or keyword.iskeyword(current.name):
            return ()  # not importable by that name: treat the folder as loose files
        parts.append(current.name)
        current = current.parent
    return tuple(reversed(parts))


@dataclass(frozen=True)
class Layout:
    """What a generated file's header records: where everything is, relative to the project
    root, and the options that placed it."""

    spec: str  # the spec
    out: str  # folder of the model module (`-o`)
    tests: str  # folder of the test file (`--tests-dir`)
    module: str  # the model module's file stem
    test: str  # the test file's stem
    input: str | None = None  # `--input`
    templates: str | None = None  # `--templates`

    def record(self) -> str:
        """One line of JSON (ASCII only: no line breaks of any kind can hide in it)."""
        data = {k: v for k, v in asdict(self).items() if v is not None}
        return json.dumps(data, sort_keys=True, ensure_ascii=True, separators=(", ", ": "))

    @classmethod
    def parse(cls, text: str) -> Layout | None:
        """The layout recorded in a header line's JSON, or None when it is not one."""
        try:
            data = json.loads(text)
            return cls(
                **{k: data[k] for k in ("spec", "out", "tests", "module", "test")},
                input=data.get("input"),
                templates=data.get("templates"),
            )
        except (ValueError, KeyError, TypeError):
            return None

    def command(self) -> str:
        """The command, run in the project root, that regenerates the files."""
        parts = ["seqgen", "new", self.spec]
        if self.out != (posixpath.dirname(self.spec) or "."):
            parts += ["-o", self.out]
        if self.tests != self.out:
            parts += ["--tests-dir", self.tests]
        if self.input is not None:
            parts += ["--input", self.input]
        if self.templates is not None:
            parts += ["--templates", self.templates]
        return shlex.join(parts)


@dataclass(frozen=True)
class Recorded:
    """A generated file found on disk, with the layout its header records."""

    path: Path
    layout: Layout

    @property
    def is_model(self) -> bool:
        """The model module (else the test file)."""
        return self.path.stem == self.layout.module and self.path.stem != self.layout.test

    @property
    def root(self) -> Path:
        """The project root it was generated in: its folder, less the recorded folder."""
        folder = self.path.resolve().parent
        rel = Path(self.layout.out if self.is_model else self.layout.tests)
        if ".." in rel.parts or rel.is_absolute():
            return project_root(folder)[0]
        root = folder
        for _ in (p for p in rel.parts if p != "."):
            root = root.parent
        return root

    @property
    def spec_path(self) -> Path:
        """Where its spec is (or was)."""
        return Path(os.path.normpath(self.root / self.layout.spec))
