"""The one Jinja environment (where the templates are: project/templates.py)."""

from __future__ import annotations

from pathlib import Path

import jinja2

from seqgen.project.templates import templates_root


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
