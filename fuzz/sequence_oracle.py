"""The differential fuzzer's sequence layers (issue #11): reference modules and generators.

Reference modules are written here directly in torch, independently of seqgen's
runtime/sequence.py and seqrules.py: recurrent layers keep one tensor of their output by
`take`, tensor ops are plain tensor methods, and seqgen's documented rules that are stricter
than torch make a point invalid (`squeeze` of a size other than 1, a `pos_encoding` past
`max_len`, a transformer `dim_feedforward` below 1). `weight_norm=True` wraps a linear or conv
layer in torch's parametrization. The generators draw these layers for differential.py's `Gen`.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

RECURRENT = ("rnn", "lstm", "gru")
OPS = ("permute", "transpose", "unsqueeze", "squeeze", "mean", "sum", "amax", "select", "scale")
POSITIONS = ("cls_token", "pos_embedding", "pos_encoding")
NAMES = frozenset({*RECURRENT, *OPS, *POSITIONS, "embedding", "transformerencoderlayer"})
# issue 19's ops, drawn by fuzz/graphs.py only (so the flat specs of a seed stay the same)
NAMES |= {"add_identity"}


class _Take(nn.Module):
    def __init__(self, rnn: nn.RNNBase, take: str) -> None:
        super().__init__()
        self.rnn, self.take = rnn, take

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, state = self.rnn(x)
        if self.take == "all":
            return out
        if self.take == "last":
            return out[:, x.shape[1] - 1, :]
        h = state[0] if isinstance(state, tuple) else state
        dirs = 2 if self.rnn.bidirectional else 1
        last = h.view(self.rnn.num_layers, dirs, x.shape[0], -1)[-1]  # (dirs, N, H)
        return last.permute(1, 0, 2).reshape(x.shape[0], -1)


class _Fn(nn.Module):
    def __init__(self, fn: Callable[[torch.Tensor], torch.Tensor]) -> None:
        super().__init__()
        self.fn = fn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(x)


class _Cls(nn.Module):
    def __init__(self, e: int) -> None:
        super().__init__()
        self.token = nn.Parameter(torch.randn(1, 1, e))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.token.expand(x.shape[0], 1, x.shape[2]), x], dim=1)


class _Add(nn.Module):
    def __init__(self, table: torch.Tensor, learned: bool, length: int | None) -> None:
        super().__init__()
        self.length = length
        if learned:
            self.table = nn.Parameter(table)
        else:
            self.register_buffer("table", table)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.length is None and x.shape[1] > self.table.shape[0]:
            raise ValueError("seqgen rule: the sequence length must be at most max_len")
        return x + (self.table if self.length is not None else self.table[: x.shape[1]])


def _add_identity(x: torch.Tensor) -> torch.Tensor:
    if x.dim() < 3 or x.shape[-1] != x.shape[-2]:
        raise ValueError("seqgen rule: add_identity needs (N, ..., K, K)")
    return x + torch.eye(x.shape[-1], dtype=x.dtype, device=x.device)


def _squeeze(d: int) -> Callable[[torch.Tensor], torch.Tensor]:
    def fn(x: torch.Tensor) -> torch.Tensor:
        if x.shape[d] != 1:
            raise ValueError("seqgen rule: squeeze removes a dim of size 1")
        return x.squeeze(d)

    return fn


def build(name: str, pos: list[Any], kw: dict[str, Any], shape: tuple[int, ...]) -> nn.Module:
    """The reference module of a sequence line with concrete values, on input `shape`."""
    if name == "embedding":
        return nn.Embedding(*pos, **kw)
    if name in RECURRENT:
        take = kw.pop("take")
        if take not in ("all", "last", "hidden"):
            raise ValueError(f"take={take!r}")
        cls = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}[name]
        return _Take(cls(shape[-1], *pos, batch_first=True, **kw), take)
    if name == "transformerencoderlayer":
        args = dict(zip(("nhead",), pos)) | kw
        if args.get("dim_feedforward", 2048) < 1:
            raise ValueError("seqgen rule: dim_feedforward >= 1")
        return nn.TransformerEncoderLayer(shape[-1], batch_first=True, **args)
    if name == "cls_token":
        return _Cls(shape[-1])
    if name == "pos_embedding":
        return _Add(torch.randn(1, shape[1], shape[2]), True, shape[1])
    if name == "pos_encoding":
        max_len = kw.get("max_len", 5000)
        if max_len < 1:
            raise ValueError("seqgen rule: max_len >= 1")
        return _Add(torch.randn(max_len, shape[2]), False, None)
    a = (*pos, *kw.values())
    fns: dict[str, Callable[[], Callable[[torch.Tensor], torch.Tensor]]] = {
        "permute": lambda: lambda x: x.permute(*a),
        "transpose": lambda: lambda x: x.transpose(a[0], a[1]),
        "unsqueeze": lambda: lambda x: x.unsqueeze(a[0]),
        "squeeze": lambda: _squeeze(a[0]),
        "mean": lambda: lambda x: x.mean(a[0], keepdim=kw.get("keepdim", False)),
        "sum": lambda: lambda x: x.sum(a[0], keepdim=kw.get("keepdim", False)),
        "amax": lambda: lambda x: x.amax(a[0], keepdim=kw.get("keepdim", False)),
        "select": lambda: lambda x: x.select(a[0], a[1]),
        "scale": lambda: lambda x: x * a[0],
        "add_identity": lambda: _add_identity,
    }
    return _Fn(fns[name]())


def weight_normed(module: nn.Module) -> nn.Module:
    """torch's weight_norm on a layer with a `weight` (the fuzzer only draws linear and conv)."""
    return nn.utils.parametrizations.weight_norm(module)


