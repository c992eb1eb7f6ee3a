"""`use mypkg.layers:Gate [as gate] [infers in_channels=1]`: the user's own layer classes.

The parser only reads the line: the module is imported at the trace (seqgen/layers/user.py),
and only where the project allows it (`allow_errors`), since importing runs the module's code and
specs may come from anyone. Spec text reaches generated code only as checked identifiers.
"""

from __future__ import annotations

import contextlib
import keyword
import re
from collections.abc import Collection, Iterator, Sequence
from contextvars import ContextVar

from seqgen.errors import Location, SeqgenError, SpecSyntaxError, TraceError
from seqgen.ir import UseSpec
from seqgen.lang.names import check_identifier

USAGE = "e.g. `use mypkg.layers:Gate`, `use mypkg.layers:Gate as gate infers in_channels=1`"
_USE = re.compile(
    r"use(?P<sp>\s+)(?P<path>[^\s#]*)"
    r"(?:\s+as\s+(?P<alias>[^\s#]+))?"
    r"(?:\s+infers(?P<infers>(?:\s+[^\s#]+)+))?"
    r"\s*(?:#.*)?$"
)
# What generated modules import besides torch (the rest is reserved: lang/names.py).
_IMPORTED = frozenset({"NamedTuple", "OrderedDict"})
_INFERS = re.compile(r"(?P<name>[^\s=]+)=(?P<dim>-?\d+)$")
# The modules `use` lines may import during a run (see `allowing`); none unless a run says so.
_ALLOWED: ContextVar[frozenset[str]] = ContextVar("seqgen_allowed_imports", default=frozenset())


@contextlib.contextmanager
def allowing(modules: Collection[str]) -> Iterator[None]:
    """Within the block, `use` lines may import these modules (and the modules inside them)."""
    token = _ALLOWED.set(frozenset(modules))
    try:
        yield
    finally:
        _ALLOWED.reset(token)


def allowed_modules() -> frozenset[str]:
    """The modules `use` lines may import here (set by `allowing`)."""
    return _ALLOWED.get()


def is_use_line(raw: str) -> bool:
    """Whether a raw spec line is a `use` line (read before the lexer, which has no `.`/`:`)."""
    return re.match(r"\s*use\s", raw) is not None


def parse_use(path: str, lineno: int, raw: str) -> UseSpec:
    """One `use` line as a UseSpec; a located SpecSyntaxError for anything else."""

    def loc(col: int, width: int = 1) -> Location:
        return Location(path, lineno, col, raw, max(1, width))

    indent = len(raw) - len(raw.lstrip(" "))
    if indent:
        raise SpecSyntaxError(
            "a `use` line cannot be indented", location=loc(indent + 1, 3), hint=USAGE
        )
    m = _USE.match(raw)
    if m is None or ":" not in m.group("path"):
        raise SpecSyntaxError(
            "expected `use MODULE:CLASS` (a dotted module path, a colon, a class name)",
            location=loc(1, len(raw.rstrip()) or 1),
            hint=USAGE,
        )
    start = m.start("path") + 1
    module, _, class_name = m.group("path").partition(":")
    where = loc(start, len(m.group("path")))
    parts = module.split(".")
    for part in parts:
        if not part.isidentifier() or not part.isascii() or keyword.iskeyword(part):
            raise SpecSyntaxError(
                f"module path {module!r} is not a dotted Python module name",
                location=where,
                hint=USAGE,
            )
    check_identifier(class_name, "class name", where)
    if class_name in _IMPORTED:
        raise SpecSyntaxError(
            f"class name {class_name!r} is imported by generated code itself",
            location=where,
            hint="import the class under another name in a module of yours",
        )
    name = class_name
    if m.group("alias") is not None:
        name = check_identifier(
            m.group("alias"), "name", loc(m.start("alias") + 1, len(m.group("alias")))
        )
    inferred: list[tuple[str, int]] = []
    if m.group("infers") is not None:
        offset = m.start("infers")
        for item in re.finditer(r"\S+", m.group("infers")):
            pair = _INFERS.match(item.group())
            at = loc(offset + item.start() + 1, len(item.group()))
            if pair is None:
                raise SpecSyntaxError(
                    f"expected `ARGUMENT=DIM` after `infers`, got {item.group()!r}",
                    location=at,
                    hint="e.g. `infers in_channels=1` (dim 1 of the input), "
                    "`infers in_features=-1` (its last dim)",
                )
            if int(pair["dim"]) == 0:
                raise SpecSyntaxError(
                    "dim 0 is the batch: no constructor argument is inferred from it",
                    location=at,
                    hint="dim 1 is the first dim after the batch (channels); -1 the last",
                )
            inferred.append(
                (check_identifier(pair.group("name"), "argument", at), int(pair["dim"]))
            )
    return UseSpec(module, class_name, name, tuple(inferred), where)


def use_clashes(uses: Sequence[UseSpec], blocks: Collection[str], model: str) -> list[SeqgenError]:
    """Two `use` lines for one name or one class name (generated code imports each class by its
    name), or a name that is a block's or the model's class name."""
    errors: list[SeqgenError] = []
    seen: dict[str, UseSpec] = {}
    classes: dict[str, UseSpec] = {}
    for use in uses:
        before = seen.get(use.name.lower())
        other = classes.get(use.class_name)
        if before is not None:
            errors.append(
                SpecSyntaxError(
                    f"{use.name!r} is declared by two `use` lines (line {before.loc.line} too)",
                    location=use.loc,
                    hint="give one of them another name: `use MODULE:CLASS as NAME`",
                )
            )
        elif other is not None:
            errors.append(
                SpecSyntaxError(
                    f"two `use` lines import a class called {use.class_name!r} (line "
                    f"{other.loc.line} too): generated code imports each class by its name",
                    location=use.loc,
                )
            )
        elif {use.name, use.class_name} & {*blocks, model}:
            what = "the model's class name" if model in (use.name, use.class_name) else "a block"
            errors.append(
                SpecSyntaxError(
                    f"{use.class_name!r} is also {what} (generated code defines it)",
                    location=use.loc,
                    hint="rename the block, or the model (`model NAME`; else the spec file's "
                    "name gives it)",
                )
            )
        seen.setdefault(use.name.lower(), use)
        classes.setdefault(use.class_name, use)
    return errors


def is_allowed(module: str, allowed: Collection[str]) -> bool:
    """Whether `module` is one of the allowed modules or inside one (`mypkg` allows
    `mypkg.layers`)."""
    return any(module == a or module.startswith(a + ".") for a in allowed)


def allow_errors(uses: Sequence[UseSpec], allowed: Collection[str]) -> list[SeqgenError]:
    """A located error for each `use` of a module the project does not allow importing."""
    return [
        TraceError(
            f"seqgen does not import {use.module!r} unless the project allows it: importing "
            "runs the module's code, and a spec may come from anyone",
            location=use.loc,
            hint=f'add `allow-imports = ["{use.module.split(".")[0]}"]` to [tool.seqgen] in '
            f"pyproject.toml, or pass --allow-import {use.module.split('.')[0]}",
        )
        for use in uses
        if not is_allowed(use.module, allowed)
    ]
