"""Real-tensor checks (part of the trace stage): `--device`, and confirming on a tiny CPU sample
the layers whose fake/meta kernels are known to accept arguments the real kernels reject.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch import nn

from seqgen.errors import InternalError, TraceError
from seqgen.ir import (
    SAMPLE_BATCH,
    LayerSpec,
    TracedBlock,
    TracedBlockUse,
    TracedHead,
    TracedLayer,
    TracedMerge,
    TracedModel,
    TracedNode,
    head_route,
)
from seqgen.lang.names import input_names
from seqgen.layers import weight_norm
from seqgen.layers.input_reads import TORCH_DTYPES, call_reading, sample_for
from seqgen.layers.kind import Op, evaluate
from seqgen.layers.registry import TorchModule, UserModule, WeightNormed, kind_for
from seqgen.layers.torch_nn import (
    Bound,
    Values,
    bind,
    concrete_values,
    first_line,
)
from seqgen.runtime import merges as runtime_merges
from seqgen.trace import symbolic as S

# Real checks allocate: confirm a layer only when its sample and weights are this small.
CONFIRM_LIMIT = 1 << 22


def runs_short(kind: object) -> bool:
    """An op whose shape check runs a shorter sample (a recurrent layer steps through a few
    time steps only): its multiply-adds say nothing about what the check costs."""
    return isinstance(kind, Op) and type(kind).run_for_shape is not Op.run_for_shape


def real_module(
    cls: type[nn.Module],
    bound: Bound,
    values: Values,
    in_shape: tuple[int, ...],
    init: bool = True,
) -> nn.Module:
    """Construct `cls` for real from concrete values, inferring sizes from `in_shape`; without
    `init`, its parameters are zeros (only shapes matter: no random initialisation to pay)."""
    kwargs: dict[str, Any] = {k: values.eval(e) for k, e in bound.args.items()}
    kwargs.update({k: values.eval(e) for k, e in bound.extra_kwargs.items()})
    for pname in bound.sig.inferred:
        if pname not in kwargs:
            kwargs[pname] = in_shape[bound.sig.dim_of(pname)]
    args = tuple(values.eval(e) for e in bound.extra_args)
    if init:
        return cls(*args, **kwargs)
    module = S.construct(cls, args, kwargs)
    with torch.no_grad():
        for p in module.parameters():
            p.zero_()
    return module


def _untrusted(cls: type[nn.Module], bound: Bound) -> bool:
    """Layers whose fake kernels skip checks the CPU kernels make (seen in fuzzing)."""
    name = cls.__name__
    return (
        name.startswith(("ConvTranspose", "Upsampl", "Fold", "Unfold"))
        or name in ("Softmax", "LogSoftmax", "Softmin")
        or (name.startswith("Conv") and "groups" in bound.args)
    )


def confirm_on_cpu(
    cls: type[nn.Module],
    bound: Bound,
    values: Values,
    in_shape: tuple[int, ...],
    out_shape: tuple[int, ...],
    layer: LayerSpec,
) -> None:
    """Run an untrusted layer on a small real CPU sample; raise if torch disagrees."""
    if not _untrusted(cls, bound):
        return
    sample = (1, *in_shape[1:])
    if math.prod(sample) > CONFIRM_LIMIT:
        return
    with torch.device("cpu"), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch's warnings about degenerate layers; errors stay
        try:
            module = real_module(cls, bound, values, sample)
            if sum(p.numel() for p in module.parameters()) > CONFIRM_LIMIT:
                return
            with torch.no_grad():
                got = tuple(module.eval()(torch.zeros(sample)).shape)
        except Exception as e:  # torch's message, kept as the cause
            raise TraceError(
                f"torch rejects {cls.__name__} on a real tensor of shape {sample}: {first_line(e)}",
                location=layer.loc,
            ) from e
    if got[1:] != out_shape[1:]:
        raise InternalError(
            f"{cls.__name__} gives {got[1:]} per sample on the CPU, the symbolic "
            f"trace said {out_shape[1:]}",
            location=layer.loc,
        )


def verify_on_device(traced: TracedModel, device: str) -> None:
    """Build the model for real on `device`, run a random sample, and compare every shape.

    The default device is never changed: modules and the sample are placed explicitly.
    """
    try:
        dev = torch.device(device)
        if dev.type == "cuda" and not torch.cuda.is_available():
            raise TraceError(
                "--device cuda: no CUDA device is available here", hint="use --device cpu or meta"
            )
    except RuntimeError as e:
        raise TraceError(
            f"unknown device {device!r}: {first_line(e)}", hint="use meta, cpu or cuda"
        ) from e
    spec = traced.spec
    values = concrete_values(spec)
    shape = [SAMPLE_BATCH] + [int(values.eval(e)) for e in spec.input_shape]
    with torch.no_grad(), torch.device(dev):
        x = torch.randint(0, 2, shape) if spec.input_dtype == "long" else torch.randn(shape)
        inputs = {  # several inputs: each by name, for the merges that read them
            i.name: torch.randn(sizes)
            if i.dtype == "float"
            else torch.randint(0, 2, sizes, dtype=TORCH_DTYPES[i.dtype])
            for i in traced.inputs
            for sizes in [[SAMPLE_BATCH, *(d.value for d in i.shape[1:])]]
        }
        blocks = {b.class_name: b for b in traced.blocks}
        outputs: list[torch.Tensor] = []  # of each trunk node, for the heads
        first = x
        stacks = [(traced.layers, None), *((h.layers, h) for h in traced.heads)]
        for layer, start in ((layer, start) for nodes, start in stacks for layer in nodes):
            if start is not None and layer is start.layers[0]:  # a head reads its point's output
                x = head_input(traced, start, outputs, first, inputs, values.env, blocks)
            try:
                _, x = run_node(layer, values.env, x, blocks, inputs=inputs)
            except Exception as e:
                raise TraceError(
                    f"on {dev.type}, {layer.class_name} failed: {first_line(e)}",
                    location=layer.spec.loc,
                ) from e
            want = tuple(d.value for d in layer.out_shape)
            if tuple(x.shape) != want:
                raise InternalError(
                    f"on {dev.type}, {layer.class_name} gives {tuple(x.shape)}, "
                    f"the symbolic trace said {want}",
                    location=layer.spec.loc,
                )
            if start is None:
                outputs.append(x)


def head_input(
    traced: TracedModel,
    head: TracedHead,
    outputs: Sequence[torch.Tensor],
    first: torch.Tensor,
    inputs: Mapping[str, torch.Tensor],
    env: Mapping[str, Any],
    blocks: Mapping[str, TracedBlock],
) -> torch.Tensor:
    """What a head reads, given each trunk node's output: its point's output, or for
    `from=z.mu` the output of that branch, run again from the merge's input (`first`: the
    model's first input)."""
    at, j = traced.head_start(head), traced.head_branch(head)
    merge = traced.layers[at]
    if j is None or not isinstance(merge, TracedMerge):
        return outputs[at]
    source = merge.spec.branch_from[j] if merge.spec.branch_from else None
    x = inputs[source] if source is not None else outputs[at - 1] if at else first
    nodes: Sequence[TracedNode] = merge.branches[j]
    for i, k in head_route(traced.spec.layers, head.spec)[1:]:  # `from=p3.down.p4`
        for node in nodes[:i]:
            _, x = run_node(node, env, x, blocks, inputs=inputs)
        inner = nodes[i]
        if k is None or not isinstance(inner, TracedMerge):
            return run_node(inner, env, x, blocks, inputs=inputs)[1]
        nodes = inner.branches[k]
    for node in nodes:
        _, x = run_node(node, env, x, blocks, inputs=inputs)
    return x


