"""seqgen's own layer lines for sequence models (issue #11), part of the trace stage.

Embeddings, recurrent layers, transformer encoder layers and the tensor ops of
seqgen/runtime/sequence.py are not traced by building torch modules on symbolic sizes (torch
refuses SymInt sizes for RNNs, specialises the sequence length, and cannot build a transformer
layer on a symbolic d_model: docs/torch-facts-sequence-layers.md). Each line here is bound by
its own small signature,
its output shape and parameter count come from seqrules' exact formulas, and torch itself runs
the layer at the sample values (on `meta`) to confirm the shape. `weight_norm=True` on a torch
layer is handled here too: the layer is traced as usual, then wrapped and recounted.
"""

from __future__ import annotations

import difflib
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import sympy
import torch
from torch import nn

from seqgen.errors import TraceError
from seqgen.ir import Const, Expr, LayerSpec, Str, TracedLayer
from seqgen.lang.values import expr_source
from seqgen.layers import sequence_rules as R
from seqgen.layers.formulas import NeedsLiteral, Outcome, RankError, RuleError
from seqgen.layers.torch_nn import Values, first_line
from seqgen.runtime import sequence as runtime
from seqgen.trace import symbolic as S
from seqgen.trace.constraints import Condition, holds
from seqgen.trace.scope import DimInfo
from seqgen.trace.torch_errors import shape_text

if TYPE_CHECKING:
    from seqgen.trace.layer import LayerTracer

# What the tracer gets back: the output, its dims, the traced layer, and its parameter,
# trainable-parameter and mult-add counts as expressions
Traced = tuple[
    torch.Tensor, list["DimInfo"], "TracedLayer", tuple[sympy.Expr, sympy.Expr, sympy.Expr]
]


@dataclass(frozen=True)
class SeqOp:
    """How one of seqgen's own layer lines binds: by position, by keyword, and what it needs."""

    positional: tuple[str, ...] = ()
    keywords: tuple[str, ...] = ()
    required: tuple[str, ...] = ()
    var_positional: str | None = None  # `permute 0 2 1`: every value, in order
    torch_class: str | None = None  # the torch.nn class it builds, if any
    helper: str | None = None  # the runtime/sequence.py class it builds, if any
    rank: int | None = None  # the input rank it needs
    shape_hint: str = ""  # what a wrong-rank input should become


