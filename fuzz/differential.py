"""Differential fuzzer: seqgen's generated models against the same layers built concretely in torch.

Usage
-----
    python fuzz/differential.py --specs 300 --seed 1               # the long harness
    python fuzz/differential.py --specs 2000 --seconds 600 --jobs 2 --out /tmp/findings
    python fuzz/differential.py --seed 1 --index 17 --show         # replay one spec, print it
    python fuzz/differential.py --case tests/differential_cases/x.seq   # check one case file
    python -m pytest tests/test_differential.py                    # bounded CI run + regressions

Options: `--pytest` also runs each generated test file under pytest (once per spec, slow);
`--shrink K` shrinks up to K findings with distinct (kind, family, detail) signatures (default
12; 0 turns shrinking off) and writes them to `--out` (default: a temporary folder, printed);
`--points N` caps the value points per spec; `--verbose` prints every finding as it comes;
`--findings FILE` writes every finding and refusal as a JSON line; `--seconds T` starts no new
spec after T seconds; `--jobs J` runs specs in J forked worker processes. Exit status 1 when
any discrepancy was found.

How it works
------------
1. **Spec generator.** `generate_spec(seed, index)` builds, from `random.Random(f"{seed}:{index}")`,
   a `SpecIR`: a model line with int parameters (defaults >= 2, sometimes 0/1, rarely bool), an
   input line with literal, named (`h=17`) or parameter-expression dims, and 1-8 layers drawn from
   conv/convtranspose/max-avg-lp-adaptive pools/upsample/fold-unfold/padding/flatten/unflatten/
   linear/batch-instance-group-layer norms/activations/dropout. Arguments are small expression
   trees (`Lit`, `Var`, `Bin` with + - * //, `Neg`, `Tup`) over the parameter names, printed as
   spec text with positional arguments following seqgen's documented rule (they fill constructor
   parameters after the inferred sizes, or torch's order where none is inferred) and keywords
   otherwise (aliases k/s/p/d/g sometimes).
   Sequence layers (issue #11) come from fuzz/sequence_oracle.py: some specs start from token
   ids (`input (l=9,) dtype=long`) and an `embedding`; rank-3 tensors draw `rnn`/`lstm`/`gru`
   with a `take=`, `transformerencoderlayer`, `cls_token`/`pos_embedding`/`pos_encoding`; any
   rank >= 2 draws the tensor ops (permute, transpose, unsqueeze, squeeze, mean/sum/amax,
   select, scale); a conv or linear sometimes carries `weight_norm=True`.
   Each layer is tried at the defaults while generating, so most specs trace; a few rank
   mismatches and layers invalid at the defaults are kept on purpose. Sizes are kept small
   (activations and weights <= 1e5 elements at the defaults). Nothing is ever eval'd: spec text
   is only printed from the IR or read back by this module's own small parser (`parse_spec`).
   Heads and several inputs (issue #19) come from fuzz/graphs.py: about 4 specs in 10 are the
   flat spec drawn as above (the same text as before for the same seed and index) given heads
   (`head NAME:`, `from=POINT`, `train_only=True`) and/or a top-level merge reading another
   input (`branch from=NAME:`, `shares=`), from a random stream of their own; such a spec is a
   `graphs.GraphSpec`, checked by `graphs.check_point` (its docstring says what it compares,
   values after a weight copy included: `wrong_value`).
2. **Oracle** (`oracle(spec, env)`), independent of seqgen: for a full assignment of every
   parameter and named dim it evaluates the IR, infers in_channels / in_features / num_features /
   num_channels (dim 1) and in_features / normalized_shape (last dim) from the running shape,
   constructs the `torch.nn` classes with concrete ints (sequence layers: the reference modules
   of sequence_oracle.py, written independently of seqgen's runtime, with seqgen's stricter
   rules as invalid points), and runs `torch.randn` (token ids: `torch.randint` below the
   embedding's num_embeddings) at batch 2 through
   them under `torch.no_grad()`, once in `eval()` and once in `train()` mode. A point is
   **invalid** when evaluating an argument, constructing a layer or either forward raises, when
   an input size is < 1, or when any layer's output has a dimension of size 0 (seqgen's rule:
   every size stays >= 1). Otherwise it records every layer's output shape and parameter count.
   Torch warnings are suppressed. Points whose sizes (found on the meta device first) exceed
   1e6 elements per activation or 1e6 weights are skipped, not counted.
3. **Comparison** per spec (`check_spec`): the spec is written to a temporary folder and run
   through `seqgen.api.generate` + `seqgen.project.write.write_files`; the model and test
   modules are imported under unique names. A `SeqgenError` is `refused` (and
   `refused_but_works` when the oracle is valid at the defaults); any other exception is a
   `crash`. Otherwise value points are sampled: for each int parameter / named dim its default,
   the minimum the generated `__init__` accepts (probed downwards), one below, 0, 1, -1, 2..5,
   default +- 1, 2x and 3x the default and a large value; True/False for bool parameters; plus
   random joint points. At each point:
     - `Model(**point)` raises ValueError, oracle valid            -> false_reject
     - `Model(**point)` accepts, oracle invalid                    -> false_accept
     - `Model(**point)` raises anything but ValueError             -> crash
     - both valid: `input_shape(2, **point)`, each layer's output shape of the generated model
       run layer by layer, and `expected_shapes(2, **point)` must equal the oracle's
                                                                   -> wrong_shape
     - the generated model's parameter count and `expected_param_count(**point)` must equal
       the oracle's                                                -> wrong_count
   A ValueError for a non-default value of a *pinned* parameter (int default 0/1, which the README
   says is traced as a constant, or a bool/float parameter) is counted as `pinned_reject`, not a
   discrepancy: refusing is an honest answer there, but accepting and being wrong is not.
   With `--pytest`, the generated test file is run once per spec -> generated_test_fail.
4. **Shrinking** (`shrink`): remove layers, keyword and trailing positional arguments, replace
   expressions by their default value or a sub-expression, named dims by literals and large
   literals by small ones, while a finding of the same kind and layer family persists at the same
   point. Shrunk cases are written as `<kind>-<family>-<hash>.seq` with a comment header
   (`# point: a=1, b=2`, `# kind: ...`, `# detail: ...`) that `read_case` parses, the format of
   `tests/differential_cases/*.seq`.

Counts printed at the end (one line, then a per-layer-family breakdown of discrepancies):
`specs` run, `value points` checked, `refused` specs (SeqgenError), `refused_but_works` (of
those, the oracle works at the defaults), `false accepts`, `false rejects`, `wrong shapes`,
`wrong counts`, `crashes` (seqgen or generated code raising something other than SeqgenError /
ValueError), plus `generated test fails` (with --pytest), `pinned rejects`, skipped points and
timeouts. Discrepancies = false accepts + false rejects + wrong shapes + wrong counts + crashes +
generated test fails; `refused_but_works` is reported but is not a discrepancy.

Layer family of a finding: the layer whose shape differs first (wrong_shape), the layer the oracle
fails at (false_accept, and crashes where the oracle fails), the layer whose generated check
raised the ValueError (its comment names the spec line) or whose torch constructor raised
(false_reject), the first layer whose parameter count differs or changes with the point
(wrong_count: a heuristic), `input` for the input shape, `seqgen` for a crash inside seqgen
itself.

Oracle caveats: validity is what the CPU kernels of the installed torch do at batch 2 (BatchNorm
in train mode needs > 1 value per channel, so a batch of 1 could fail where batch 2 works; the CPU
avg_pool3d needs input >= kernel even with padding; InstanceNorm needs > 1 spatial element).
Negative pads of ConstantPad/ZeroPad crop in torch, so they are valid points. Kernel 0 in a
convolution fails in oneDNN's CPU primitive ("could not create a primitive descriptor"), which
is what makes such points invalid here.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import hashlib
import importlib.util
import inspect
import math
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import time
import traceback
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
import sequence_oracle as SQ  # noqa: E402

# fuzz/graphs.py (heads, several inputs) imports this module by name: run as a script, this
# module must be that one (not a second copy with its own classes)
sys.modules.setdefault("differential", sys.modules[__name__])

DISCREPANCIES = (
    "false_accept",
    "false_reject",
    "wrong_shape",
    "wrong_count",
    "crash",
    "generated_test_fail",
    "wrong_value",  # heads / several inputs (fuzz/graphs.py): outputs after a weight copy
)
MAX_ACT = 1_000_000  # per activation, batch 2, at a value point
MAX_WEIGHTS = 1_000_000
GEN_MAX_ACT = 100_000  # at the defaults, while generating
GEN_MAX_WEIGHTS = 100_000

# ================================================================== expressions


@dataclass(frozen=True)
class Lit:
    value: Any  # int, float, bool, str or None


@dataclass(frozen=True)
class Var:
    name: str


@dataclass(frozen=True)
class Bin:
    op: str  # + - * //
    left: Expr
    right: Expr
    paren: bool = False  # print redundant parentheses around it


@dataclass(frozen=True)
class Neg:
    operand: Expr


@dataclass(frozen=True)
class Tup:
    items: tuple


Expr = Lit | Var | Bin | Neg | Tup
_PREC = {"+": 1, "-": 1, "*": 2, "//": 2}


def ev(e: Expr, env: dict[str, Any]) -> Any:
    """The value of an expression; raises (ZeroDivisionError, KeyError) like Python would."""
    if isinstance(e, Lit):
        return e.value
    if isinstance(e, Var):
        return env[e.name]
    if isinstance(e, Neg):
        return -ev(e.operand, env)
    if isinstance(e, Tup):
        return tuple(ev(i, env) for i in e.items)
    a, b = ev(e.left, env), ev(e.right, env)
    if e.op == "+":
        return a + b
    if e.op == "-":
        return a - b
    if e.op == "*":
        return a * b
    return a // b


def _prec(e: Expr) -> int:
    if isinstance(e, Bin) and not e.paren:
        return _PREC[e.op]
    if (
        isinstance(e, Lit)
        and isinstance(e.value, (int, float))
        and not isinstance(e.value, bool)
        and e.value < 0
    ):
        return 2  # a negative literal: unary, binds tighter than * but print it in parens anyway
    return 3


def show(e: Expr) -> str:
    """Spec text of an expression (binary operators with spaces; minimal parentheses)."""
    if isinstance(e, Lit):
        v = e.value
        if isinstance(v, str):
            return "'" + v + "'"
        return repr(v)
    if isinstance(e, Var):
        return e.name
    if isinstance(e, Neg):
        return "(-" + _wrap(e.operand, 3) + ")"
    if isinstance(e, Tup):
        inner = ", ".join(show(i) for i in e.items)
        return "(" + inner + ("," if len(e.items) == 1 else "") + ")"
    p = _PREC[e.op]
    text = f"{_wrap(e.left, p)} {e.op} {_wrap(e.right, p + 1)}"
    return "(" + text + ")" if e.paren else text


def _wrap(e: Expr, need: int) -> str:
    text = show(e)
    if _prec(e) < need or (_prec(e) == 2 and isinstance(e, Lit)):
        return "(" + text + ")"
    return text


def names_in(e: Any) -> set[str]:
    if isinstance(e, Var):
        return {e.name}
    if isinstance(e, Bin):
        return names_in(e.left) | names_in(e.right)
    if isinstance(e, Neg):
        return names_in(e.operand)
    if isinstance(e, Tup):
        out: set[str] = set()
        for i in e.items:
            out |= names_in(i)
        return out
    return set()


# ================================================================== spec IR


@dataclass
class Param:
    name: str
    default: Any  # int, bool or float


@dataclass
class InputDim:
    expr: Expr  # Var(name) for a named dim
    sample: int | None = None  # a named dim's sample size (`h=17`); None otherwise


@dataclass
class LayerIR:
    name: str  # as written (case-insensitive torch.nn class name)
    pos: list = field(default_factory=list)  # positional values
    kw: list = field(default_factory=list)  # (key as written, value)


@dataclass
class SpecIR:
    model: str
    params: list[Param]
    input: list[InputDim]
    layers: list[LayerIR]
    dtype: str = "float"  # "long": token ids (`input ... dtype=long`), read by an embedding

    def dims(self) -> list[InputDim]:
        return [d for d in self.input if d.sample is not None]

    def used_names(self) -> set[str]:
        used: set[str] = set()
        for d in self.input:
            if d.sample is None:
                used |= names_in(d.expr)
        for layer in self.layers:
            for v in layer.pos:
                used |= names_in(v)
            for _, v in layer.kw:
                used |= names_in(v)
        return used

    def declared_params(self) -> list[Param]:
        """The model parameters the text declares: only those used somewhere."""
        used = self.used_names()
        return [p for p in self.params if p.name in used]

    def defaults(self) -> dict[str, Any]:
        env = {p.name: p.default for p in self.declared_params()}
        for d in self.dims():
            env[d.expr.name] = d.sample  # type: ignore[union-attr]
        return env

    def text(self) -> str:
        params = self.declared_params()
        head = f"model {self.model}"
        if params:
            head += "(" + ", ".join(f"{p.name}={p.default!r}" for p in params) + ")"
        entries = [
            f"{d.expr.name}={d.sample}" if d.sample is not None else show(d.expr)  # type: ignore[union-attr]
            for d in self.input
        ]
        lines = [
            head,
            "input ("
            + ", ".join(entries)
            + ("," if len(entries) == 1 else "")
            + ")"
            + (" dtype=long" if self.dtype == "long" else ""),
        ]
        lines += [layer_line(layer) for layer in self.layers]
        return "\n".join(lines) + "\n"


def layer_line(layer: LayerIR) -> str:
    """A layer's spec text."""
    parts = [layer.name] + [show(v) for v in layer.pos] + [f"{k}={show(v)}" for k, v in layer.kw]
    return " ".join(parts)


