"""seqrules.py and runtime/sequence.py against torch itself.

Each rule is run on random arguments and shapes, some of them symbolic (SymInts from a seqgen
Session, whose sample value differs from the value the expressions are evaluated at), and the
result is compared with a real torch run at the values: the output shape and parameter count
must match, and the checks must hold exactly when torch accepts the input. Where seqgen refuses
what torch runs, torch must move or drop the batch, or silently do something else (a squeeze
of a size other than 1); the few remaining policy refusals are named in each test.
"""

from __future__ import annotations

import ast
import inspect
import math
import random
from collections.abc import Callable, Mapping
from functools import partial
from typing import Any

import black
import pytest
import sympy
import torch
from torch import nn
from torch.nn.utils.parametrizations import weight_norm

from seqgen.layers.formulas import NeedsLiteral, Outcome, RankError, RuleError
from seqgen.layers.ops.embedding import embedding, embedding_params
from seqgen.layers.ops.recurrent import RECURRENT_KINDS, TAKES, recurrent, recurrent_params
from seqgen.layers.ops.tensor_ops import (
    add_identity,
    narrow,
    permute,
    reduce,
    scale,
    select,
    squeeze,
    transpose,
    unsqueeze,
)
from seqgen.layers.ops.tokens import (
    cls_token,
    cls_token_params,
    pos_embedding,
    pos_embedding_params,
    pos_encoding,
    pos_encoding_params,
)
from seqgen.layers.ops.transformer import (
    transformer_encoder_layer,
    transformer_encoder_layer_params,
)
from seqgen.layers.weight_norm import added_params as weight_norm_added_params
from seqgen.runtime import sequence as seq
from seqgen.trace import symbolic as S

Point = dict[sympy.Symbol, int]


class _Symbols:
    """Makes some values symbolic: a SymInt whose sample value is not the value tested."""

    def __init__(self, rng: random.Random, chance: float = 0.5) -> None:
        self.session = S.Session()
        self.rng = rng
        self.chance = chance
        self.point: Point = {}

    def __call__(self, name: str, value: int, *, force: bool = False) -> Any:
        if not force and self.rng.random() >= self.chance:
            return value
        hint = self.rng.choice([v for v in (2, 3, 5, 7, 11) if v != value])
        sym = self.session.symbol(f"{name}{len(self.point)}", hint, size=False)
        self.point[S.expr_of(sym)] = value
        return sym


def _value(v: Any, point: Mapping[sympy.Symbol, int]) -> int:
    return int(S.evaluate(v if isinstance(v, sympy.Basic) else S.expr_of(v), point))


def _judge(
    rule: Callable[[], Outcome], point: Point
) -> tuple[tuple[int, ...] | None, Outcome | None]:
    """The rule's output shape at the point, or None where it refuses (error or failed check)."""
    try:
        outcome = rule()
    except RuleError:
        return None, None
    if not all(S.evaluate(c.condition, point) for c in outcome.checks):
        return None, outcome
    return tuple(_value(s, point) for s in outcome.shape), outcome


def _run(fn: Callable[[], torch.Tensor]) -> torch.Tensor | None:
    try:
        with torch.no_grad():
            return fn()
    except (RuntimeError, ValueError, IndexError, AssertionError, TypeError, ZeroDivisionError):
        return None


# ------------------------------------------------------------------------------- tensor ops


def _batch_tensor(shape: tuple[int, ...]) -> torch.Tensor:
    """x[i, ...] == i + 1: an op keeps the batch iff out[i] holds one value per i, all distinct."""
    n = shape[0]
    return (
        (torch.arange(n, dtype=torch.float32) + 1)
        .view(n, *[1] * (len(shape) - 1))
        .expand(shape)
        .contiguous()
    )


def _keeps_batch(out: torch.Tensor, n: int) -> bool:
    if out.dim() == 0 or out.shape[0] != n:
        return False
    firsts = []
    for i in range(n):
        values = out[i].unique()
        if values.numel() != 1:
            return False
        firsts.append(float(values))
    return len(set(firsts)) == n


def _random_shape(rng: random.Random, sym: _Symbols) -> tuple[tuple[int, ...], tuple[Any, ...]]:
    rank = rng.randint(1, 4)
    values = (rng.choice((2, 3)), *(rng.choice((1, 1, 2, 3, 4)) for _ in range(rank - 1)))
    sizes = tuple(sym("d", v) for v in values)
    return values, sizes


def _random_dim(rng: random.Random, rank: int) -> int:
    return rng.randint(-rank - 1, rank)