_RECURRENT_KW = (
    "num_layers",
    "bias",
    "batch_first",
    "dropout",
    "bidirectional",
    "take",
    "input_size",
)
_REDUCE = SeqOp(("dim",), ("keepdim",), ("dim",))
_SEQ3 = "(N, L, E): a batch of sequences of E features"
OPS: dict[str, SeqOp] = {
    "embedding": SeqOp(
        ("num_embeddings", "embedding_dim"),
        ("padding_idx", "max_norm", "norm_type", "scale_grad_by_freq", "sparse"),
        ("num_embeddings", "embedding_dim"),
        torch_class="Embedding",
    ),
    "rnn": SeqOp(
        ("hidden_size",),
        (*_RECURRENT_KW, "nonlinearity"),
        ("hidden_size",),
        torch_class="RNN",
        helper="RecurrentOutput",
        rank=3,
        shape_hint=_SEQ3,
    ),
    "lstm": SeqOp(
        ("hidden_size",),
        (*_RECURRENT_KW, "proj_size"),
        ("hidden_size",),
        torch_class="LSTM",
        helper="RecurrentOutput",
        rank=3,
        shape_hint=_SEQ3,
    ),
    "gru": SeqOp(
        ("hidden_size",),
        _RECURRENT_KW,
        ("hidden_size",),
        torch_class="GRU",
        helper="RecurrentOutput",
        rank=3,
        shape_hint=_SEQ3,
    ),
    "transformerencoderlayer": SeqOp(
        ("nhead",),
        (
            "dim_feedforward",
            "dropout",
            "activation",
            "layer_norm_eps",
            "batch_first",
            "norm_first",
            "bias",
            "d_model",
        ),
        ("nhead",),
        torch_class="TransformerEncoderLayer",
        rank=3,
        shape_hint=_SEQ3,
    ),
    "permute": SeqOp(var_positional="dims", helper="Permute"),
    "transpose": SeqOp(("dim0", "dim1"), (), ("dim0", "dim1"), helper="Transpose"),
    "unsqueeze": SeqOp(("dim",), (), ("dim",), helper="Unsqueeze"),
    "squeeze": SeqOp(("dim",), (), ("dim",), helper="Squeeze"),
    "mean": replace(_REDUCE, helper="Mean"),
    "sum": replace(_REDUCE, helper="Sum"),
    "amax": replace(_REDUCE, helper="Amax"),
    "select": SeqOp(("dim", "index"), (), ("dim", "index"), helper="Select"),
    "scale": SeqOp(("value",), (), ("value",), helper="Scale"),
    "cls_token": SeqOp(helper="ClsToken", rank=3, shape_hint=_SEQ3),
    "pos_embedding": SeqOp(helper="PosEmbedding", rank=3, shape_hint=_SEQ3),
    "pos_encoding": SeqOp((), ("max_len",), helper="PosEncoding", rank=3, shape_hint=_SEQ3),
}
WEIGHT_NORM = "weight_norm"
INFERRED_LAST = ("input_size", "d_model")  # sizes seqgen reads from the last input dim
# torch layers weight_norm may wrap, and which size its weight_g adds
# (docs/torch-facts-sequence-layers.md)
_NORMED = {
    "Linear": "out",
    "Conv1d": "out",
    "Conv2d": "out",
    "Conv3d": "out",
    "ConvTranspose1d": "in",
    "ConvTranspose2d": "in",
    "ConvTranspose3d": "in",
}


def is_seq_layer(layer: LayerSpec) -> bool:
    """Whether a layer line names one of seqgen's own layers (not a torch.nn class as is)."""
    return layer.name.lower() in OPS


def close_name(name: str) -> str | None:
    """One of seqgen's own layer names that `name` is probably a typo of (`permut`, `clstoken`)."""
    close = difflib.get_close_matches(name.lower(), sorted(OPS), n=1, cutoff=0.75)
    return close[0] if close else None


def op_names() -> list[str]:
    """The layer names this module adds."""
    return sorted(OPS)


def _label(layer: LayerSpec) -> str:
    return layer.name.lower()


# ------------------------------------------------------------------------------- binding


