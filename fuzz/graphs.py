"""Heads and several inputs for the differential fuzzer (fuzz/differential.py; issue #19).

A flat spec drawn by `differential.Gen` is sometimes *decorated* (`decorate`), from a random
stream of its own so that the flat specs of a seed stay what they were:

- **merges** (`add_merge`, one `MERGE_DRAWS` entry per kind) at the trunk's start, its end or
  anywhere: `concat dim=1:` / `add:` / `multiply:` with one branch reading the merge's input
  and one a new `input NAME SHAPE` (`branch from=NAME:`, its stack drawn by the same `Gen`, then
  fitted to the other branch's shape), or a siamese `branch from=NAME shares=B:` over an input
  of the merge input's shape (the first input's own dims at the trunk's start); `bmm:` (rows
  times matrices: `linear m` + `transpose 1 2`, or PointNet's `linear m * m`, `unflatten 1 (m,
  m)`, `add_identity`), from the trunk or a new input; `reparameterize:` (mu, logvar);
- **layers that read an input** (`add_reader`): `lstm/gru/rnn ... lengths=NAME` and
  `transformerencoderlayer ... key_padding_mask=NAME` where the trunk is (N, L, E);
- **heads** (`add_heads`): `head NAME:` / `from=POINT` (a `name=` on a top-level trunk node, or
  a merge's named branch, `from=z.mu`), `train_only=True`, without a stack, a learned
  transform (`add_identity`), or a stack drawn by `Gen` from the point's shape.

`DRAW` switches each op of issue 19 on (each was drawn once it reached main).

The oracle (`GraphRun`) evaluates the decorated spec independently of seqgen, with the same
concrete torch modules as differential.py's oracle (`differential.bind`): the trunk node by node,
a merge by `_combine` (a shared branch re-runs the modules of the branch it names), a reader by
`pack_padded_sequence` or `src_key_padding_mask`, each head from its point. A point is invalid
when anything raises, in eval or train mode, or a size is 0. Points vary the constructor's
arguments and the inputs' named sizes. `check_point` compares, at one point: `__init__`'s
refusals (and forward's, of inputs whose named sizes disagree), the generated test module's
`input_shape(s)`, `expected_output_shape(s)` (train and eval: a train-only head only in
training), `expected_param_count`, `expected_shapes` (one input), the model's parameter count,
and the forward's outputs: each NamedTuple field's shape in both modes, `None` for a train-only
head in eval mode, and, after copying the generated model's weights into the oracle's modules
(both list them in the order forward first runs them), every output's values in eval mode and,
from the same random state, in train mode (`wrong_value`).

Adding an op (a merge kind, a head form, an input kind) is: a field or a `kind` here, its line
in `text()` (and `parse_graph`), its evaluation in `GraphRun`/`_combine`, and its draw.
"""

from __future__ import annotations

import copy
import random
import re
import warnings
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import differential as D

# ================================================================== the IR


@dataclass
class InputIR:
    name: str
    dims: list[D.InputDim]
    dtype: str = "float"


@dataclass
class BranchIR:
    layers: list[D.LayerIR]  # empty for a shared branch
    name: str | None = None
    source: str | None = None  # `from=NAME`: an input
    shares: str | None = None  # `shares=B`: the branch whose modules it runs


@dataclass
class MergeIR:
    kind: str  # concat | add | multiply
    branches: list[BranchIR]
    dim: int | None = None  # concat's dim


@dataclass
class HeadIR:
    name: str
    layers: list[D.LayerIR]
    point: str | None = None  # `from=POINT`
    train_only: bool = False


Node = D.LayerIR | MergeIR


@dataclass
class GraphSpec:
    """A spec with heads and/or several inputs; duck-types differential.SpecIR where shared."""

    model: str
    params: list[D.Param]
    inputs: list[InputIR]
    trunk: list[Node]
    labels: dict[int, str] = field(default_factory=dict)  # trunk index -> `name=`
    heads: list[HeadIR] = field(default_factory=list)

    # ---------------------------------------------------------- what SpecIR offers too
    @property
    def layers(self) -> list[D.LayerIR]:
        """Every layer, in the order `text()` writes them."""
        out: list[D.LayerIR] = []
        for node in self.trunk:
            if isinstance(node, MergeIR):
                for b in node.branches:
                    out += b.layers
            else:
                out.append(node)
        for h in self.heads:
            out += h.layers
        return out

    @property
    def dtype(self) -> str:
        return self.inputs[0].dtype

    def dims(self) -> list[D.InputDim]:
        return [d for i in self.inputs for d in i.dims if d.sample is not None]

    def used_names(self) -> set[str]:
        used: set[str] = set()
        for i in self.inputs:
            for d in i.dims:
                if d.sample is None:
                    used |= D.names_in(d.expr)
        for layer in self.layers:
            for v in layer.pos:
                used |= D.names_in(v)
            for _, v in layer.kw:
                used |= D.names_in(v)
        return used

    def declared_params(self) -> list[D.Param]:
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
        lines = [head]
        for inp in self.inputs:
            entries = [
                f"{d.expr.name}={d.sample}" if d.sample is not None else D.show(d.expr)  # type: ignore[union-attr]
                for d in inp.dims
            ]
            shape = "(" + ", ".join(entries) + ("," if len(entries) == 1 else "") + ")"
            name = f" {inp.name}" if len(self.inputs) > 1 else ""
            dtype = f" dtype={inp.dtype}" if inp.dtype != "float" else ""
            lines.append(f"input{name} {shape}{dtype}")
        for i, node in enumerate(self.trunk):
            label = f" name={self.labels[i]}" if i in self.labels else ""
            if isinstance(node, D.LayerIR):
                lines.append(D.layer_line(node) + label)
                continue
            dim = f" dim={node.dim}" if node.dim is not None else ""
            lines.append(f"{node.kind}{dim}{label}:")
            for b in node.branches:
                opts = "".join(
                    f" {k}={v}"
                    for k, v in (("name", b.name), ("from", b.source), ("shares", b.shares))
                    if v is not None
                )
                lines.append(f"    branch{opts}:")
                lines += [f"        {D.layer_line(layer)}" for layer in b.layers]
        for h in self.heads:
            opts = (f" from={h.point}" if h.point else "") + (
                " train_only=True" if h.train_only else ""
            )
            if not h.layers:  # contract 2: a head without a stack returns what it reads
                lines.append(f"head {h.name}{opts}")
                continue
            lines.append(f"head {h.name}{opts}:")
            lines += [f"    {D.layer_line(layer)}" for layer in h.layers]
        return "\n".join(lines) + "\n"

    def families(self) -> list[str]:
        fams = {D.family(layer.name) for layer in self.layers}
        fams |= {f"merge-{n.kind}" for n in self.trunk if isinstance(n, MergeIR)}
        if self.heads:
            fams.add("head")
        return sorted(fams)

    def shrink_candidates(self) -> list[GraphSpec]:
        """Smaller variants: fewer heads, layers and branches' layers; simpler values."""
        out: list[GraphSpec] = []
        for k in reversed(range(len(self.heads))):
            if len(self.heads) > 1:
                g = copy.deepcopy(self)
                del g.heads[k]
                out.append(g)
            for j in reversed(range(len(self.heads[k].layers))):
                if len(self.heads[k].layers) > 1:
                    g = copy.deepcopy(self)
                    del g.heads[k].layers[j]
                    out.append(g)
        for i in reversed(range(len(self.trunk))):
            node = self.trunk[i]
            if isinstance(node, MergeIR):
                for b, branch in enumerate(node.branches):
                    for j in reversed(range(len(branch.layers))):
                        if len(branch.layers) > 1:
                            g = copy.deepcopy(self)
                            del g.trunk[i].branches[b].layers[j]  # type: ignore[union-attr]
                            out.append(g)
            elif i not in self.labels and len(self.trunk) > 1:
                g = copy.deepcopy(self)
                del g.trunk[i]
                g.labels = {(k - 1 if k > i else k): v for k, v in self.labels.items()}
                out.append(g)
        env = self.defaults()
        for layer_index, layer in enumerate(self.layers):
            for j, v in enumerate(layer.pos):
                for simpler in D._simpler_values(v, env) if D.names_in(v) else []:
                    g = copy.deepcopy(self)
                    g.layers[layer_index].pos[j] = simpler
                    out.append(g)
        return out