def _op_case(
    rng: random.Random, op: str, sizes: tuple[Any, ...], sym: _Symbols
) -> tuple[Callable[[], Outcome], Callable[[torch.Tensor], torch.Tensor]]:
    """A random use of `op` (in range or not): the rule's call, and torch's."""
    rank = len(sizes)
    if op == "permute":
        dims = list(range(rank))
        rng.shuffle(dims)
        if rng.random() < 0.5:
            dims = [0, *[d for d in dims if d != 0]]
        dims = [d - rank if rng.random() < 0.3 else d for d in dims]
        if rng.random() < 0.15:
            dims[rng.randrange(rank)] = _random_dim(rng, rank)
        if rng.random() < 0.1:
            dims = dims[:-1] or [0, 0]
        return partial(permute, dims, sizes), partial(torch.permute, dims=dims)
    if op == "transpose":
        a, b = _random_dim(rng, rank), _random_dim(rng, rank)
        return partial(transpose, a, b, sizes), partial(torch.transpose, dim0=a, dim1=b)
    if op == "unsqueeze":
        d = rng.randint(-rank - 2, rank + 1)
        return partial(unsqueeze, d, sizes), partial(torch.unsqueeze, dim=d)
    if op == "squeeze":
        d = _random_dim(rng, rank)
        return partial(squeeze, d, sizes), partial(torch.squeeze, dim=d)
    if op in ("mean", "sum", "amax"):
        keepdim = rng.random() < 0.3
        dim: Any = _random_dim(rng, rank)
        if rng.random() < 0.25:
            dim = tuple(_random_dim(rng, rank) for _ in range(rng.randint(0, 2)))
        return (
            partial(reduce, dim, sizes, keepdim=keepdim),
            partial(getattr(torch, op), dim=dim, keepdim=keepdim),
        )
    if op == "narrow":
        d = _random_dim(rng, rank) if rng.random() < 0.2 else rng.randint(1, rank) % rank
        start = sym("start", rng.choice((0, 0, 0, 1, 2, -1)))
        length = sym("length", rng.choice((1, 1, 1, 2, 3, 0)))
        return (
            partial(narrow, d, start, length, sizes),
            partial(
                torch.narrow,
                dim=d,
                start=_value(start, sym.point),
                length=_value(length, sym.point),
            ),
        )
    assert op == "select"
    d = _random_dim(rng, rank)
    index = sym("index", rng.randint(-5, 4))
    return (
        partial(select, d, index, sizes),
        partial(torch.select, dim=d, index=_value(index, sym.point)),
    )


OPS = ["permute", "transpose", "unsqueeze", "squeeze", "mean", "sum", "amax", "select", "narrow"]


@pytest.mark.parametrize("op", OPS)
def test_tensor_op_rule_matches_torch(op: str) -> None:
    rng = random.Random(f"op-{op}")
    accepted = refused = 0
    for _ in range(400):
        sym = _Symbols(rng)
        values, sizes = _random_shape(rng, sym)
        rule, fn = _op_case(rng, op, sizes, sym)
        want, _ = _judge(rule, sym.point)
        x = _batch_tensor(values)
        got = _run(partial(fn, x))
        if want is not None:
            accepted += 1
            assert got is not None and _keeps_batch(got, values[0]), (op, values)
            assert tuple(got.shape) == want, (op, values, want, got.shape)
        else:
            refused += 1
            silent_noop = op == "squeeze" and got is not None and got.shape == x.shape
            # narrow: seqgen refuses a negative start (torch counts it from the end), an empty
            # slice, and a whole-batch slice (dim 0) that torch takes
            stricter = op == "narrow" and got is not None and (0 in got.shape or got.equal(x))
            stricter |= op == "narrow" and _negative_start(rule, sym.point)
            assert got is None or not _keeps_batch(got, values[0]) or silent_noop or stricter, (
                op,
                values,
                None if got is None else got.shape,
            )
    assert accepted > 40 and refused > 20, (accepted, refused)


def _negative_start(rule: Callable[[], Outcome], point: Point) -> bool:
    start = rule.args[1]  # type: ignore[attr-defined]  # partial(narrow, dim, start, ...)
    return _value(start, point) < 0


