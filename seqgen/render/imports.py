"""The import lines of generated files, in the order isort gives them (ruff's `I001`).

Generated files pass `ruff check --select I` as they are written, so the names a test file
imports from its model, and the standard-library imports of a model module, are ordered here
the way ruff's isort orders them with its default settings.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

from seqgen.ir import ModelSpec, flat_layers
from seqgen.project.layout import project_root

_DIGITS = re.compile(r"(\d+)")


def _natural(text: str) -> list[tuple[int, int]]:
    """A key that compares like ruff's natural order: a run of digits by its value (before
    letters and `_`, as the character '0' is), every other character by its code point."""
    key: list[tuple[int, int]] = []
    for i, part in enumerate(_DIGITS.split(text)):
        if i % 2:
            key.append((ord("0"), int(part)))
        else:
            key.extend((ord(c), 0) for c in part)
    return key


def _member_type(name: str) -> int:
    """isort's `order-by-type`: constants (`CNN`, `VGG16`) 0, classes (`Basic`) 1, others 2."""
    if len(name) > 1 and name.upper() == name and name.lower() != name:
        return 0
    return 1 if name[:1].isupper() else 2


def member_order(names: Iterable[str]) -> list[str]:
    """The names of one `from module import ...`, in isort's order: by type, then
    case-insensitively in natural order (`Stage2` before `Stage10`), then case-sensitively."""
    return sorted(names, key=lambda n: (_member_type(n), _natural(n.lower()), _natural(n)))


def stdlib_imports(*, ordered_dict: bool, math: bool, named_tuple: bool = False) -> list[str]:
    """A model module's standard-library imports: `import` lines before `from` lines (isort's
    default, `force-sort-within-sections = false`), each group by module."""
    lines = ["import math"] if math else []
    if ordered_dict:
        lines.append("from collections import OrderedDict")
    if named_tuple:
        lines.append("from typing import NamedTuple")
    return lines


def module_imports(
    user: Iterable[tuple[str, str]], first_party: Iterable[str] = ()
) -> tuple[list[str], list[str]]:
    """A model module's `from` imports after `import torch`: the third-party ones (torch's nn,
    the user's classes from installed packages), then the first-party ones (the user's classes
    from the project's own modules), each in isort's order: by module, names by
    `member_order`."""
    local = set(first_party)
    froms: dict[str, list[str]] = {"torch": ["nn"]}
    mine: dict[str, list[str]] = {}
    for module, name in user:
        target = mine if module.split(".")[0] in local else froms
        target.setdefault(module, []).append(name)

    def lines(table: dict[str, list[str]]) -> list[str]:
        return [
            f"from {m} import {', '.join(member_order(set(table[m])))}"
            for m in sorted(table, key=lambda m: (_natural(m.lower()), _natural(m)))
        ]

    return lines(froms), lines(mine)


def user_imports(spec: ModelSpec) -> tuple[list[tuple[str, str]], list[str]]:
    """The user's classes the model's layer lines use, as (module, class), and which of their
    top-level modules are the project's own, as ruff's isort finds them with its default `src`
    (the project root and its `src/`), or beside the spec (and so beside the model module)."""
    stacks = [spec.layers, spec.head_nodes, *(b.body for b in spec.blocks)]
    used = {layer.use for nodes in stacks for layer in flat_layers(nodes) if layer.use}
    folder = Path(spec.path).parent
    root, _ = project_root(folder)
    places = (folder, root, root / "src")
    tops = {use.module.split(".")[0] for use in used}
    local = [
        top
        for top in sorted(tops)
        if any((p / f"{top}.py").is_file() or (p / top).is_dir() for p in places)
    ]
    return sorted((use.module, use.class_name) for use in used), local
