"""`rnn`, `lstm`, `gru`: torch's recurrent layers, batch first, with `take=` choosing which
output flows on (RecurrentOutput in the generated code)."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any, ClassVar

import sympy
import torch
from torch import nn

from seqgen.errors import TraceError
from seqgen.ir import LayerSpec, Str
from seqgen.lang.values import expr_source
from seqgen.layers.formulas import (
    Checks,
    Count,
    Outcome,
    RuleError,
    Size,
    as_count,
    as_expr,
    flag,
    is_int,
    probability,
    require_rank,
)
from seqgen.layers.input_reads import LENGTHS, InputRead
from seqgen.layers.kind import (
    SEQ3,
    CallSite,
    Nodes,
    Op,
    OpResult,
    batch_first_call,
    batch_first_only,
)
from seqgen.runtime import sequence as runtime
from seqgen.trace import symbolic as S

RECURRENT_KINDS = ("rnn", "lstm", "gru")
CONFIRM_LENGTH = 4  # the sequence length torch confirms a recurrent layer's rule at
TAKES = ("all", "last", "hidden")
_GATES = {"rnn": 1, "gru": 3, "lstm": 4}
TAKE_HINT = (
    "take= must be 'all' (the output sequence, (N, L, H * dirs)), 'last' (its last "
    "step, (N, H * dirs)) or 'hidden' (the last layer's final hidden state, both "
    "directions concatenated, (N, H * dirs))"
)


def _output_hidden(checks: Checks, kind: str, hidden_size: Size, proj_size: Size) -> Size:
    """The size of each direction's output: proj_size for an LSTM with a projection.

    A symbolic proj_size means the projection is on: it must be >= 1 (0 would switch it off,
    and with it the output size and the parameter count).
    """
    if isinstance(proj_size, int) and not isinstance(proj_size, bool) and proj_size == 0:
        return hidden_size
    if kind != "lstm":
        raise RuleError(f"proj_size is only supported by lstm, not {kind}")
    if not is_int(proj_size):
        raise RuleError(f"proj_size must be a whole number, got {proj_size!r}")
    checks.at_least(proj_size, 1 if S.is_symbolic(proj_size) else 0, "proj_size")
    checks.need(
        sympy.Lt(as_expr(proj_size), as_expr(hidden_size)),
        "proj_size ({}) must be smaller than hidden_size ({})",
        proj_size,
        hidden_size,
        subject="proj_size and hidden_size",
    )
    return proj_size


def recurrent(
    kind: str,
    hidden_size: Size,
    shape: Sequence[Size],
    *,
    take: str | None,
    num_layers: Size = 1,
    bidirectional: bool = False,
    proj_size: Size = 0,
    bias: bool = True,
    batch_first: bool = True,
    dropout: Any = 0.0,
    nonlinearity: str = "tanh",
) -> Outcome:
    """nn.RNN / nn.LSTM / nn.GRU (kind 'rnn', 'lstm', 'gru') on (N, L, F), wrapped in
    RecurrentOutput(take): (N, L, H * dirs) for 'all', (N, H * dirs) for 'last' and 'hidden'.

    input_size is F; seqgen writes batch_first=True itself.
    """
    if kind not in RECURRENT_KINDS:
        raise RuleError(f"kind must be one of {', '.join(RECURRENT_KINDS)}, got {kind!r}")
    if take not in TAKES:
        raise RuleError(
            f"{TAKE_HINT}; got {take!r}"
            if take is not None
            else f"{kind} returns a tuple, so it needs take=: {TAKE_HINT}"
        )
    if batch_first is not True:
        raise RuleError(
            "seqgen's tensors are batch first and it writes batch_first=True itself; "
            f"batch_first={batch_first!r} is not allowed"
        )
    require_rank(shape, 3)
    flag(bias, "bias")
    dirs = 2 if flag(bidirectional, "bidirectional") else 1
    if kind == "rnn" and nonlinearity not in ("tanh", "relu"):
        raise RuleError(f"nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
    checks = Checks()
    probability(checks, dropout, "dropout")
    n, length, features = shape
    checks.at_least(features, 1, "input_size (the last input dim)")
    checks.at_least(length, 1, "the sequence length")
    checks.at_least(hidden_size, 1, "hidden_size")
    checks.at_least(num_layers, 1, "num_layers")
    out = _output_hidden(checks, kind, hidden_size, proj_size) * dirs
    sizes = (n, length, out) if take == "all" else (n, out)
    return Outcome(sizes, tuple(checks.items))


def recurrent_params(
    kind: str,
    input_size: Size,
    hidden_size: Size,
    *,
    num_layers: Size = 1,
    bias: bool = True,
    bidirectional: bool = False,
    proj_size: Size = 0,
) -> Count:
    """The parameters of nn.RNN / nn.LSTM / nn.GRU.

    Per layer and direction: weight_ih (G*H, in), weight_hh (G*H, R), two biases (G*H) and,
    with a projection, weight_hr (P, H); G = 1, 3, 4 gates (rnn, gru, lstm), R = P or H, and
    `in` is input_size for the first layer, R * dirs after it.
    """
    if kind not in RECURRENT_KINDS:
        raise RuleError(f"kind must be one of {', '.join(RECURRENT_KINDS)}, got {kind!r}")
    g, h, f = _GATES[kind], as_expr(hidden_size), as_expr(input_size)
    dirs = 2 if flag(bidirectional, "bidirectional") else 1
    p = as_expr(proj_size)
    r = h if p == 0 else p
    per_direction = g * h * r + (2 * g * h if flag(bias, "bias") else 0) + p * h
    first = dirs * (per_direction + g * h * f)
    rest = (as_expr(num_layers) - 1) * dirs * (per_direction + g * h * r * dirs)
    return as_count(first + rest)


_RECURRENT_KW: tuple[str, ...] = (
    "num_layers",
    "bias",
    "batch_first",
    "dropout",
    "bidirectional",
    "take",
    "input_size",
    "lengths",
)


class Recurrent(Op):
    """nn.RNN / nn.LSTM / nn.GRU wrapped in RecurrentOutput(take=...)."""

    positional = ("hidden_size",)
    keywords = _RECURRENT_KW
    required = ("hidden_size",)
    helper = "RecurrentOutput"
    rank = 3
    shape_hint = SEQ3
    inferred = "input_size"
    sequence = True
    # `lengths=NAME`: packed by an (N,) input of each sequence's length (PackedRecurrentOutput)
    reads: ClassVar[Mapping[str, InputRead]] = {"lengths": LENGTHS}

    @property
    def usage(self) -> str:  # type: ignore[override]
        return f"e.g. `{self.name} 128 take=last`"

    def check_bound(self, layer: LayerSpec, args: Nodes) -> None:
        take = args.get("take")
        if take is None:
            raise TraceError(
                f"{self.name} returns a tuple (output, state), so it needs take=",
                location=layer.loc,
                hint=TAKE_HINT,
            )
        if not isinstance(take, Str) or take.value not in TAKES:
            raise TraceError(
                f"take={expr_source(take)} is not one of 'all', 'last', 'hidden'",
                location=take.loc,
                hint=TAKE_HINT,
            )
        batch_first_only(self.name, args)

    def rule(self, v: Mapping[str, Any], shape: Sequence[Size], dtype: torch.dtype) -> OpResult:
        kw = {k: v[k] for k in ("num_layers", "bidirectional", "proj_size", "bias") if k in v}
        out = recurrent(
            self.name,
            v["hidden_size"],
            shape,
            take=v["take"],
            dropout=v.get("dropout", 0.0),
            nonlinearity=v.get("nonlinearity", "tanh"),
            **kw,
        )
        n = recurrent_params(self.name, shape[-1], v["hidden_size"], **kw)
        # torchinfo: the inner nn.RNN is the leaf; its output is the whole sequence
        seq = out.shape if len(out.shape) == 3 else (shape[0], shape[1], out.shape[-1])
        length, width = as_expr(seq[1]), as_expr(seq[2])
        return OpResult(out, n, length * sympy.sympify(n), length * width)

    def run_for_shape(self, module: nn.Module, x: torch.Tensor) -> torch.Tensor:
        if isinstance(module, runtime.PackedRecurrentOutput):
            # packed at full lengths, it gives the shapes of the unpacked layer (packing needs
            # lengths on the CPU, which a `meta` run has not)
            module = runtime.RecurrentOutput(module.rnn, take=module.take)
        length = x.shape[1]
        if length <= CONFIRM_LENGTH:
            return super().run_for_shape(module, x)
        # torch's meta RNN kernels step through the sequence in Python, so a long sample would
        # make the trace and its self-check grow with it: run the first steps; 'all' passes the
        # length through (the rule's shape), at no cost on meta
        y = super().run_for_shape(module, x[:, :CONFIRM_LENGTH])
        return y.new_empty((y.shape[0], length, y.shape[2])) if y.dim() == 3 else y

    def helpers(self, reads: Collection[str]) -> tuple[str, ...]:
        return ("PackedRecurrentOutput",) if "lengths" in reads else ("RecurrentOutput",)

    def call(self, site: CallSite) -> str:
        inner = batch_first_call(self.torch_class or "", "hidden_size", site, ("take",))
        return f"{self.helpers(site.reads)[0]}({inner}, take={site.nodes['take'].value!r})"

    def build_reading(
        self, v: Mapping[str, Any], in_shape: tuple[int, ...], reads: Collection[str]
    ) -> nn.Module:
        built = self.build(v, in_shape)
        if "lengths" not in reads or not isinstance(built, runtime.RecurrentOutput):
            return built
        return runtime.PackedRecurrentOutput(built.rnn, take=built.take)

    def build(self, v: Mapping[str, Any], in_shape: tuple[int, ...]) -> nn.Module:
        v = dict(v)
        take = v.pop("take")
        v.pop("batch_first", None)
        rnn = getattr(nn, self.torch_class or "")(in_shape[-1], batch_first=True, **v)
        return runtime.RecurrentOutput(rnn, take=take)


class RNN(Recurrent):
    name = "rnn"
    keywords = (*_RECURRENT_KW, "nonlinearity")
    torch_class = "RNN"


class LSTM(Recurrent):
    name = "lstm"
    keywords = (*_RECURRENT_KW, "proj_size")
    torch_class = "LSTM"


class GRU(Recurrent):
    name = "gru"
    torch_class = "GRU"