def test_narrow_of_symbolic_sizes_is_checked_and_of_literals_an_error() -> None:
    session = S.Session()
    a, c = (session.symbol(name, 4, size=False) for name in "ac")
    outcome = narrow(-1, a, 3, (2, 5, c))
    assert outcome.shape == (2, 5, 3)
    point = {S.expr_of(a): 1, S.expr_of(c): 4}
    assert all(S.evaluate(check.condition, point) for check in outcome.checks)
    point[S.expr_of(a)] = 2  # 2 + 3 > 4
    assert not all(S.evaluate(check.condition, point) for check in outcome.checks)
    with pytest.raises(
        RuleError, match=r"start \+ length \(6 \+ 3\) must be at most the size \(8\)"
    ):
        narrow(1, 6, 3, (2, 8))
    with pytest.raises(RuleError, match="narrow would slice dim 0, the batch"):
        narrow(0, 0, 1, (2, 8))
    with pytest.raises(RuleError, match=r"start \(-1\) must be at least 0"):
        narrow(1, -1, 1, (2, 8))


def test_select_past_a_symbolic_length_is_a_check() -> None:
    session = S.Session()
    length = session.symbol("L", 10, size=False)
    outcome = select(1, 5, (2, length, 4))
    assert outcome.shape == (2, 4)
    (check,) = outcome.checks
    point = S.expr_of(length)
    assert [v for v in range(12) if S.evaluate(check.condition, {point: v})] == list(range(6, 12))
    assert "at least 6" in check.message(str)
    with pytest.raises(RuleError, match="at least 6"):
        select(1, 5, (2, 5, 4))


def test_squeeze_of_a_symbolic_size_is_a_check_and_of_a_literal_an_error() -> None:
    session = S.Session()
    c = session.symbol("c", 1, size=False)
    (check,) = squeeze(1, (2, c, 4)).checks
    assert S.evaluate(check.condition, {S.expr_of(c): 1})
    assert not S.evaluate(check.condition, {S.expr_of(c): 3})
    with pytest.raises(RuleError, match="size 1, not 3"):
        squeeze(-2, (2, 3, 4))  # torch: x.squeeze(-2) returns x unchanged


def test_dims_must_be_literals() -> None:
    session = S.Session()
    d = session.symbol("d", 1, size=False)
    for rule in (
        lambda: unsqueeze(d, (2, 3)),
        lambda: reduce(d, (2, 3)),
        lambda: transpose(d, 1, (2, 3, 4)),
        lambda: permute([0, d], (2, 3)),
    ):
        with pytest.raises(NeedsLiteral):
            rule()


def test_scale_keeps_the_shape() -> None:
    session = S.Session()
    k = session.symbol("k", 3, size=False)
    for value in (2, -0.5, k):
        assert scale(value, (2, 7, 5)) == Outcome((2, 7, 5), ())
    for bad in ("2", True, None):
        with pytest.raises(RuleError):
            scale(bad, (2, 7))


def test_add_identity_rule_matches_torch() -> None:
    """Against `x + torch.eye(K)` with K the last dim: where the rule accepts, torch gives that
    shape and adds 1 on each matrix's diagonal; seqgen refuses a rank below 3 (torch would add
    the identity across the batch) and non-square matrices (torch broadcasts a (N, 1, K) into
    K rows, or refuses)."""
    rng = random.Random("add_identity")
    accepted = refused = 0
    for _ in range(300):
        sym = _Symbols(rng)
        rank = rng.randint(1, 5)
        values = (rng.choice((2, 3)), *(rng.choice((1, 2, 3, 3)) for _ in range(rank - 1)))
        if rank >= 3 and rng.random() < 0.5:  # square more often than by chance
            values = (*values[:-1], values[-2])
        sizes = tuple(sym("d", v) for v in values)
        want, outcome = _judge(partial(add_identity, sizes), sym.point)
        x = torch.randn(values)
        got = _run(lambda x=x: x + torch.eye(x.shape[-1]))
        if want is not None:
            accepted += 1
            assert outcome is not None and got is not None and tuple(got.shape) == want
            assert torch.equal(seq.AddIdentity()(x), got)
            assert torch.allclose(got - x, torch.eye(want[-1]).expand(want), atol=1e-6)
        else:
            refused += 1
            assert rank < 3 or values[-2] != values[-1], values
    assert accepted > 40 and refused > 40, (accepted, refused)