def bind(layer: LayerSpec) -> dict[str, Any]:
    """The line's values by argument name (`dims` a tuple of nodes for permute)."""
    name = _label(layer)
    op = OPS[name]
    args: dict[str, Any] = {}
    if op.var_positional is not None:
        if not layer.args:
            raise TraceError(
                f"{name} needs its dims",
                location=layer.loc,
                hint="e.g. `permute 0 2 1` (dim 0 is the batch and stays first)",
            )
        args[op.var_positional] = tuple(layer.args)
    else:
        for i, value in enumerate(layer.args):
            if i >= len(op.positional):
                takes = ", ".join(op.positional) or "no positional arguments"
                hint = f"{name} takes: {takes}" + _inferred_note(name)
                if _inferred_note(name) and len(layer.args) == len(op.positional) + 1:
                    rest = " ".join(expr_source(a) for a in layer.args[1:]) + (
                        " ..." if layer.kwargs else ""
                    )
                    hint = (
                        f"seqgen infers {_INFERRED_FIRST[name]}: don't write it; did you "
                        f"mean `{name} {rest}`?"
                    )
                raise TraceError(
                    f"{name} takes {len(op.positional)} positional argument(s), got "
                    f"{len(layer.args)}",
                    location=value.loc,
                    hint=hint,
                )
            args[op.positional[i]] = value
    accepted = (*op.positional, *op.keywords)
    for kw in layer.kwargs:
        key = kw.written if kw.written in accepted else kw.name
        if key not in accepted:
            close = difflib.get_close_matches(key, accepted, n=1, cutoff=0.6)
            raise TraceError(
                f"{name} has no argument {kw.written!r}",
                location=kw.loc,
                hint=f"did you mean {close[0]!r}?"
                if close
                else f"{name} takes: {', '.join(accepted) or 'no arguments'}"
                + _inferred_note(name),
            )
        if key in args:
            raise TraceError(f"{name} got {key!r} both by position and by keyword", location=kw.loc)
        args[key] = kw.value
    missing = [p for p in op.required if p not in args]
    if missing:
        raise TraceError(
            f"{name} needs {', '.join(repr(m) for m in missing)}",
            location=layer.loc,
            hint=_usage(name),
        )
    if op.helper == "RecurrentOutput":
        take = args.get("take")
        if take is None:
            raise TraceError(
                f"{name} returns a tuple (output, state), so it needs take=",
                location=layer.loc,
                hint=R._TAKE_HINT,
            )
        if not isinstance(take, Str) or take.value not in R.TAKES:
            raise TraceError(
                f"take={expr_source(take)} is not one of 'all', 'last', 'hidden'",
                location=take.loc,
                hint=R._TAKE_HINT,
            )
    if "batch_first" in args:
        value = args["batch_first"]
        if not (isinstance(value, Const) and value.value is True):
            raise TraceError(
                f"{name} with batch_first={expr_source(value)}: seqgen's tensors are "
                "batch first, and it writes batch_first=True itself",
                location=value.loc,
                hint="remove batch_first=...",
            )
    return args


_INFERRED_FIRST = {
    "rnn": "input_size",
    "lstm": "input_size",
    "gru": "input_size",
    "transformerencoderlayer": "d_model",
}


def _inferred_note(name: str) -> str:
    inferred = {"embedding": "", "transformerencoderlayer": " (seqgen infers d_model)"}
    if OPS[name].helper == "RecurrentOutput":
        return " (seqgen infers input_size)"
    return inferred.get(name, "")


def _usage(name: str) -> str:
    return {
        "embedding": "e.g. `embedding vocab 128` (num_embeddings, embedding_dim)",
        "transformerencoderlayer": "e.g. `transformerencoderlayer nhead=8 dim_feedforward=2048`",
        "transpose": "e.g. `transpose 1 2`",
        "unsqueeze": "e.g. `unsqueeze 1`",
        "squeeze": "e.g. `squeeze 3`",
        "select": "e.g. `select 1 0` (dim, index)",
        "scale": "e.g. `scale 16.0`",
    }.get(
        name,
        f"e.g. `{name} 1`" if name in ("mean", "sum", "amax") else f"e.g. `{name} 128 take=last`",
    )


def check(layer: LayerSpec) -> None:
    """The problems of a line that need no trace (preflight)."""
    bind(layer)


def without_weight_norm(layer: LayerSpec) -> tuple[LayerSpec, Expr | None]:
    """The line without its `weight_norm=...`, and that value (None when not written)."""
    value = next((kw.value for kw in layer.kwargs if kw.name == WEIGHT_NORM), None)
    if value is None:
        return layer, None
    return replace(layer, kwargs=tuple(kw for kw in layer.kwargs if kw.name != WEIGHT_NORM)), value


# ------------------------------------------------------------------------------- trace


def trace_hook(
    t: LayerTracer, index: int, layer: LayerSpec, x: torch.Tensor, dims: list[DimInfo]
) -> Traced | None:
    """Trace the line if it is one of seqgen's own (or has weight_norm=); None otherwise."""
    if is_seq_layer(layer):
        return _trace_op(t, index, layer, x, dims)
    plain, wn = without_weight_norm(layer)
    if x.dtype not in (torch.float32,) and not layer.name.lower().startswith(
        ("dropout", "identity")
    ):
        raise TraceError(
            f"{layer.name} gets integer token ids (the input has dtype=long); only "
            "an embedding looks them up",
            location=layer.loc,
            hint="start with `embedding VOCAB DIM`, or drop dtype=long from `input`",
        )
    if wn is None:
        return None
    return _trace_weight_norm(t, index, layer, plain, wn, x, dims)


