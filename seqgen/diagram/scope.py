"""Sizes and calls as a diagram shows them: the traced expressions, with names replaced.

At the model's level a name is replaced only by an `--at name=value`; inside an expanded block
use, the block's own names are replaced by what that use binds them to (in the model's names),
then by `--at`. Arithmetic whose names are all replaced is computed (`(H - 1) // stride + 1`
at H=32, stride=2 is `16`) by seqgen's arithmetic interpreter, never `eval`; what the trace
wrote without names (`16 * 8 * 8`) is shown as written.
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
        names). The batch `N` keeps its `--at` value; the block's other names are all bound."""
        bound = {name: self._substitute(_parse(source)) for name, source in bindings}
        return Scope({**self.names, **bound})

    def text(self, source: str) -> str:
        """`source` with this scope's names replaced and the name-free parts computed."""
        if not self.names:
            return source
        try:
            tree = ast.parse(source, mode="eval")
        except SyntaxError:
            return source
        return ast.unparse(self._substitute(tree.body))

    def dim(self, d: Dim) -> str:
        """One size as shown: the number, or the expression where it has names."""
        if not d.symbolic:
            return str(d.value)
        return self.text(d.code)

    def shape(self, dims: Sequence[Dim]) -> str:
        """`(N, 16, 32, 32)`."""
        return "(" + ", ".join(self.dim(d) for d in dims) + ("," if len(dims) == 1 else "") + ")"

    def _substitute(self, tree: ast.expr) -> ast.expr:
        return _resolve(copy.deepcopy(tree), self.names)


def _parse(source: str) -> ast.expr:
    return ast.parse(source, mode="eval").body


def _has_names(tree: ast.AST) -> bool:
    return any(isinstance(n, ast.Name) for n in ast.walk(tree))


def _resolve(tree: ast.expr, names: Mapping[str, ast.expr]) -> ast.expr:
    """`tree` with `names` replaced (not the `nn` of `nn.LSTM`), and each arithmetic part that
    had names and has none left computed: `16 * (seq_len - 2)` at `seq_len=50` is `768`, while
    a `16 * 8 * 8` the trace wrote stays as it is."""
    if isinstance(tree, ast.Name):
        return copy.deepcopy(names[tree.id]) if tree.id in names else tree
    if isinstance(tree, ast.Attribute):
        return tree
    had_names = _has_names(tree)
    for name, value in ast.iter_fields(tree):
        if isinstance(value, ast.expr):
            setattr(tree, name, _resolve(value, names))
        elif isinstance(value, list):
            setattr(
                tree, name, [_resolve(v, names) if isinstance(v, ast.expr) else v for v in value]
            )
    if isinstance(tree, ast.Call):
        for kw in tree.keywords:
            kw.value = _resolve(kw.value, names)
    if isinstance(tree, ast.BinOp | ast.UnaryOp) and had_names and not _has_names(tree):
        try:
            value = evaluate_source(ast.unparse(tree), {})
        except (NotArithmetic, ArithmeticError):
            return tree
        if type(value) is int:
            return ast.Constant(value)
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
