"""A project's own defaults: the `[tool.seqgen]` table of its `pyproject.toml`. No torch here.

    [tool.seqgen]
    specs = ["models"]              # where the project's specs are (default: the project root)
    out-dir = "src/mypkg/models"    # where a spec's model module goes (default: next to the spec)
    tests-dir = "tests"             # where its test goes (default: with the model module)
    package-root = "src"            # the folder on sys.path: imports are named from it
    templates = "seqgen_templates"  # `--templates` for every spec
    allow-imports = ["mypkg"]       # modules whose classes `use` lines may import (and run)

Paths are relative to the project root. A spec inside a `specs` folder keeps its sub-folder
below `out-dir` and `tests-dir` (`models/vision/cnn.seq` -> `src/mypkg/models/vision/cnn.py`).
The table only places a spec that has no recorded layout yet (a new or renamed spec): a spec's
generated files record where they went, and that record wins, as a command-line option does.
"""

from __future__ import annotations

import difflib
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from seqgen.errors import ConfigError, Location
from seqgen.project.layout import project_root

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - the `tomli` dependency on Python 3.10 (pyproject.toml)
    import tomli as tomllib

CONFIG_FILE = "pyproject.toml"
KEYS = (
    "specs",
    "out-dir",
    "tests-dir",
    "package-root",
    "templates",
    "allow-imports",
)  # `_` for `-` works too


@dataclass(frozen=True)
class ProjectConfig:
    """The `[tool.seqgen]` settings of one project, as absolute paths (None: not set)."""

    root: Path
    source: Path | None = None  # the pyproject.toml it came from
    specs: tuple[Path, ...] = ()
    out_dir: Path | None = None
    tests_dir: Path | None = None
    package_root: Path | None = None
    templates: Path | None = None
    allow_imports: tuple[str, ...] = ()  # module names (`mypkg` allows `mypkg.layers` too)

    def placement(self, spec_path: str) -> tuple[str | None, str | None, str | None]:
        """`-o`, `--tests-dir` and `--templates` for a spec with no recorded layout (paths
        relative to the current directory; None where the project sets nothing)."""
        spec_dir = Path(spec_path).resolve().parent
        sub = Path()
        for folder in self.specs:
            if spec_dir.is_relative_to(folder):
                sub = spec_dir.relative_to(folder)
                break
        out = _here(self.out_dir / sub) if self.out_dir is not None else None
        tests = _here(self.tests_dir / sub) if self.tests_dir is not None else None
        templates = _here(self.templates) if self.templates is not None else None
        return out, tests, templates

    def spec_folders(self) -> tuple[Path, ...]:
        """Where the project's specs are: the `specs` folders, else the project root."""
        return self.specs or (self.root,)


def _here(path: Path) -> str:
    """A path relative to the current directory where one exists (as options take them)."""
    try:
        return os.path.relpath(path)
    except ValueError:  # another drive (Windows)
        return str(path)


def _where(source: str, text: str, key: str) -> Location:
    """The line of the `[tool.seqgen]` table that sets `key` (else the file's first line)."""
    inside = False
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if stripped.startswith("["):
            inside = stripped.replace(" ", "") == "[tool.seqgen]"
        elif inside and stripped.startswith(key) and stripped[len(key) :].lstrip()[:1] == "=":
            col = len(line) - len(line.lstrip()) + 1
            return Location(source, number, col, line, len(key))
    return Location(source, 1, 1)


def load_config(root: Path) -> ProjectConfig:
    """The `[tool.seqgen]` table of `root/pyproject.toml`; defaults when there is none.

    Raises ConfigError naming the file and key for an unknown key or a value of the wrong type.
    """
    root = root.resolve()
    path = root / CONFIG_FILE
    source = _here(path)  # as messages show it
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return ProjectConfig(root)
    try:
        tool = tomllib.loads(text).get("tool")
    except tomllib.TOMLDecodeError as e:
        if "seqgen" not in text:
            return ProjectConfig(root)  # not our table: the project's own tools will say so
        raise ConfigError(f"{source} is not valid TOML: {e}") from e
    table = tool.get("seqgen") if isinstance(tool, dict) else None
    if table is None:
        return ProjectConfig(root)
    if not isinstance(table, dict):
        raise ConfigError(f"{source}: `tool.seqgen` must be a table ([tool.seqgen])")
    written = {key.replace("_", "-"): key for key in table}  # out_dir works as out-dir
    for key, as_written in written.items():
        if key not in KEYS:
            close = difflib.get_close_matches(key, KEYS, n=1)
            hint = f"did you mean '{close[0]}'?" if close else f"known keys: {', '.join(KEYS)}"
            raise ConfigError(
                f"unknown key '{as_written}' in [tool.seqgen] of {source}",
                location=_where(source, text, as_written),
                hint=hint,
            )

    def folder(key: str) -> Path | None:
        value = table.get(written.get(key, key))
        if value is None:
            return None
        if not isinstance(value, str):
            raise ConfigError(
                f"[tool.seqgen] key '{written[key]}' in {source} must be a folder (a string), "
                f"got {value!r}",
                location=_where(source, text, written[key]),
            )
        return (root / value).resolve()

    specs = table.get(written.get("specs", "specs"), [])
    if not isinstance(specs, list) or not all(isinstance(v, str) for v in specs):
        raise ConfigError(
            f"[tool.seqgen] key 'specs' in {source} must be a list of folders",
            location=_where(source, text, "specs"),
            hint='e.g. specs = ["models"] (relative to the project root)',
        )
    allowed = table.get(written.get("allow-imports", "allow-imports"), [])
    if not isinstance(allowed, list) or not all(
        isinstance(v, str) and all(p.isidentifier() for p in v.split(".")) for v in allowed
    ):
        raise ConfigError(
            f"[tool.seqgen] key 'allow-imports' in {source} must be a list of module names",
            location=_where(source, text, written.get("allow-imports", "allow-imports")),
            hint='e.g. allow-imports = ["mypkg", "timm"]',
        )
    return ProjectConfig(
        root,
        path,
        allow_imports=tuple(allowed),
        specs=tuple((root / v).resolve() for v in specs),
        out_dir=folder("out-dir"),
        tests_dir=folder("tests-dir"),
        package_root=folder("package-root"),
        templates=folder("templates"),
    )


def allowed_imports(spec_path: str) -> frozenset[str]:
    """The modules the project of a spec lets its `use` lines import (`allow-imports`)."""
    root, marked = project_root(Path(spec_path).parent)
    return frozenset(load_config(root).allow_imports) if marked else frozenset()
