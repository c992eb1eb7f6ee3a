"""Named blocks (trace stage): a block's class is traced once, with its own symbols.

Its input sizes (`in_channels`, ...) and int parameters are symbols of their own, so every size
inside the class is an expression of its constructor's arguments. Each use then substitutes the
caller's sizes and arguments into the block's output shape, parameter count and conditions:
nothing is traced again per use. (A block whose body forces an input size to equal one of its
int parameters is traced a second time, with that size written as the parameter: its class
takes one argument for the two, see trace_block.)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import sympy
import torch

from seqgen.errors import Diagnostic, InternalError, SeqgenError, TraceError
from seqgen.ir import (
    BlockArg,
    BlockDef,
    BlockUse,
    Expr,
    Node,
    TracedBlock,
    called_names,
    expr_names,
    spec_names,
    walk,
)
from seqgen.lang.names import ALL_INPUT_NAMES, input_names
from seqgen.lang.values import expr_source
from seqgen.layers.torch_nn import Values
from seqgen.report.lint import UNUSED_PARAMETER
from seqgen.trace import symbolic as S
from seqgen.trace.constraints import Condition, derive
from seqgen.trace.scope import BlockArgs, BlockInfo, DimInfo, Scope, StackResult, Step
from seqgen.trace.torch_errors import shape_text
from seqgen.trace.wording import Site, in_block, subject_of

PARAM_TYPES: dict[str, type | tuple[type, ...]] = {
    "int": int,
    "float": (int, float),
    "bool": bool,
    "str": str,
}


def bind_use(block: BlockDef, use: BlockUse, values: Values) -> BlockArgs:
    """A use's arguments by parameter (the parser checked names and counts), type-checked."""
    nodes: dict[str, Expr] = {}
    for param, node in zip(block.params, use.args):
        nodes[param.name] = node
    for kw in use.kwargs:
        nodes[kw.name] = kw.value
    out: dict[str, Any] = {}
    for name, node in nodes.items():
        declared = block.param(name)
        if declared is None:
            raise InternalError(
                f"block {block.name!r} has no parameter {name!r} (the parser checks)"
            )
        value = values.eval(node)
        want = declared.type_name
        ok = S.is_symbolic(value) if want == "int" else False
        if not ok:
            ok = isinstance(value, PARAM_TYPES[want]) and not (
                want != "bool" and isinstance(value, bool)
            )
        if not ok:
            raise _wrong_type(block, name, want, node, value)
        out[name] = value
    return BlockArgs(nodes, out)


def _wrong_type(block: BlockDef, name: str, want: str, node: Expr, value: Any) -> TraceError:
    """`block B's parameter c takes an int, but w is a float (8.0 by default)`: what was passed,
    as written, and what it is."""
    kind = "an int" if S.is_symbolic(value) else _a(type(value).__name__)
    source = expr_source(node)
    named = list(expr_names(node))
    if not named:
        got = f"got {source}, {kind}"
    elif S.is_symbolic(value):
        got = f"but {source} is {kind}"
    else:
        got = f"but {source} is {kind} ({value!r} by default)"
    hint = None
    if isinstance(value, float) and value.is_integer() and not named:
        hint = f"write {int(value)}"
    return TraceError(
        f"block {block.name}'s parameter {name} takes {_a(want)}, {got}",
        location=node.loc,
        hint=hint,
    )


def _a(type_name: str) -> str:
    """`an int`, `a float`."""
    return f"an {type_name}" if type_name[0] in "aeiou" else f"a {type_name}"


def _check_input_names(block: BlockDef, rank: int) -> None:
    """An input-size name the block reads must exist for the rank it is used at."""
    have = input_names(rank)
    for node in walk(block.body):
        exprs = [*getattr(node, "args", ()), *(kw.value for kw in getattr(node, "kwargs", ()))]
        for e in exprs:
            for ref in expr_names(e):
                if ref.id in ALL_INPUT_NAMES and ref.id not in have and block.param(ref.id) is None:
                    raise TraceError(
                        f"{ref.id!r} is not a size of this block's rank-{rank} input",
                        location=ref.loc,
                        hint=f"its input sizes are {', '.join(have) or 'none'} (dim 1 on)",
                    )


# Traces a stack of nodes in a scope (the tracer's own method, handed in: blocks contain any node)
StackTracer = Callable[[Scope, Sequence[Node], torch.Tensor, list[DimInfo]], StackResult]


@dataclass(frozen=True)
class _Body:
    """A block's body traced once: its scope, symbols and nodes."""

    tracer: Scope
    inputs: tuple[sympy.Symbol, ...]  # dims 1.. of its input, one symbol each
    param_symbols: Mapping[str, sympy.Symbol]
    defaults: Mapping[str, Any]
    concrete: Mapping[str, Any]
    block_dims: list[DimInfo]  # the input as the body sees it
    out_dims: list[DimInfo]
    steps: list[Step]

    def size_args(self, names: Sequence[str]) -> tuple[int, ...]:
        """The input dims that the layers' constructor calls read."""
        called = called_names(tuple(st.traced for st in self.steps))
        return tuple(i for i, name in enumerate(names, start=1) if name in called)