def test_add_identity_of_symbolic_sizes_is_a_check_and_of_literals_an_error() -> None:
    session = S.Session()
    a, b = (session.symbol(name, 3, size=False) for name in "ab")
    (check,) = add_identity((2, a, b)).checks
    assert S.evaluate(check.condition, {S.expr_of(a): 4, S.expr_of(b): 4})
    assert not S.evaluate(check.condition, {S.expr_of(a): 4, S.expr_of(b): 3})
    assert add_identity((2, 5, a, a)) == Outcome((2, 5, a, a), ())
    with pytest.raises(RuleError, match=r"last two dims \(2 and 3\) must be equal"):
        add_identity((2, 2, 3))
    with pytest.raises(RuleError, match="`unflatten 1 \\(K, K\\)`"):
        add_identity((2, 9))


# ------------------------------------------------------------------------------- layers


def test_embedding_rule_matches_torch() -> None:
    rng = random.Random("embedding")
    accepted = refused = 0
    for _ in range(300):
        sym = _Symbols(rng)
        num, dim = rng.randint(0, 6), rng.randint(-1, 4)
        pad = rng.choice([None, rng.randint(-8, 7)])
        dtype = rng.choice([torch.int64, torch.int64, torch.int32, torch.int16, torch.float32])
        shape = tuple(rng.randint(1, 3) for _ in range(rng.randint(1, 3)))
        s_num, s_dim = sym("num", num), sym("dim", dim)
        s_pad = None if pad is None else sym("pad", pad)
        s_shape = tuple(sym("len", v) for v in shape)
        want, _ = _judge(
            lambda: embedding(s_num, s_dim, s_shape, padding_idx=s_pad, dtype=dtype), sym.point
        )

        def run() -> torch.Tensor:
            module = nn.Embedding(num, dim, padding_idx=pad)
            return module(torch.randint(0, max(num, 1), shape).to(dtype))

        got = _run(run)
        if want is None:
            refused += 1
            assert got is None, (num, dim, pad, dtype, shape)
            continue
        accepted += 1
        assert got is not None and tuple(got.shape) == want
        count = _value(embedding_params(s_num, s_dim), sym.point)
        assert count == sum(p.numel() for p in nn.Embedding(num, dim, pad).parameters())
    assert accepted > 50 and refused > 50


def test_embedding_needs_long_input() -> None:
    with pytest.raises(RuleError, match="dtype=long"):
        embedding(10, 4, (2, 5), dtype=torch.float32)


def _recurrent_module(kind: str, args: dict[str, Any]) -> nn.RNNBase:
    cls = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}[kind]
    kwargs = {k: v for k, v in args.items() if k not in ("input_size", "hidden_size")}
    if kind != "lstm" and kwargs.get("proj_size") == 0:
        del kwargs["proj_size"]  # RNN and GRU refuse the argument itself, even 0
    return cls(args["input_size"], args["hidden_size"], batch_first=True, **kwargs)


@pytest.mark.parametrize("kind", RECURRENT_KINDS)
def test_recurrent_rule_matches_torch(kind: str) -> None:
    rng = random.Random(f"rnn-{kind}")
    accepted = refused = 0
    for _ in range(250):
        sym = _Symbols(rng, 0.4)
        hidden = rng.randint(0, 4)
        args = {
            "input_size": rng.randint(1, 3),
            "hidden_size": hidden,
            "num_layers": rng.randint(0, 3),
            "bidirectional": rng.random() < 0.5,
            "bias": rng.random() < 0.7,
            "proj_size": rng.choice([0, 0, rng.randint(-1, hidden + 1)])
            if kind == "lstm"
            else rng.choice([0, 0, 0, 2]),
        }
        take = rng.choice(TAKES)
        n, length = 2, rng.randint(1, 4)
        s_length, s_features = sym("L", length), sym("F", args["input_size"])
        s_hidden, s_layers = sym("H", hidden), sym("layers", args["num_layers"])
        # a symbolic proj_size means "projection on" (>= 1); 0 stays a literal (tested below)
        s_proj = sym("P", args["proj_size"]) if args["proj_size"] >= 1 else args["proj_size"]
        want, _ = _judge(
            lambda: recurrent(
                kind,
                s_hidden,
                (n, s_length, s_features),
                take=take,
                num_layers=s_layers,
                bidirectional=args["bidirectional"],
                proj_size=s_proj,
                bias=args["bias"],
            ),
            sym.point,
        )

        def run() -> torch.Tensor:
            module = seq.RecurrentOutput(_recurrent_module(kind, args), take)
            return module(torch.randn(n, length, args["input_size"]))

        got = _run(run)
        if want is None:
            refused += 1
            assert got is None, (args, take, length)
            continue
        accepted += 1
        assert got is not None and tuple(got.shape) == want, (args, take, want)
        count = recurrent_params(
            kind,
            s_features,
            s_hidden,
            num_layers=s_layers,
            bias=args["bias"],
            bidirectional=args["bidirectional"],
            proj_size=s_proj,
        )
        module = _recurrent_module(kind, args)
        assert _value(count, sym.point) == sum(p.numel() for p in module.parameters()), args
    assert accepted > 60 and refused > 30, (accepted, refused)