def _trace_op(
    t: LayerTracer, index: int, layer: LayerSpec, x: torch.Tensor, dims: list[DimInfo]
) -> Traced:

    name = _label(layer)
    op = OPS[name]
    title = op.torch_class or op.helper or name
    nodes = _check_inferred(t, name, bind(layer), dims)
    values = {
        k: (tuple(t.values.eval(e) for e in v) if isinstance(v, tuple) else t.values.eval(v))
        for k, v in nodes.items()
    }
    shape = t.symbolic_sizes(dims)
    if x.dtype != torch.float32 and name not in (
        "embedding",
        "permute",
        "transpose",
        "unsqueeze",
        "squeeze",
        "select",
    ):
        raise TraceError(
            f"{name} gets integer token ids (the input has dtype=long); only an "
            "embedding looks them up",
            location=layer.loc,
            hint="put `embedding VOCAB DIM` before it",
        )
    try:
        outcome, count, macs, acts, hidden = _rule(name, values, shape, x.dtype)
    except RankError as e:
        raise TraceError(
            f"{name} needs an input of rank {e.rank} but gets rank {len(dims)} {shape_text(dims)}",
            location=layer.loc,
            hint=f"{name} works on {op.shape_hint}"
            + (
                "; `flatten 2` then `transpose 1 2` turns (N, C, H, W) into (N, H * W, C)"
                if len(dims) == 4
                else "; `unsqueeze 1` adds a dim"
                if len(dims) < 3
                else ""
            ),
        ) from e
    except NeedsLiteral as e:
        node = nodes.get(e.arg)
        raise TraceError(
            f"{name}'s {e.arg} must be a literal here: {e.why}",
            location=getattr(node, "loc", layer.loc),
        ) from e
    except RuleError as e:
        hint = None
        if "dtype=long" in str(e):
            hint = "write `input (...) dtype=long`: an embedding reads integer token ids"
        raise TraceError(f"{name}: {e}", location=layer.loc, hint=hint) from e
    where = f"{title} (spec line {layer.loc.line})"
    for c in outcome.checks:
        free = S.free_symbols(c.condition)
        if t.batch_sym in free:
            raise TraceError(
                f"{name}: {c.message(t.show)} depends on the batch size", location=layer.loc
            )
        if not holds(c.condition, t.hints):
            raise TraceError(
                f"{name}: {c.message(lambda e: str(t.value(e)))}",
                location=layer.loc,
                hint="with the defaults" if free else None,
            )
        if t.implied_by_sizes(c.condition):
            continue
        t.conditions.append(Condition(c.condition, index, f"{where}: {c.message(t.show)}"))
    out_dims = []
    for size in outcome.shape:
        expr = S.simplify(t.session, S.expr_of(size))
        same = next((d for d in dims if d.expr == expr), None)
        out_dims.append(same if same is not None else DimInfo(expr, t.code(expr, layer.loc)))
    t.check_sizes(out_dims, index, where, layer.loc, dims)
    # torch itself builds and runs the layer at the sample values (meta: nothing allocated)
    hint_shape = tuple(t.value(d.expr) for d in dims)
    want = tuple(t.value(d.expr) for d in out_dims)
    with S.real_tensors(), torch.device("meta"), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch's dropout-with-one-layer note is lint W012
        try:
            module = build(layer, t.concrete, hint_shape)
            y = module.eval()(torch.empty(hint_shape, dtype=x.dtype))
        except Exception as e:
            raise TraceError(
                f"torch rejects {title} here: {first_line(e)}", location=layer.loc
            ) from e
    if tuple(int(s) for s in y.shape) != want:
        raise TraceError(
            f"internal error: seqgen computes {want} for {name} but torch gives {tuple(y.shape)}",
            location=layer.loc,
            hint="please report this as a seqgen bug",
        )
    count_e, macs_e = sympy.sympify(count), sympy.sympify(macs)
    call = _call(name, nodes, dims)
    traced = _traced_layer(t, index, layer, title, call, op, out_dims, count_e, macs_e, acts)
    if hidden is not None:
        traced = replace(traced, hidden_params=t.as_dim(sympy.sympify(hidden)))
    out_dtype = x.dtype if name != "embedding" else torch.float32
    y_fake = torch.empty(t.symbolic_sizes(out_dims), dtype=out_dtype)
    return y_fake, out_dims, traced, (count_e, count_e, macs_e)


