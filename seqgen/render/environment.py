"""The one Jinja environment, and where the templates are."""

from __future__ import annotations

from pathlib import Path

import jinja2

from seqgen.errors import RenderError


def default_templates_dir() -> Path:
    """Templates ship in the wheel as seqgen/templates; a source checkout has them at the top."""
    here = Path(__file__).resolve().parent.parent  # the seqgen package
    for candidate in (here / "templates", here.parent / "templates"):
        if (candidate / "model.py.jinja").is_file():
            return candidate
    raise RenderError(f"seqgen's templates are missing (looked in {here / 'templates'})")


def templates_root(templates_dir: str | Path | None = None) -> Path:
    """The folder the templates are read from: `--templates DIR`, else seqgen's own."""
    return Path(templates_dir) if templates_dir else default_templates_dir()


def environment(templates_dir: str | Path | None = None) -> jinja2.Environment:
    """The one Jinja environment: strict about undefined names, whitespace-stable."""
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(templates_root(templates_dir))),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        autoescape=False,
    )