def trace_block(
    parent: Scope,
    block: BlockDef,
    dims: Sequence[DimInfo],
    args: BlockArgs,
    use: BlockUse,
    trace_stack: StackTracer,
) -> BlockInfo:
    """Trace `block`'s body once in a scope of its own, its symbols hinted by this (first) use.

    An input size that the body forces equal to an int parameter (an identity residual's
    `out == in_channels`) is no argument of its own: the body is traced again with that size
    written as the parameter, so the class takes `out` alone, and each use checks the equality.
    """
    rank = len(dims)
    _check_input_names(block, rank)
    names = input_names(rank)
    warned = len(parent.warnings)
    first = body = _trace_body(parent, block, dims, args, use, trace_stack, {})
    aliases = _aliases(first, first.size_args(names))
    if aliases:
        del parent.warnings[warned:]  # the second trace says it again
        body = _trace_body(parent, block, dims, args, use, trace_stack, aliases)
    tracer, inputs, out_dims, steps = body.tracer, body.inputs, body.out_dims, body.steps
    size_args = body.size_args(names)
    ctor = {inputs[i - 1] for i in size_args} | set(body.param_symbols.values())
    own = [c for c in tracer.conditions if S.free_symbols(c.condition) <= ctor]
    order = [*(names[i - 1] for i in size_args), *(p.name for p in block.params)]
    bools = {p.name for p in block.params if p.type_name == "bool"}
    flags = [f for n, f in body.param_symbols.items() if n in bools]
    constraints = tuple(derive(own, tracer.hints, parent.names, tracer.printer, order, flags))
    _warn_unused(parent, block, spec_names(block.body))
    total = sum((st.params_expr for st in steps), sympy.Integer(0))
    train = sum((st.trainable_expr for st in steps), sympy.Integer(0))
    macs = sum((st.macs_expr for st in steps), sympy.Integer(0))
    block_args = [BlockArg(names[i - 1], "int", None, input_size=True) for i in size_args]
    block_args += [
        BlockArg(p.name, p.type_name, None if p.required else repr(p.default)) for p in block.params
    ]
    first_call = [(names[i - 1], str(body.concrete[names[i - 1]])) for i in size_args]
    first_call += [(p.name, repr(body.concrete[p.name])) for p in block.params]
    traced = TracedBlock(
        spec=block,
        args=tuple(block_args),
        input_shape=tuple(tracer.dim(d) for d in body.block_dims),
        layers=tuple(st.traced for st in steps),
        out_shape=tuple(tracer.dim(d) for d in out_dims),
        constraints=constraints,
        total_params=tracer.as_dim(total),
        first_call=tuple(first_call),
        first_input=tuple(parent.value(d.expr) for d in dims[1:]),
        first_output=tuple(tracer.value(d.expr) for d in out_dims[1:]),
    )
    if any(d.expr == tracer.batch_sym for d in out_dims[1:]):
        raise TraceError(
            f"block {block.name!r} moves the batch dim: {shape_text(out_dims)}", location=block.loc
        )
    # each use checks what the second trace took for granted: its size equals the parameter
    renamed: dict[sympy.Symbol, sympy.Expr] = dict(zip(first.inputs, inputs))
    renamed.update({first.param_symbols[n]: s for n, s in body.param_symbols.items()})
    equal = [
        replace(
            c,
            condition=c.condition.xreplace(
                {
                    first.inputs[i - 1]: inputs[i - 1],
                    first.param_symbols[name]: body.param_symbols[name],
                }
            ),
            merge=c.merge.at_use(renamed, "") if c.merge is not None else None,
        )
        for i, (name, c) in sorted(aliases.items())
    ]
    return BlockInfo(
        traced=traced,
        rank=rank,
        first_line=block.loc.line,
        input_symbols=inputs,
        param_symbols=body.param_symbols,
        defaults=body.defaults,
        out_exprs=tuple(d.expr for d in out_dims),
        params=total,
        trainable=train,
        macs=macs,
        conditions=(*equal, *tracer.conditions),
        size_args=size_args,
        names=parent.names,
    )


def _aliases(body: _Body, size_args: Sequence[int]) -> dict[int, tuple[str, Condition]]:
    """Input dims (of those the constructor takes) that a condition of the body forces equal to
    an int parameter: dim -> (the parameter, the condition)."""
    params = {sym: name for name, sym in body.param_symbols.items()}
    dims = {body.inputs[i - 1]: i for i in size_args}
    out: dict[int, tuple[str, Condition]] = {}
    for c in body.tracer.conditions:
        if isinstance(c.condition, sympy.Eq):
            a, b = c.condition.args
            dim, param = (a, b) if a in dims else (b, a)
            if dim in dims and param in params:
                out.setdefault(dims[dim], (params[param], c))
    return out