# ------------------------------------------------------------------------------- generators


def candidates(shape: tuple[int, ...]) -> list[tuple[str, float]]:
    """Families of sequence layers for a running shape (batch included)."""
    rank = len(shape)
    out: list[tuple[str, float]] = []
    if rank >= 2:
        out.append(("seqop", 1.2))
    if rank == 3:
        out += [("recurrent", 2.0), ("transformer", 1.2), ("positions", 1.0)]
    return out


def draw(gen: Any, fam: str, shape: tuple[int, ...], layer_ir: Any, lit: Any) -> list[Any]:
    """LayerIRs of one family (gen: differential.Gen; layer_ir, lit: its LayerIR, Lit)."""
    r: random.Random = gen.rng
    rank = len(shape)
    if fam == "recurrent":
        name = r.choice(RECURRENT)
        hidden = r.randint(2, 10)
        kw: list[tuple[str, Any]] = []
        layers = r.choice([1, 1, 2])
        if layers > 1 or r.random() < 0.2:
            kw.append(("num_layers", gen.num(layers, "n", 0.6)))
        if r.random() < 0.4:
            kw.append(("bidirectional", lit(True)))
        if name == "lstm" and r.random() < 0.2 and hidden > 2:
            kw.append(("proj_size", gen.num(r.randint(1, hidden - 1), "hid", 0.5)))
        if r.random() < 0.15:
            kw.append(("bias", lit(False)))
        if layers > 1 and r.random() < 0.4:
            kw.append(("dropout", lit(0.1)))
        if name == "rnn" and r.random() < 0.3:
            kw.append(("nonlinearity", lit("relu")))
        kw.append(("take", lit(r.choice(["all", "last", "hidden"]))))
        return [layer_ir(name, [gen.num(hidden, "hid")], kw)]
    if fam == "transformer":
        e = shape[2]
        heads = r.choice([h for h in (1, 2, 3, 4) if e % h == 0])
        kw = [
            ("dim_feedforward", gen.num(r.randint(2, 16), "hid")),
            ("dropout", lit(r.choice([0.0, 0.1]))),
        ]
        if r.random() < 0.4:
            kw.append(("norm_first", lit(True)))
        if r.random() < 0.4:
            kw.append(("activation", lit("gelu")))
        if r.random() < 0.15:
            kw.append(("bias", lit(False)))
        nhead = gen.num(heads, "n", 0.4)
        if r.random() < 0.5:
            return [layer_ir("transformerencoderlayer", [nhead], kw)]
        return [layer_ir("transformerencoderlayer", [], [("nhead", nhead), *kw])]
    if fam == "positions":
        name = r.choice(POSITIONS)
        if name == "pos_encoding":
            return [layer_ir(name, [], [("max_len", gen.num(shape[1] + r.randint(0, 6), "dim"))])]
        return [layer_ir(name)]
    assert fam == "seqop"
    name = r.choice(OPS)
    dims = list(range(1, rank))

    def dim(d: int, size: int) -> Any:
        return lit(d - size if r.random() < 0.3 else d)  # sometimes counted from the end

    if name == "permute":
        rest = dims[:]
        r.shuffle(rest)
        return [layer_ir(name, [lit(0), *(lit(d) for d in rest)])]
    if name == "transpose":
        if len(dims) < 2:
            raise ValueError("no two dims to swap")
        a, b = r.sample(dims, 2)
        return [layer_ir(name, [dim(a, rank), dim(b, rank)])]
    if name == "unsqueeze":
        return [layer_ir(name, [lit(r.randint(1, rank))])]
    if name == "squeeze":
        ones = [d for d in dims if shape[d] == 1]
        if not ones:
            return [layer_ir("unsqueeze", [lit(rank)]), layer_ir(name, [lit(-1)])]
        return [layer_ir(name, [dim(r.choice(ones), rank)])]
    if name in ("mean", "sum", "amax"):
        kw = [("keepdim", lit(True))] if r.random() < 0.3 else []
        return [layer_ir(name, [dim(r.choice(dims), rank)], kw)]
    if name == "select":
        d = r.choice(dims)
        return [layer_ir(name, [dim(d, rank), lit(r.randint(-shape[d], shape[d] - 1))])]
    return [layer_ir(name, [lit(r.choice([2.0, 0.5, 3]))])]


def embedding(gen: Any, layer_ir: Any, lit: Any) -> Any:
    """The first line of a token-id spec."""
    r: random.Random = gen.rng
    kw = [("padding_idx", lit(0))] if r.random() < 0.3 else []
    return layer_ir(
        "embedding", [gen.num(r.randint(3, 40), "size"), gen.num(r.randint(2, 12), "hid")], kw
    )