def _check_inferred(
    t: LayerTracer, name: str, nodes: dict[str, Any], dims: list[DimInfo]
) -> dict[str, Any]:
    """A written input_size= / d_model= must be the last input dim; seqgen writes its own."""
    for key in INFERRED_LAST:
        given = nodes.pop(key, None)
        if given is None:
            continue
        last = dims[-1]
        value = t.values.eval(given)
        if (
            isinstance(value, bool)
            or not isinstance(value, (int, torch.SymInt))
            or t.value(S.expr_of(value)) != t.value(last.expr)
        ):
            got = str(t.value(last.expr))
            shown = got if last.code == got else f"{got} ({last.code})"
            raise TraceError(
                f"{key}={expr_source(given)} disagrees with the traced input: {name} "
                f"receives {shown} features",
                location=given.loc,
                hint=f"remove {key}=...; seqgen infers it",
            )
    return nodes


def _traced_layer(
    t: LayerTracer,
    index: int,
    layer: LayerSpec,
    title: str,
    call: str,
    op: SeqOp,
    out_dims: Sequence[Any],
    count: sympy.Expr,
    macs: sympy.Expr,
    acts: Any,
) -> Any:
    return TracedLayer(
        # the whole call as its one "argument": what reads the names a call uses sees them all
        index=index,
        spec=layer,
        class_name=title,
        call_args=(call,),
        call_kwargs=(),
        out_shape=tuple(t.dim(d) for d in out_dims),
        params=t.as_dim(count),
        trainable_params=t.as_dim(count),
        macs=t.as_dim(macs),
        code=call,
        helpers=(op.helper,) if op.helper else (),
        activations=t.as_dim(sympy.sympify(acts)) if acts is not None else None,
    )