# ================================================================== reading it back

MERGE_KINDS = ("concat", "add", "multiply", "reparameterize", "bmm")


def _options(words: list[str]) -> dict[str, str]:
    out = {}
    for w in words:
        key, _, value = w.partition("=")
        if not value:
            raise D.CaseSyntaxError(f"expected KEY=VALUE, found {w!r}")
        out[key] = value
    return out


def parse_graph(lines: list[str]) -> GraphSpec:
    """The lines (comments and blank lines gone) of a spec `GraphSpec.text()` writes."""
    model, params, inputs = "Model", [], []
    trunk: list[Node] = []
    labels: dict[int, str] = {}
    heads: list[HeadIR] = []
    stack: list[D.LayerIR] | None = None  # where indented layer lines go
    merge: MergeIR | None = None
    for line in lines:
        indent = len(line) - len(line.lstrip())
        words = line.split()
        if indent == 0:
            stack, merge = None, None
        if words[0] == "model":
            model, params = D.parse_model_line(line)
        elif words[0] == "input":
            named = len(words) > 2 and re.fullmatch(r"[A-Za-z_]\w*", words[1]) is not None
            rest = line.strip()[len("input") :]
            if named:
                rest = rest.strip()[len(words[1]) :]
            dims, dtype = D.parse_input_shape(rest)
            inputs.append(InputIR(words[1] if named else "x", dims, dtype))
        elif words[0] == "head" and indent == 0:
            opts = _options([w.rstrip(":") for w in words[2:]])
            name = words[1].rstrip(":")
            heads.append(HeadIR(name, [], opts.get("from"), opts.get("train_only") == "True"))
            stack = heads[-1].layers
        elif indent == 0 and line.endswith(":") and words[0].rstrip(":") in MERGE_KINDS:
            opts = _options([w.rstrip(":") for w in words[1:]])
            dim = int(opts["dim"]) if "dim" in opts else None
            merge = MergeIR(words[0].rstrip(":"), [], dim)
            if "name" in opts:
                labels[len(trunk)] = opts["name"]
            trunk.append(merge)
        elif words[0] in ("branch", "branch:") and merge is not None:
            opts = _options([w.rstrip(":") for w in words[1:]])
            merge.branches.append(
                BranchIR([], opts.get("name"), opts.get("from"), opts.get("shares"))
            )
            stack = merge.branches[-1].layers
        elif indent == 0:
            layer = D.parse_layer(line)
            names = [v for k, v in layer.kw if k == "name"]
            if names:
                layer.kw = [(k, v) for k, v in layer.kw if k != "name"]
                labels[len(trunk)] = names[0].name  # type: ignore[union-attr]
            trunk.append(layer)
        elif stack is not None:
            stack.append(D.parse_layer(line))
        else:
            raise D.CaseSyntaxError(f"cannot read {line!r}")
    if not inputs:
        raise D.CaseSyntaxError("no input line")
    return GraphSpec(model, params, inputs, trunk, labels, heads)


# ================================================================== the oracle


def _sizes(inp: InputIR, env: dict[str, Any]) -> tuple[int, ...]:
    return (2,) + tuple(D.ev(d.expr, env) for d in inp.dims)


class Invalid(Exception):
    """The spec is invalid at this point (the message says where)."""


class TooLarge(Exception):
    """A size or a weight count past the fuzzer's limits: the point is skipped."""


def _combine(node: MergeIR, outs: list[Any], training: bool) -> Any:
    """A merge's output from its branches' (raises where torch or seqgen's rule refuses)."""
    import torch

    if node.kind == "concat":
        return torch.cat(outs, dim=node.dim if node.dim is not None else 1)
    if node.kind in ("add", "multiply"):
        y = outs[0]
        for o in outs[1:]:
            y = y + o if node.kind == "add" else y * o
        return y
    if node.kind == "bmm":  # contract 4: exactly two rank-3 branches, inner sizes equal
        if len(outs) != 2 or outs[0].dim() != 3 or outs[1].dim() != 3:
            raise ValueError("seqgen rule: bmm takes two rank-3 branches")
        return torch.bmm(outs[0], outs[1])
    if node.kind == "reparameterize":  # contract 3: (mu, logvar) of equal shapes
        mu, logvar = outs
        if mu.shape != logvar.shape:
            raise ValueError("seqgen rule: reparameterize's branches have equal shapes")
        if not training:
            return mu
        std = torch.exp(0.5 * logvar)
        return mu + torch.randn_like(std) * std
    raise AssertionError(node.kind)