def test_recurrent_errors() -> None:
    with pytest.raises(RuleError, match="needs take=.*'all'.*'last'.*'hidden'"):
        recurrent("lstm", 8, (2, 5, 3), take=None)
    with pytest.raises(RuleError, match="'all'.*'last'.*'hidden'.*got 'first'"):
        recurrent("gru", 8, (2, 5, 3), take="first")
    with pytest.raises(RuleError, match="batch_first"):
        recurrent("rnn", 8, (2, 5, 3), take="all", batch_first=False)
    with pytest.raises(RuleError, match="only supported by lstm"):
        recurrent("gru", 8, (2, 5, 3), take="all", proj_size=2)
    for shape in ((2, 5), (2, 5, 3, 4)):
        with pytest.raises(RankError) as info:
            recurrent("lstm", 8, shape, take="all")
        assert info.value.rank == 3
    with pytest.raises(NeedsLiteral):
        recurrent(
            "lstm", 8, (2, 5, 3), take="all", bidirectional=S.Session().symbol("b", 1, size=False)
        )  # type: ignore[arg-type]


def test_symbolic_proj_size_means_projection_on() -> None:
    session = S.Session()
    proj, hidden = session.symbol("p", 2, size=False), session.symbol("h", 6, size=False)
    outcome = recurrent("lstm", hidden, (2, 5, 3), take="last", proj_size=proj)
    assert S.expr_of(outcome.shape[1]) == S.expr_of(proj)
    ok = [
        (p, h)
        for p in range(-1, 8)
        for h in range(1, 8)
        if all(
            S.evaluate(c.condition, {S.expr_of(proj): p, S.expr_of(hidden): h})
            for c in outcome.checks
        )
    ]
    assert ok == [(p, h) for p in range(1, 8) for h in range(1, 8) if p < h]


def test_transformer_encoder_layer_rule_matches_torch() -> None:
    rng = random.Random("transformer")
    accepted = refused = policy = 0
    for _ in range(200):
        sym = _Symbols(rng, 0.4)
        d_model, nhead, ff = rng.randint(1, 12), rng.randint(-1, 5), rng.randint(0, 6)
        bias, norm_first, length = rng.random() < 0.7, rng.random() < 0.5, rng.randint(1, 3)
        shape = (2, sym("L", length), sym("E", d_model))
        s_nhead, s_ff = sym("nhead", nhead), sym("ff", ff)
        want, _ = _judge(
            lambda: transformer_encoder_layer(
                s_nhead, shape, dim_feedforward=s_ff, norm_first=norm_first, bias=bias
            ),
            sym.point,
        )

        def build() -> nn.TransformerEncoderLayer:
            return nn.TransformerEncoderLayer(
                d_model,
                nhead,
                ff,
                batch_first=True,
                bias=bias,
                norm_first=norm_first,
                device="meta",
            )

        got = _run(lambda: build()(torch.empty(2, length, d_model, device="meta")))
        if want is None:
            refused += 1
            if got is not None:  # seqgen's one refusal that torch runs: no feedforward at all
                assert ff == 0, (d_model, nhead, ff)
                policy += 1
            continue
        accepted += 1
        assert got is not None and tuple(got.shape) == want
        count = transformer_encoder_layer_params(shape[2], dim_feedforward=s_ff, bias=bias)
        assert _value(count, sym.point) == sum(p.numel() for p in build().parameters())
    assert accepted > 40 and refused > 40 and policy > 0, (accepted, refused, policy)


def test_transformer_encoder_layer_errors() -> None:
    with pytest.raises(RankError):
        transformer_encoder_layer(2, (2, 8))
    with pytest.raises(RuleError, match="divisible"):
        transformer_encoder_layer(3, (2, 5, 8))
    with pytest.raises(RuleError, match="batch_first"):
        transformer_encoder_layer(2, (2, 5, 8), batch_first=False)
    session = S.Session()
    e = session.symbol("e", 8, size=False)
    checks = transformer_encoder_layer(4, (2, 5, e)).checks
    divisible = [c for c in checks if "divisible" in c.text]
    assert len(divisible) == 1
    assert [v for v in range(1, 20) if S.evaluate(divisible[0].condition, {S.expr_of(e): v})] == [
        4,
        8,
        12,
        16,
    ]