def _rule(
    name: str, v: Mapping[str, Any], shape: Sequence[Any], dtype: torch.dtype
) -> tuple[Outcome, Any, Any, Any, Any]:
    """(outcome, parameter count, torchinfo's MACs per sample, its kept activations or None,
    the parameters torchinfo's "params size" leaves out or None)."""
    e = S.expr_of
    if name == "embedding":
        out = R.embedding(
            v["num_embeddings"],
            v["embedding_dim"],
            shape,
            padding_idx=v.get("padding_idx"),
            dtype=dtype,
        )
        n = R.embedding_params(v["num_embeddings"], v["embedding_dim"])
        return out, n, n, None, None
    if name in R.RECURRENT_KINDS:
        kw = {k: v[k] for k in ("num_layers", "bidirectional", "proj_size", "bias") if k in v}
        out = R.recurrent(
            name,
            v["hidden_size"],
            shape,
            take=v["take"],
            dropout=v.get("dropout", 0.0),
            nonlinearity=v.get("nonlinearity", "tanh"),
            **kw,
        )
        n = R.recurrent_params(name, shape[-1], v["hidden_size"], **kw)
        # torchinfo: the inner nn.RNN is the leaf; its output is the whole sequence
        seq = out.shape if len(out.shape) == 3 else (shape[0], shape[1], out.shape[-1])
        return out, n, e(seq[1]) * sympy.sympify(n), e(seq[1]) * e(seq[2]), None
    if name == "transformerencoderlayer":
        out = R.transformer_encoder_layer(
            v["nhead"],
            shape,
            **{
                k: v[k]
                for k in ("dim_feedforward", "dropout", "activation", "norm_first", "bias")
                if k in v
            },
        )
        d, f = e(shape[2]), e(v.get("dim_feedforward", 2048))
        bias = v.get("bias", True)
        n = R.transformer_encoder_layer_params(
            shape[2], dim_feedforward=v.get("dim_feedforward", 2048), bias=bias
        )
        # torchinfo's leaves: linear1, linear2, norm1, norm2 (attention's out_proj never runs
        # as a module)
        macs = 2 * d * f + (f + 5 * d if bias else 2 * d)
        # the attention's weights sit in a module with a child (out_proj): not a leaf
        attention = 4 * d * d + (4 * d if bias else 0)
        return out, n, macs, e(shape[1]) * (f + 3 * d), attention
    if name == "permute":
        return R.permute(v["dims"], shape), 0, 0, None, None
    if name == "transpose":
        return R.transpose(v["dim0"], v["dim1"], shape), 0, 0, None, None
    if name == "unsqueeze":
        return R.unsqueeze(v["dim"], shape), 0, 0, None, None
    if name == "squeeze":
        return R.squeeze(v["dim"], shape), 0, 0, None, None
    if name in ("mean", "sum", "amax"):
        return R.reduce(v["dim"], shape, keepdim=v.get("keepdim", False)), 0, 0, None, None
    if name == "select":
        return R.select(v["dim"], v["index"], shape), 0, 0, None, None
    if name == "scale":
        return R.scale(v["value"], shape), 0, 0, None, None
    if name == "cls_token":
        out = R.cls_token(shape)
        return out, R.cls_token_params(shape[-1]), 0, None, None
    if name == "pos_embedding":
        out = R.pos_embedding(shape)
        n = R.pos_embedding_params(shape[1], shape[2])
        return out, n, n, None, None
    assert name == "pos_encoding"
    out = R.pos_encoding(shape, max_len=v.get("max_len", 5000))
    return out, 0, 0, None, None


# ------------------------------------------------------------------------------- code


def _call(name: str, nodes: Mapping[str, Any], dims: Sequence[Any]) -> str:
    """The generated constructor call, from the spec's values (via expr_source) and the
    traced sizes."""
    op = OPS[name]
    src: dict[str, Any] = {
        k: (tuple(expr_source(i) for i in v) if isinstance(v, tuple) else expr_source(v))
        for k, v in nodes.items()
    }

    def kwargs(skip: Sequence[str]) -> list[str]:
        return [f"{k}={s}" for k, s in src.items() if k not in skip]

    last, length = dims[-1].code, (dims[1].code if len(dims) > 1 else "")
    if name == "embedding":
        sizes = ("num_embeddings", "embedding_dim")
        return f"nn.Embedding({', '.join([*(src[k] for k in sizes), *kwargs(sizes)])})"
    if op.helper == "RecurrentOutput":
        inner = ", ".join(
            [
                last,
                src["hidden_size"],
                *kwargs(("hidden_size", "take", "batch_first")),
                "batch_first=True",
            ]
        )
        return f"RecurrentOutput(nn.{op.torch_class}({inner}), take={nodes['take'].value!r})"
    if name == "transformerencoderlayer":
        inner = ", ".join(
            [last, src["nhead"], *kwargs(("nhead", "batch_first")), "batch_first=True"]
        )
        return f"nn.TransformerEncoderLayer({inner})"
    if name == "permute":
        return f"Permute({', '.join(src['dims'])})"
    if name == "cls_token":
        return f"ClsToken({last})"
    if name == "pos_embedding":
        return f"PosEmbedding({length}, {last})"
    if name == "pos_encoding":
        return f"PosEncoding({', '.join([last, *kwargs(())])})"
    positional = [src[p] for p in op.positional if p in src]
    return f"{op.helper}({', '.join([*positional, *kwargs(op.positional)])})"