# arguments naming another input (contract 6), and how the oracle passes it to the layer
READERS = ("lengths", "key_padding_mask")


class _Packed:
    """A recurrent layer run on a sequence packed by its lengths (contract 6): take=all pads
    back to the input's length, take=last is each sequence's own last step, take=hidden the
    last layer's final state (each sequence's own last step too)."""

    def __init__(self, take: Any) -> None:
        self.take = take  # differential's sequence_oracle._Take: its rnn and its take

    def __call__(self, x: Any, lengths: Any) -> Any:
        import torch
        from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

        rnn, take = self.take.rnn, self.take.take
        packed = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
        out, state = rnn(packed)
        if take in ("all", "last"):
            out, _ = pad_packed_sequence(out, batch_first=True, total_length=x.shape[1])
            if take == "all":
                return out
            return out[torch.arange(x.shape[0]), lengths - 1]
        h = state[0] if isinstance(state, tuple) else state
        dirs = 2 if rnn.bidirectional else 1
        last = h.view(rnn.num_layers, dirs, x.shape[0], -1)[-1]
        return last.permute(1, 0, 2).reshape(x.shape[0], -1)


class GraphRun:
    """The spec's modules built concretely at one point, and their forward (see the docstring)."""

    def __init__(self, g: GraphSpec, env: dict[str, Any], device: str = "cpu") -> None:
        self.g, self.env, self.device = g, env, device
        self.built: dict[int, Any] = {}  # id(LayerIR) -> module
        self.order: list[Any] = []  # modules in the order forward first runs them
        self.node_shapes: list[tuple[int, ...]] = []
        self.node_outputs: list[Any] = []
        self.at: dict[str, Any] = {}  # every point's output: `name=`, MERGE.BRANCH
        self.inputs_now: dict[str, Any] = {}

    def inputs(self, seed: int = 0) -> dict[str, Any]:
        """A tensor per input; a `lengths=` input's values come when its layer first runs."""
        import torch

        out = {}
        self.generator = torch.Generator().manual_seed(seed)
        read_by = {v.name: k for layer in self.g.layers for k, v in layer.kw if k in READERS}  # type: ignore[union-attr]
        for inp in self.g.inputs:
            try:
                shape = _sizes(inp, self.env)
            except Exception as e:
                raise Invalid(f"input {inp.name}: {type(e).__name__}: {e}") from None
            if any(type(s) is not int or s < 1 for s in shape):
                raise Invalid(f"input {inp.name} size {shape} < 1")
            if D._numel(shape) > D.MAX_ACT:
                raise TooLarge(f"input {inp.name}")
            dtype = {"long": torch.long, "bool": torch.bool}.get(inp.dtype, torch.float)
            if self.device == "meta":
                out[inp.name] = torch.empty(shape, device="meta", dtype=dtype)
            elif read_by.get(inp.name) == "lengths":
                continue  # see _reader
            elif inp.dtype == "bool":  # a padding mask: True pads; never a whole row
                mask = torch.rand(shape, generator=self.generator) < 0.3
                mask[:, 0] = False
                out[inp.name] = mask
            elif inp.dtype == "long":
                first = self.g.trunk[0]
                high = D.ev(first.pos[0], self.env) if isinstance(first, D.LayerIR) else 2
                out[inp.name] = torch.randint(0, max(int(high), 1), shape, generator=self.generator)
            else:
                out[inp.name] = torch.randn(shape, generator=self.generator)
        return out

    def _reader(self, key: str, name: str, x: Any) -> Any:
        """The input a layer reads by `key=name`, made now for lengths (1 to x's length)."""
        import torch

        if name not in self.inputs_now:
            if self.device == "meta":
                self.inputs_now[name] = torch.empty((x.shape[0],), device="meta", dtype=torch.long)
            else:
                self.inputs_now[name] = torch.randint(
                    1, x.shape[1] + 1, (x.shape[0],), generator=self.generator
                )
                self.inputs_now[name][0] = x.shape[1]  # the longest is the padded length
        return self.inputs_now[name]

    def _module(self, layer: D.LayerIR, shape: tuple[int, ...]) -> Any:
        import torch

        if id(layer) in self.built:
            return self.built[id(layer)]
        plain = D.LayerIR(layer.name, layer.pos, [(k, v) for k, v in layer.kw if k not in READERS])
        cls, kwargs = D.bind(plain, self.env, shape)
        if self.device == "meta":
            with torch.device("meta"):
                m = cls(**kwargs)
        else:
            m = cls(**kwargs)
        count = sum(p.numel() for p in m.parameters())
        if count > D.MAX_WEIGHTS:
            raise TooLarge(f"{layer.name} weights {count}")
        self.built[id(layer)] = m
        self.order.append(m)
        return m

    def _call(self, layer: D.LayerIR, m: Any, x: Any) -> Any:
        reads = {k: self._reader(k, v.name, x) for k, v in layer.kw if k in READERS}  # type: ignore[union-attr]
        if "lengths" in reads:
            if reads["lengths"].shape != (x.shape[0],):
                raise ValueError("lengths is not (N,)")
            return _Packed(m)(x, reads["lengths"])
        if "key_padding_mask" in reads:
            return m(x, src_key_padding_mask=reads["key_padding_mask"])
        return m(x)

    def stack(self, layers: list[D.LayerIR], x: Any, where: str) -> Any:
        import torch

        for i, layer in enumerate(layers):
            try:
                m = self._module(layer, tuple(x.shape))
                m.train(self.training)
                x = self._call(layer, m, x)
            except (TooLarge, Invalid):
                raise
            except Exception as e:
                raise Invalid(
                    f"{where} layer {i} {layer.name}: {type(e).__name__}: {D._short(str(e))}"
                ) from None
            if not isinstance(x, torch.Tensor):
                raise Invalid(f"{where} layer {i} {layer.name}: not a tensor")
            if D._numel(tuple(x.shape)) > D.MAX_ACT:
                raise TooLarge(f"{where} layer {i} output {tuple(x.shape)}")
            if 0 in x.shape:
                raise Invalid(f"{where} layer {i} {layer.name}: size 0 in {tuple(x.shape)}")
        return x

    def merge(self, node: MergeIR, x: Any, label: str | None, where: str) -> Any:
        by_name = {b.name: b for b in node.branches if b.name}
        outs = []
        for k, b in enumerate(node.branches):
            src = self.inputs_now[b.source] if b.source else x
            layers = by_name[b.shares].layers if b.shares else b.layers
            outs.append(self.stack(layers, src, f"{where} branch {b.name or k}"))
            if label and b.name:
                self.at[f"{label}.{b.name}"] = outs[-1]
        try:
            y = _combine(node, outs, self.training)
        except Exception as e:
            raise Invalid(f"{where} {node.kind}: {type(e).__name__}: {D._short(str(e))}") from None
        if 0 in y.shape:
            raise Invalid(f"{where}: size 0 in {tuple(y.shape)}")
        if D._numel(tuple(y.shape)) > D.MAX_ACT:
            raise TooLarge(f"{where} output")
        return y

    def forward(self, inputs: dict[str, Any], training: bool) -> dict[str, Any]:
        """Every output by head name ("" for a model without heads); raises Invalid/TooLarge.
        `inputs` gains the values of a `lengths=` input on the first call."""
        import torch

        self.training = training
        self.inputs_now = inputs
        x = inputs[self.g.inputs[0].name]
        self.at = {}
        self.node_shapes = []
        self.node_outputs = []
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for i, node in enumerate(self.g.trunk):
                where = f"trunk node {i}"
                if isinstance(node, MergeIR):
                    x = self.merge(node, x, self.g.labels.get(i), where)
                else:
                    x = self.stack([node], x, where)
                self.node_shapes.append(tuple(int(s) for s in x.shape))
                self.node_outputs.append(x)
                if i in self.g.labels:
                    self.at[self.g.labels[i]] = x
            if not self.g.heads:
                return {"": x}
            out = {}
            for h in self.g.heads:
                src = self.at[h.point] if h.point else x
                out[h.name] = self.stack(h.layers, src, f"head {h.name}")
            return out

    def total(self) -> int:
        return sum(p.numel() for m in self.order for p in m.parameters())