def _with_sequence(
    rng: random.Random, sym: _Symbols
) -> tuple[tuple[int, int, int], tuple[Any, ...]]:
    values = (2, rng.randint(1, 6), rng.randint(1, 5))
    return values, (values[0], sym("L", values[1]), sym("E", values[2]))


def test_sequence_layers_match_their_runtime_classes() -> None:
    rng = random.Random("sequence-layers")
    for _ in range(100):
        sym = _Symbols(rng)
        values, sizes = _with_sequence(rng, sym)
        x = torch.randn(values)
        _, length, embed = values
        cls_out = cls_token(sizes)
        assert tuple(_value(s, sym.point) for s in cls_out.shape) == tuple(
            seq.ClsToken(embed)(x).shape
        )
        assert _value(cls_token_params(sizes[2]), sym.point) == embed
        pos = seq.PosEmbedding(length, embed)
        assert pos_embedding(sizes).shape == sizes and pos(x).shape == x.shape
        assert _value(pos_embedding_params(sizes[1], sizes[2]), sym.point) == sum(
            p.numel() for p in pos.parameters()
        )
        max_len = rng.randint(1, 7)
        s_max = sym("max_len", max_len)
        want, _ = _judge(lambda: pos_encoding(sizes, max_len=s_max), sym.point)
        got = _run(lambda: seq.PosEncoding(embed, max_len)(x))
        if want is not None:
            assert got is not None and tuple(got.shape) == want
        else:  # past max_len torch fails to broadcast, except from a table of one row
            assert got is None or (max_len == 1 and length > 1)
        assert pos_encoding_params(embed, max_len) == 0
        assert not list(seq.PosEncoding(embed, max_len).parameters())
    for rule in (cls_token, pos_embedding, pos_encoding):
        with pytest.raises(RankError):
            rule((2, 5))  # type: ignore[operator]


def test_symbolic_counts_equal_torch_numel_under_fake_tensors() -> None:
    session = S.Session()
    n, e, length = (
        session.symbol(name, hint, size=False) for name, hint in (("n", 10), ("e", 6), ("L", 9))
    )
    with session.active():
        modules = {
            "embedding": (S.construct(nn.Embedding, (n, e), {}), embedding_params(n, e)),
            "cls_token": (seq.ClsToken(e), cls_token_params(e)),
            "pos_embedding": (seq.PosEmbedding(length, e), pos_embedding_params(length, e)),
        }
        for name, (module, count) in modules.items():
            torch_count = sum((S.expr_of(p.numel()) for p in module.parameters()), sympy.Integer(0))
            assert sympy.expand(torch_count - count) == 0, name
    assert session.specialized() == {}


# ------------------------------------------------------------------------------- weight_norm


def _weight_norm_cases() -> list[tuple[nn.Module, tuple[int, ...]]]:
    """Layers weight_norm=True takes, with an input shape (batch first)."""
    return [
        (nn.Linear(5, 3), (2, 5)),
        (nn.Linear(4, 7, bias=False), (2, 3, 4)),
        (nn.Conv1d(6, 4, 3, groups=2), (2, 6, 9)),
        (nn.Conv2d(3, 8, (3, 5)), (2, 3, 7, 7)),
        (nn.ConvTranspose1d(4, 6, 3, groups=2), (2, 4, 5)),
        (nn.ConvTranspose2d(5, 2, 2, stride=2), (2, 5, 3, 3)),
    ]


def test_weight_norm_counts_match_torch() -> None:
    """The product's count: what torch's weight_norm (dim=0) adds to each layer."""
    for module, in_shape in _weight_norm_cases():
        name = type(module).__name__  # weight_norm makes it a ParametrizedLinear, ...
        out_shape = tuple(module(torch.zeros(in_shape)).shape)
        before = sum(p.numel() for p in module.parameters())
        weight_norm(module)
        after = sum(p.numel() for p in module.parameters())
        added = weight_norm_added_params(name, in_shape, out_shape)
        assert before + added == after, module
    assert weight_norm_added_params("LSTM", (2, 3, 4), (2, 3, 5)) is None


def test_weight_norm_does_not_take_an_lstm() -> None:
    with pytest.raises(ValueError, match="weight"):
        weight_norm(nn.LSTM(3, 4))


# ------------------------------------------------------------------------------- runtime


