"""Warnings about specs that trace but are probably not what the author meant. No torch here.

Each warning has a stable code and name (`W001 softmax-before-loss`), shown in its message; a
trailing `# seqgen: ignore[W001]` (or `ignore[softmax-before-loss]`, or a bare `ignore` for
every warning) on the spec line silences it.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator

from seqgen.errors import Diagnostic, Location
from seqgen.ir import (
    Dim,
    Name,
    Num,
    TracedLayer,
    TracedMerge,
    TracedModel,
    TracedNode,
    walk_traced,
)

SOFTMAX_BEFORE_LOSS = "W001 softmax-before-loss"
LINEAR_BEFORE_FLATTEN = "W002 linear-before-flatten"
BIAS_BEFORE_BATCHNORM = "W003 bias-before-batchnorm"
DROPOUT_LAST = "W004 dropout-last"
SPATIAL_SIZE_ONE = "W005 spatial-size-one"
SOFTMAX_WITHOUT_DIM = "W006 softmax-without-dim"
UNKNOWN_IGNORE = "W007 unknown-ignore"
UNUSED_PARAMETER = "W008 unused-parameter"  # raised by the trace
HUGE_LAYER = "W009 huge-layer"  # raised by the trace
UNUSED_BLOCK = "W010 unused-block"
BIDIRECTIONAL_LAST = "W011 bidirectional-take-last"
RECURRENT_DROPOUT = "W012 recurrent-dropout-one-layer"
EPS_ABOVE_ONE = "W013 eps-above-one"
TORCH_WARNING = "W014 torch-warning"  # raised by the trace
TRACED_CONCRETELY = "W015 traced-concretely"  # raised by the trace (a user's own class)
CODES = (
    SOFTMAX_BEFORE_LOSS,
    LINEAR_BEFORE_FLATTEN,
    BIAS_BEFORE_BATCHNORM,
    DROPOUT_LAST,
    SPATIAL_SIZE_ONE,
    SOFTMAX_WITHOUT_DIM,
    UNKNOWN_IGNORE,
    UNUSED_PARAMETER,
    HUGE_LAYER,
    UNUSED_BLOCK,
    BIDIRECTIONAL_LAST,
    RECURRENT_DROPOUT,
    EPS_ABOVE_ONE,
    TORCH_WARNING,
    TRACED_CONCRETELY,
)
_SPATIAL = ("Conv", "Pool", "Pad", "Upsample", "Norm")
_BIASED = (
    "Conv1d",
    "Conv2d",
    "Conv3d",
    "ConvTranspose1d",
    "ConvTranspose2d",
    "ConvTranspose3d",
    "Linear",
)
_SOFTMAXES = ("Softmax", "LogSoftmax", "Softmin")
# Layers that use or change spatial dims: the first one after a size-1 bottleneck decides
_SPATIAL_USERS = (
    "Conv",
    "Pool",
    "Upsample",
    "PixelShuffle",
    "PixelUnshuffle",
    "Unflatten",
    "Flatten",
    "Fold",
    "Unfold",
)


def _warn(layer: TracedLayer, message: str, hint: str, code: str) -> Diagnostic:
    return Diagnostic("warning", message, layer.spec.loc, hint, code)


def _has_bias(layer: TracedLayer) -> bool:
    return dict(layer.call_kwargs).get("bias") != "False"


def _spatial_one(shape: tuple[object, ...]) -> bool:
    spatial = shape[2:]
    return bool(spatial) and all(d.value == 1 and not d.symbolic for d in spatial)  # type: ignore[attr-defined]


def _shrinks_again(later: tuple[TracedNode, ...]) -> bool:
    """The first later layer that uses spatial dims convolves or pools them (not upsampling)."""
    for layer in later:
        name = layer.class_name
        if any(k in name for k in _SPATIAL_USERS):
            return ("Conv" in name and "Transpose" not in name) or (
                "Pool" in name and "Adaptive" not in name
            )
    return False


def _softmax_dim(rank: int) -> int:
    """The dim torch picks for softmax without `dim` (torch.nn.functional._get_softmax_dim)."""
    return 0 if rank in (0, 1, 3) else 1


Stack = tuple[tuple[Dim, ...], tuple[TracedNode, ...], bool, TracedNode | None]


def _stacks(traced: TracedModel) -> Iterator[Stack]:
    """Every stack of nodes with its input shape: the model's (top: True), each branch of each
    merge, each block body, and the body of each `repeat depth:` loop; with the node before the
    stack where one is known (before a merge or a loop; None for the model and a block body)."""
    todo: list[Stack] = [
        (traced.input_shape, traced.layers, not traced.heads, None),  # with heads, theirs end
        *((h.input_shape, h.layers, True, traced.head_node(h)) for h in traced.heads),
        *((b.input_shape, b.layers, False, None) for b in traced.blocks),
    ]
    while todo:
        in_shape, nodes, top, outer = todo.pop(0)
        yield in_shape, nodes, top, outer
        for i, node in enumerate(nodes):
            before, prev = (nodes[i - 1].out_shape, nodes[i - 1]) if i else (in_shape, outer)
            if isinstance(node, TracedMerge):
                sources = node.spec.branch_from or (None,) * len(node.branches)  # from=INPUT
                todo += [
                    (before, b, False, prev) if s is None else (traced.shape_of(s), b, False, None)
                    for b, s in zip(node.branches, sources, strict=True)
                ]
            elif isinstance(node, TracedLayer) and node.first:  # a later pass gets its output
                todo += [
                    (before, node.first, False, prev),
                    (node.out_shape, node.body, False, node.first[-1]),
                ]
            elif isinstance(node, TracedLayer) and node.body:
                todo.append((before, node.body, False, prev))


def _checks(traced: TracedModel) -> list[Diagnostic]:
    out: list[Diagnostic] = list(traced.warnings)
    used = {b.class_name for b in traced.blocks}
    for block in traced.spec.blocks:
        if block.name not in used:
            out.append(
                Diagnostic(
                    "warning",
                    f"block {block.name!r} is defined but never used: "
                    "the generated file leaves it out",
                    block.loc,
                    f"use it (`{block.name} ...`) or remove it",
                    UNUSED_BLOCK,
                )
            )
    stacks = list(_stacks(traced))
    # a model with a sequence layer anywhere (an embedding, a transformer layer, ...) maps
    # (N, L, E): a linear per token is meant, in a residual, a branch or a block as at the top
    sequence = any(_sequence_model(nodes) for _, nodes, _, _ in stacks)
    for in_shape, nodes, top, before in stacks:
        out += _stack_checks(in_shape, nodes, top, sequence, before)
    out += _large_eps(traced)
    return list(dict.fromkeys(out))  # a loop's two passes warn once


def _large_eps(traced: TracedModel) -> list[Diagnostic]:
    """A norm's `eps` above 1 (`batchnorm2d eps=32`): a typo, or a size shifted into it."""
    defaults = {p.name: p.default for p in traced.spec.params}
    found: dict[Location, Diagnostic] = {}
    for _, nodes, _, _ in _stacks(traced):
        for node in nodes:
            if not isinstance(node, TracedLayer) or "Norm" not in node.class_name:
                continue
            for kw in node.spec.kwargs:
                value = kw.value
                if kw.name != "eps" or not isinstance(value, Num | Name):
                    continue
                eps = value.value if isinstance(value, Num) else defaults.get(value.id)
                if not isinstance(eps, int | float) or isinstance(eps, bool) or eps <= 1:
                    continue
                shown = f"{value.id} ({eps} at the defaults)" if isinstance(value, Name) else eps
                found[value.loc] = Diagnostic(
                    "warning",
                    f"{node.spec.name}'s eps is {shown}, far above any real use",
                    value.loc,
                    "eps is a small constant added for numerical stability (the default is 1e-05); "
                    "one above 1 is usually a typo, or a size written in the wrong place",
                    EPS_ABOVE_ONE,
                )
    return list(found.values())