@dataclass
class GraphResult:
    valid: bool
    reason: str = ""
    too_large: bool = False
    input_shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)
    shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)  # every output, eval mode
    node_shapes: list[tuple[int, ...]] = field(default_factory=list)
    total: int = 0
    run: GraphRun | None = None
    inputs: dict[str, Any] = field(default_factory=dict)


def graph_oracle(g: GraphSpec, env: dict[str, Any], device: str = "cpu") -> GraphResult:
    """The spec evaluated at one full assignment: eval mode, then train mode (validity only)."""
    import torch

    run = GraphRun(g, env, device)
    try:
        inputs = run.inputs()
        torch.manual_seed(0)
        out = run.forward(inputs, training=False)
        res = GraphResult(
            True,
            input_shapes={k: tuple(v.shape) for k, v in inputs.items()},
            shapes={k: tuple(int(s) for s in v.shape) for k, v in out.items()},
            node_shapes=list(run.node_shapes),
            total=run.total(),
            run=run,
            inputs=inputs,
        )
        if device != "meta":
            train = run.forward(inputs, training=True)
            for k, v in train.items():
                if tuple(v.shape) != res.shapes[k]:
                    raise Invalid(f"train shape of {k or 'the output'} differs from eval's")
    except TooLarge as e:
        return GraphResult(False, str(e), too_large=True)
    except Invalid as e:
        return GraphResult(False, str(e))
    return res


def valid_at_defaults(g: GraphSpec) -> bool:
    return graph_oracle(g, g.defaults()).valid


# ================================================================== comparing at a point


def check_point(
    g: GraphSpec, gen: D.Generated, point: dict[str, Any]
) -> tuple[str, list[D.Finding]]:
    """differential.check_point for a GraphSpec (see the module docstring)."""
    import torch

    env = {**g.defaults(), **point}
    init_kw = {k: v for k, v in env.items() if k in gen.init_names}
    if graph_oracle(g, env, device="meta").too_large:
        return "skipped", []
    res = graph_oracle(g, env)
    if res.too_large:
        return "skipped", []
    defaults = g.defaults()
    changed = [k for k, v in point.items() if v != defaults.get(k)]
    at_pinned = bool(changed) and all(D.pinned(g, k) for k in changed)  # type: ignore[arg-type]
    findings: list[D.Finding] = []

    def add(kind: str, fam: str, detail: str) -> None:
        findings.append(D.Finding(kind, dict(point), fam, None, detail, at_pinned))

    fam = "head" if g.heads else "inputs"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            with torch.device("meta"):
                meta_model = gen.model_cls(**init_kw)
        except ValueError as e:
            if res.valid and at_pinned:
                return "pinned_reject", []
            if res.valid:
                add("false_reject", fam, f"__init__ raised ValueError: {D._short(str(e), 200)}")
            return "checked", findings
        except D._Timeout:
            raise
        except Exception as e:
            add("crash", fam, f"__init__ raised {type(e).__name__}: {D._short(str(e), 200)}")
            return "checked", findings
        if gen.input_rules:
            from seqgen.check.other_values import accepts

            if not accepts(gen.input_rules, env):
                if res.valid:
                    add("false_reject", "input", "the documented input rules refuse a valid input")
                return "checked", findings
        if not res.valid:
            if not _forward_refuses(g, gen, env, init_kw):
                add("false_accept", fam, f"oracle: {res.reason}")
            return "checked", findings
        helpers(g, gen, res, env, add)
        count = sum(p.numel() for p in meta_model.parameters())
        if count != res.total:
            add("wrong_count", fam, f"model parameters {count} != oracle {res.total}")
            return "checked", findings
        if count > D.MAX_WEIGHTS * 4:
            return "checked", findings
        forward(g, gen, res, init_kw, add)
    return "checked", D._dedupe(findings)


def _forward_refuses(g: GraphSpec, gen: D.Generated, env: dict[str, Any], init_kw: Any) -> bool:
    """Whether the generated forward refuses, with a ValueError, inputs of the point's sizes
    (its checks of the inputs' named sizes, which __init__ cannot see)."""
    import torch

    try:
        run = GraphRun(g, env)
        inputs = run.inputs()
        for layer in g.layers:  # a lengths= input: any valid lengths
            for key, v in layer.kw:
                if key == "lengths" and v.name not in inputs:  # type: ignore[union-attr]
                    inputs[v.name] = torch.ones(2, dtype=torch.long)  # type: ignore[union-attr]
    except (Invalid, TooLarge):
        return True  # sizes no input can have (< 1), or too large to try
    args = inputs if len(g.inputs) > 1 else {"x": inputs[g.inputs[0].name]}
    try:
        with torch.no_grad():
            gen.model_cls(**init_kw).eval()(**args)
    except ValueError:
        return True
    except Exception:
        return False
    return False