@pytest.mark.parametrize("kind", [nn.RNN, nn.GRU, nn.LSTM])
@pytest.mark.parametrize("layers", [1, 3])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_recurrent_output_takes_what_torch_returns(
    kind: type[nn.RNNBase], layers: int, bidirectional: bool
) -> None:
    torch.manual_seed(0)
    projs = [0, 2] if kind is nn.LSTM else [0]
    for proj in projs:
        extra = {"proj_size": proj} if proj else {}
        rnn = kind(3, 5, num_layers=layers, bidirectional=bidirectional, batch_first=True, **extra)
        x = torch.randn(4, 6, 3)
        out, state = rnn(x)
        h_n = state[0] if kind is nn.LSTM else state
        dirs = 2 if bidirectional else 1
        size = proj or 5
        last_layer = h_n.view(layers, dirs, 4, size)[-1]  # torch documents this view
        hidden = torch.cat([last_layer[d] for d in range(dirs)], dim=-1)
        for take, want in (("all", out), ("last", out[:, -1]), ("hidden", hidden)):
            got = seq.RecurrentOutput(rnn, take)(x)
            assert got.shape == want.shape and torch.equal(got, want), (take, proj)
        assert hidden.shape == (4, size * dirs)
        if not bidirectional:  # one direction: the last output step is the final hidden state
            assert torch.allclose(out[:, -1], hidden)


def test_recurrent_output_refuses_bad_arguments() -> None:
    with pytest.raises(ValueError, match="'all', 'last', 'hidden'"):
        seq.RecurrentOutput(nn.LSTM(3, 4, batch_first=True), "first")
    with pytest.raises(ValueError, match="batch_first"):
        seq.RecurrentOutput(nn.LSTM(3, 4), "all")


def test_tensor_op_classes_equal_plain_torch() -> None:
    x = torch.randn(2, 3, 1, 5)
    cases: list[tuple[nn.Module, torch.Tensor]] = [
        (seq.Permute(0, 3, 1, 2), x.permute(0, 3, 1, 2)),
        (seq.Transpose(1, -1), x.transpose(1, -1)),
        (seq.Unsqueeze(-1), x.unsqueeze(-1)),
        (seq.Squeeze(2), x.squeeze(2)),
        (seq.Mean(1), x.mean(1)),
        (seq.Mean(-1, keepdim=True), x.mean(-1, keepdim=True)),
        (seq.Sum(3), x.sum(3)),
        (seq.Amax(1, keepdim=True), x.amax(1, keepdim=True)),
        (seq.Select(1, -1), x[:, -1]),
        (seq.Scale(0.125), x * 0.125),
    ]
    for module, want in cases:
        got = module(x)
        assert got.shape == want.shape and torch.equal(got, want), module
        assert module.extra_repr() and not list(module.parameters())


def test_cls_token_and_pos_embedding() -> None:
    x = torch.randn(3, 4, 6)
    cls = seq.ClsToken(6)
    assert cls.token.shape == (1, 1, 6)
    with torch.no_grad():
        cls.token.normal_()
    y = cls(x)
    assert y.shape == (3, 5, 6) and torch.equal(y[:, 1:], x)
    assert all(torch.equal(y[i, 0], cls.token[0, 0]) for i in range(3))
    y.sum().backward()
    assert cls.token.grad is not None and torch.equal(cls.token.grad, torch.full((1, 1, 6), 3.0))
    pos = seq.PosEmbedding(4, 6)
    with torch.no_grad():
        pos.weight.normal_()
    assert pos.weight.shape == (1, 4, 6) and torch.equal(pos(x), x + pos.weight)


def _tutorial_encoding(d_model: int, max_len: int) -> torch.Tensor:
    """The PyTorch tutorial's PositionalEncoding table (even d_model only)."""
    position = torch.arange(max_len).unsqueeze(1)
    div_term = torch.exp(torch.arange(0, d_model, 2) * (-math.log(10000.0) / d_model))
    pe = torch.zeros(max_len, d_model)
    pe[:, 0::2] = torch.sin(position * div_term)
    pe[:, 1::2] = torch.cos(position * div_term)
    return pe