def _stack_checks(
    first_shape: tuple[Dim, ...],
    layers: tuple[TracedNode, ...],
    top: bool,
    sequence: bool,
    before: TracedNode | None,
) -> list[Diagnostic]:
    out: list[Diagnostic] = []
    for i, layer in enumerate(layers):
        prev = layers[i - 1] if i else None
        in_shape = prev.out_shape if prev else first_shape
        if not isinstance(layer, TracedLayer) or layer.body:
            continue
        rank_in = len(in_shape)
        name = layer.class_name
        if _bidirectional_last(layer):
            out.append(
                _warn(
                    layer,
                    f"take=last on a bidirectional {name}: the backward "
                    "direction's last step has read one element only",
                    "take=hidden keeps both directions' final states, each of which "
                    "has read the whole sequence",
                    BIDIRECTIONAL_LAST,
                )
            )
        if _dropout_one_layer(layer):
            out.append(
                _warn(
                    layer,
                    f"{name}'s dropout acts between its layers, and it has one: "
                    "the dropout does nothing",
                    "add num_layers=2 or more, or a `dropout` line after it",
                    RECURRENT_DROPOUT,
                )
            )
        feeds = prev if i else before  # what the linear reads: the merge's input for a branch
        if (
            name == "Linear"
            and rank_in > 2
            and not sequence
            and (
                feeds is None
                or any(k in feeds.class_name for k in _SPATIAL)
                or feeds.class_name in ("ReLU", "GELU", "SiLU", "Tanh", "Sigmoid", "LeakyReLU")
            )
        ):
            out.append(
                _warn(
                    layer,
                    f"linear is applied to a rank-{rank_in} tensor; it maps only "
                    "the last dimension",
                    "did you forget `flatten` before it?",
                    LINEAR_BEFORE_FLATTEN,
                )
            )
        if (
            isinstance(prev, TracedLayer)
            and name.startswith("BatchNorm")
            and prev.class_name in _BIASED
            and _has_bias(prev)
        ):
            out.append(
                _warn(
                    layer,
                    f"{name} right after {prev.class_name} cancels that layer's bias",
                    f"add bias=False to line {prev.line}",
                    BIAS_BEFORE_BATCHNORM,
                )
            )
        if (
            name in _SOFTMAXES
            and not layer.call_args
            and dict(layer.call_kwargs).get("dim", "None") == "None"
        ):
            picked = _softmax_dim(rank_in)
            what = "the batch" if picked == 0 else "the channels" if rank_in > 2 else "the features"
            out.append(
                _warn(
                    layer,
                    f"{name.lower()} has no `dim`: for this rank-{rank_in} input "
                    f"torch picks dim={picked}, {what} (a deprecated guess)",
                    f"write `{layer.spec.name} dim={1 if picked == 0 else picked}` "
                    "(or dim=-1 for the last dim)",
                    SOFTMAX_WITHOUT_DIM,
                )
            )
        if top and i == len(layers) - 1:
            if name == "Softmax":
                out.append(
                    _warn(
                        layer,
                        "softmax is the last layer, and nn.CrossEntropyLoss expects raw logits",
                        "drop it (apply softmax when predicting), or end with "
                        "log_softmax and train with nn.NLLLoss",
                        SOFTMAX_BEFORE_LOSS,
                    )
                )
            if name.startswith("Dropout") or name.endswith("Dropout"):
                out.append(
                    _warn(
                        layer,
                        "dropout is the last layer: it zeroes outputs in training",
                        "move it before the last linear",
                        DROPOUT_LAST,
                    )
                )
        if (
            _spatial_one(layer.out_shape)
            and "Adaptive" not in name
            and not (len(in_shape) == len(layer.out_shape) and _spatial_one(in_shape))
            and _shrinks_again(layers[i + 1 :])
        ):
            out.append(
                _warn(
                    layer,
                    "spatial size is reduced to 1 here, before later conv/pool layers",
                    "use a larger input or fewer downsampling layers",
                    SPATIAL_SIZE_ONE,
                )
            )
    return out