def helpers(
    g: GraphSpec, gen: D.Generated, res: GraphResult, env: dict[str, Any], add: Any
) -> None:
    """The generated test module's helpers against the oracle."""
    t = gen.test_mod

    def call(name: str, *args: Any, **more: Any) -> Any:
        try:
            fn = getattr(t, name)
            return fn(*args, **D.kwargs_for(fn, env), **more)
        except Exception as e:
            add("wrong_shape", "helpers", f"{name} raised {type(e).__name__}: {D._short(str(e))}")
            return None

    if len(g.inputs) > 1:
        got = call("input_shapes", 2)
        want = res.input_shapes
    else:
        got = call("input_shape", 2)
        want = res.input_shapes[g.inputs[0].name]
    if got is not None and _tuples(got) != want:
        add("wrong_shape", "input", f"input shapes {got} != oracle {want}")
    if g.heads:
        for training in (False, True):
            got = call("expected_output_shapes", 2, training=training)
            want = {h.name: res.shapes[h.name] for h in g.heads if training or not h.train_only}
            if got is not None and _tuples(got) != want:
                mode = "train" if training else "eval"
                add("wrong_shape", "head", f"expected_output_shapes ({mode}) {got} != {want}")
    elif hasattr(t, "expected_output_shape"):  # several inputs
        got = call("expected_output_shape", 2)
        if got is not None and tuple(got) != res.shapes[""]:
            add("wrong_shape", "inputs", f"expected_output_shape {got} != {res.shapes['']}")
    if hasattr(t, "expected_shapes"):  # one input: a shape per top-level trunk node
        got = call("expected_shapes", 2)
        if got is not None and _tuples(got) != res.node_shapes:
            add("wrong_shape", "trunk", f"expected_shapes {got} != oracle {res.node_shapes}")
    got = call("expected_param_count")
    if got is not None and got != res.total:
        add("wrong_count", "helpers", f"expected_param_count {got} != oracle {res.total}")


def _tuples(v: Any) -> Any:
    if isinstance(v, dict):
        return {k: tuple(s) for k, s in v.items()}
    if isinstance(v, list):
        return [tuple(s) for s in v]
    return tuple(v)


def forward(
    g: GraphSpec, gen: D.Generated, res: GraphResult, init_kw: dict[str, Any], add: Any
) -> None:
    """The generated model for real: outputs' shapes in both modes, values in eval mode."""
    import torch

    assert res.run is not None
    try:
        torch.manual_seed(0)
        model = gen.model_cls(**init_kw)
    except Exception as e:
        add("crash", "model", f"cpu __init__ raised {type(e).__name__}: {D._short(str(e))}")
        return
    args = dict(res.inputs) if len(g.inputs) > 1 else {"x": res.inputs[g.inputs[0].name]}
    names = [h.name for h in g.heads] or [""]
    train_only = {h.name for h in g.heads if h.train_only}
    with torch.no_grad():
        for training in (True, False):
            try:
                out = model.train(training)(**args)
            except Exception as e:
                add(
                    "false_reject" if isinstance(e, ValueError) else "wrong_shape",
                    "model",
                    f"generated forward ({'train' if training else 'eval'}) raised "
                    f"{type(e).__name__}: {D._short(str(e), 160)}",
                )
                return
            fields = out._asdict() if g.heads else {"": out}
            if list(fields) != names:
                add("wrong_shape", "head", f"output fields {list(fields)} != heads {names}")
                return
            for name, value in fields.items():
                if not training and name in train_only:
                    if value is not None:
                        add("wrong_shape", "head", f"train-only head {name} is not None in eval")
                    continue
                if value is None or tuple(value.shape) != res.shapes[name]:
                    got = None if value is None else tuple(value.shape)
                    add("wrong_shape", "head" if name else "inputs", f"output {name} {got}")
        # the values: the generated model's weights into the oracle's modules, in forward order
        theirs = list(model.state_dict().values())
        mine = [
            (m, k, v)
            for m in res.run.order
            for k, v in m.state_dict().items()
            if not _fixed_table(m, k)
        ]
        if [tuple(v.shape) for v in theirs] != [tuple(v.shape) for _, _, v in mine]:
            add("wrong_value", "weights", "the generated weights do not line up with the oracle's")
            return
        loads: dict[int, dict[str, Any]] = {}
        for (m, k, _), value in zip(mine, theirs, strict=True):
            loads.setdefault(id(m), {})[k] = value
        for m in res.run.order:
            if _fixed_table(m, "table"):
                m.table = _sinusoids(*m.table.shape)
            m.load_state_dict(loads.get(id(m), {}), strict=not _fixed_table(m, "table"))
        # eval mode; then train mode from the same random state (dropout, reparameterize's
        # noise: forward draws them in the oracle's order), train-only heads included
        for training in (False, True):
            torch.manual_seed(1234)
            want = res.run.forward(res.inputs, training=training)
            torch.manual_seed(1234)
            got = model.train(training)(**args)
            fields = got._asdict() if g.heads else {"": got}
            for name in names:
                if name in train_only and not training:
                    continue
                a, b = fields[name], want[name]
                if a.dtype != b.dtype or not torch.allclose(
                    a, b, rtol=1e-4, atol=1e-5, equal_nan=True
                ):
                    err = (a.double() - b.double()).abs().max().item()
                    mode = "train" if training else "eval"
                    add(
                        "wrong_value",
                        "head" if name else "inputs",
                        f"output {name or 'x'} ({mode}): max |diff| {err:.3g}",
                    )


def _fixed_table(m: Any, key: str) -> bool:
    """pos_encoding's table: fixed, so no weight (sequence_oracle draws it at random)."""
    return isinstance(m, D.SQ._Add) and key == "table" and m.length is None


def _sinusoids(length: int, e: int) -> Any:
    """The README's pos_encoding: column 2i sin(pos / 10000^(2i/E)), column 2i + 1 its cos."""
    import math

    import torch

    table = torch.zeros(length, e)
    pos = torch.arange(length, dtype=torch.float32)[:, None]
    for c in range(e):
        angle = pos[:, 0] / math.pow(10000.0, (c - c % 2) / e)
        table[:, c] = torch.sin(angle) if c % 2 == 0 else torch.cos(angle)
    return table


# ================================================================== the generator

HEAD_NAMES = ["y", "logits", "aux", "box", "score", "emb"]