@pytest.mark.parametrize("embed_dim", [1, 2, 5, 8, 9])
def test_pos_encoding_is_the_sinusoidal_table(embed_dim: int) -> None:
    module = seq.PosEncoding(embed_dim, max_len=50)
    table = module.encoding
    assert table.shape == (50, embed_dim) and not list(module.parameters())
    assert "encoding" not in module.state_dict()  # a non-persistent buffer
    if embed_dim % 2 == 0:
        assert torch.allclose(table, _tutorial_encoding(embed_dim, 50))
    for pos in (0, 7, 49):
        for col in range(embed_dim):
            angle = pos / 10000 ** ((col - col % 2) / embed_dim)
            want = math.sin(angle) if col % 2 == 0 else math.cos(angle)
            assert abs(float(table[pos, col]) - want) < 1e-5, (pos, col)
    x = torch.randn(2, 7, embed_dim)
    assert torch.equal(module(x), x + table[:7])
    assert module.to("meta").encoding.device.type == "meta"


# ------------------------------------------------------------------------------- copied source

SOURCE = inspect.getsource(seq)
RUNTIME_CLASSES = sorted(
    node.name for node in ast.parse(SOURCE).body if isinstance(node, ast.ClassDef)
)
SAMPLES: dict[str, tuple[tuple[Any, ...], tuple[int, ...]]] = {
    "RecurrentOutput": ((nn.GRU(4, 3, batch_first=True, bidirectional=True), "hidden"), (2, 5, 4)),
    "Permute": ((0, 2, 1), (2, 5, 4)),
    "Transpose": ((1, 2), (2, 5, 4)),
    "Unsqueeze": ((1,), (2, 5, 4)),
    "Squeeze": ((1,), (2, 1, 4)),
    "Mean": ((1, True), (2, 5, 4)),
    "Sum": ((-1,), (2, 5, 4)),
    "Amax": ((1,), (2, 5, 4)),
    "Select": ((1, -2), (2, 5, 4)),
    "Abs": ((), (2, 3)),
    "Narrow": ((-1, 1, 2), (2, 5, 4)),
    "Scale": ((0.5,), (2, 5, 4)),
    "AddIdentity": ((), (2, 3, 4, 4)),
    "ClsToken": ((4,), (2, 5, 4)),
    "PosEmbedding": ((5, 4), (2, 5, 4)),
    "PosEncoding": ((5, 7), (2, 5, 5)),
    "PackedRecurrentOutput": (
        (nn.LSTM(4, 3, batch_first=True, bidirectional=True), "last"),
        (3, 5, 4),
    ),
}
# what a class's forward reads beside x (a layer that reads another input: lengths)
OTHER_INPUTS: dict[str, tuple[torch.Tensor, ...]] = {
    "PackedRecurrentOutput": (torch.tensor([5, 2, 3]),),
}


def test_every_runtime_class_has_a_sample() -> None:
    assert sorted(SAMPLES) == RUNTIME_CLASSES


def test_runtime_module_imports_only_math_and_torch() -> None:
    imports = []
    for node in ast.parse(SOURCE).body:
        if isinstance(node, ast.Import):
            imports += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            imports += [f"{node.module}.{alias.name}" for alias in node.names]
    assert imports == ["__future__.annotations", "math", "torch", "torch.nn"]
    assert black.format_str(SOURCE, mode=black.Mode(line_length=88)) == SOURCE


@pytest.mark.parametrize("name", RUNTIME_CLASSES)
def test_runtime_class_source_runs_standalone(name: str) -> None:
    tree = ast.parse(SOURCE)
    node = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == name)
    text = ast.get_source_segment(SOURCE, node)
    assert text is not None and ast.get_docstring(node)
    methods = {f.name: f for f in node.body if isinstance(f, ast.FunctionDef)}
    assert {"__init__", "forward", "extra_repr"} <= set(methods)
    init = methods["__init__"]
    assert all(a.annotation is not None for a in init.args.args[1:] + init.args.kwonlyargs)
    assert init.args.vararg is None or init.args.vararg.annotation is not None
    forward = methods["forward"]
    others = OTHER_INPUTS.get(name, ())
    assert [ast.unparse(a.annotation) for a in forward.args.args[1:] if a.annotation] == [
        "torch.Tensor"
    ] * (1 + len(others)) and ast.unparse(forward.returns) == "torch.Tensor"  # type: ignore[arg-type]
    namespace: dict[str, Any] = {"math": math, "torch": torch, "nn": nn, "__name__": "generated"}
    exec(compile(text, f"<{name}>", "exec"), namespace)
    args, shape = SAMPLES[name]
    torch.manual_seed(0)
    copied = namespace[name](*args)
    torch.manual_seed(0)
    original = getattr(seq, name)(*args)
    copied.load_state_dict(original.state_dict())
    x = torch.randn(shape)
    assert torch.equal(copied(x, *others), original(x, *others))
    assert repr(copied) == repr(original)