def _trace_body(
    parent: Scope,
    block: BlockDef,
    dims: Sequence[DimInfo],
    args: BlockArgs,
    use: BlockUse,
    trace_stack: StackTracer,
    aliases: Mapping[int, tuple[str, Condition]],
) -> _Body:
    """The block's body in a scope of its own; an input dim in `aliases` is its parameter."""
    session = parent.session
    env: dict[str, Any] = {}
    hints: dict[sympy.Symbol, int] = {}
    concrete: dict[str, Any] = {}
    inputs = []
    block_dims = [dims[0]]
    for i, name in enumerate(input_names(len(dims)), start=1):
        hint = parent.value(dims[i].expr)
        sym = session.symbol(name, hint)
        expr = S.expr_of(sym)
        env[name], hints[expr], concrete[name] = sym, hint, hint
        inputs.append(expr)
        block_dims.append(DimInfo(expr, name))
    param_symbols: dict[str, sympy.Symbol] = {}
    defaults: dict[str, Any] = {}
    for p in block.params:
        value = args.values.get(p.name, p.default)
        defaults[p.name] = p.default
        if p.type_name == "int":
            hint = parent.value(S.expr_of(value))
            sym = session.symbol(p.name, hint, size=False)
            expr = S.expr_of(sym)
            env[p.name], hints[expr], concrete[p.name] = sym, hint, hint
            param_symbols[p.name] = expr
        else:
            env[p.name] = concrete[p.name] = value
        if p.type_name == "bool":  # 0 or 1 where it decides a count or size (`bias=bias`)
            flag = S.expr_of(session.symbol(p.name, int(value), size=False))
            hints[flag] = int(value)
            param_symbols[p.name] = parent.shared.flags[f"{block.name}.{p.name}"] = flag
    for i, (param, _) in aliases.items():  # the parameter stands for this input size
        env[input_names(len(dims))[i - 1]] = env[param]
        block_dims[i] = DimInfo(param_symbols[param], param)
    tracer = Scope(
        parent.shared,
        env,
        hints,
        Values(concrete),
        {p.name: p for p in block.params},
        block=block.name,
    )
    # sizes known >= 1; a parameter standing for one is not (the block's own check says so)
    tracer.positive.extend(inputs[i - 1] for i in range(1, len(dims)) if i not in aliases)
    x = tracer.session.tensor(tracer.symbolic_sizes(block_dims))
    shown = ", ".join(f"{k}={v!r}" for k, v in concrete.items())
    note = f"block {block.name} traced at its first use (line {use.loc.line}: {shown})"

    def at_use(e: SeqgenError) -> SeqgenError:  # say which use the block was traced at
        use_hint = f"{e.diagnostic.hint}; {note}" if e.diagnostic.hint else note
        return type(e)(
            e.diagnostic.message, location=e.location, hint=use_hint, fix=e.diagnostic.fix
        )

    found = parent.shared.errors  # the body's errors, recorded as the trace went on
    before = len(found)
    try:
        result = trace_stack(tracer, block.body, x, block_dims)
    except SeqgenError as e:
        noted = [at_use(f) for f in found[before:]]
        raised = next((n for f, n in zip(found[before:], noted) if f is e), None)
        found[before:] = noted
        raise (raised or at_use(e)) from e
    found[before:] = [at_use(f) for f in found[before:]]
    return _Body(
        tracer,
        tuple(inputs),
        param_symbols,
        defaults,
        concrete,
        block_dims,
        result.dims,
        result.steps,
    )


def conditions_at_use(
    info: BlockInfo, use: BlockUse, mapping: Mapping[sympy.Symbol, Any], index: int
) -> list[Condition]:
    """The block's conditions at one use, in the caller's names, each saying where it comes from."""
    where = f"block {use.name} (used on line {use.loc.line})"
    site = Site(use.name, use.loc.line, use.loc.text).comment()
    return [
        Condition(
            c.condition.xreplace(mapping),
            index,
            f"{where}: {c.message}",
            reason=in_block(use.name, c.reason),
            detail=in_block(use.name, c.detail),
            source=f"{site} ({subject_of(c.source)})" if c.source else site,
            merge=c.merge.at_use(dict(mapping), f"{where}: ") if c.merge is not None else None,
        )
        for c in info.conditions
    ]


def _warn_unused(parent: Scope, block: BlockDef, used: set[str]) -> None:
    for p in block.params:
        if p.name not in used:
            parent.warnings.append(
                Diagnostic(
                    "warning",
                    f"block parameter {p.name!r} of {block.name!r} is not used",
                    p.loc,
                    f"remove {p.name}, or use it in the block's layers",
                    UNUSED_PARAMETER,
                )
            )
