"""Sizes and calls as a diagram shows them: the traced expressions, with names replaced.

At the model's level a name is replaced only by an `--at name=value`; inside an expanded block
use, the block's own names are replaced by what that use binds them to (in the model's names),
then by `--at`. Parts that end up without names are computed (`(32 - 1) // 2 + 1` is `16`), by
seqgen's arithmetic interpreter, never `eval`. Text that is not seqgen's arithmetic is left as
it is.
"""

from __future__ import annotations

import ast
import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from seqgen.errors import DiagramError
from seqgen.ir import BATCH, Dim, TracedModel
from seqgen.safe_eval import NotArithmetic, evaluate_source


@dataclass(frozen=True)
class Scope:
    """What each name stands for where a stack is drawn (an expression in the model's names)."""

    names: Mapping[str, ast.expr] = field(default_factory=dict)

    def bind(self, bindings: Sequence[tuple[str, str]]) -> Scope:
        """The scope inside a block use: its names bound to these sources (in this scope's
        names); a block's own names are all bound, so no name of this scope leaks in."""
        return Scope({name: self._substitute(_parse(source)) for name, source in bindings})

    def text(self, source: str) -> str:
        """`source` with this scope's names replaced and the name-free parts computed."""
        if not self.names:
            return source
        try:
            tree = ast.parse(source, mode="eval")
        except SyntaxError:
            return source
        return ast.unparse(_fold(self._substitute(tree.body)))

    def dim(self, d: Dim) -> str:
        """One size as shown: the number, or the expression where it has names."""
        if not d.symbolic:
            return str(d.value)
        return self.text(d.code)

    def shape(self, dims: Sequence[Dim]) -> str:
        """`(N, 16, 32, 32)`."""
        return "(" + ", ".join(self.dim(d) for d in dims) + ")"

    def _substitute(self, tree: ast.expr) -> ast.expr:
        replaced = _Replace(self.names).visit(copy.deepcopy(tree))
        assert isinstance(replaced, ast.expr)
        return replaced


class _Replace(ast.NodeTransformer):
    """Replaces names (not the `nn` of `nn.LSTM`: attribute owners are kept)."""

    def __init__(self, names: Mapping[str, ast.expr]) -> None:
        self.names = names

    def visit_Attribute(self, node: ast.Attribute) -> ast.AST:
        return node

    def visit_Name(self, node: ast.Name) -> ast.AST:
        if node.id in self.names:
            return copy.deepcopy(self.names[node.id])
        return node


def _parse(source: str) -> ast.expr:
    return ast.parse(source, mode="eval").body


def _fold(tree: ast.expr) -> ast.expr:
    """Computes every arithmetic part without names; anything else is kept."""
    if isinstance(tree, ast.BinOp | ast.UnaryOp) and not any(
        isinstance(n, ast.Name) for n in ast.walk(tree)
    ):
        try:
            value = evaluate_source(ast.unparse(tree), {})
        except (NotArithmetic, ArithmeticError):
            return tree
        if type(value) is int:
            return ast.Constant(value)
        return tree
    for name, value in ast.iter_fields(tree):
        if isinstance(value, ast.expr):
            setattr(tree, name, _fold(value))
        elif isinstance(value, list):
            setattr(tree, name, [_fold(v) if isinstance(v, ast.expr) else v for v in value])
    if isinstance(tree, ast.Call):
        for kw in tree.keywords:
            kw.value = _fold(kw.value)
    return tree


def at_scope(traced: TracedModel, at: Sequence[str]) -> Scope:
    """The model-level scope of `--at name=value` options: each names a model parameter, a
    named input size or the batch `N`, with an int value the model accepts."""
    sizes = {p.name: p.default for p in traced.spec.params if type(p.default) is int}
    values: dict[str, int] = {}
    for item in at:
        name, sep, value = item.partition("=")
        name, value = name.strip(), value.strip()
        if not sep or not name:
            raise DiagramError(f"--at {item!r}: write NAME=VALUE, e.g. --at num_classes=100")
        if name != BATCH and name not in sizes:
            known = ", ".join([*sorted(sizes), BATCH])
            raise DiagramError(
                f"--at {item!r}: {name!r} is no int parameter or size of the model",
                hint=f"the names are: {known}",
            )
        try:
            values[name] = int(value)
        except ValueError:
            raise DiagramError(f"--at {item!r}: {value!r} is not a whole number") from None
    env = {**sizes, **values, BATCH: values.get(BATCH, 1)}
    if env[BATCH] < 1:
        raise DiagramError(f"--at {BATCH}={env[BATCH]}: the batch must be at least 1")
    for c in traced.constraints:
        try:
            holds = evaluate_source(c.condition, env)
        except (NotArithmetic, ArithmeticError):
            continue
        if not holds:
            shown = ", ".join(f"{k}={v}" for k, v in values.items())
            raise DiagramError(f"--at {shown}: the model refuses it: {c.message} ({c.condition})")
    return Scope({name: ast.Constant(v) for name, v in sorted(values.items())})