def pinned(spec: SpecIR, name: str) -> bool:
    """Parameters seqgen passes through at their defaults: bool and float ones."""
    for p in spec.declared_params():
        if p.name == name:
            return type(p.default) is not int
    return False


# ================================================================== a small parser (for case files)

_TOKEN = re.compile(
    r"""\s*(?:(?P<num>\d+\.\d*(?:[eE][-+]?\d+)?|\d*\.\d+(?:[eE][-+]?\d+)?|\d+[eE][-+]?\d+|\d+)
                         |(?P<name>[A-Za-z_][A-Za-z0-9_]*)|(?P<str>'[^']*'|"[^"]*")
                         |(?P<op>//|[-+*(),=]))""",
    re.X,
)


class CaseSyntaxError(ValueError):
    pass


def _tokens(text: str) -> list[tuple[str, str, bool]]:
    out, pos = [], 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        m = _TOKEN.match(text, pos)
        if not m:
            raise CaseSyntaxError(f"cannot read {text[pos:]!r}")
        space = m.start(m.lastgroup) > pos or pos == 0
        out.append((m.lastgroup, m.group(m.lastgroup), space))
        pos = m.end()
    return out


class _P:
    def __init__(self, toks: list[tuple[str, str, bool]]) -> None:
        self.t, self.i = toks, 0

    def peek(self, k: int = 0) -> tuple[str, str, bool]:
        return self.t[self.i + k] if self.i + k < len(self.t) else ("end", "", True)

    def next(self) -> tuple[str, str, bool]:
        tok = self.peek()
        self.i += 1
        return tok

    def at(self, s: str) -> bool:
        return self.peek()[0] == "op" and self.peek()[1] == s

    def expr(self, top: bool = False) -> Expr:
        left = self.term()
        while self.at("+") or self.at("-"):
            if (
                top
                and self.peek()[1] == "-"
                and self.peek()[2]
                and not self.peek(1)[2]
                and self.peek(1)[0] == "num"
            ):
                break
            op = self.next()[1]
            left = Bin(op, left, self.term())
        return left

    def term(self) -> Expr:
        left = self.unary()
        while self.at("*") or self.at("//"):
            op = self.next()[1]
            left = Bin(op, left, self.unary())
        return left

    def unary(self) -> Expr:
        if self.at("-") or self.at("+"):
            sign = self.next()[1]
            e = self.unary()
            if sign == "+":
                return e
            if isinstance(e, Lit) and isinstance(e.value, (int, float)):
                return Lit(-e.value)
            return Neg(e)
        return self.atom()

    def atom(self) -> Expr:
        kind, text, _ = self.next()
        if kind == "num":
            return Lit(int(text) if text.isdigit() else float(text))
        if kind == "str":
            return Lit(text[1:-1])
        if kind == "name":
            return (
                Lit({"True": True, "False": False, "None": None}[text])
                if text in ("True", "False", "None")
                else Var(text)
            )
        if kind == "op" and text == "(":
            items, comma = [], False
            while not self.at(")"):
                items.append(self.expr())
                comma = False
                if self.at(","):
                    self.next()
                    comma = True
            self.next()
            if len(items) == 1 and not comma:
                e = items[0]
                return dataclasses.replace(e, paren=True) if isinstance(e, Bin) else e
            return Tup(tuple(items))
        raise CaseSyntaxError(f"expected a value, found {text!r}")


def _strip_comment(line: str) -> str:
    out, quote = [], None
    for ch in line:
        if quote:
            if ch == quote:
                quote = None
        elif ch in "'\"":
            quote = ch
        elif ch == "#":
            break
        out.append(ch)
    return "".join(out).rstrip()


def parse_spec(text: str) -> Any:
    """Spec text (the subset this fuzzer writes: no `repeat`) -> SpecIR, or a GraphSpec
    (fuzz/graphs.py) for a spec with heads, merges or several inputs."""
    lines = [_strip_comment(raw) for raw in text.splitlines()]
    lines = [line for line in lines if line.strip()]
    if sum(line.startswith("input") for line in lines) > 1 or any(
        line.startswith(("head ", " ")) or line.endswith(":") for line in lines
    ):
        import graphs

        return graphs.parse_graph(lines)
    model, params, inputs, layers, dtype = "Model", [], None, [], "float"
    for line in lines:
        word = line.split()[0]
        rest = line.strip()[len(word) :]
        if word == "model":
            model, params = parse_model_line(line)
        elif word == "input":
            inputs, dtype = parse_input_shape(rest)
        else:
            layers.append(parse_layer(line))
    if inputs is None:
        raise CaseSyntaxError("no input line")
    return SpecIR(model, params, inputs, layers, dtype)


def parse_model_line(line: str) -> tuple[str, list[Param]]:
    """`model NAME(a=1, ...)` -> the name and the parameters."""
    m = re.fullmatch(r"\s*model\s+([A-Za-z_]\w*)\s*(?:\((.*)\))?\s*", line)
    if not m:
        raise CaseSyntaxError(f"bad model line {line!r}")
    params = []
    for item in filter(None, (s.strip() for s in (m.group(2) or "").split(","))):
        name, value = (s.strip() for s in item.split("=", 1))
        v = _P(_tokens(value)).expr()
        if not isinstance(v, Lit):
            raise CaseSyntaxError(f"bad default {item!r}")
        params.append(Param(name, v.value))
    return m.group(1), params


def parse_input_shape(rest: str) -> tuple[list[InputDim], str]:
    """An input line's shape (and `dtype=long`) -> its dims and dtype."""
    rest, dtype = rest.strip(), "float"
    m = re.search(r"\sdtype=(long|bool)$", rest)
    if m:
        dtype, rest = m.group(1), rest[: m.start()].strip()
    if re.fullmatch(r"\d+(x\d+)*", rest):
        return [InputDim(Lit(int(d))) for d in rest.split("x")], dtype
    p = _P(_tokens(rest))
    if not p.at("("):
        raise CaseSyntaxError(f"bad input shape {rest!r}")
    p.next()
    inputs = []
    while not p.at(")"):
        if p.peek()[0] == "name" and p.peek(1)[1] == "=":
            name = p.next()[1]
            p.next()
            inputs.append(InputDim(Var(name), int(p.next()[1])))
        else:
            inputs.append(InputDim(p.expr()))
        if p.at(","):
            p.next()
    return inputs, dtype


def parse_layer(line: str) -> LayerIR:
    """A layer line -> LayerIR."""
    p = _P(_tokens(line))
    layer = LayerIR(p.next()[1])
    while p.peek()[0] != "end":
        if p.peek()[0] == "name" and p.peek(1)[1] == "=" and p.peek(1)[0] == "op":
            key = p.next()[1]
            p.next()
            layer.kw.append((key, p.expr(top=True)))
        else:
            layer.pos.append(p.expr(top=True))
    return layer


# ================================================================== torch side (the oracle)

INFERRED_SIZES = {
    "in_channels": 1,
    "in_features": -1,
    "num_features": 1,
    "num_channels": 1,
    "normalized_shape": -1,
}
ALIASES = {"k": "kernel_size", "s": "stride", "p": "padding", "d": "dilation", "g": "groups"}
_CLASSES: dict[str, Any] = {}
_SIGS: dict[Any, list[str]] = {}


def torch_class(name: str) -> Any:
    import torch.nn as nn

    if not _CLASSES:
        for n in dir(nn):
            obj = getattr(nn, n)
            if isinstance(obj, type) and issubclass(obj, nn.Module) and not n.startswith("_"):
                _CLASSES[n.lower()] = obj
    try:
        return _CLASSES[name.lower()]
    except KeyError:
        raise ValueError(f"no torch.nn class {name!r}") from None


def ctor_params(cls: Any) -> list[str]:
    if cls not in _SIGS:
        sig = inspect.signature(cls.__init__)
        _SIGS[cls] = [
            p.name
            for p in list(sig.parameters.values())[1:]
            if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
            and p.name not in ("device", "dtype")
        ]
    return _SIGS[cls]


def bind(layer: LayerIR, env: dict[str, Any], shape: tuple[int, ...]) -> tuple[Any, dict[str, Any]]:
    """The torch class and concrete constructor kwargs of a layer at `env` on input `shape`."""
    if layer.name in SQ.NAMES:
        pos = [ev(v, env) for v in layer.pos]
        # `take=last` unquoted is a word, never a parameter (as in seqgen)
        kw = {k: v.name if k == "take" and isinstance(v, Var) else ev(v, env) for k, v in layer.kw}
        return (lambda: SQ.build(layer.name, pos, dict(kw), shape)), {}
    normed = [v for k, v in layer.kw if k == "weight_norm"]
    if normed:
        plain = LayerIR(layer.name, layer.pos, [(k, v) for k, v in layer.kw if k != "weight_norm"])
        cls, kwargs = bind(plain, env, shape)
        if ev(normed[0], env) is True:
            return (lambda **kw: SQ.weight_normed(cls(**kw))), kwargs
        return cls, kwargs
    cls = torch_class(layer.name)
    params = ctor_params(cls)
    fill = [p for p in params if p not in INFERRED_SIZES]
    kwargs: dict[str, Any] = {}
    if len(layer.pos) > len(fill):
        raise TypeError("too many positional arguments")
    for pname, value in zip(fill, layer.pos):
        kwargs[pname] = ev(value, env)
    for key, value in layer.kw:
        key = ALIASES.get(key, key)
        if key in kwargs:
            raise TypeError(f"{key} given twice")
        kwargs[key] = ev(value, env)
    for pname in params:
        if pname in INFERRED_SIZES and pname not in kwargs:
            if len(shape) < 2:
                raise ValueError("rank < 2 for an inferred size")
            kwargs[pname] = shape[INFERRED_SIZES[pname]]
    if layer.name == "unflatten":
        # seqgen's documented rule (README): -1 in unflatten's sizes is written literally; a
        # parameter there is a size >= 1 (torch would read -1 as "infer" and change the shape)
        written = dict(zip(fill, layer.pos)) | {ALIASES.get(k, k): v for k, v in layer.kw}
        sizes = written.get("unflattened_size")
        items = sizes.items if isinstance(sizes, Tup) else ()
        for item in items:
            if not isinstance(item, Lit) and ev(item, env) == -1:
                raise ValueError("seqgen rule: a parameter in unflatten's sizes must be >= 1")
    return cls, kwargs