def _sequence_model(nodes: tuple[TracedNode, ...]) -> bool:
    """Whether a stack holds a sequence layer (an embedding, rnn, transformer layer, ...), in
    loops and merges too."""
    return any(isinstance(n, TracedLayer) and n.sequence for n in walk_traced(nodes))


def _bidirectional_last(layer: TracedLayer) -> bool:
    """`lstm ... bidirectional=True take=last` (spec values, read without evaluating them)."""
    if layer.class_name not in ("RNN", "LSTM", "GRU"):
        return False
    kwargs = {kw.name: getattr(kw.value, "value", None) for kw in layer.spec.kwargs}
    return kwargs.get("bidirectional") is True and kwargs.get("take") == "last"


def _dropout_one_layer(layer: TracedLayer) -> bool:
    """`lstm 64 dropout=0.5 take=last`: a literal dropout > 0 with one layer."""
    if layer.class_name not in ("RNN", "LSTM", "GRU"):
        return False
    kwargs = {kw.name: kw.value for kw in layer.spec.kwargs}
    dropout, layers = kwargs.get("dropout"), kwargs.get("num_layers")
    p = getattr(dropout, "value", None)
    one = layers is None or getattr(layers, "value", None) == 1
    return isinstance(p, (int, float)) and not isinstance(p, bool) and p > 0 and one


def _matches(code: str | None, ignored: tuple[str, ...]) -> bool:
    return not ignored or (code is not None and any(c in code.split() for c in ignored))


def _closest(code: str, known: set[str]) -> list[str]:
    """The known code most like `code`, the lowest one on a tie (`W01`: W001, not W011)."""
    close = difflib.get_close_matches(code, sorted(known), n=len(known))
    if not close:
        return []
    score = difflib.SequenceMatcher(None, code, close[0]).ratio()
    return [min(c for c in close if difflib.SequenceMatcher(None, code, c).ratio() == score)]


def _unknown_ignores(traced: TracedModel) -> list[Diagnostic]:
    known = {part for code in CODES for part in code.split()}
    out = []
    for loc, codes in traced.spec.ignores:
        for code in codes:
            if code not in known:
                close = _closest(code, known)
                hint = (
                    f"did you mean {close[0]!r}?"
                    if close
                    else f"codes are {', '.join(c.split()[0] for c in CODES)} or their names"
                )
                out.append(
                    Diagnostic(
                        "warning",
                        f"`# seqgen: ignore` names an unknown warning {code!r}",
                        loc,
                        hint,
                        UNKNOWN_IGNORE,
                    )
                )
    return out


def lint(traced: TracedModel) -> list[Diagnostic]:
    """Every warning for a traced model, in spec order, less those its spec ignores."""
    ignored: dict[tuple[str, int], tuple[str, ...]] = {
        (loc.path, loc.line): codes for loc, codes in traced.spec.ignores
    }

    def kept(d: Diagnostic) -> bool:
        loc: Location | None = d.location
        return (
            loc is None
            or (loc.path, loc.line) not in ignored
            or not _matches(d.code, ignored[(loc.path, loc.line)])
        )

    found = [d for d in _checks(traced) + _unknown_ignores(traced) if kept(d)]
    return sorted(found, key=lambda d: (d.location.line, d.location.col) if d.location else (0, 0))