Visit = Callable[[TracedNode, Mapping[str, Any], torch.Tensor, list[nn.Module]], None]


def run_real(
    layer: TracedLayer, values: Values, x: torch.Tensor, shapes_only: bool = False
) -> tuple[list[nn.Module], torch.Tensor]:
    """Build a traced layer concretely from `values` for the input `x` (on the current default
    device), run it in eval mode, and return its modules and output. Where only the output's
    shape matters (on `meta`, or `shapes_only`), an op may run a shorter sample."""
    kind = kind_for(layer.spec)
    match kind:
        case Op():
            nodes = kind.bind(layer.spec)
            nodes.pop(kind.inferred or "", None)  # the input's size: build() reads it from x
            reads = [kw.name for kw in layer.spec.reads]  # `lengths=NAME`: packs by them
            module = kind.build_reading(evaluate(nodes, values), tuple(x.shape), reads).eval()
            if shapes_only or x.device.type == "meta":
                return [module], kind.run_for_shape(module, x)
            # each input it reads: a valid sample made for x (varied lengths, a padding mask)
            tensors = {k: sample_for(kind.reads[k], x) for k in reads}
            return [module], call_reading(kind.reads, module, x, tensors)
        case TorchModule(cls=cls, layer=plain) | UserModule(cls=cls, layer=plain):
            module = real_module(cls, bind(cls, plain), values, tuple(x.shape), not shapes_only)
        case WeightNormed(inner=TorchModule(cls=cls, layer=plain), value=norm):
            module = real_module(cls, bind(cls, plain), values, tuple(x.shape), not shapes_only)
            if values.eval(norm) is True:
                module = weight_norm.wrap(module)
    module.eval()
    return [module], module(x)