def family(name: str) -> str:
    n = name.lower()
    if n in SQ.NAMES:
        return {
            "lstm": "recurrent",
            "gru": "recurrent",
            "rnn": "recurrent",
            "transformerencoderlayer": "transformer",
            "embedding": "embedding",
        }.get(n, "positions" if n in SQ.POSITIONS else "seqop")
    for prefix, fam in (
        ("convtranspose", "convtranspose"),
        ("conv", "conv"),
        ("maxpool", "maxpool"),
        ("avgpool", "avgpool"),
        ("lppool", "lppool"),
        ("adaptive", "adaptivepool"),
        ("upsampl", "upsample"),
        ("unfold", "unfold"),
        ("fold", "fold"),
        ("unflatten", "unflatten"),
        ("flatten", "flatten"),
        ("linear", "linear"),
        ("batchnorm", "batchnorm"),
        ("instancenorm", "instancenorm"),
        ("groupnorm", "groupnorm"),
        ("layernorm", "layernorm"),
        ("dropout", "dropout"),
        ("alphadropout", "dropout"),
    ):
        if n.startswith(prefix):
            return fam
    m = re.match(r"(zero|constant|reflection|replication|circular)pad", n)
    if m:
        return m.group(1) + "pad"
    return "activation"


@dataclass
class OracleResult:
    valid: bool
    shapes: list[tuple[int, ...]] = field(default_factory=list)  # output of each layer
    counts: list[int] = field(default_factory=list)  # parameters of each layer
    input_shape: tuple[int, ...] | None = None
    fail_layer: int | None = None  # -1: the input; None: valid
    reason: str = ""
    too_large: bool = False

    @property
    def total(self) -> int:
        return sum(self.counts)


def _numel(shape: tuple[int, ...]) -> int:
    return math.prod(shape) if shape else 1


def oracle(
    spec: SpecIR, env: dict[str, Any], *, device: str = "cpu", seed: int = 0
) -> OracleResult:
    """Build the layers with concrete values and run them at batch 2 (see the module docstring).

    device="meta" only measures sizes: it allocates nothing and does not decide validity.
    """
    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            shape = (2,) + tuple(ev(d.expr, env) for d in spec.input)
        except Exception as e:
            return OracleResult(False, fail_layer=-1, reason=f"input: {type(e).__name__}: {e}")
        if any(type(s) is not int or s < 1 for s in shape):
            return OracleResult(
                False, input_shape=None, fail_layer=-1, reason=f"input size {shape} < 1"
            )
        if device == "meta" and _numel(shape) > MAX_ACT:
            return OracleResult(False, input_shape=shape, too_large=True, reason="input too large")
        res = OracleResult(True, input_shape=shape)
        torch.manual_seed(seed)
        x = sample(spec, env, shape, device)
        modules = []
        with torch.no_grad():
            for i, layer in enumerate(spec.layers):
                try:
                    cls, kwargs = bind(layer, env, tuple(x.shape))
                    if device == "meta":
                        with torch.device("meta"):
                            m = cls(**kwargs)
                    else:
                        m = cls(**kwargs)
                    count = sum(p.numel() for p in m.parameters())
                    if count > MAX_WEIGHTS:
                        return OracleResult(
                            False, too_large=True, reason=f"layer {i} weights {count}"
                        )
                    m.eval()
                    x = m(x)
                except Exception as e:
                    return OracleResult(
                        False,
                        res.shapes,
                        res.counts,
                        shape,
                        i,
                        f"{type(e).__name__}: {_short(str(e))}",
                    )
                if not isinstance(x, torch.Tensor):
                    return OracleResult(False, res.shapes, res.counts, shape, i, "not a tensor")
                out = tuple(int(s) for s in x.shape)
                if _numel(out) > MAX_ACT:
                    return OracleResult(False, too_large=True, reason=f"layer {i} output {out}")
                modules.append(m)
                res.shapes.append(out)
                res.counts.append(count)
                if 0 in out:
                    return OracleResult(False, res.shapes, res.counts, shape, i, f"size 0 in {out}")
            if device == "meta":
                return res
            torch.manual_seed(seed + 1)
            x = sample(spec, env, shape, "cpu")
            for i, m in enumerate(modules):
                try:
                    m.train()
                    x = m(x)
                except Exception as e:
                    return OracleResult(
                        False,
                        res.shapes,
                        res.counts,
                        shape,
                        i,
                        f"train: {type(e).__name__}: {_short(str(e))}",
                    )
                if tuple(x.shape) != res.shapes[i]:
                    return OracleResult(
                        False,
                        res.shapes,
                        res.counts,
                        shape,
                        i,
                        f"train shape {tuple(x.shape)} != eval {res.shapes[i]}",
                    )
        return res


def sample(spec: SpecIR, env: dict[str, Any], shape: tuple[int, ...], device: str) -> Any:
    """A random input: floats, or token ids below the first embedding's num_embeddings."""
    import torch

    if spec.dtype != "long":
        return (
            torch.randn(shape, device=device)
            if device != "meta"
            else torch.empty(shape, device="meta")
        )
    first = spec.layers[0] if spec.layers else None
    high = ev(first.pos[0], env) if first is not None and first.name == "embedding" else 2
    if device == "meta":
        return torch.empty(shape, device="meta", dtype=torch.long)
    return torch.randint(0, max(int(high), 1), shape, device=device)


def _short(text: str, n: int = 160) -> str:
    text = " ".join(text.split())
    return text if len(text) <= n else text[: n - 3] + "..."


# ================================================================== the spec generator

DIM_NAMES = ["h", "w", "l", "t", "dd", "ln", "wd", "len1"]
PREFIX = {
    "size": "ch",
    "hid": "hid",
    "kernel": "k",
    "stride": "s",
    "pad": "pd",
    "dil": "dl",
    "groups": "g",
    "outpad": "op",
    "osize": "os",
    "cin": "cin",
    "ngroups": "ng",
    "scale": "sf",
    "dim": "sz",
    "flag": "b",
}


