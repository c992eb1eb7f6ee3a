"""How a model with heads is written: a `typing.NamedTuple` of its outputs, the trunk as named
segments, one nn.Sequential per head, and a `forward` of plain statements.

The trunk is split where heads branch off (`head aux from=mid:`): `self.mid` holds the trunk's
layers up to and including the one named `mid`, `self.trunk` the layers after the last such
point (the whole trunk when no head names a point). Each segment's output is a local named after
its point (`features` for the trunk's end), and each head reads one of them.
"""

from __future__ import annotations

import re
from typing import Any

from seqgen.ir import Dim, TracedHead, TracedModel, TracedNode
from seqgen.render.layers import layer_items, named, shape_text
from seqgen.safe_eval import NotArithmetic, evaluate_source

TRUNK = "trunk"  # the attribute of the trunk's last segment
FEATURES = "features"  # the local that holds the trunk's output


def output_class(traced: TracedModel) -> str:
    """The NamedTuple `forward` returns: `<Model>Output`."""
    return f"{traced.spec.class_name}Output"


def output_text(traced: TracedModel) -> str:
    """What forward returns, as the class docstring says it: a shape, or the output class."""
    return output_class(traced) if traced.heads else shape_text(traced.out_shape)


def head_shape_text(head: TracedHead) -> str:
    """`(N, num_classes)`, and when it is returned: a field of the output class's docstring."""
    text = shape_text(head.out_shape)
    return f"{text}, in training mode only (None in eval mode)" if head.train_only else text


def _segments(traced: TracedModel) -> list[tuple[str, str, int, int]]:
    """The trunk's segments: (attribute, local, first node, end), split after each point."""
    ends = sorted({traced.head_start(h) for h in traced.heads if h.point and not h.spec.branch})
    bounds = [*(e + 1 for e in ends), len(traced.layers)]
    names = [_point_name(traced, e) for e in ends] + [TRUNK]
    locals_ = names[:-1] + [FEATURES]
    out = []
    start = 0
    for attribute, local, stop in zip(names, locals_, bounds, strict=True):
        out.append((attribute, local, start, stop))
        start = stop
    return out


def keyed(traced: TracedModel) -> list[bool]:
    """For each trunk node, whether the nn.Sequential that holds it is keyed by name (then a
    loop in it is one entry): the model's, or with heads, its trunk segment's."""
    if not traced.heads:
        return [named(traced.layers)] * len(traced.layers)
    out: list[bool] = []
    for _, _, start, stop in _segments(traced):
        out += [named(traced.layers[start:stop])] * (stop - start)
    return out


def _point_name(traced: TracedModel, index: int) -> str:
    return next(
        h.point
        for h in traced.heads
        if h.point and not h.spec.branch and traced.head_start(h) == index
    )


def _sequential(
    attribute: str, nodes: tuple[TracedNode, ...], input_shape: tuple[Dim, ...]
) -> dict[str, Any]:
    """One `self.NAME = nn.Sequential(...)`, keyed by name (an OrderedDict) when one of its
    nodes has `name=`, as the single `self.model` is."""
    return {
        "attribute": attribute,
        "named": named(nodes),
        "layers": layer_items(nodes, input_shape),
        "single": None,  # not a layer alone (render/multi_inputs.py)
        "list": None,  # nor a loop that reads another input
    }


def heads_model(traced: TracedModel) -> dict[str, Any]:
    """The parts of the model class that heads change: its submodules and forward's statements."""
    modules = []
    locals_at: dict[tuple[int, int | None], str] = {}
    statements = []
    source = "x"
    for attribute, local, start, stop in _segments(traced):
        nodes = traced.layers[start:stop]
        shape = traced.layers[start - 1].out_shape if start else traced.input_shape
        modules.append(_sequential(attribute, nodes, shape))
        statements.append(f"{local}: torch.Tensor = self.{attribute}({source})")
        locals_at[stop - 1, None] = source = local
    return with_heads(traced, modules, statements, locals_at)


