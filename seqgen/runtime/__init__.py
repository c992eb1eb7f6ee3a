"""Modules seqgen copies into generated files: the trace runs these very classes.

This package's own namespace imports no torch: `helper_classes` reads the helper modules as text,
so the stages that only name or copy a helper (the parser's reserved names, the renderer) stay
torch-free.
"""

from __future__ import annotations

import ast
import functools
import re
from pathlib import Path

_HERE = Path(__file__).resolve().parent


@functools.cache
def helper_classes() -> dict[str, str]:
    """Every helper class by name, with its source, in a fixed order (module name, then line)."""
    out: dict[str, str] = {}
    for path in sorted(_HERE.glob("*.py")):
        if path.name.startswith("_"):
            continue
        text = path.read_text(encoding="utf-8")
        for node in ast.parse(text).body:
            if isinstance(node, ast.ClassDef):
                out[node.name] = ast.get_source_segment(text, node) or ""
    return out


@functools.cache
def helper_names() -> tuple[str, ...]:
    """The helper classes' names, in `helper_classes`' order, without parsing their source (a
    class statement starts a line): what the parser's reserved names and the renderer's choice
    of helpers need, at a fraction of the cost."""
    names: list[str] = []
    for path in sorted(_HERE.glob("*.py")):
        if not path.name.startswith("_"):
            text = path.read_text(encoding="utf-8")
            names += re.findall(r"^class (\w+)\b", text, flags=re.MULTILINE)
    return tuple(names)
