"""Layering: the stages after the trace never import torch, and no module imports itself back."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import seqgen

ROOT = Path(seqgen.__file__).resolve().parent
TORCH_FREE = ("seqgen.render", "seqgen.project", "seqgen.report")
# the packages and modules whose imports this file holds acyclic (lang, layers, trace and check
# are not there yet)
ACYCLIC = (*TORCH_FREE, "seqgen.api", "seqgen.cli", "seqgen.errors")


def test_render_project_and_report_import_no_torch() -> None:
    code = (
        "import importlib, pkgutil, sys\n"
        f"for name in {TORCH_FREE!r}:\n"
        "    package = importlib.import_module(name)\n"
        "    for m in pkgutil.walk_packages(package.__path__, name + '.'):\n"
        "        importlib.import_module(m.name)\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'torch')[:3])\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports() -> dict[str, set[str]]:
    """Every seqgen module each module imports: at the top, in functions, under TYPE_CHECKING."""
    modules = {_module_name(p): p for p in ROOT.rglob("*.py")}
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                targets = [f"{node.module}.{alias.name}" for alias in node.names]
            else:
                continue
            for target in targets:
                while target and target not in modules:  # `from pkg import name` -> pkg
                    target = target.rpartition(".")[0]
                if target and target != name:
                    graph[name].add(target)
    return graph


def _cycle_from(start: str, graph: dict[str, set[str]]) -> list[str] | None:
    """A chain of imports from `start` back to itself, or None."""
    stack, seen = [(start, [start])], set()
    while stack:
        module, chain = stack.pop()
        for target in sorted(graph[module]):
            if target == start:
                return [*chain, start]
            if target not in seen:
                seen.add(target)
                stack.append((target, [*chain, target]))
    return None


def test_no_import_cycles() -> None:
    graph = _imports()
    cycles = [
        " -> ".join(cycle)
        for name in sorted(graph)
        if name.startswith(ACYCLIC)
        for cycle in [_cycle_from(name, graph)]
        if cycle is not None
    ]
    assert cycles == []