def with_heads(
    traced: TracedModel,
    modules: list[dict[str, Any]],
    statements: list[str],
    locals_at: dict[tuple[int, int | None], str],
    found: dict[str, str] | None = None,
) -> dict[str, Any]:
    """The model's parts once the trunk's are written: each head's nn.Sequential, the return
    of the output class; `locals_at[i, None]` is the local that holds trunk node i's output,
    `locals_at[i, j]` the one that holds branch j's of the merge at i (`from=z.mu`), `found`
    the one a head reads further in, by its `from=` (`p3.down.p4`)."""
    fields = []
    for head in traced.heads:
        local = locals_at[traced.head_start(head), traced.head_branch(head)]
        if head.spec.inner and found is not None:
            local = found[str(head.source)]
        call = local  # a head without a stack returns what it reads as is
        if head.layers:
            modules.append(_sequential(head.name, head.layers, head.input_shape))
            call = f"self.{head.name}({local})"
        if head.train_only:
            call += " if self.training else None"
        fields.append(f"{head.name}={call}")
    statements.append(f"return {output_class(traced)}({', '.join(fields)})")
    docs = [f"{h.name}: {head_shape_text(h)}" for h in traced.heads]
    return {
        "output": output_class(traced),
        "output_doc": "\n    ".join(
            [f"What {traced.spec.class_name}.forward returns: one field per head.", "", *docs, ""]
        ),
        "fields": [
            f"{h.name}: torch.Tensor" + (" | None" if h.train_only else "") for h in traced.heads
        ],
        "modules": modules,
        "statements": statements,
    }


_BATCH = re.compile(r"\bN\b")
MAX_OTHER_POINTS = 2  # the parameter values besides the defaults the outputs are tested at


def heads_tests(traced: TracedModel, shape_params: str) -> dict[str, object]:
    """What the generated test file adds for heads: each head's expected shape (an expression
    of the batch and the int parameters), the train-only ones, the trunk's layers in order, and
    a few accepted non-default values of the constructor's int parameters."""
    segments = [f"model.{attribute}" for attribute, _, _, _ in _segments(traced)]
    rows = []
    for head in traced.heads:
        dims = [_BATCH.sub("batch", d.code) for d in head.out_shape]
        shape = f"({dims[0]},)" if len(dims) == 1 else f"({', '.join(dims)})"
        note = f"head {head.name}" + (f", from {head.source}" if head.source else "")
        rows.append({"name": repr(head.name), "shape": shape, "comment": note})
    train_only = [repr(h.name) for h in traced.heads if h.train_only]
    names, points = other_points(traced)
    return {
        "output": output_class(traced),
        # a trunk cut at a merge's branches is no chain of layers: outputs are tested, not layers
        "layers_of": None
        if traced.plain_forward()
        else segments[0]
        if len(segments) == 1
        else f"[*{', *'.join(segments)}]",
        "rows": rows,
        "train_only": f"({train_only[0]},)"
        if len(train_only) == 1
        else f"({', '.join(train_only)})",
        "has_train_only": bool(train_only),
        "first_train_only": train_only[0][1:-1] if train_only else None,
        "params": ", *, training: bool = False" + shape_params.removeprefix(", *"),
        "other_names": ", ".join(names),
        "other_points": repr([p[0] if len(p) == 1 else p for p in points]),
        "other_args": ", ".join(f"{n}={n}" for n in names),
        "other_typed": ", ".join(f"{n}: int" for n in names),
    }


def other_points(traced: TracedModel) -> tuple[list[str], list[tuple[int, ...]]]:
    """The constructor's int parameters and up to MAX_OTHER_POINTS value tuples other than the
    defaults that every `__init__` check accepts (each parameter raised by 1, 2, 3 or 4)."""
    params = [p for p in traced.init_params if type(p.default) is int]
    if not params:
        return [], []
    defaults = {p.name: int(p.default) for p in traced.spec.params if type(p.default) is int}
    points = []
    for step in (1, 2, 3, 4):
        values = {**defaults, **{p.name: defaults[p.name] + step for p in params}}
        try:
            if any(evaluate_source(c.failed, values) for c in traced.constraints):
                continue
        except NotArithmetic:
            continue
        points.append(tuple(values[p.name] for p in params))
    return [p.name for p in params], points[:MAX_OTHER_POINTS]
