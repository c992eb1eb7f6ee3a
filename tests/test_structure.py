"""The package's shape, checked: no import cycles, no private names across modules, small modules.

Every import in seqgen/ counts, including those inside functions and behind TYPE_CHECKING: a cycle
hidden there is still a cycle.
"""

from __future__ import annotations

import ast
from pathlib import Path

import seqgen

ROOT = Path(seqgen.__file__).resolve().parent
MAX_LINES = 400
MAX_TOP_LEVEL = 12


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted(ROOT.rglob("*.py")):
        parts = path.relative_to(ROOT.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


def _imports(path: Path, name: str, modules: dict[str, Path]) -> list[tuple[str, str, int]]:
    """(imported module, imported symbol or '', line) for every seqgen import in a module."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(a.name, "", node.lineno) for a in node.names if a.name in modules]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1])
                base = f"{base}.{node.module}" if node.module else base
            if base.split(".")[0] != "seqgen":
                continue
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                found.append(
                    (sub, "", node.lineno) if sub in modules else (base, alias.name, node.lineno)
                )
    return found


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {
        name: {target for target, _, _ in _imports(path, name, modules) if target != name}
        for name, path in modules.items()
    }


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_no_import_cycles() -> None:
    assert _cycles(_graph()) == []


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_private_names_cross_modules() -> None:
    modules = _modules()
    crossing = [
        f"{path.relative_to(ROOT.parent)}:{line}: {symbol} from {target}"
        for name, path in modules.items()
        for target, symbol, line in _imports(path, name, modules)
        if symbol.startswith("_") and not symbol.startswith("__") and target != name
    ]
    assert crossing == []


def test_modules_stay_small() -> None:
    sizes = {
        str(path.relative_to(ROOT.parent)): len(path.read_text(encoding="utf-8").splitlines())
        for path in _modules().values()
    }
    assert {k: v for k, v in sizes.items() if v > MAX_LINES} == {}


def test_few_modules_directly_under_seqgen() -> None:
    top = sorted(p.name for p in ROOT.glob("*.py"))
    assert len(top) <= MAX_TOP_LEVEL, top


def test_helper_names_are_the_helper_classes_in_order() -> None:
    from seqgen.runtime import helper_classes, helper_names

    assert helper_names() == tuple(helper_classes())
