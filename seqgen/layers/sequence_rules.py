"""Exact output sizes, argument checks and parameter counts for sequence layers and tensor ops.

The companion of rules.py for issue #11 (embeddings, recurrent layers, transformer encoder
layers, the tensor ops of seqgen/runtime/sequence.py), with the same types: a rule takes plain
argument values and the input shape (batch first, ints or SymInts) and returns an `Outcome`;
a literal that cannot work is a `RuleError`, a condition on parameters is a `Check`.

seqgen keeps the batch: an op that would move, reduce, select, squeeze or insert before the
batch dim 0 is a RuleError, even where torch would run it. Dims are numbered as torch numbers
them (negative ones count from the end) and must be literals.

Parameter counts are ints, or sympy expressions over the same symbols as the sizes given; each
equals torch's `sum(p.numel() for p in module.parameters())`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sympy
import torch

from seqgen.layers.formulas import (
    Checks,
    Count,
    Outcome,
    RankError,
    RuleError,
    as_count,
    as_expr,
    dim_index,
    flag,
    is_int,
    mod,
    not_batch,
    probability,
    require_rank,
)

Size = Any  # int | torch.SymInt

RECURRENT_KINDS = ("rnn", "lstm", "gru")
TAKES = ("all", "last", "hidden")
_GATES = {"rnn": 1, "gru": 3, "lstm": 4}
_TAKE_HINT = (
    "take= must be 'all' (the output sequence, (N, L, H * dirs)), 'last' (its last "
    "step, (N, H * dirs)) or 'hidden' (the last layer's final hidden state, both "
    "directions concatenated, (N, H * dirs))"
)
INDEX_DTYPES = (torch.int64, torch.int32)  # what torch's embedding accepts as indices


# ------------------------------------------------------------------------------- helpers


# ------------------------------------------------------------------------------- layers


def embedding(
    num_embeddings: Size,
    embedding_dim: Size,
    shape: Sequence[Size],
    *,
    padding_idx: Size | None = None,
    dtype: torch.dtype = torch.int64,
) -> Outcome:
    """nn.Embedding on indices of `shape` (any rank, batch first): `shape + (embedding_dim,)`.

    torch builds an Embedding with 0 rows, but no index fits it; seqgen wants at least one.
    The indices must be int64 (`input ... dtype=long`) or int32.
    """
    if dtype not in INDEX_DTYPES:
        raise RuleError(
            f"an embedding looks up whole-number indices, but its input is {dtype}; "
            "write `dtype=long` on the input"
        )
    if len(shape) < 1:
        raise RankError(1)
    checks = Checks()
    checks.at_least(num_embeddings, 1, "num_embeddings")
    checks.at_least(embedding_dim, 0, "embedding_dim")
    if padding_idx is not None:
        if not is_int(padding_idx):
            raise RuleError(f"padding_idx must be a whole number or None, got {padding_idx!r}")
        n, p = as_expr(num_embeddings), as_expr(padding_idx)
        if isinstance(padding_idx, int):  # one bound: 0 needs n >= 1, 5 needs 6, -2 needs 2
            low = padding_idx + 1 if padding_idx >= 0 else -padding_idx
            if low > 1:
                checks.need(
                    sympy.Ge(n, low),
                    f"num_embeddings ({{}}) must be at least {low} to "
                    f"hold padding_idx {padding_idx}",
                    num_embeddings,
                )
            return Outcome((*shape, embedding_dim), tuple(checks.items))
        checks.need(
            sympy.And(sympy.Ge(p, -n), sympy.Lt(p, n)),
            "padding_idx ({}) must be within num_embeddings ({}): from -{} to {} - 1",
            padding_idx,
            num_embeddings,
            num_embeddings,
            num_embeddings,
        )
    return Outcome((*shape, embedding_dim), tuple(checks.items))


def embedding_params(num_embeddings: Size, embedding_dim: Size) -> Count:
    """nn.Embedding's weight: num_embeddings * embedding_dim (padding_idx changes nothing)."""
    return as_count(as_expr(num_embeddings) * as_expr(embedding_dim))


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
    checks.at_least(proj_size, 1 if isinstance(proj_size, torch.SymInt) else 0, "proj_size")
    checks.need(
        sympy.Lt(as_expr(proj_size), as_expr(hidden_size)),
        "proj_size ({}) must be smaller than hidden_size ({})",
        proj_size,
        hidden_size,
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
            f"{_TAKE_HINT}; got {take!r}"
            if take is not None
            else f"{kind} returns a tuple, so it needs take=: {_TAKE_HINT}"
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


def transformer_encoder_layer(
    nhead: Size,
    shape: Sequence[Size],
    *,
    dim_feedforward: Size = 2048,
    dropout: Any = 0.1,
    activation: Any = "relu",
    batch_first: bool = True,
    norm_first: bool = False,
    bias: bool = True,
) -> Outcome:
    """nn.TransformerEncoderLayer on (N, L, E), d_model = E: the output has the input's shape.

    torch runs a dim_feedforward of 0 (the block adds only its bias); seqgen wants >= 1.
    """
    if batch_first is not True:
        raise RuleError(
            "seqgen's tensors are batch first and it writes batch_first=True itself; "
            f"batch_first={batch_first!r} is not allowed"
        )
    require_rank(shape, 3)
    flag(norm_first, "norm_first")
    flag(bias, "bias")
    if isinstance(activation, str) and activation not in ("relu", "gelu"):
        raise RuleError(f"activation must be 'relu' or 'gelu', got {activation!r}")
    checks = Checks()
    probability(checks, dropout, "dropout")
    d_model = shape[2]
    checks.at_least(shape[1], 1, "the sequence length")
    checks.at_least(d_model, 1, "d_model (the last input dim)")
    checks.at_least(nhead, 1, "nhead")
    if not (isinstance(nhead, int) and nhead == 1):
        checks.need(
            sympy.Eq(mod(d_model, nhead), 0),
            "d_model ({}) must be divisible by nhead ({})",
            d_model,
            nhead,
        )
    checks.at_least(dim_feedforward, 1, "dim_feedforward")
    return Outcome(tuple(shape), tuple(checks.items))


def transformer_encoder_layer_params(
    d_model: Size, *, dim_feedforward: Size = 2048, bias: bool = True
) -> Count:
    """nn.TransformerEncoderLayer: 4 E^2 + 2 E F + 2 E, plus 7 E + F with bias (norm_first and
    nhead change nothing).

    Attention in_proj 3E x E (+3E), out_proj E x E (+E); linear1 F x E (+F); linear2 E x F
    (+E); two LayerNorms, E weights each (+E biases each).
    """
    e, f = as_expr(d_model), as_expr(dim_feedforward)
    total = 4 * e * e + 2 * e * f + 2 * e
    if flag(bias, "bias"):
        total += 7 * e + f
    return as_count(total)


# ------------------------------------------------------------------------------- tensor ops


def permute(dims: Sequence[Any], shape: Sequence[Size]) -> Outcome:
    """`x.permute(*dims)`: dims a permutation of the dims, the batch first (dims[0] is 0)."""
    rank = len(shape)
    if len(dims) != rank:
        raise RuleError(f"permute needs {rank} dims for a tensor of rank {rank}, got {len(dims)}")
    order = [dim_index(d, rank) for d in dims]
    if sorted(order) != list(range(rank)):
        raise RuleError(f"permute's dims {tuple(dims)} must name each dim once")
    if order[0] != 0:
        raise RuleError("permute must keep the batch first: its first dim must be 0")
    return Outcome(tuple(shape[d] for d in order), ())


def transpose(dim0: Any, dim1: Any, shape: Sequence[Size]) -> Outcome:
    """`x.transpose(dim0, dim1)`, neither of them the batch dim 0 (unless both are)."""
    rank = len(shape)
    a, b = dim_index(dim0, rank, "dim0"), dim_index(dim1, rank, "dim1")
    if a != b:
        not_batch(a, "transpose moves")
        not_batch(b, "transpose moves")
    out = list(shape)
    out[a], out[b] = out[b], out[a]
    return Outcome(tuple(out), ())


def unsqueeze(dim: Any, shape: Sequence[Size]) -> Outcome:
    """`x.unsqueeze(dim)`, dim in [-rank - 1, rank] and not before the batch."""
    d = dim_index(dim, len(shape) + 1)
    not_batch(d, "unsqueeze would insert a dim before the batch at")
    return Outcome((*shape[:d], 1, *shape[d:]), ())


def squeeze(dim: Any, shape: Sequence[Size]) -> Outcome:
    """`x.squeeze(dim)`, which must remove the dim: its size must be 1.

    torch returns the tensor unchanged when the size is not 1: a different model, silently.
    """
    d = dim_index(dim, len(shape))
    not_batch(d, "squeeze would remove")
    checks = Checks()
    checks.need(
        sympy.Eq(as_expr(shape[d]), 1), f"squeeze {dim} removes a dim of size 1, not {{}}", shape[d]
    )
    return Outcome((*shape[:d], *shape[d + 1 :]), tuple(checks.items))


def reduce(dim: Any, shape: Sequence[Size], *, keepdim: bool = False) -> Outcome:
    """`x.mean(dim)`, `x.sum(dim)`, `x.amax(dim)` (`keepdim` keeps the dim as size 1).

    dim is one dim or a tuple of distinct ones, never the batch dim 0.
    """
    rank = len(shape)
    many = isinstance(dim, (tuple, list))
    if many and not dim:
        raise RuleError("give the dims to reduce: none would reduce them all, the batch too")
    dims = [dim_index(d, rank) for d in (dim if many else (dim,))]
    if len(set(dims)) != len(dims):
        raise RuleError(f"each dim may be reduced once, got {tuple(dim)}")
    for d in dims:
        not_batch(d, "the reduction would remove")
    keep = flag(keepdim, "keepdim")
    out = [1 if i in dims else s for i, s in enumerate(shape) if keep or i not in dims]
    return Outcome(tuple(out), ())


def select(dim: Any, index: Size, shape: Sequence[Size]) -> Outcome:
    """`x.select(dim, index)`: index in [-size, size) (a Check when either is symbolic)."""
    d = dim_index(dim, len(shape))
    not_batch(d, "select would remove")
    if not is_int(index):
        raise RuleError(f"index must be a whole number, got {index!r}")
    checks = Checks()
    size, i = shape[d], as_expr(index)
    if isinstance(index, int):  # `select 1 5` needs a size >= 6, `select 1 -2` one >= 2
        low = index + 1 if index >= 0 else -index
        checks.need(
            sympy.Ge(as_expr(size), low),
            f"select {dim} {index} needs a size of at least {low}, not {{}}",
            size,
        )
    else:
        checks.need(
            sympy.And(sympy.Ge(i, -as_expr(size)), sympy.Lt(i, as_expr(size))),
            "the index ({}) must be within the size ({}) of the dim it selects from",
            index,
            size,
        )
    return Outcome((*shape[:d], *shape[d + 1 :]), tuple(checks.items))


def scale(value: Any, shape: Sequence[Size]) -> Outcome:
    """`x * value` for a number (or a parameter expression): the shape is unchanged."""
    if isinstance(value, bool) or not isinstance(value, (int, float, torch.SymInt, torch.SymFloat)):
        raise RuleError(f"scale multiplies by a number, got {value!r}")
    return Outcome(tuple(shape), ())


def cls_token(shape: Sequence[Size]) -> Outcome:
    """ClsToken on (N, L, E): (N, L + 1, E)."""
    require_rank(shape, 3)
    return Outcome((shape[0], shape[1] + 1, shape[2]), ())


def pos_embedding(shape: Sequence[Size]) -> Outcome:
    """PosEmbedding(L, E) on (N, L, E), its parameter sized from this shape: unchanged."""
    require_rank(shape, 3)
    return Outcome(tuple(shape), ())


def pos_encoding(shape: Sequence[Size], *, max_len: Size = 5000) -> Outcome:
    """PosEncoding(E, max_len) on (N, L, E): unchanged; L must be at most max_len.

    Past max_len torch fails to broadcast, except with max_len 1, where it silently adds row 0
    to every position.
    """
    require_rank(shape, 3)
    checks = Checks()
    checks.at_least(max_len, 1, "max_len")
    checks.need(
        sympy.Le(as_expr(shape[1]), as_expr(max_len)),
        "the sequence length ({}) must be at most max_len ({})",
        shape[1],
        max_len,
    )
    return Outcome(tuple(shape), tuple(checks.items))


def cls_token_params(embed_dim: Size) -> Count:
    """ClsToken: one (1, 1, E) token."""
    return as_count(embed_dim)


def pos_embedding_params(length: Size, embed_dim: Size) -> Count:
    """PosEmbedding: one (1, L, E) table."""
    return as_count(as_expr(length) * as_expr(embed_dim))


def pos_encoding_params(embed_dim: Size, max_len: Size = 5000) -> Count:
    """PosEncoding: none (its table is a buffer)."""
    return 0


# ------------------------------------------------------------------------------- weight_norm


def linear_weight_shape(in_features: Size, out_features: Size) -> tuple[Size, ...]:
    """nn.Linear's weight: (out_features, in_features)."""
    return (out_features, in_features)


def conv_weight_shape(
    in_channels: Size,
    out_channels: Size,
    kernel_size: Sequence[Size],
    *,
    groups: Size = 1,
    transposed: bool = False,
) -> tuple[Size, ...]:
    """nn.ConvNd's weight: (out, in / groups, *k); nn.ConvTransposeNd's: (in, out / groups, *k)."""
    if transposed:
        return (in_channels, out_channels // groups, *kernel_size)
    return (out_channels, in_channels // groups, *kernel_size)


def weight_norm_params(weight_shape: Sequence[Size], dim: int | None = 0) -> Count:
    """The parameters that torch.nn.utils.parametrizations.weight_norm(module, dim=dim) puts in
    place of `weight`: weight_v (the weight's shape) and weight_g (size 1 except along dim).

    A layer's count therefore grows by weight_shape[dim]: out_features for Linear, out_channels
    for ConvNd, in_channels for ConvTransposeNd (dim 0). torch reads dim=None and dim=-1 alike
    as "the whole weight" (a single g, +1); any other negative dim counts from the end. Only a
    module with a `weight` can take it (an LSTM's are weight_ih_l0, ...: not a target).
    """
    rank = len(weight_shape)
    numel = sympy.Integer(1)
    for s in weight_shape:
        numel *= as_expr(s)
    if dim is None or dim == -1:
        return as_count(numel + 1)
    if not -rank <= dim < rank:
        raise RuleError(f"dim {dim} is out of range for a weight of rank {rank}")
    return as_count(numel + as_expr(weight_shape[dim]))