def _draw_stack(
    gen: D.Gen, x: Any, n: int, keep: Any = lambda y: True
) -> tuple[list[D.LayerIR], Any]:
    """Up to n layers drawn as Gen draws a trunk, each keeping keep(output) true."""
    r = gen.rng
    layers: list[D.LayerIR] = []
    gen.exprs = [None] * x.dim()
    if not x.dtype.is_floating_point:
        return layers, x
    for _ in range(n):
        for _attempt in range(12):
            cands = gen.candidates(tuple(x.shape))
            fam = r.choices([c for c, _ in cands], [w for _, w in cands])[0]
            saved = (list(gen.params), Counter(gen.counter))
            try:
                new = gen.draw_layer(fam, tuple(x.shape))
            except Exception:
                gen.params, gen.counter = saved
                continue
            ok, y = gen.try_layers(new, x)
            if ok and keep(y):
                layers += new
                x = y
                gen.exprs = [None] * x.dim()
                break
            gen.params, gen.counter = saved
    return layers, x


def _outputs(g: GraphSpec) -> list[Any] | None:
    """The first input and every trunk node's output at the defaults (None: invalid there)."""
    res = graph_oracle(g, g.defaults())
    if not res.valid or res.run is None:
        return None
    return [res.inputs[g.inputs[0].name], *res.run.node_outputs]


def _fit(gen: D.Gen, z: Any, target: tuple[int, ...], kind: str) -> list[D.LayerIR] | None:
    """Layers that take z's shape to one the merge combines with `target` (None: cannot)."""
    r = gen.rng
    rank = len(target)
    if rank < 2:
        return None
    if rank == 2:
        out: list[D.LayerIR] = [D.LayerIR("flatten")] if z.dim() > 2 else []
        width = target[1] if kind != "concat" else r.randint(2, 12)
        if kind in ("add", "multiply") and r.random() < 0.15:
            width = 1  # broadcast
        out.append(gen.layer("linear", {"out_features": gen.num(width, "hid", 1.2)}))
        return out
    if z.dim() != rank or tuple(z.shape[2:]) != target[2:] or rank > 5:
        return None
    if kind == "concat" or z.shape[1] == target[1]:
        return []
    conv = f"conv{rank - 2}d"
    return [gen.layer(conv, {"out_channels": D.Lit(target[1]), "kernel_size": D.Lit(1)})]


def _new_input(gen: D.Gen, g: GraphSpec, name: str, like: Any, same: bool) -> InputIR:
    """An input of `like`'s shape (same=True: the first input's own dims) or a random one."""
    if same and like is not None:  # the first input's dims, its named sizes read, not declared
        return InputIR(name, [D.InputDim(d.expr) for d in g.inputs[0].dims])
    if like is not None:
        return InputIR(name, [D.InputDim(D.Lit(int(s))) for s in like.shape[1:]])
    saved = gen.dims
    gen.dims = []
    gen.make_input()
    taken = {d.expr.name for i in g.inputs for d in i.dims if d.sample is not None}  # type: ignore[union-attr]
    dims = []
    for d in gen.dims:
        if d.sample is not None and d.expr.name in taken:  # type: ignore[union-attr]
            d = D.InputDim(D.Var(f"{d.expr.name}{len(g.inputs) + 1}"), d.sample)  # type: ignore[union-attr]
        dims.append(d)
    gen.dims = saved + [d for d in dims if d.sample is not None]
    return InputIR(name, dims)


# What `decorate` draws beyond heads and `concat:`/`add:`/`multiply:` over inputs: one entry per
# op of issue #19, True once seqgen has it (the oracle, `_combine`, `READERS`, `GraphRun.at`,
# knows each one either way).
DRAW = {
    "branch_points": True,  # head NAME from=MERGE.BRANCH (contract 1)
    "stackless_heads": True,  # head NAME [from=POINT], no stack (contract 2)
    "reparameterize": True,  # contract 3
    "bmm": True,  # contract 4
    "add_identity": True,  # contract 5 (in bmm's matrices)
    "lengths": True,  # lstm/gru/rnn ... lengths=NAME (contract 6)
    "key_padding_mask": True,  # transformerencoderlayer ... key_padding_mask=NAME (contract 6)
}

Drawn = tuple[MergeIR, InputIR | None] | None  # a merge, and the new input it reads


def _restore(gen: D.Gen, g: GraphSpec, saved: Any) -> None:
    g.trunk, g.labels, g.inputs, gen.params, gen.counter, gen.dims = copy.deepcopy(saved)
    g.params = gen.params


def _draw_combine(gen: D.Gen, g: GraphSpec, x: Any, j: int, name: str, kind: str) -> Drawn:
    """concat/add/multiply: a branch from x, one from a new input (or siamese: shares=)."""
    import torch

    r = gen.rng
    main, y0 = _draw_stack(gen, x, r.choice([0, 1, 1, 2]), keep=lambda y: y.dim() >= 2)
    if r.random() < 0.25:  # siamese: the same modules on an input of x's shape
        new = _new_input(gen, g, name, x, same=j == 0)
        branches = [
            BranchIR(main or [D.LayerIR("identity")], name="a"),
            BranchIR([], name="b", source=name, shares="a"),
        ]
        return MergeIR(kind, branches, dim=1 if kind == "concat" else None), new
    use_like = y0.dim() > 2 or r.random() < 0.3
    new = _new_input(gen, g, name, x if use_like else None, same=j == 0 and r.random() < 0.5)
    try:
        z = torch.randn((2,) + tuple(D.ev(d.expr, gen.env()) for d in new.dims))
    except Exception:
        return None
    same_rank = y0.dim() > 2
    side, z2 = _draw_stack(
        gen,
        z,
        r.choice([0, 1, 2]),
        keep=(lambda y: y.dim() == y0.dim() and y.shape[2:] == y0.shape[2:])
        if same_rank
        else (lambda y: True),
    )
    tail = _fit(gen, z2, tuple(y0.shape), kind)
    if tail is None:
        return None
    b_main = BranchIR(main or [D.LayerIR("identity")])
    b_side = BranchIR(side + tail or [D.LayerIR("identity")], source=name)
    if r.random() < 0.5:
        b_main.name, b_side.name = "main", name
    branches = [b_main, b_side] if r.random() < 0.8 else [b_side, b_main]
    return MergeIR(kind, branches, dim=1 if kind == "concat" else None), new