Memo = dict[tuple[Any, ...], tuple[list[nn.Module], tuple[int, ...]]]


def run_stack(
    nodes: Sequence[TracedNode],
    env: Mapping[str, Any],
    x: torch.Tensor,
    blocks: Mapping[str, TracedBlock],
    visit: Visit | None = None,
    memo: Memo | None = None,
) -> tuple[list[nn.Module], torch.Tensor]:
    """Build and run a traced stack concretely: `env` holds the values of the scope's names
    (the model's parameters, or a block's arguments). `visit` sees every node's output. With a
    `memo` (shapes only, on `meta`), a block used again with the same arguments and input shape
    is not built again."""
    modules: list[nn.Module] = []
    for node in nodes:
        built, x = run_node(node, env, x, blocks, visit, memo)
        modules += built
    return modules, x


def run_node(
    node: TracedNode,
    env: Mapping[str, Any],
    x: torch.Tensor,
    blocks: Mapping[str, TracedBlock],
    visit: Visit | None = None,
    memo: Memo | None = None,
    inputs: Mapping[str, torch.Tensor] | None = None,
) -> tuple[list[nn.Module], torch.Tensor]:
    """One node of run_stack: a layer, a `repeat depth:` loop, a merge or a block use. A merge
    of the trunk's top level may have branches that read the model's `inputs` (`from=NAME`)."""
    modules: list[nn.Module] = []
    if isinstance(node, TracedMerge):
        outs = []
        sources = node.spec.branch_from or (None,) * len(node.branches)
        shares = node.spec.branch_shares or (None,) * len(node.branches)
        for branch, source, share in zip(node.branches, sources, shares, strict=True):
            start = x if source is None or inputs is None else inputs[source]
            built, y = run_stack(branch, env, start, blocks, visit, memo)
            modules += built if share is None else []  # a shared branch's are another's
            outs.append(y)
        y = _merge(node, outs, x)
    elif isinstance(node, TracedBlockUse):
        block = blocks[node.spec.name]
        inner = block_env(block, node, env, x)
        key = (node.spec.name, tuple(sorted(inner.items(), key=lambda kv: kv[0])), tuple(x.shape))
        if memo is not None and key in memo:
            modules, shape = memo[key]
            y = torch.zeros(shape)  # run for real on the CPU, a sample of zeros
        else:
            modules, y = run_stack(block.layers, inner, x, blocks, visit, memo)
            if memo is not None:
                memo[key] = (modules, tuple(y.shape))
    elif node.repeat is not None:  # its first pass apart (when it has one), then the body
        y = x
        count = int(Values(dict(env)).eval(node.spec.args[0]))
        passes = [node.first] + [node.body] * (count - 1) if node.first else [node.body] * count
        for stack in passes:
            built, y = run_stack(stack, env, y, blocks, visit, memo)
            modules += built
    else:
        modules, y = run_real(node, Values(dict(env)), x, shapes_only=memo is not None)
    if visit is not None:
        visit(node, env, y, modules)
    return modules, y


class _Given(nn.Module):
    """A merge branch whose output is already computed (each branch ran node by node)."""

    def __init__(self, out: torch.Tensor) -> None:
        super().__init__()
        self.out = out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out


def _merge(node: TracedMerge, outs: list[torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """The merge's own runtime class (the one the generated code uses) over the outputs."""
    cls: type[nn.Module] = getattr(runtime_merges, node.class_name)
    given = [_Given(o) for o in outs]
    if node.spec.kind == "residual":
        module = cls(given[0], given[1] if len(given) > 1 else None)
    elif node.spec.kind == "concat":
        module = cls(*given, dim=node.dim or 1)
    else:
        module = cls(*given)
    y: torch.Tensor = module(x)
    return y


def block_env(
    block: TracedBlock, use: TracedBlockUse, env: Mapping[str, Any], x: torch.Tensor
) -> dict[str, Any]:
    """The values of a block's names at one use: its input sizes and its arguments."""
    values = Values(dict(env))
    out: dict[str, Any] = dict(zip(input_names(x.dim()), (int(s) for s in x.shape[1:])))
    given = dict(zip((p.name for p in block.spec.params), use.spec.args))
    given.update((kw.name, kw.value) for kw in use.spec.kwargs)
    for p in block.spec.params:
        out[p.name] = values.eval(given[p.name]) if p.name in given else p.default
    return out