class Gen:
    """Draws one SpecIR; every choice comes from self.rng."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.params: list[Param] = []
        self.dims: list[InputDim] = []
        self.counter = Counter()
        self.layers: list[LayerIR] = []
        self.allow_invalid = rng.random() < 0.06
        self.allow_offrank = rng.random() < 0.05
        self.sym = rng.choice([0.15, 0.3, 0.45, 0.6])  # how symbolic this spec is
        self.dtype = "float"

    # ---------------------------------------------------------- expressions
    def env(self) -> dict[str, Any]:
        env = {p.name: p.default for p in self.params}
        for d in self.dims:
            if d.sample is not None:
                env[d.expr.name] = d.sample  # type: ignore[union-attr]
        return env

    def new_param(self, kind: str, default: Any) -> Var:
        prefix = PREFIX.get(kind, "n")
        self.counter[prefix] += 1
        name = f"{prefix}{self.counter[prefix]}"
        self.params.append(Param(name, default))
        return Var(name)

    def int_symbols(self) -> list[tuple[str, int]]:
        env = self.env()
        return [(n, v) for n, v in env.items() if type(v) is int and v >= 2]

    def template(self, q: Expr, d: int) -> Expr:
        r = self.rng
        c, m = r.randint(1, 3), r.randint(2, 4)
        choices = [
            lambda: Bin("+", q, Lit(c)),
            lambda: Bin("-", q, Lit(c)),
            lambda: Bin("*", q, Lit(m)),
            lambda: Bin("*", Lit(m), q),
            lambda: Bin("//", q, Lit(m)),
            lambda: Bin("//", Bin("+", q, Lit(c)), Lit(m)),
            lambda: Bin("+", Bin("*", q, Lit(m)), Lit(c)),
            lambda: Bin("*", Bin("-", q, Lit(c)), Lit(m)),
            lambda: Bin("*", Lit(m), Bin("//", q, Lit(m))),
            lambda: Bin("*", Bin("//", q, Lit(m)), Lit(m)),
            lambda: Bin("-", Bin("//", q, Lit(m)), Lit(c)),
            lambda: Bin("+", Bin("*", Lit(m), q), Lit(c)),
            lambda: q,
        ]
        e = r.choice(choices)()
        if isinstance(e, Bin) and r.random() < 0.1:
            e = dataclasses.replace(e, paren=True)
        return e

    def num(self, target: int, kind: str, weight: float = 1.0) -> Expr:
        """An int expression worth `target` at the defaults; symbolic with chance sym*weight."""
        r = self.rng
        if target < 0 or r.random() >= self.sym * weight:
            return Lit(target)
        syms = self.int_symbols()
        if syms and r.random() < 0.5:
            env = self.env()
            for _ in range(40):
                if len(syms) >= 2 and r.random() < 0.15:
                    (a, _), (b, _) = r.sample(syms, 2)
                    e: Expr = Bin(r.choice(["+", "*", "-"]), Var(a), Var(b))
                else:
                    n, d = r.choice(syms)
                    e = self.template(Var(n), d)
                try:
                    if ev(e, env) == target and names_in(e):
                        return e
                except ZeroDivisionError:
                    pass
        if target >= 2:
            v = self.new_param(kind, target)
            if r.random() < 0.25:  # an expression around a fresh parameter
                for _ in range(20):
                    d = r.randint(2, 9)
                    e = self.template(Var("_"), d)
                    try:
                        if ev(e, {"_": d}) == target:
                            self.params[-1].default = d
                            return _subst(e, "_", v)
                    except ZeroDivisionError:
                        pass
            return v
        if r.random() < 0.3:  # a pinned parameter: default 0 or 1
            return self.new_param(kind, target)
        c = r.randint(1, 3)  # 0 or 1 as `p - c`
        v = self.new_param(kind, target + c)
        if target + c < 2:
            self.params[-1].default = target + c + 2
            return Bin("-", v, Lit(c + 2))
        return Bin("-", v, Lit(c))

    def boolean(self, value: bool) -> Expr:
        if self.rng.random() < 0.04:
            return self.new_param("flag", value)
        return Lit(value)

    # ---------------------------------------------------------- input
    def make_input(self) -> None:
        r = self.rng
        rank = r.choices([1, 2, 3, 4], [15, 32, 35, 18])[0]
        names = r.sample(DIM_NAMES, len(DIM_NAMES))
        ranges = {
            1: [(4, 40)],
            2: [(1, 4), (8, 48)],
            3: [(1, 4), (6, 24), (6, 24)],
            4: [(1, 3), (3, 8), (3, 10), (3, 10)],
        }[rank]
        for i, (lo, hi) in enumerate(ranges):
            v = r.randint(lo, hi)
            spatial = rank == 1 or i > 0
            roll = r.random()
            if spatial and roll < 0.55:
                self.dims.append(InputDim(Var(names.pop()), v))
            elif roll < 0.62 + (0 if spatial else 0.1) and v >= 2:
                self.dims.append(InputDim(self.num(v, "cin" if not spatial else "dim", 10)))
            else:
                self.dims.append(InputDim(Lit(v)))
        if r.random() < 0.03:  # a named dim with sample size 1 (traced as a constant)
            self.dims.append(InputDim(Var(names.pop()), 1))

    # ---------------------------------------------------------- layers
    def layer(self, name: str, args: dict[str, Expr], positional_max: int = 9) -> LayerIR:
        """Print some leading arguments positionally (seqgen's rule), the rest as keywords."""
        r = self.rng
        cls = torch_class(name)
        fill = [p for p in ctor_params(cls) if p not in INFERRED_SIZES]
        prefix = 0
        for p in fill:
            if p in args:
                prefix += 1
            else:
                break
        # README: with an inferred size, positional arguments fill the required parameters
        # after it; a class with none takes torch's own order (`maxpool2d 2 2`)
        sig = inspect.signature(cls.__init__).parameters
        required = [p for p in fill if sig[p].default is inspect.Parameter.empty]
        by_order = [p for p in fill if sig[p].kind == inspect.Parameter.POSITIONAL_OR_KEYWORD]
        inferred = any(p in sig for p in INFERRED_SIZES)
        allowed = len(required) if inferred else len(by_order)
        npos = min(positional_max, allowed, r.randint(0, prefix)) if r.random() < 0.7 else 0
        layer = LayerIR(name)
        for p in fill[:npos]:
            layer.pos.append(args[p])
        rest = [p for p in fill[npos:] if p in args] + [p for p in args if p not in fill]
        for p in rest:
            key = p
            if p in ALIASES.values() and r.random() < 0.25:
                key = next(a for a, full in ALIASES.items() if full == p)
            layer.kw.append((key, args[p]))
        return layer

    def ks(self, n: int, lo: int, hi: int, kind: str, sym: float = 1.0, tup: float = 0.2) -> Expr:
        """An int or (rarely) a tuple of ints in [lo, hi]."""
        r = self.rng
        if n > 1 and r.random() < tup:
            return Tup(tuple(self.num(r.randint(lo, hi), kind, sym) for _ in range(n)))
        return self.num(r.randint(lo, hi), kind, sym)

    def candidates(self, shape: tuple[int, ...]) -> list[tuple[str, float]]:
        rank = len(shape)
        out: list[tuple[str, float]] = [("act", 1.5), ("dropout", 0.5)]
        if rank == 2:
            out += [
                ("linear", 4),
                ("batchnorm", 1),
                ("layernorm", 1),
                ("unflatten", 1),
                ("groupnorm", 0.5),
            ]
        if rank >= 3:
            out += [
                ("conv", 3),
                ("convtranspose", 1.5),
                ("maxpool", 1.5),
                ("avgpool", 1),
                ("adaptive", 1),
                ("upsample", 1),
                ("pad", 2.0),
                ("batchnorm", 0.7),
                ("instancenorm", 0.6),
                ("groupnorm", 0.6),
                ("layernorm", 0.3),
                ("flatten", 1.2),
                ("linear", 0.3),
                ("unflatten", 0.3),
            ]
        if rank in (3, 4):
            out += [("lppool", 0.5)]
        if rank == 4:
            out += [("unfold", 0.8)]
        return out + SQ.candidates(shape)

    def draw_layer(self, fam: str, shape: tuple[int, ...]) -> list[LayerIR]:
        if fam in ("seqop", "recurrent", "transformer", "positions"):
            return SQ.draw(
                self, fam, shape, lambda n, pos=(), kw=(): LayerIR(n, list(pos), list(kw)), Lit
            )
        layers = self.draw_torch_layer(fam, shape)
        if fam in ("conv", "linear") and self.rng.random() < 0.1:
            layers[-1].kw.append(("weight_norm", Lit(True)))  # torch's weight_norm around it
        return layers

    def draw_torch_layer(self, fam: str, shape: tuple[int, ...]) -> list[LayerIR]:
        r = self.rng
        rank = len(shape)
        nd = max(1, min(3, rank - 2))
        if self.allow_offrank and r.random() < 0.1:
            nd = r.randint(1, 3)
        sp = list(shape[2:]) or [1]
        smin = max(1, min(sp))
        C = shape[1] if rank >= 2 else 1
        if fam == "act":
            choice = r.choice(
                [
                    "relu",
                    "gelu",
                    "tanh",
                    "sigmoid",
                    "leakyrelu",
                    "elu",
                    "softmax",
                    "logsoftmax",
                    "identity",
                    "silu",
                    "prelu",
                    "hardtanh",
                ]
            )
            if choice == "leakyrelu":
                return [LayerIR("leakyrelu", [Lit(0.1)] if r.random() < 0.5 else [])]
            if choice in ("softmax", "logsoftmax"):
                return [LayerIR(choice, [], [("dim", Lit(r.choice([1, -1])))])]
            if choice == "prelu":
                if rank >= 2 and r.random() < 0.5:
                    return [LayerIR("prelu", [], [("num_parameters", self.num(C, "size", 0.5))])]
                return [LayerIR("prelu")]
            return [LayerIR(r.choice([choice, choice.upper() if choice == "relu" else choice]))]
        if fam == "dropout":
            name = r.choice(
                [
                    "dropout",
                    "dropout",
                    "alphadropout",
                    {3: "dropout1d", 4: "dropout2d", 5: "dropout3d"}.get(rank, "dropout"),
                ]
            )
            return [LayerIR(name, [Lit(r.choice([0.1, 0.25, 0.5]))] if r.random() < 0.5 else [])]
        if fam == "linear":
            args = {"out_features": self.num(r.choice([2, 3, 4, 5, 8, 10, 16, 32]), "hid", 1.2)}
            if r.random() < 0.2:
                args["bias"] = self.boolean(False)
            return [self.layer("linear", args)]
        if fam == "conv":
            out = r.choice([1, 2, 3, 4, 6, 8, 12, 16])
            args: dict[str, Expr] = {}
            g = 1
            if r.random() < 0.2:
                divs = [d for d in range(2, C + 1) if C % d == 0]
                if divs:
                    g = r.choice(divs)
                    out = g * r.randint(1, 3)
            args["out_channels"] = self.num(out, "size")
            k = r.randint(1, min(5, smin + 1))
            args["kernel_size"] = self.ks(nd, 1, k, "kernel")
            roll = r.random()
            if roll < 0.12:
                args["padding"] = Lit("same")
            elif roll < 0.18:
                args["padding"] = Lit("valid")
            elif roll < 0.55:
                kexpr = args["kernel_size"]
                if isinstance(kexpr, Var) and r.random() < 0.5:
                    args["padding"] = Bin("//", kexpr, Lit(2))
                else:
                    args["padding"] = self.ks(nd, 0, max(0, k // 2), "pad")
            if r.random() < 0.3 and args.get("padding") != Lit("same"):
                args["stride"] = self.ks(nd, 1, 3, "stride", 0.7)
            if r.random() < 0.2:
                args["dilation"] = self.ks(nd, 1, 2, "dil", 0.7)
            if g > 1:
                args["groups"] = self.num(g, "groups", 0.5)
            if r.random() < 0.15:
                args["bias"] = self.boolean(False)
            if r.random() < 0.07 and "padding" in args:
                args["padding_mode"] = Lit(r.choice(["reflect", "replicate", "circular"]))
            return [self.layer(f"conv{nd}d", args)]
        if fam == "convtranspose":
            out = r.choice([1, 2, 3, 4, 6, 8])
            args = {}
            g = 1
            if r.random() < 0.15:
                divs = [d for d in range(2, C + 1) if C % d == 0]
                if divs:
                    g = r.choice(divs)
                    out = g * r.randint(1, 2)
            args["out_channels"] = self.num(out, "size")
            k = r.randint(1, 4)
            args["kernel_size"] = self.num(k, "kernel")
            s = r.choice([1, 1, 2, 2, 3])
            if s > 1 or r.random() < 0.2:
                args["stride"] = self.num(s, "stride")
            if r.random() < 0.3:
                args["padding"] = self.num(r.randint(0, max(0, k - 1)), "pad")
            dil = 1
            if r.random() < 0.15:
                dil = 2
                args["dilation"] = self.num(2, "dil", 0.5)
            if r.random() < 0.35:
                args["output_padding"] = (
                    self.num(r.randint(0, max(s, dil) - 1), "outpad", 0.5)
                    if r.random() < 0.8
                    else Lit(1)
                )
            if g > 1:
                args["groups"] = Lit(g)
            if r.random() < 0.1:
                args["bias"] = Lit(False)
            return [self.layer(f"convtranspose{nd}d", args)]
        if fam in ("maxpool", "avgpool", "lppool"):
            if fam == "lppool":
                nd = min(nd, 2)
            k = r.randint(2, max(2, min(3, smin)))
            args = {}
            if fam == "lppool":
                args["norm_type"] = Lit(r.choice([1, 2, 2, 3.0]))
            args["kernel_size"] = self.ks(nd, 2, k, "kernel", 0.5)
            if r.random() < 0.35:
                args["stride"] = self.ks(nd, 1, k, "stride", 0.5)
            if fam != "lppool" and r.random() < 0.3:
                args["padding"] = self.num(r.randint(0, k // 2), "pad", 0.5)
            if fam == "maxpool" and r.random() < 0.15:
                args["dilation"] = self.num(2, "dil", 0.3)
            if r.random() < 0.35:
                args["ceil_mode"] = self.boolean(True)
            if fam == "avgpool" and r.random() < 0.2:
                args["count_include_pad"] = Lit(False)
            if fam == "avgpool" and nd > 1 and r.random() < 0.05:
                args["divisor_override"] = Lit(r.randint(1, 4))
            return [self.layer(f"{fam}{nd}d", args)]
        if fam == "adaptive":
            kind = r.choice(["avg", "max"])
            if r.random() < 0.25 and nd > 1:
                items = [
                    self.num(r.randint(1, 4), "osize", 0.6) if r.random() < 0.85 else Lit(None)
                    for _ in range(nd)
                ]
                size: Expr = Tup(tuple(items))
            else:
                size = self.num(r.randint(1, 5), "osize", 0.6)
            return [self.layer(f"adaptive{kind}pool{nd}d", {"output_size": size})]
        if fam == "upsample":
            args = {}
            if r.random() < 0.6:
                roll = r.random()
                args["scale_factor"] = (
                    Lit(r.choice([2, 2, 3]))
                    if roll < 0.85
                    else Lit(1.5)
                    if roll < 0.9
                    else self.num(2, "scale", 1)
                )
            else:
                args["size"] = self.ks(nd, 1, max(2, 2 * smin), "osize", 0.6, tup=0.3)
            if r.random() < 0.25:
                args["mode"] = Lit({1: "linear", 2: "bilinear", 3: "trilinear"}[nd])
                if r.random() < 0.5:
                    args["align_corners"] = Lit(r.choice([True, False]))
            return [self.layer("upsample", args, positional_max=1)]
        if fam == "pad":
            kind = r.choice(["zero", "constant", "reflection", "replication", "circular"])
            hi = 3 if kind in ("zero", "constant", "replication") else max(0, min(3, smin - 1))
            if r.random() < 0.3:
                pad: Expr = Tup(
                    tuple(self.num(r.randint(0, hi), "pad", 0.5) for _ in range(2 * nd))
                )
            else:
                pad = self.num(r.randint(0 if r.random() < 0.2 else 1, max(1, hi)), "pad", 1.2)
            args = {"padding": pad}
            if kind == "constant":
                args["value"] = Lit(r.choice([0.0, 0.5, 1.0]))
            return [self.layer(f"{kind}pad{nd}d", args)]
        if fam == "batchnorm":
            name = {2: "batchnorm1d", 3: "batchnorm1d", 4: "batchnorm2d", 5: "batchnorm3d"}[rank]
            args = {}
            if r.random() < 0.2:
                args["affine"] = self.boolean(False)
            if r.random() < 0.1:
                args["eps"] = Lit(1e-3)
            if r.random() < 0.1:
                args["track_running_stats"] = Lit(False)
            return [self.layer(name, args)]
        if fam == "instancenorm":
            args = {}
            if r.random() < 0.3:
                args["affine"] = self.boolean(True)
            if r.random() < 0.15:
                args["track_running_stats"] = Lit(True)
            return [self.layer(f"instancenorm{nd}d", args)]
        if fam == "groupnorm":
            divs = [d for d in range(1, C + 1) if C % d == 0]
            gsize = r.choice(divs)
            args = {"num_groups": self.num(gsize, "ngroups", 0.7)}
            if r.random() < 0.15:
                args["affine"] = Lit(False)
            return [self.layer("groupnorm", args)]
        if fam == "layernorm":
            args = {}
            if r.random() < 0.15:
                args["elementwise_affine"] = Lit(False)
            return [self.layer("layernorm", args)]
        if fam == "flatten":
            if rank >= 4 and r.random() < 0.25:
                return [
                    r.choice(
                        [
                            LayerIR("flatten", [Lit(2)]),
                            LayerIR("flatten", [], [("start_dim", Lit(2)), ("end_dim", Lit(-1))]),
                        ]
                    )
                ]
            return [
                r.choice(
                    [
                        LayerIR("flatten"),
                        LayerIR("flatten"),
                        LayerIR("flatten", [Lit(1)], [("end_dim", Lit(-1))]),
                        LayerIR("flatten", [], [("start_dim", Lit(1))]),
                    ]
                )
            ]
        if fam == "unflatten":
            dim = r.choice([1, -1]) if rank == 2 else r.choice([1, rank - 1, -1])
            n = shape[dim]
            divs = [d for d in range(2, n) if n % d == 0]
            a = r.choice(divs) if divs else 1
            b = n // a
            sizes = [Lit(a), Lit(b)]
            roll = r.random()
            if roll < 0.35:
                sizes[1] = Lit(-1)
            elif roll < 0.5:
                sizes[0] = Lit(-1)
            elif roll < 0.65:
                sizes[0] = self.num(a, "size", 1.5)
            return [LayerIR("unflatten", [Lit(dim), Tup(tuple(sizes))])]
        if fam == "unfold":
            k = r.randint(1, max(1, min(3, smin)))
            args = {"kernel_size": self.ks(2, 1, k, "kernel", 0.5)}
            if r.random() < 0.3:
                args["stride"] = self.num(r.randint(1, 2), "stride", 0.5)
            if r.random() < 0.2:
                args["padding"] = self.num(r.randint(0, 1), "pad", 0.5)
            if r.random() < 0.1:
                args["dilation"] = Lit(2)
            layers = [self.layer("unfold", args)]
            if r.random() < 0.5:  # fold it back to the size it had
                hw = [self.dim_expr(shape, 2), self.dim_expr(shape, 3)]
                fargs = {"output_size": Tup(tuple(hw)), **args}
                layers.append(self.layer("fold", fargs))
            return layers
        raise AssertionError(fam)

    def dim_expr(self, shape: tuple[int, ...], i: int) -> Expr:
        """An expression for dim i of the current shape: the named input dim when unchanged."""
        if self.exprs[i] is not None and self.rng.random() < 0.8:
            return self.exprs[i]
        return Lit(shape[i])

    # ---------------------------------------------------------- the whole spec
    def spec(self) -> SpecIR:
        import torch

        r = self.rng
        tokens = r.random() < 0.12
        if tokens:  # token ids of a named length, looked up by an embedding
            self.dims.append(InputDim(Var(r.choice(DIM_NAMES)), r.randint(1, 24)))
        else:
            self.make_input()
        env = self.env()
        shape = (2,) + tuple(ev(d.expr, env) for d in self.dims)
        self.exprs: list[Expr | None] = [None] + [d.expr for d in self.dims]
        torch.manual_seed(0)
        x = torch.randn(shape)
        if tokens:
            self.dtype = "long"
            emb = SQ.embedding(self, lambda n, pos=(), kw=(): LayerIR(n, list(pos), list(kw)), Lit)
            ok, x = self.try_layers([emb], torch.randint(0, ev(emb.pos[0], self.env()), shape))
            if not ok:
                self.dtype = "float"
                return self.finish()
            self.layers.append(emb)
            self.exprs = [None] * x.dim()
        n_layers = r.choices([1, 2, 3, 4, 5, 6, 7], [4, 10, 14, 14, 12, 8, 5])[0]
        invalid_used = False
        for _ in range(n_layers):
            for _attempt in range(12):
                cands = self.candidates(tuple(x.shape))
                fam = r.choices([c for c, _ in cands], [w for _, w in cands])[0]
                saved = (list(self.params), Counter(self.counter))
                try:
                    new = self.draw_layer(fam, tuple(x.shape))
                except Exception:
                    self.params, self.counter = saved
                    continue
                ok, y = self.try_layers(new, x)
                if ok or (self.allow_invalid and not invalid_used and r.random() < 0.3):
                    invalid_used = invalid_used or not ok
                    self.layers += new
                    self.update_exprs(new, x, y)
                    if y is None:  # invalid at the defaults: nothing after it can be checked
                        return self.finish()
                    x = y
                    break
                self.params, self.counter = saved
        if r.random() < 0.65 and x.dim() >= 2 and not (x.dim() == 2 and r.random() < 0.3):
            head = [] if x.dim() == 2 else [LayerIR("flatten")]
            head.append(
                self.layer("linear", {"out_features": self.num(r.randint(2, 12), "hid", 1.2)})
            )
            ok, y = self.try_layers(head, x)
            if ok:
                self.layers += head
        return self.finish()

    def finish(self) -> SpecIR:
        name = self.rng.choice(["Net", "M", "Model", "Fuzzed", "CNN"])
        return SpecIR(name, self.params, self.dims, self.layers, self.dtype)

    def update_exprs(self, new: list[LayerIR], x: Any, y: Any) -> None:
        if y is None:
            return
        keep = all(
            family(layer.name)
            in ("activation", "dropout", "batchnorm", "instancenorm", "groupnorm", "layernorm")
            for layer in new
        )
        if keep and tuple(y.shape) == tuple(x.shape):
            return
        self.exprs = [None] * y.dim()

    def try_layers(self, layers: list[LayerIR], x: Any) -> tuple[bool, Any]:
        env = self.env()
        import torch

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                with torch.no_grad():
                    y = x
                    for layer in layers:
                        cls, kwargs = bind(layer, env, tuple(y.shape))
                        m = cls(**kwargs)
                        if sum(p.numel() for p in m.parameters()) > GEN_MAX_WEIGHTS:
                            return False, None
                        m.train()
                        m(y)
                        y = m.eval()(y)
                        if 0 in y.shape or y.numel() > GEN_MAX_ACT:
                            return False, None
            except Exception:
                return False, None
        return True, y


def _subst(e: Expr, name: str, by: Expr) -> Expr:
    if isinstance(e, Var):
        return by if e.name == name else e
    if isinstance(e, Bin):
        return dataclasses.replace(
            e, left=_subst(e.left, name, by), right=_subst(e.right, name, by)
        )
    if isinstance(e, Neg):
        return Neg(_subst(e.operand, name, by))
    if isinstance(e, Tup):
        return Tup(tuple(_subst(i, name, by) for i in e.items))
    return e


def generate_spec(seed: int, index: int) -> Any:
    """The index-th spec of a seed: deterministic, independent of the other indices.

    A flat SpecIR, or (fuzz/graphs.py, from a random stream of its own so that the flat specs
    stay those of earlier versions) that spec with heads and/or several inputs, a GraphSpec.
    """
    import graphs

    rng = random.Random(f"seqgen-differential:{seed}:{index}")
    for _ in range(20):
        gen = Gen(rng)
        spec = gen.spec()
        if spec.layers:
            break
    return graphs.decorate(gen, spec, random.Random(f"seqgen-differential-graph:{seed}:{index}"))


# ================================================================== running seqgen


class _Timeout(BaseException):
    """Raised by SIGALRM when a point or a seqgen run takes too long."""


def _on_alarm(signum: int, frame: object) -> None:
    raise _Timeout()


class _alarm:
    """A SIGALRM-based time limit (main thread only; a no-op elsewhere)."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.active = False

    def __enter__(self) -> _alarm:
        import threading

        if self.seconds and threading.current_thread() is threading.main_thread():
            self.old = signal.signal(signal.SIGALRM, _on_alarm)
            signal.setitimer(signal.ITIMER_REAL, self.seconds)
            self.active = True
        return self

    def __exit__(self, *exc: object) -> None:
        if self.active:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, self.old)


@dataclass
class Generated:
    status: str  # "ok" | "refused" | "crash"
    message: str = ""
    model_cls: Any = None
    test_mod: Any = None
    test_path: str = ""
    init_names: tuple[str, ...] = ()
    shape_names: tuple[str, ...] = ()
    modules: tuple[str, ...] = ()
    syspaths: tuple[str, ...] = ()
    # the rules for input dims that are no constructor arguments (documented in the class
    # docstring, not checked by __init__): seqgen's Constraint objects
    input_rules: tuple[Any, ...] = ()


_fresh = [0]


def run_seqgen(text: str, workdir: Path, stem: str) -> Generated:
    """Generate and import the model and test modules of one spec."""
    from seqgen.api import generate, options_for
    from seqgen.errors import InternalError, SeqgenError
    from seqgen.project.write import write_files

    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / f"{stem}.seq"
    path.write_text(text, encoding="utf-8")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = generate(str(path), options_for(str(path), out_dir=str(workdir)))
            write_files(list(result.files))
    except InternalError as e:  # a seqgen bug, never a refusal
        return Generated("crash", f"seqgen raised InternalError: {_short(str(e), 300)}")
    except SeqgenError as e:
        try:
            msg = e.render()
        except Exception:
            msg = str(e)
        return Generated("refused", msg)
    except _Timeout:
        return Generated("crash", "seqgen timed out")
    except BaseException as e:
        if isinstance(e, KeyboardInterrupt):
            raise
        return Generated(
            "crash",
            f"seqgen raised {type(e).__name__}: {_short(str(e), 300)}\n"
            + "".join(traceback.format_exception(e)[-4:]),
        )
    model_path = test_path = None
    for f in result.files:
        p = Path(f.path)
        if p.name == f"{stem}.py":
            model_path = p
        elif p.name == f"test_{stem}.py":
            test_path = p
    if model_path is None or test_path is None:
        return Generated("crash", f"unexpected generated files {[f.path for f in result.files]}")
    before = list(sys.path)
    try:
        model_mod = _import(model_path, stem)
        test_mod = _import(test_path, f"test_{stem}")
        cls = getattr(model_mod, result.traced.spec.class_name)
    except BaseException as e:
        if isinstance(e, KeyboardInterrupt):
            raise
        _forget((stem, f"test_{stem}"), ())
        return Generated("crash", f"importing generated code raised {type(e).__name__}: {e}")
    added = tuple(p for p in sys.path if p not in before)
    init_names = tuple(inspect.signature(cls.__init__).parameters)[1:]
    shapes = getattr(test_mod, "input_shape", None) or test_mod.input_shapes  # several inputs
    shape_names = tuple(inspect.signature(shapes).parameters)[1:]
    return Generated(
        "ok",
        model_cls=cls,
        test_mod=test_mod,
        test_path=str(test_path),
        init_names=init_names,
        shape_names=shape_names,
        input_rules=tuple(
            c for c in result.traced.constraints if set(c.names) & set(result.traced.free_dims)
        ),
        modules=(stem, f"test_{stem}"),
        syspaths=added,
    )


def _import(path: Path, name: str) -> Any:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def _forget(modules: tuple[str, ...], paths: tuple[str, ...]) -> None:
    for m in modules:
        sys.modules.pop(m, None)
    for p in paths:
        while p in sys.path:
            sys.path.remove(p)


# ================================================================== comparing at value points


@dataclass
class Finding:
    kind: str
    point: dict[str, Any]
    family: str
    layer: int | None
    detail: str
    pinned: bool = (
        False  # only pinned parameters (int default 0/1, bool, float) differ from the defaults
    )

    def signature(self) -> tuple[str, str, str]:
        words = re.sub(r"[^A-Za-z_ ]+", " ", self.detail).split()
        return self.kind, self.family, " ".join(words[:6])


def _layer_from_check(exc: BaseException, spec: SpecIR) -> int | None:
    """The layer of the generated check that raised `exc`: its comment names the spec line
    (`# spec line 6: Conv2d stride` right above the `if`)."""
    import linecache

    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    if tb is None:
        return None
    path, lineno = tb.tb_frame.f_code.co_filename, tb.tb_lineno
    for n in range(lineno, max(lineno - 12, 0), -1):  # up to the `if`, then its comment
        if linecache.getline(path, n).strip().startswith("if "):
            m = re.match(r"\s*# spec line (\d+)", linecache.getline(path, n - 1))
            if not m:
                return None
            idx = int(m.group(1)) - 3  # line 1: model, line 2: input, then one layer a line
            return idx if 0 <= idx < len(spec.layers) else None
    return None


def _raising_layer(exc: BaseException, spec: SpecIR) -> int | None:
    """The spec layer whose torch constructor raised `exc` (from the traceback's frames)."""
    import torch.nn as nn

    tb = exc.__traceback__
    raised = None
    while tb is not None:
        obj = tb.tb_frame.f_locals.get("self")
        if isinstance(obj, nn.Module) and type(obj).__module__.startswith("torch."):
            raised = type(obj)
        tb = tb.tb_next
    if raised is None:
        return None
    for i, layer in enumerate(spec.layers):
        try:
            if torch_class(layer.name) is raised:
                return i
        except ValueError:
            pass
    return None


def _fam(spec: SpecIR, i: int | None) -> str:
    if i is None:
        return "unknown"
    if i < 0:
        return "input"
    if i >= len(spec.layers):
        return "unknown"
    return family(spec.layers[i].name)


def _count_suspect(spec: SpecIR, res: OracleResult, ref: OracleResult | None) -> int | None:
    """The layer a wrong parameter-count formula most likely comes from: the first whose count
    differs from its count at the defaults, else the first with a size-dependent weight."""
    if ref is not None and ref.valid and len(ref.counts) == len(res.counts):
        for i, (a, b) in enumerate(zip(res.counts, ref.counts)):
            if a != b:
                return i
    for i, c in enumerate(res.counts):
        if c and family(spec.layers[i].name) in ("linear", "conv", "convtranspose"):
            return i
    return next((i for i, c in enumerate(res.counts) if c), None)


def check_point(
    spec: SpecIR, gen: Generated, point: dict[str, Any], ref: OracleResult | None = None
) -> tuple[str, list[Finding]]:
    """Compare the generated model and its test helpers with the oracle at one point.

    Returns (outcome, findings); outcome is "checked", "skipped" (too large) or "pinned_reject".
    """
    import torch

    env = {**spec.defaults(), **point}
    init_kw = {k: v for k, v in env.items() if k in gen.init_names}
    int_kw = {k: v for k, v in env.items() if k in gen.shape_names}
    meta = oracle(spec, env, device="meta")
    if meta.too_large:
        return "skipped", []
    res = oracle(spec, env)
    if res.too_large:
        return "skipped", []

    defaults = spec.defaults()
    changed = [k for k, v in point.items() if v != defaults.get(k)]
    at_pinned = bool(changed) and all(pinned(spec, k) for k in changed)

    def found(kind: str, layer: int | None, detail: str) -> tuple[str, list[Finding]]:
        if layer is None and not res.valid:
            layer = res.fail_layer  # a crash or refusal where the oracle fails: blame that layer
        return "checked", [Finding(kind, dict(point), _fam(spec, layer), layer, detail, at_pinned)]

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            with torch.device("meta"):
                gen.model_cls(**init_kw)
        except ValueError as e:
            if res.valid:
                if at_pinned:
                    return "pinned_reject", []
                layer = _layer_from_check(e, spec)
                if layer is None and "the input" in str(e):
                    layer = -1
                if layer is None:
                    layer = _raising_layer(e, spec)
                return found(
                    "false_reject", layer, f"__init__ raised ValueError: {_short(str(e), 200)}"
                )
            return "checked", []
        except _Timeout:
            raise
        except Exception as e:
            return found(
                "crash",
                _layer_from_check(e, spec) or _raising_layer(e, spec),
                f"__init__ raised {type(e).__name__}: {_short(str(e), 200)}",
            )
        if gen.input_rules:
            from seqgen.check.other_values import accepts

            if not accepts(gen.input_rules, env):  # a documented rule on the input refuses it
                if res.valid:
                    return found(
                        "false_reject", None, "the documented input rules refuse a valid input"
                    )
                return "checked", []
        if not res.valid:
            return found("false_accept", res.fail_layer, f"oracle: {res.reason}")
        findings: list[Finding] = []

        def add(kind: str, layer: int | None, detail: str) -> None:
            if layer is None and kind == "wrong_count":
                layer = _count_suspect(spec, res, ref)
            findings.append(Finding(kind, dict(point), _fam(spec, layer), layer, detail, at_pinned))

        # the generated test helpers
        try:
            ishape = tuple(gen.test_mod.input_shape(2, **int_kw))
        except Exception as e:
            add("wrong_shape", -1, f"input_shape raised {type(e).__name__}: {_short(str(e))}")
            return "checked", findings
        if ishape != res.input_shape:
            add("wrong_shape", -1, f"input_shape {ishape} != oracle {res.input_shape}")
            return "checked", findings
        try:
            expected = [tuple(s) for s in gen.test_mod.expected_shapes(2, **int_kw)]
        except Exception as e:
            expected = None
            add("wrong_shape", None, f"expected_shapes raised {type(e).__name__}: {_short(str(e))}")
        if expected is not None:
            for i, (want, got) in enumerate(zip(res.shapes, expected)):
                if want != got:
                    add(
                        "wrong_shape",
                        i,
                        f"expected_shapes {got} != oracle {want} (layer {i} {spec.layers[i].name})",
                    )
                    break
            else:
                if len(expected) != len(res.shapes):
                    add(
                        "wrong_shape",
                        None,
                        f"expected_shapes has {len(expected)} layers, oracle {len(res.shapes)}",
                    )
        try:
            want_count = gen.test_mod.expected_param_count(
                **kwargs_for(gen.test_mod.expected_param_count, env)
            )
            if want_count != res.total:
                add("wrong_count", None, f"expected_param_count {want_count} != oracle {res.total}")
        except Exception as e:
            add(
                "wrong_count",
                None,
                f"expected_param_count raised {type(e).__name__}: {_short(str(e))}",
            )
        # the generated model, for real
        try:
            with torch.device("meta"):
                meta_model = gen.model_cls(**init_kw)
            layers = list(meta_model.model)
            counts = [sum(p.numel() for p in m.parameters()) for m in layers]
        except Exception as e:
            add("crash", None, f"meta __init__ raised {type(e).__name__}: {_short(str(e))}")
            return "checked", findings
        if len(layers) != len(res.shapes):
            add(
                "wrong_shape",
                None,
                f"generated model has {len(layers)} layers, oracle {len(res.shapes)}",
            )
            return "checked", findings
        if sum(counts) != res.total:
            bad = next((i for i, (a, b) in enumerate(zip(counts, res.counts)) if a != b), None)
            add(
                "wrong_count",
                bad,
                f"model parameters {sum(counts)} != oracle {res.total}"
                + (
                    f" (layer {bad} {spec.layers[bad].name}: {counts[bad]} != {res.counts[bad]})"
                    if bad is not None
                    else ""
                ),
            )
        if sum(counts) > MAX_WEIGHTS * 4:
            return "checked", findings
        try:
            torch.manual_seed(0)
            model = gen.model_cls(**init_kw).eval()
        except Exception as e:
            add("crash", None, f"cpu __init__ raised {type(e).__name__}: {_short(str(e))}")
            return "checked", findings
        x = sample(spec, env, ishape, "cpu")
        with torch.no_grad():
            for i, m in enumerate(model.model):
                try:
                    x = m(x)
                except Exception as e:
                    add(
                        "wrong_shape",
                        i,
                        f"generated forward raised at layer {i} "
                        f"{spec.layers[i].name}: {type(e).__name__}: {_short(str(e), 120)}",
                    )
                    break
                if tuple(x.shape) != res.shapes[i]:
                    add(
                        "wrong_shape",
                        i,
                        f"generated layer {i} {spec.layers[i].name} outputs "
                        f"{tuple(x.shape)} != oracle {res.shapes[i]}",
                    )
                    break
    return "checked", _dedupe(findings)


def kwargs_for(fn: Any, env: dict[str, Any]) -> dict[str, Any]:
    """The values of `env` that a generated helper takes (a bool parameter that decides a
    count is an argument of expected_param_count, but not of input_shape)."""
    return {k: v for k, v in env.items() if k in inspect.signature(fn).parameters}


def _dedupe(findings: list[Finding]) -> list[Finding]:
    """One finding per kind at a point (the most specific: one naming a layer first)."""
    best: dict[str, Finding] = {}
    for f in findings:
        if f.kind not in best or (best[f.kind].layer is None and f.layer is not None):
            best[f.kind] = f
    return list(best.values())


def probe_minimum(gen: Generated, spec: SpecIR, name: str, default: int) -> int | None:
    """The smallest value the generated __init__ accepts going down from the default."""
    import torch

    env = spec.defaults()
    last = None
    v = default
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for _ in range(80):
            kw = {k: x for k, x in {**env, name: v}.items() if k in gen.init_names}
            try:
                with torch.device("meta"):
                    gen.model_cls(**kw)
            except _Timeout:
                raise
            except Exception:
                return last
            last = v
            if v <= -3:
                return last
            v -= 1
    return last


def sample_points(spec: SpecIR, gen: Generated, rng: random.Random, limit: int) -> list[dict]:
    """The defaults, per-parameter probes, and random joint points (see the module docstring)."""
    defaults = spec.defaults()
    per: dict[str, list[Any]] = {}
    for name, d in defaults.items():
        if name not in gen.init_names:
            continue
        if type(d) is bool:
            per[name] = [not d]
            continue
        if type(d) is not int:
            continue
        lo = probe_minimum(gen, spec, name, d)
        vals = [d]
        if lo is not None:
            vals += [lo, lo - 1]
        vals += [0, 1, -1, 2, 3, 4, 5, d - 1, d + 1, 2 * d, 3 * d, d + 17 + rng.randint(0, 20)]
        seen: list[Any] = []
        for v in vals:
            if v not in seen and v != d:
                seen.append(v)
        per[name] = seen
    if hasattr(spec, "inputs"):  # heads or several inputs (graphs.py): forward checks the inputs
        for d in spec.dims():
            v = d.sample
            per[d.expr.name] = [x for x in (v - 1, v + 1, 1, 2 * v, v + 5) if x != v and x >= 1]
    points: list[dict] = [dict(defaults)]
    for name, vals in per.items():
        for v in vals:
            points.append({**defaults, name: v})
    names = list(per)
    n_joint = min(12, 3 * len(names)) if len(names) >= 2 else 0
    for _ in range(n_joint):
        pt = dict(defaults)
        for name in rng.sample(names, rng.randint(2, len(names))):
            pool = (
                [defaults[name], *per[name]]
                if type(defaults[name]) is not int
                else [v for v in [defaults[name], *per[name]] if v >= 0] + [defaults[name]] * 2
            )
            pt[name] = rng.choice(pool)
        points.append(pt)
    out: list[dict] = []
    keys: set[tuple] = set()
    for pt in points:
        key = tuple(sorted(pt.items()))
        if key not in keys:
            keys.add(key)
            out.append(pt)
    if len(out) > limit:
        head, tail = out[:1], out[1:]
        out = head + rng.sample(tail, limit - 1)
    return out


# ================================================================== one spec, end to end


@dataclass
class SpecOutcome:
    index: int
    text: str
    status: str  # ok | refused | crash | error
    refused_but_works: bool = False
    message: str = ""
    points: int = 0
    skipped: int = 0
    pinned_rejects: int = 0
    timeouts: int = 0
    findings: list[Finding] = field(default_factory=list)
    seconds: float = 0.0
    point_seconds: float = 0.0
    spec: SpecIR | None = None
    families: list[str] = field(default_factory=list)


def check_spec(
    spec: SpecIR,
    *,
    workdir: Path | None = None,
    points: list[dict] | None = None,
    rng: random.Random | None = None,
    max_points: int = 64,
    run_pytest: bool = False,
    point_timeout: float = 20.0,
    seqgen_timeout: float = 180.0,
    index: int = 0,
    keep: bool = False,
) -> SpecOutcome:
    """Run seqgen on a spec and compare it with the oracle (see the module docstring)."""
    import graphs

    t0 = time.perf_counter()
    text = spec.text()
    graph = isinstance(spec, graphs.GraphSpec)
    out = SpecOutcome(
        index,
        text,
        "ok",
        spec=spec,
        families=spec.families()
        if graph
        else sorted({family(layer.name) for layer in spec.layers}),
    )
    rng = rng or random.Random(f"points:{text}")
    own_dir = workdir is None
    workdir = Path(tempfile.mkdtemp(prefix="seqgen-diff-")) if workdir is None else workdir
    _fresh[0] += 1
    stem = f"dspec_{os.getpid()}_{_fresh[0]}_{hashlib.sha1(text.encode()).hexdigest()[:8]}"
    gen = Generated("crash")
    try:
        with _alarm(seqgen_timeout):
            gen = run_seqgen(text, workdir / stem, stem)
        if gen.status == "refused":
            out.status = "refused"
            out.message = gen.message
            try:
                out.refused_but_works = (
                    graphs.valid_at_defaults(spec) if graph else oracle(spec, spec.defaults()).valid
                )
            except Exception:
                out.refused_but_works = False
            return out
        if gen.status == "crash":
            out.status = "crash"
            out.message = gen.message
            out.findings.append(
                Finding(
                    "crash",
                    dict(spec.defaults()),
                    "seqgen",
                    None,
                    gen.message.splitlines()[0] if gen.message else "crash",
                )
            )
            return out
        try:
            with _alarm(point_timeout * 4):
                pts = points if points is not None else sample_points(spec, gen, rng, max_points)
        except _Timeout:
            pts = [spec.defaults()]
        tp = time.perf_counter()
        try:
            ref = None if graph else oracle(spec, spec.defaults())
        except Exception:
            ref = None
        for pt in pts:
            pt = {k: v for k, v in pt.items() if k in spec.defaults()}
            try:
                with _alarm(point_timeout):
                    if graph:
                        outcome, findings = graphs.check_point(spec, gen, pt)
                    else:
                        outcome, findings = check_point(spec, gen, pt, ref)
            except _Timeout:
                out.timeouts += 1
                continue
            except Exception as e:
                out.findings.append(
                    Finding(
                        "crash",
                        pt,
                        "harness",
                        None,
                        f"harness raised {type(e).__name__}: {_short(str(e))}",
                    )
                )
                continue
            if outcome == "skipped":
                out.skipped += 1
                continue
            out.points += 1
            if outcome == "pinned_reject":
                out.pinned_rejects += 1
            out.findings += findings
        out.point_seconds = time.perf_counter() - tp
        if run_pytest:
            out.findings += _run_generated_tests(gen, spec, workdir / stem)
    finally:
        _forget(gen.modules, gen.syspaths)
        if own_dir and not keep:
            import shutil

            shutil.rmtree(workdir, ignore_errors=True)
        out.seconds = time.perf_counter() - t0
    return out


def _run_generated_tests(gen: Generated, spec: SpecIR, cwd: Path) -> list[Finding]:
    try:
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "pytest",
                "-q",
                "-p",
                "no:cacheprovider",
                "-p",
                "no:randomly",
                gen.test_path,
            ],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=300,
        )
    except subprocess.TimeoutExpired:
        return [Finding("generated_test_fail", spec.defaults(), "pytest", None, "pytest timed out")]
    if proc.returncode == 0:
        return []
    failed = re.findall(r"FAILED \S+::(\S+)", proc.stdout)
    return [
        Finding(
            "generated_test_fail",
            spec.defaults(),
            "pytest",
            None,
            f"{len(failed)} failed: {', '.join(failed[:6])}"
            if failed
            else f"pytest exit {proc.returncode}: {_short(proc.stdout[-300:])}",
        )
    ]


# ================================================================== shrinking


def _exprs_of(spec: SpecIR) -> list[tuple[str, int, int]]:
    """Addresses of replaceable values: ("pos"|"kw"|"input", layer, index)."""
    out = []
    for i, d in enumerate(spec.input):
        if d.sample is None and names_in(d.expr):
            out.append(("input", -1, i))
    for li, layer in enumerate(spec.layers):
        for j, v in enumerate(layer.pos):
            if names_in(v) or _big(v):
                out.append(("pos", li, j))
        for j, (_, v) in enumerate(layer.kw):
            if names_in(v) or _big(v):
                out.append(("kw", li, j))
    return out


def _big(v: Expr) -> bool:
    return isinstance(v, Lit) and type(v.value) is int and v.value > 2


def _get(spec: SpecIR, addr: tuple[str, int, int]) -> Expr:
    kind, li, j = addr
    if kind == "input":
        return spec.input[j].expr
    if kind == "pos":
        return spec.layers[li].pos[j]
    return spec.layers[li].kw[j][1]


def _set(spec: SpecIR, addr: tuple[str, int, int], value: Expr) -> SpecIR:
    s = copy.deepcopy(spec)
    kind, li, j = addr
    if kind == "input":
        s.input[j] = InputDim(value)
    elif kind == "pos":
        s.layers[li].pos[j] = value
    else:
        s.layers[li].kw[j] = (s.layers[li].kw[j][0], value)
    return s


def _simpler_values(v: Expr, env: dict[str, Any]) -> list[Expr]:
    out: list[Expr] = []
    try:
        val = ev(v, env)
        if isinstance(val, tuple):
            out.append(Tup(tuple(Lit(x) for x in val)))
        else:
            out.append(Lit(val))
    except Exception:
        pass
    if isinstance(v, Bin):
        out += [v.left, v.right]
    if isinstance(v, Tup):
        for k, item in enumerate(v.items):
            for simpler in _simpler_values(item, env):
                out.append(Tup(v.items[:k] + (simpler,) + v.items[k + 1 :]))
    if isinstance(v, Lit) and type(v.value) is int and v.value > 2:
        out += [Lit(2), Lit(v.value // 2)]
    return [o for o in out if o != v]


def shrink_candidates(spec: SpecIR) -> list[SpecIR]:
    """Smaller variants of a spec, roughly most-reducing first."""
    if hasattr(spec, "shrink_candidates"):  # a GraphSpec (fuzz/graphs.py)
        return spec.shrink_candidates()
    cands: list[SpecIR] = []
    for i in reversed(range(len(spec.layers))):
        s = copy.deepcopy(spec)
        del s.layers[i]
        if s.layers:
            cands.append(s)
    for li, layer in enumerate(spec.layers):
        for j in reversed(range(len(layer.kw))):
            s = copy.deepcopy(spec)
            del s.layers[li].kw[j]
            cands.append(s)
        if layer.pos and not layer.kw:
            s = copy.deepcopy(spec)
            s.layers[li].pos.pop()
            cands.append(s)
    for i, d in enumerate(spec.input):
        if d.sample is not None:
            s = copy.deepcopy(spec)
            s.input[i] = InputDim(Lit(d.sample))
            cands.append(s)
    env = spec.defaults()
    for addr in _exprs_of(spec):
        for simpler in _simpler_values(_get(spec, addr), env):
            cands.append(_set(spec, addr, simpler))
    for i, p in enumerate(spec.params):  # smaller defaults
        if type(p.default) is int and p.default > 3:
            s = copy.deepcopy(spec)
            s.params[i].default = max(2, p.default // 2)
            cands.append(s)
    return cands


def shrink(
    spec: SpecIR,
    finding: Finding,
    *,
    budget_s: float = 60.0,
    max_tries: int = 80,
    point_timeout: float = 20.0,
) -> tuple[SpecIR, Finding]:
    """Greedily make the spec smaller while a finding of the same kind and family persists."""
    deadline = time.monotonic() + budget_s
    tries = 0
    best, best_f = spec, finding

    def reproduces(s: SpecIR) -> Finding | None:
        names = set(s.defaults())
        pt = {k: v for k, v in best_f.point.items() if k in names}
        res = check_spec(s, points=[pt], point_timeout=point_timeout)
        for f in res.findings:
            if f.kind == best_f.kind and (
                best_f.family in ("unknown", "seqgen", "harness") or f.family == best_f.family
            ):
                return f
        return None

    progress = True
    while progress and tries < max_tries and time.monotonic() < deadline:
        progress = False
        for cand in shrink_candidates(best):
            if tries >= max_tries or time.monotonic() > deadline:
                break
            if cand.text() == best.text():
                continue
            tries += 1
            try:
                f = reproduces(cand)
            except Exception:
                f = None
            if f is not None:
                best, best_f = cand, f
                progress = True
                break
    return best, best_f


def case_text(spec: SpecIR, finding: Finding) -> str:
    names = set(spec.defaults())
    pt = {k: v for k, v in finding.point.items() if k in names}
    head = [
        f"# kind: {finding.kind}",
        f"# family: {finding.family}",
        f"# detail: {_short(finding.detail, 300)}",
    ]
    head.append("# point: " + ", ".join(f"{k}={v!r}" for k, v in pt.items()) if pt else "# point:")
    return "\n".join(head) + "\n" + spec.text()


@dataclass
class Case:
    spec: SpecIR
    points: list[dict]
    text: str
    refusal_ok: bool = False


def read_case(text: str) -> Case:
    """A case file: `# point: a=1, b=2` lines (the defaults are always checked too), optional
    `# refusal-ok` (a SeqgenError for the whole spec is then not a failure), then the spec."""
    spec = parse_spec(text)
    defaults = spec.defaults()
    points = [dict(defaults)]
    refusal_ok = False
    for line in text.splitlines():
        m = re.match(r"#\s*point:(.*)", line.strip())
        if m:
            pt = dict(defaults)
            for item in filter(None, (s.strip() for s in m.group(1).split(","))):
                k, v = (s.strip() for s in item.split("=", 1))
                if k not in defaults:
                    raise CaseSyntaxError(
                        f"point names {k!r}, which is not a parameter or named dim"
                    )
                val = _P(_tokens(v)).expr()
                pt[k] = ev(val, {})
            if pt not in points:
                points.append(pt)
        if re.match(r"#\s*refusal-ok", line.strip()):
            refusal_ok = True
    return Case(spec, points, text, refusal_ok)


def check_case(text: str, **kw: Any) -> SpecOutcome:
    case = read_case(text)
    out = check_spec(case.spec, points=case.points, **kw)
    if out.status == "refused" and not case.refusal_ok:
        out.findings.append(
            Finding(
                "refused",
                {},
                "seqgen",
                None,
                out.message.splitlines()[0] if out.message else "refused",
            )
        )
    return out


# ================================================================== the harness


def _init_worker() -> None:
    import torch

    torch.set_num_threads(1)
    os.environ.setdefault("SEQGEN_NO_CACHE", "1")
    warnings.simplefilter("ignore")


def _run_index(args: tuple[int, int, int, bool, float]) -> SpecOutcome:
    seed, index, max_points, run_pytest, point_timeout = args
    try:
        spec = generate_spec(seed, index)
    except Exception as e:
        return SpecOutcome(index, "", "error", message=f"generator raised {type(e).__name__}: {e}")
    try:
        return check_spec(
            spec,
            rng=random.Random(f"points:{seed}:{index}"),
            max_points=max_points,
            run_pytest=run_pytest,
            point_timeout=point_timeout,
            index=index,
        )
    except Exception as e:
        return SpecOutcome(
            index,
            spec.text(),
            "error",
            message=f"harness raised {type(e).__name__}: {e}",
            spec=spec,
        )


@dataclass
class Totals:
    specs: int = 0
    points: int = 0
    refused: int = 0
    refused_but_works: int = 0
    skipped: int = 0
    pinned_rejects: int = 0
    timeouts: int = 0
    errors: int = 0
    seconds: float = 0.0
    point_seconds: float = 0.0
    kinds: Counter = field(default_factory=Counter)
    by_family: Counter = field(default_factory=Counter)
    spec_with: Counter = field(default_factory=Counter)  # specs with at least one finding of a kind
    refusal_msgs: Counter = field(default_factory=Counter)
    at_pinned: int = 0  # discrepancies at points where only pinned parameters differ

    def add(self, o: SpecOutcome) -> None:
        self.specs += 1
        self.points += o.points
        self.skipped += o.skipped
        self.pinned_rejects += o.pinned_rejects
        self.timeouts += o.timeouts
        self.seconds += o.seconds
        self.point_seconds += o.point_seconds
        if o.status == "refused":
            self.refused += 1
            self.refused_but_works += o.refused_but_works
            if o.refused_but_works:
                first = o.message.splitlines()[0] if o.message else ""
                self.refusal_msgs[re.sub(r"\d+", "#", first.split("error: ", 1)[-1])[:90]] += 1
        if o.status == "error":
            self.errors += 1
        for f in o.findings:
            self.kinds[f.kind] += 1
            self.at_pinned += f.pinned and f.kind in DISCREPANCIES
            self.by_family[(f.family, f.kind)] += 1
        for k in {f.kind for f in o.findings}:
            self.spec_with[k] += 1

    def discrepancies(self) -> int:
        return sum(self.kinds[k] for k in DISCREPANCIES)

    def line(self) -> str:
        k = self.kinds
        return (
            f"{self.specs} specs, {self.points} value points, {self.refused} refused, "
            f"{self.refused_but_works} refused_but_works, {k['false_accept']} false accepts, "
            f"{k['false_reject']} false rejects, {k['wrong_shape']} wrong shapes, "
            f"{k['wrong_count']} wrong counts, {k['crash']} crashes, "
            f"{k['wrong_value']} wrong values"
        )

    def report(self) -> str:
        lines = [
            self.line(),
            f"  + {self.kinds['generated_test_fail']} generated test fails, {self.pinned_rejects} "
            f"pinned rejects, {self.skipped} skipped points (too large), {self.timeouts} "
            f"timeouts, {self.errors} harness errors",
            f"  {self.at_pinned} of the discrepancies are at points where only pinned parameters "
            "(int default 0/1, bool, float) differ from the defaults",
            "  specs with a finding: "
            + ", ".join(f"{k} {v}" for k, v in sorted(self.spec_with.items())),
        ]
        if self.specs:
            lines.append(
                f"  time: {self.seconds / self.specs:.2f} s per spec, "
                f"{1000 * self.point_seconds / max(1, self.points):.1f} ms per value point"
            )
        if self.by_family:
            lines.append("discrepancies by layer family:")
            fams = sorted(
                {f for f, _ in self.by_family},
                key=lambda f: -sum(v for (g, _), v in self.by_family.items() if g == f),
            )
            for fam in fams:
                parts = [
                    f"{kind} {self.by_family[(fam, kind)]}"
                    for kind in (*DISCREPANCIES, "refused")
                    if self.by_family[(fam, kind)]
                ]
                lines.append(f"  {fam:16s} " + ", ".join(parts))
        if self.refusal_msgs:
            lines.append("refused although the oracle works at the defaults (most common):")
            for msg, n in self.refusal_msgs.most_common(8):
                lines.append(f"  {n:4d}  {msg}")
        return "\n".join(lines)


def run_many(
    seed: int,
    n: int,
    *,
    jobs: int = 1,
    seconds: float | None = None,
    max_points: int = 64,
    run_pytest: bool = False,
    point_timeout: float = 20.0,
    start: int = 0,
    on_outcome: Any = None,
) -> tuple[Totals, list[SpecOutcome]]:
    """Check specs start..start+n-1 of a seed; returns totals and the outcomes with findings."""
    totals = Totals()
    kept: list[SpecOutcome] = []
    deadline = time.monotonic() + seconds if seconds else None

    def take(o: SpecOutcome) -> None:
        totals.add(o)
        if o.findings or o.status == "error":
            kept.append(o)
        if on_outcome:
            on_outcome(o)

    args = [(seed, i, max_points, run_pytest, point_timeout) for i in range(start, start + n)]
    if jobs <= 1:
        for a in args:
            if deadline and time.monotonic() > deadline:
                break
            take(_run_index(a))
        return totals, kept
    import concurrent.futures as cf
    import multiprocessing

    ctx = multiprocessing.get_context("fork")
    pending = list(reversed(args))
    while pending:
        try:
            with cf.ProcessPoolExecutor(jobs, mp_context=ctx, initializer=_init_worker) as ex:
                running: dict[Any, tuple] = {}
                while pending or running:
                    while (
                        pending
                        and len(running) < 2 * jobs
                        and not (deadline and time.monotonic() > deadline)
                    ):
                        a = pending.pop()
                        running[ex.submit(_run_index, a)] = a
                    if not running:
                        pending.clear()
                        break
                    done, _ = cf.wait(running, return_when=cf.FIRST_COMPLETED)
                    for fut in done:
                        a = running.pop(fut)
                        take(fut.result())
        except cf.process.BrokenProcessPool:
            # a worker died (e.g. a segfault in torch): record the in-flight specs and go on
            for fut, a in list(running.items()):
                if fut.done() and not fut.exception():
                    take(fut.result())
                else:
                    take(SpecOutcome(a[1], "", "error", message="worker process died"))
    return totals, kept


def _shrink_task(task: tuple[SpecIR, Finding, float, int]) -> tuple[int, str, str]:
    spec, finding, budget, index = task
    try:
        small, sf = shrink(spec, finding, budget_s=budget)
    except Exception:
        small, sf = spec, finding
    text = case_text(small, sf)
    name = f"{sf.kind}-{sf.family}-{hashlib.sha1(text.encode()).hexdigest()[:10]}.seq"
    return index, text, name


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--specs", type=int, default=100)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--start", type=int, default=0, help="first spec index")
    ap.add_argument("--index", type=int, help="run only this spec index")
    ap.add_argument("--seconds", type=float, help="start no new spec after this many seconds")
    ap.add_argument("--pytest", action="store_true", help="also run each generated test file")
    ap.add_argument("--out", help="where shrunk cases go (default: a new temporary folder)")
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("--points", type=int, default=64, help="value points per spec at most")
    ap.add_argument("--point-timeout", type=float, default=20.0)
    ap.add_argument("--shrink", type=int, default=12, help="findings to shrink (0: none)")
    ap.add_argument("--shrink-seconds", type=float, default=60.0, help="per finding")
    ap.add_argument("--case", action="append", default=[], help="check a case file instead")
    ap.add_argument("--findings", help="also write every finding to this file (JSON lines)")
    ap.add_argument("--show", action="store_true", help="print each spec's text")
    ap.add_argument("--verbose", "-v", action="store_true")
    a = ap.parse_args(argv)
    os.environ.setdefault("SEQGEN_NO_CACHE", "1")
    sys.path.insert(0, str(ROOT))
    warnings.simplefilter("ignore")

    _init_worker()
    if a.case:
        bad = 0
        for path in a.case:
            o = check_case(Path(path).read_text(encoding="utf-8"))
            print(f"{path}: {o.status}, {o.points} points, {len(o.findings)} findings")
            for f in o.findings:
                bad += 1
                print(f"  {f.kind} [{f.family}] at {f.point}: {f.detail}")
        return 1 if bad else 0

    start, n = (a.index, 1) if a.index is not None else (a.start, a.specs)
    t0 = time.monotonic()

    sink = open(a.findings, "w", encoding="utf-8") if a.findings else None  # noqa: SIM115

    def progress(o: SpecOutcome) -> None:
        if sink is not None:
            import json

            for f in o.findings:
                sink.write(
                    json.dumps(
                        {
                            "seed": a.seed,
                            "index": o.index,
                            "kind": f.kind,
                            "family": f.family,
                            "layer": f.layer,
                            "point": f.point,
                            "pinned": f.pinned,
                            "detail": f.detail,
                            "spec": o.text,
                        }
                    )
                    + "\n"
                )
            if o.status == "refused":
                sink.write(
                    json.dumps(
                        {
                            "seed": a.seed,
                            "index": o.index,
                            "kind": "refused",
                            "works": o.refused_but_works,
                            "detail": o.message,
                            "spec": o.text,
                        }
                    )
                    + "\n"
                )
            sink.flush()
        if a.show:
            print(f"--- spec {o.index} [{o.status}]\n{o.text}", end="")
            if o.status != "ok" and o.message:
                print("  " + o.message.splitlines()[0])
        if a.verbose or a.show:
            for f in o.findings:
                print(f"  spec {o.index}: {f.kind} [{f.family}] at {f.point}: {f.detail}")
        elif o.index % 25 == 0:
            print(f"... spec {o.index}, {time.monotonic() - t0:.0f} s", file=sys.stderr, flush=True)

    totals, kept = run_many(
        a.seed,
        n,
        jobs=a.jobs,
        seconds=a.seconds,
        max_points=a.points,
        run_pytest=a.pytest,
        point_timeout=a.point_timeout,
        start=start,
        on_outcome=progress,
    )
    elapsed = time.monotonic() - t0
    # shrink one finding per signature
    if a.shrink and kept:
        out_dir = Path(a.out) if a.out else Path(tempfile.mkdtemp(prefix="seqgen-differential-"))
        out_dir.mkdir(parents=True, exist_ok=True)
        seen: set[tuple] = set()
        todo: list[tuple[SpecOutcome, Finding]] = []
        for o in sorted(kept, key=lambda o: o.index):
            for f in o.findings:
                if (
                    f.kind in DISCREPANCIES
                    and f.kind != "generated_test_fail"
                    and o.spec is not None
                    and f.signature() not in seen
                ):
                    seen.add(f.signature())
                    todo.append((o, f))
        by_kind: Counter = Counter()
        ranked = []
        for o, f in todo:  # round robin over kinds, so each kind gets examples
            by_kind[f.kind] += 1
            ranked.append((by_kind[f.kind], o.index, o, f))
        todo = [(o, f) for _, _, o, f in sorted(ranked, key=lambda r: (r[0], r[1]))][: a.shrink]
        print(
            f"shrinking {len(todo)} of {len(ranked)} distinct findings into {out_dir}",
            file=sys.stderr,
        )
        tasks = [(o.spec, f, a.shrink_seconds, o.index) for o, f in todo]
        if a.jobs > 1:
            import concurrent.futures as cf
            import multiprocessing

            with cf.ProcessPoolExecutor(
                a.jobs, mp_context=multiprocessing.get_context("fork"), initializer=_init_worker
            ) as ex:
                results = list(ex.map(_shrink_task, tasks))
        else:
            results = [_shrink_task(t) for t in tasks]
        for index, text, name in results:
            (out_dir / name).write_text(
                f"# from seed {a.seed} spec {index}\n" + text, encoding="utf-8"
            )
            print(f"\n== {name} (seed {a.seed} spec {index})\n{text}", end="")
    print(f"\n{elapsed:.0f} s")
    print(totals.report())
    return 1 if totals.discrepancies() else 0


if __name__ == "__main__":
    sys.exit(main())