def _draw_reparameterize(gen: D.Gen, g: GraphSpec, x: Any, j: int, name: str) -> Drawn:
    """reparameterize: mu and logvar branches from x, of equal shapes."""
    r = gen.rng
    mu, y0 = _draw_stack(gen, x, r.choice([0, 1, 2]), keep=lambda y: y.dim() >= 2)
    if y0.dim() == 2 and r.random() < 0.6:
        mu.append(gen.layer("linear", {"out_features": gen.num(r.randint(2, 8), "hid")}))
        ok, y0 = gen.try_layers(mu[-1:], y0)
        if not ok:
            return None
    keep = lambda y: y.dim() == y0.dim() and y.shape[2:] == y0.shape[2:]  # noqa: E731
    logvar, z = _draw_stack(
        gen, x, r.choice([0, 1]), keep=keep if y0.dim() > 2 else (lambda y: True)
    )
    tail = _fit(gen, z, tuple(y0.shape), "same")
    if tail is None:
        return None
    branches = [
        BranchIR(mu or [D.LayerIR("identity")], name="mu"),
        BranchIR(logvar + tail or [D.LayerIR("identity")], name="logvar"),
    ]
    return MergeIR("reparameterize", branches), None


def _matrices(gen: D.Gen, b: Any, m: int) -> list[D.LayerIR] | None:
    """Layers from b's shape to (N, m, p): `linear m` + `transpose 1 2` on (N, q, r), or a
    learned matrix, PointNet's `[amax 2,] linear m * m, unflatten 1 (m, m), add_identity`
    (`linear m * p, unflatten 1 (m, p)` without add_identity)."""
    r = gen.rng
    size = gen.num(m, "hid", 0.7)
    if b.dim() == 3 and r.random() < 0.5:
        return [
            gen.layer("linear", {"out_features": size}),
            D.LayerIR("transpose", [D.Lit(1), D.Lit(2)]),
        ]
    if b.dim() not in (2, 3):
        return None
    head = [D.LayerIR("amax", [D.Lit(2)])] if b.dim() == 3 else []
    if DRAW["add_identity"] and r.random() < 0.7:
        return head + [
            gen.layer("linear", {"out_features": D.Bin("*", size, size)}),
            D.LayerIR("unflatten", [D.Lit(1), D.Tup((size, size))]),
            D.LayerIR("add_identity"),
        ]
    p = D.Lit(r.randint(1, 4))
    return head + [
        gen.layer("linear", {"out_features": D.Bin("*", size, p)}),
        D.LayerIR("unflatten", [D.Lit(1), D.Tup((size, p))]),
    ]


def _draw_bmm(gen: D.Gen, g: GraphSpec, x: Any, j: int, name: str) -> Drawn:
    """bmm: rows (N, n, m) from x (rank 3, or rank 2 made (N, 1, F) by `unsqueeze 1`), times
    matrices (N, m, p) from x or a new input (`_matrices`)."""
    import torch

    r = gen.rng
    if x.dim() == 2:
        rows: list[D.LayerIR] = [D.LayerIR("unsqueeze", [D.Lit(1)])]
        a = x.unsqueeze(1)
    elif x.dim() == 3:
        rows, a = _draw_stack(gen, x, r.choice([0, 1, 2]), keep=lambda y: y.dim() == 3)
    else:
        return None
    new = None
    src = x
    if r.random() < 0.3:
        new = _new_input(gen, g, name, None, same=False)
        try:
            src = torch.randn((2,) + tuple(D.ev(d.expr, gen.env()) for d in new.dims))
        except Exception:
            return None
    body, b = _draw_stack(gen, src, r.choice([0, 1, 2]), keep=lambda y: y.dim() in (2, 3))
    tail = _matrices(gen, b, int(a.shape[2]))
    if tail is None:
        return None
    branches = [
        BranchIR(rows or [D.LayerIR("identity")], name="rows" if r.random() < 0.5 else None),
        BranchIR(body + tail, source=new.name if new else None),
    ]
    if branches[0].name:
        branches[1].name = "matrix"
    return MergeIR("bmm", branches), new


MERGE_DRAWS: dict[str, Any] = {
    "concat": lambda gen, g, x, j, name: _draw_combine(gen, g, x, j, name, "concat"),
    "add": lambda gen, g, x, j, name: _draw_combine(gen, g, x, j, name, "add"),
    "multiply": lambda gen, g, x, j, name: _draw_combine(gen, g, x, j, name, "multiply"),
    "reparameterize": _draw_reparameterize,
    "bmm": _draw_bmm,
}


def add_merge(gen: D.Gen, g: GraphSpec) -> bool:
    """Insert a top-level merge somewhere in the trunk; most read a new input."""
    import torch

    r = gen.rng
    xs = _outputs(g)
    if xs is None:
        return False
    name = f"in{len(g.inputs) + 1}" if r.random() < 0.7 else r.choice(["meta", "extra", "side"])
    if any(i.name == name for i in g.inputs):
        name = f"in{len(g.inputs) + 1}"
    kinds = ["concat", "add", "multiply"] + [k for k in ("reparameterize", "bmm") if DRAW[k]]
    for _ in range(6):
        saved = copy.deepcopy((g.trunk, g.labels, g.inputs, gen.params, gen.counter, gen.dims))
        kind = r.choice(kinds)
        # at the trunk's start (a siamese branch over the first input's own dims builds its
        # layers alike at every value), its end (nothing after it to break), or anywhere
        roll = r.random()
        j = 0 if roll < 0.2 else len(g.trunk) if roll < 0.5 else r.randint(0, len(g.trunk))
        if kind == "bmm":  # rank 3 (rank 2 at the end) wherever there is one
            at = [
                k for k, y in enumerate(xs) if y.dim() == 3 or (y.dim() == 2 and k == len(xs) - 1)
            ]
            j = r.choice(at) if at else j
        x = xs[j]
        if x.dtype != torch.float32:
            continue
        drawn = MERGE_DRAWS[kind](gen, g, x, j, name)
        if drawn is None:
            _restore(gen, g, saved)
            continue
        merge, new = drawn
        g.trunk.insert(j, merge)
        g.labels = {(k + 1 if k >= j else k): v for k, v in g.labels.items()}
        if new is not None:
            g.inputs.append(new)
        g.params = gen.params
        if r.random() < (0.7 if DRAW["branch_points"] else 0.3):
            g.labels[j] = (
                "z" if kind == "reparameterize" and "z" not in g.labels.values() else f"m{j + 1}"
            )
        if _outputs(g) is not None:
            return True
        _restore(gen, g, saved)
    return False


