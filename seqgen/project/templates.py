"""Where the templates are: `--templates DIR`, or seqgen's own (no Jinja needed to find them,
so the up-to-date check and a cached run import no template engine)."""

from __future__ import annotations

from pathlib import Path

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
