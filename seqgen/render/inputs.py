"""The checks at the top of a generated model's `forward`: the input's rank, each fixed size, and
the rules of the named sizes, each refused with a ValueError that names the dim, the value and the
rule before any layer runs (instead of a shape error deep inside torch).

Each check is a plain int comparison on `x.shape`; a size that is a constructor argument is
compared with the attribute `__init__` stores for it.
"""

from __future__ import annotations

import ast
import textwrap
from collections.abc import Callable
from dataclasses import dataclass

from seqgen.ir import SAMPLE_BATCH, Constraint, Dim, TracedModel
from seqgen.project.header import comment_text
from seqgen.render.layers import shape_text
from seqgen.render.messages import message_source

# Public attributes of nn.Module (torch 2.x) and the one generated classes set: a stored size
# under one of these names would shadow it, so it is stored as `<name>_size` instead.
_MODULE_NAMES = frozenset(
    {
        "T_destination", "add_module", "apply", "bfloat16", "buffers", "call_super_init",
        "children", "compile", "cpu", "cuda", "double", "dump_patches", "eval", "extra_repr",
        "float", "forward", "get_buffer", "get_extra_state", "get_parameter", "get_submodule",
        "half", "ipu", "load_state_dict", "modules", "mtia", "named_buffers", "named_children",
        "named_modules", "named_parameters", "parameters", "register_backward_hook",
        "register_buffer", "register_forward_hook", "register_forward_pre_hook",
        "register_full_backward_hook", "register_full_backward_pre_hook",
        "register_load_state_dict_post_hook", "register_load_state_dict_pre_hook",
        "register_module", "register_parameter", "register_state_dict_post_hook",
        "register_state_dict_pre_hook", "requires_grad_", "set_extra_state", "set_submodule",
        "share_memory", "state_dict", "to", "to_empty", "train", "type", "xpu", "zero_grad",
        "training", "model",
    }
)  # fmt: skip


@dataclass(frozen=True)
class InputChecks:
    """What forward checks, and the constructor arguments __init__ stores for it."""

    checks: list[dict[str, str]]  # {"failed": test source, "message": source, "comment": text}
    stored: list[tuple[str, str]]  # (attribute, argument): `self.seq_len = seq_len`


def attribute(name: str) -> str:
    """The attribute a constructor argument that forward reads is stored under."""
    return f"{name}_size" if name in _MODULE_NAMES or name.startswith("_") else name


def input_shapes(traced: TracedModel) -> list[tuple[str, tuple[Dim, ...], str]]:
    """Each input forward takes: (its argument, its shape, how messages name it). One unnamed
    input is `x`, named `input`."""
    if not traced.inputs:
        return [("x", traced.input_shape, "input")]
    return [(i.name, i.shape, f"input {i.name}") for i in traced.inputs]


def input_checks(traced: TracedModel) -> InputChecks:
    """The checks of the model's forward, in order: for each input its rank, then each dim,
    then the rules of the named sizes that only forward sees."""
    free = set(traced.free_dims)
    init = {p.name for p in traced.init_params}
    # a name's value in forward: a free input dim is read off its input, an argument off self
    values: dict[str, str] = {}
    for var, shape, _ in input_shapes(traced):
        for i, dim in enumerate(shape[1:], start=1):
            if dim.code in free:
                values.setdefault(dim.code, f"{var}.shape[{i}]")
    for name in init:
        values[name] = f"self.{attribute(name)}"
    read: list[str] = []  # arguments forward reads, in first-read order

    def rewrite(source: str) -> str:
        tree = ast.parse(source, mode="eval")
        for node in ast.walk(tree):
            if isinstance(node, ast.Name) and node.id in init and node.id not in read:
                read.append(node.id)
        return ast.unparse(_Substitute(values).visit(tree))

    checks = []
    for var, shape, label in input_shapes(traced):
        checks += _shape_checks(var, shape, label, free, rewrite)
        # a free named size that another input declared first: this one must agree with it
        for i, dim in enumerate(shape[1:], start=1):
            if dim.code in free and values[dim.code] != f"{var}.shape[{i}]":
                checks.append(
                    {
                        "failed": f"{var}.shape[{i}] != {values[dim.code]}",
                        "message": message_source(
                            f"{label} dim {i} must be {dim.shown}",
                            [f"{{{var}.shape[{i}]}} while {dim.code}={{{values[dim.code]}}}"],
                        ),
                        "comment": "",
                    }
                )
    for c in _free_rules(traced):
        message = c.message
        for name in c.names:
            if name in free and message.startswith(f"{name} "):
                message = f"{name} (dim {_dim_of(traced, name)}){message[len(name) :]}"
                break
        checks.append(
            {
                "failed": rewrite(c.failed),
                "message": message_source(
                    message, [f"{n}={{{values.get(n, n)}}}" for n in c.names]
                ),
                "comment": comment_text(c.comment),
            }
        )
    return InputChecks(checks, [(attribute(n), n) for n in read])