def add_reader(gen: D.Gen, g: GraphSpec) -> bool:
    """Insert a layer that reads another input (contract 6) where the trunk is (N, L, E): at its
    start, or after a token spec's embedding; its input's length is the first input's dim."""
    import torch

    r = gen.rng
    xs = _outputs(g)
    if xs is None:
        return False
    kinds = [k for k in ("lengths", "key_padding_mask") if DRAW[k]]
    j = 1 if g.inputs[0].dtype == "long" else 0
    if not kinds or len(xs) <= j or xs[j].dim() != 3 or xs[j].dtype != torch.float32:
        return False
    x = xs[j]
    length = g.inputs[0].dims[0]
    saved = copy.deepcopy((g.trunk, g.labels, g.inputs, gen.params, gen.counter, gen.dims))
    kind = r.choice(kinds)
    name = "lengths" if kind == "lengths" else "mask"
    e = int(x.shape[2])
    if kind == "lengths":
        take = r.choice(["all", "all", "last", "hidden"]) if j == len(g.trunk) else "all"
        kw: list[tuple[str, D.Expr]] = [("take", D.Lit(take)), ("lengths", D.Var(name))]
        layer = D.LayerIR(r.choice(["lstm", "gru", "rnn"]), [D.Lit(e)], kw)
        new = InputIR(name, [], "long")
    else:
        nhead = r.choice([h for h in (1, 2, 4) if e % h == 0])
        kw = [("dim_feedforward", gen.num(r.randint(2, 16), "hid")), ("dropout", D.Lit(0.0))]
        kw.append(("key_padding_mask", D.Var(name)))
        layer = D.LayerIR("transformerencoderlayer", [D.Lit(nhead)], kw)
        new = InputIR(name, [D.InputDim(length.expr)], "bool")
    g.trunk.insert(j, layer)
    g.labels = {(k + 1 if k >= j else k): v for k, v in g.labels.items()}
    g.inputs.append(new)
    g.params = gen.params
    if _outputs(g) is not None:
        return True
    _restore(gen, g, saved)
    return False


def _points(g: GraphSpec) -> dict[str, Any]:
    """Every point a head may read, with its output at the defaults: a trunk node's `name=`
    (not the last node's), and with DRAW["branch_points"] a named merge's named branch."""
    res = graph_oracle(g, g.defaults())
    if not res.valid or res.run is None:
        return {}
    last = g.labels.get(len(g.trunk) - 1)
    return {
        k: v for k, v in res.run.at.items() if k != last and ("." not in k or DRAW["branch_points"])
    }


def add_heads(gen: D.Gen, g: GraphSpec) -> bool:
    """One to three heads, some from a named trunk point or branch, some train-only."""
    r = gen.rng
    xs = _outputs(g)
    if xs is None or not g.trunk:
        return False
    if DRAW["branch_points"]:  # name a merge and its branches, so that heads may read them
        for i, node in enumerate(g.trunk):
            if isinstance(node, MergeIR) and r.random() < 0.5:
                g.labels.setdefault(i, f"m{i + 1}")
                for k, b in enumerate(node.branches):
                    b.name = b.name or f"b{k + 1}"
    names = r.sample(HEAD_NAMES, r.randint(1, 3))
    for k, name in enumerate(names):
        point = None
        if len(g.trunk) > 1 and r.random() < 0.55:
            i = r.randrange(len(g.trunk) - 1)
            g.labels.setdefault(i, f"p{i + 1}")
        points = _points(g)
        # a spec whose every head reads an earlier point is refused (its later trunk lines
        # would feed no output): the last head reads the trunk's end unless one already does
        last_open = k == len(names) - 1 and all(h.point for h in g.heads)
        if points and not last_open and r.random() < 0.55:
            point = r.choice(sorted(points))
            x = points[point]
        else:
            x = xs[-1]
        if DRAW["stackless_heads"] and r.random() < 0.2:
            layers: list[D.LayerIR] = []
        elif DRAW["add_identity"] and x.dim() == 2 and r.random() < 0.2:  # a learned transform
            size = gen.num(r.randint(2, 4), "hid", 0.7)
            layers = [
                gen.layer("linear", {"out_features": D.Bin("*", size, size)}),
                D.LayerIR("unflatten", [D.Lit(1), D.Tup((size, size))]),
                D.LayerIR("add_identity"),
            ]
        else:
            layers, y = _draw_stack(gen, x, r.choice([0, 1, 1, 2, 3]))
            if r.random() < 0.5 and y.dim() >= 2 and y.dtype.is_floating_point:
                tail = [] if y.dim() == 2 else [D.LayerIR("flatten")]
                tail.append(gen.layer("linear", {"out_features": gen.num(r.randint(2, 12), "hid")}))
                ok, _ = gen.try_layers(tail, y)
                if ok:
                    layers += tail
            layers = layers or [D.LayerIR("identity")]
        train_only = r.random() < 0.3 and (k > 0 or r.random() < 0.2)
        g.heads.append(HeadIR(name, layers, point, train_only))
    g.params = gen.params
    return _outputs(g) is not None


def decorate(gen: D.Gen, spec: D.SpecIR, rng: random.Random) -> D.SpecIR | GraphSpec:
    """Sometimes the flat spec with heads and/or another input (see the module docstring)."""
    roll = rng.random()
    if roll >= 0.4 or not spec.layers:
        return spec
    gen.rng = rng
    g = GraphSpec(
        spec.model,
        gen.params,
        [InputIR("x", list(spec.input), spec.dtype)],
        list(spec.layers),
    )
    merged = roll < 0.2 and add_merge(gen, g)
    if merged and rng.random() < 0.5:
        merged = add_merge(gen, g) or merged
    if rng.random() < 0.3:
        merged = add_reader(gen, g) or merged
    if (not merged or rng.random() < 0.4) and not add_heads(gen, g):
        g.heads = []
    if len(g.inputs) == 1 and not g.heads and not any(isinstance(n, MergeIR) for n in g.trunk):
        return spec
    g.params = gen.params
    # a name a head reads stays; so does a merge's (it names its modules); others sometimes
    read = {h.point.split(".")[0] for h in g.heads if h.point}
    g.labels = {
        k: v
        for k, v in g.labels.items()
        if v in read
        or isinstance(g.trunk[k], MergeIR)
        or (k < len(g.trunk) - 1 and rng.random() < 0.3)
    }
    if len(g.inputs) > 1:
        g.inputs[0].name = rng.choice(["x0", "image", "main", "first"])
    return g
