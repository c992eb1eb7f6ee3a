"""torch's refusals and warnings, rewritten in the words of the spec (part of the trace stage).

When torch rejects a layer's arguments or input, the trace reports which layer, the shape it
got, and what to do, with torch's own message kept as the cause. When torch warns about a
layer (a deprecated keyword, dropout2d on a rank-3 input), the warning is located on its line.
"""

from __future__ import annotations

import contextlib
import re
import warnings
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Protocol

import sympy
from torch import nn

from seqgen.errors import Diagnostic, SizeTooSmallError, TraceError
from seqgen.ir import LayerSpec
from seqgen.lang.hints import rejection
from seqgen.layers.torch_nn import first_line, value_hint
from seqgen.report.lint import TORCH_WARNING

# torch warnings that a lint warning of seqgen's own already says, in the spec's words
_SAID_BY_LINT = ("Implicit dimension choice",)


@contextlib.contextmanager
def located_warnings(layer: LayerSpec, sink: list[Diagnostic]) -> Iterator[None]:
    """torch's warnings while a layer is built and run, as located lint warnings (each once)
    instead of lines pointing into torch's source."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield
    for said in dict.fromkeys(" ".join(str(w.message).split()) for w in caught):
        if said.startswith(_SAID_BY_LINT):
            continue
        found = Diagnostic(
            "warning",
            f"torch warns about {layer.name}: {said}",
            layer.loc,
            "torch's own warning at the sample shape; the generated model gives it too",
            TORCH_WARNING,
        )
        if found not in sink:  # a line under `repeat 3:` is traced three times
            sink.append(found)


class SizedDim(Protocol):
    """A traced dim: its sympy expression and how generated code writes it."""

    expr: sympy.Expr
    code: str


def rejected(
    cls: type[nn.Module], layer: LayerSpec, e: BaseException, sample: Mapping[str, Any]
) -> TraceError:
    """torch refused to construct the layer: say why in the spec's words."""
    message, hint = rejection(cls.__name__, first_line(e), dict(sample)) or (
        f"torch rejected the arguments of {cls.__name__}: {first_line(e)}",
        value_hint(e),
    )
    return TraceError(message, location=layer.loc, hint=hint)


def not_one_tensor(cls: type[nn.Module], y: Any, layer: LayerSpec) -> TraceError:
    return TraceError(
        f"{cls.__name__} returned {type(y).__name__}, not one tensor",
        location=layer.loc,
        hint="nn.Sequential passes exactly one tensor between layers",
    )


_RANK = {"1d": 3, "2d": 4, "3d": 5}


def expected_rank(cls: type[nn.Module]) -> int | None:
    """Rank (batch included) a `...1d/2d/3d` layer needs."""
    m = re.search(r"([123]d)$", cls.__name__, re.IGNORECASE)
    return _RANK[m.group(1).lower()] if m else None


def shape_text(dims: Sequence[SizedDim]) -> str:
    sizes = [str(int(d.expr)) if d.expr.is_number else d.code for d in dims]
    return "(" + ", ".join(sizes) + ("," if len(sizes) == 1 else "") + ")"


def rank_error(
    layer: LayerSpec, cls: type[nn.Module], dims: Sequence[SizedDim], need: int
) -> TraceError:
    rank = expected_rank(cls) or need
    hint = None
    if len(dims) > rank and cls is nn.Linear:
        hint = "add `flatten` before it"
    elif len(dims) < rank:
        hint = (
            f"{cls.__name__} works on (N, C, ...) tensors of rank {rank}; check `input` "
            "or an earlier flatten"
        )
    return TraceError(
        f"{cls.__name__} needs an input of rank {rank} but gets rank {len(dims)} "
        f"{shape_text(dims)}",
        location=layer.loc,
        hint=hint,
    )


def layer_failure(
    layer: LayerSpec, cls: type[nn.Module], dims: Sequence[SizedDim], e: BaseException
) -> TraceError:
    rank = expected_rank(cls)
    msg = first_line(e)
    # rank - 1 is an unbatched input, which torch accepts: blame the rank only when torch does
    if (
        rank is not None
        and len(dims) != rank
        and (len(dims) != rank - 1 or ("Expected" in msg and "input" in msg))
    ):
        return rank_error(layer, cls, dims, rank)
    if any(
        t in msg
        for t in ("too small", "larger than", "greater than actual input size", "non-positive")
    ):
        return SizeTooSmallError(
            f"{cls.__name__} gets input {shape_text(dims)}, too small for it: "
            f"the output would be empty ({msg})",
            location=layer.loc,
            hint="use a larger `input`, a smaller kernel, or padding",
        )
    return TraceError(
        f"{cls.__name__} cannot take input {shape_text(dims)}: {msg}", location=layer.loc
    )