def build(layer: LayerSpec, values: Values, in_shape: tuple[int, ...]) -> nn.Module:
    """The layer for real from concrete values (on the current default device)."""
    name = _label(layer)
    op = OPS[name]
    v: dict[str, Any] = {
        k: (tuple(values.eval(i) for i in n) if isinstance(n, tuple) else values.eval(n))
        for k, n in bind(layer).items()
        if k not in INFERRED_LAST
    }
    last = in_shape[-1]
    if name == "embedding":
        return nn.Embedding(**v)
    if op.helper == "RecurrentOutput":
        take = v.pop("take")
        v.pop("batch_first", None)
        rnn = getattr(nn, op.torch_class or "")(last, batch_first=True, **v)
        return runtime.RecurrentOutput(rnn, take=take)
    if name == "transformerencoderlayer":
        v.pop("batch_first", None)
        return nn.TransformerEncoderLayer(last, batch_first=True, **v)
    cls: type[nn.Module] = getattr(runtime, op.helper or "")
    if name == "permute":
        return cls(*v["dims"])
    if name == "cls_token":
        return cls(last)
    if name == "pos_embedding":
        return cls(in_shape[1], last)
    if name == "pos_encoding":
        return cls(last, **v)
    return cls(
        *(v[p] for p in op.positional if p in v),
        **{k: x for k, x in v.items() if k not in op.positional},
    )


def run_real(
    layer: LayerSpec, values: Values, x: torch.Tensor
) -> tuple[list[nn.Module], torch.Tensor] | None:
    """confirm.run_real for seqgen's own lines and weight_norm'd layers; None for the rest."""
    if is_seq_layer(layer):
        module = build(layer, values, tuple(x.shape)).eval()
        return [module], module(x)
    plain, wn = without_weight_norm(layer)
    if wn is None:
        return None
    from seqgen.check.realize import real_module
    from seqgen.layers.torch_nn import bind as bind_layer
    from seqgen.layers.torch_nn import resolve_layer

    cls = resolve_layer(plain)
    module = real_module(cls, bind_layer(cls, plain), values, tuple(x.shape))
    if values.eval(wn) is True:
        module = nn.utils.parametrizations.weight_norm(module)
    module = module.eval()
    return [module], module(x)


# ------------------------------------------------------------------------------- weight_norm


def _trace_weight_norm(
    t: LayerTracer,
    index: int,
    layer: LayerSpec,
    plain: LayerSpec,
    wn: Expr,
    x: torch.Tensor,
    dims: list[DimInfo],
) -> Traced:
    if not (isinstance(wn, Const) and isinstance(wn.value, bool)):
        raise TraceError(
            f"weight_norm must be True or False, got {expr_source(wn)}",
            location=wn.loc,
            hint="write weight_norm=True",
        )
    y, out_dims, step = t.layer(index, plain, x, dims)
    traced = step.traced
    assert isinstance(traced, TracedLayer)  # the plain line is one torch.nn layer
    if wn.value is False:
        return (
            y,
            out_dims,
            replace(traced, spec=layer),
            (step.params_expr, step.trainable_expr, step.macs_expr),
        )
    which = _NORMED.get(traced.class_name)
    if which is None:
        raise TraceError(
            f"weight_norm=True works on linear and conv layers, not {traced.class_name}",
            location=wn.loc,
            hint="torch's weight_norm reparametrises a layer's `weight`",
        )
    added = (
        dims[1].expr
        if which == "in"
        else (out_dims[-1].expr if traced.class_name == "Linear" else out_dims[1].expr)
    )
    params = step.params_expr + added
    trainable = step.trainable_expr + added
    zero = sympy.Integer(0)
    # torchinfo: the wrapped layer has child modules (its parametrizations), so it is no leaf:
    # no mult-adds and no kept output are counted for it
    new = replace(
        traced,
        spec=layer,
        params=t.as_dim(params),
        trainable_params=t.as_dim(trainable),
        macs=t.as_dim(zero),
        code=f"nn.utils.parametrizations.weight_norm({traced.call})",
        activations=t.as_dim(zero),
        hidden_params=t.as_dim(params),
    )
    return y, out_dims, new, (params, trainable, zero)