def _shape_checks(
    var: str, shape: tuple[Dim, ...], label: str, free: set[str], rewrite: Callable[[str], str]
) -> list[dict[str, str]]:
    """One input's checks: its rank, then each size that is no free named size."""
    rank = len(shape)
    checks = [
        {
            "failed": f"{var}.dim() != {rank}",
            "message": message_source(
                f"expected a {rank}-d {label} {shape_text(shape)}", [f"{{list({var}.shape)}}"]
            ),
            "comment": "",
        }
    ]
    for i, dim in enumerate(shape[1:], start=1):
        if dim.code in free:
            continue  # its rules follow
        expected = rewrite(dim.code) if dim.symbolic else str(dim.value)
        got = f"{{{var}.shape[{i}]}}"
        if dim.symbolic:  # the argument's value at this instance too
            got += f" while {dim.code}={{{expected}}}"
        checks.append(
            {
                "failed": f"{var}.shape[{i}] != {expected}",
                "message": message_source(f"{label} dim {i} must be {dim.shown}", [got]),
                "comment": "",
            }
        )
    return checks


def input_rules(traced: TracedModel) -> list[str]:
    """The rules of the named sizes that are no constructor arguments, for the class docstring:
    one per line (wrapped at 88 columns with the docstring's indent), a bound that another rule
    on the same size implies left out."""
    lines: list[str] = []
    for c in _free_rules(traced):
        lines += textwrap.wrap(
            f"- {comment_text(c.message)}",
            84,
            subsequent_indent="  ",
            break_long_words=False,
            break_on_hyphens=False,
        )
    return lines


def _free_rules(traced: TracedModel) -> list[Constraint]:
    """The constraints that read a named size only forward sees, in order, less each bound that
    another one on the same size implies (of two equal bounds, the first is kept)."""
    free = set(traced.free_dims)
    rules = [c for c in traced.constraints if free & set(c.names)]
    return [
        c
        for j, c in enumerate(rules)
        if not any(_implies(a, c, i < j) for i, a in enumerate(rules) if i != j)
    ]


def _implies(a: Constraint, b: Constraint, a_first: bool) -> bool:
    """Whether `a` holding makes `b` hold: a bound on the same one size, as tight or tighter
    (when as tight, the first of the two implies the other)."""
    if a.symbol is None or a.symbol != b.symbol:
        return False
    if b.minimum is not None and b.maximum is None and a.minimum is not None:
        return a.minimum > b.minimum or (a.minimum == b.minimum and a_first)
    if b.maximum is not None and b.minimum is None and a.maximum is not None:
        return a.maximum < b.maximum or (a.maximum == b.maximum and a_first)
    return False


def _dim_of(traced: TracedModel, name: str) -> str:
    """`1`, or with several inputs `1 of meta`: where a free named size is read."""
    for _, shape, label in input_shapes(traced):
        for i, d in enumerate(shape):
            if d.code == name:
                return str(i) if label == "input" else f"{i} of {label.removeprefix('input ')}"
    raise ValueError(name)


class _Substitute(ast.NodeTransformer):
    def __init__(self, values: dict[str, str]) -> None:
        self.values = values

    def visit_Name(self, node: ast.Name) -> ast.expr:
        if node.id in self.values:
            return ast.parse(self.values[node.id], mode="eval").body
        return node


def wrong_input(
    traced: TracedModel,
    shape: tuple[Dim, ...] | None = None,
    label: str = "input",
    read: frozenset[str] = frozenset(),
) -> dict[str, str] | None:
    """For the generated test: an input (batch 2) with one size forward must refuse, and a regex
    its message matches. A named size that only forward sees is set just below its minimum (so it
    breaks a rule); otherwise a fixed size, or one a constructor argument sets, is one too large.
    None when no size is checked (a rank-1 input). `shape` and `label`: one of several inputs;
    `read`: the free named sizes an earlier input sets (this one must agree with them)."""
    shape = traced.input_shape if shape is None else shape
    sizes = [SAMPLE_BATCH, *(d.value for d in shape[1:])]
    below = {name: size for name, _, size in traced.dim_sizes}
    free = set(traced.free_dims) - read
    for i, dim in enumerate(shape[1:], start=1):
        if dim.code in free and below.get(dim.code, -1) >= 0:
            sizes[i] = below[dim.code]
            return _wrong(sizes, f"{dim.code}={sizes[i]}", f"{dim.code}=")
    fixed = [i for i, d in enumerate(shape[1:], start=1) if d.code not in free]
    plain = [i for i in fixed if not shape[i].symbolic]
    for i in plain or fixed:
        sizes[i] += 1
        message = f"{label} dim {i} must be {shape[i].shown}, got {sizes[i]}"
        return _wrong(sizes, message, f"{label} dim {i} must be")
    return None


_REGEX_SPECIAL = ".^$*+?{}[]\\|()"


def _wrong(sizes: list[int], match: str, plain: str) -> dict[str, str]:
    """The shape as source, and the text its message holds: `match` when it has no character a
    regex reads specially, else `plain` (no backslash reaches the generated file)."""
    text = plain if set(match) & set(_REGEX_SPECIAL) else match
    return {"shape": f"({', '.join(map(str, sizes))})", "match": repr(text)}
