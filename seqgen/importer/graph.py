"""A module's forward as a stack of spec nodes.

Each module that is not a torch.nn layer is traced on its own with torch.fx, every submodule
other than a plain `nn.Sequential` kept as one call, so a submodule class (a subclass of
`nn.Sequential` too) can become a block. A submodule called with a list of tensors that it
concatenates first (DenseNet) is called with their concatenation instead (dense.py). The
graph is read back from its output: a one-input op is a line, and an addition, product or
concatenation is a merge whose branches start at the value that all its inputs flow from (the
immediate dominator). Anything else (an op with no spec equivalent, a value used by two branches,
a second input) is refused with the op and its source line. A module that torch.fx cannot trace
is read from the forward hooks of a sample run instead, if its children ran as a chain.
"""

from __future__ import annotations

import operator
import re
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import fx, nn

from seqgen.importer.dense import input_cat_dim, is_input_cat, list_calls_as_concats
from seqgen.importer.layers import (
    ADD,
    CAT,
    MUL,
    functional_layer,
    is_torch_layer,
    layer_of,
    op_layer,
)
from seqgen.importer.nodes import ImportRefused, Layer, Merge, Node, Stack, Use
from seqgen.importer.run import Call, sample_run, source_of

TORCH_DIR = str(Path(torch.__file__).parent)
SKIPPED_LAYERS = (nn.Identity,)  # no weights, no effect: left out of the spec


@dataclass
class Capture:
    """The sample run (module calls, by qualified name) and how each module was read."""

    root: nn.Module
    calls: dict[str, Call]
    how: dict[str, str] = field(default_factory=dict)  # qualname -> "torch.fx" | "hooks: why"
    listed: dict[str, int] = field(default_factory=dict)  # called with a list: its cat dim


class _Tracer(fx.Tracer):
    """Traces one module's forward, keeping every submodule but `nn.Sequential` as one call."""

    def __init__(self, root: nn.Module) -> None:
        super().__init__()
        self.traced_root = root
        self.record_stack_traces = True

    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        return m is not self.traced_root and type(m) is not nn.Sequential


def _where(node: fx.Node, fallback: str) -> str:
    found = re.findall(r'File "([^"]+)", line (\d+)', node.stack_trace or "")
    found = [f for f in found if not f[0].startswith(TORCH_DIR)]
    return f"{found[-1][0]}:{found[-1][1]}" if found else fallback


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def module_stack(capture: Capture, module: nn.Module, qualname: str) -> Stack:
    """The stack of spec nodes that `module`'s forward computes: in the mode the model is in,
    else, where that is refused (a training-only op, a tuple output with auxiliary logits), in
    eval mode, which the output check compares anyway."""
    try:
        return _read(capture, module, qualname)
    except ImportRefused as refused:
        if not module.training:
            raise
        try:
            module.eval()
            stack = _read(capture, module, qualname)
        except ImportRefused:
            raise refused from None
        finally:
            module.train()
        why = refused.diagnostic.message.splitlines()[0]
    capture.how[qualname] = f"{capture.how[qualname]} in eval mode (in training mode: {why})"
    return stack


def _read(capture: Capture, module: nn.Module, qualname: str) -> Stack:
    try:
        graph = _Tracer(module).trace(module)
    except Exception as e:
        capture.how[qualname] = f"forward hooks (torch.fx: {type(e).__name__}: {e})".split("\n")[0]
        return _chain_stack(capture, module, qualname, e)
    capture.how[qualname] = "torch.fx"
    listed = list_calls_as_concats(graph, lambda t: _list_cat_dim(module.get_submodule(t)))
    for target, dim in listed.items():
        capture.listed[_join(qualname, target)] = dim
    return _GraphReader(capture, module, qualname, graph).read()


def _list_cat_dim(module: nn.Module) -> int | None:
    """The dim a module called with a list of tensors concatenates them along, first thing."""
    try:
        return input_cat_dim(_Tracer(module).trace(module))
    except Exception:
        return None


def _chain_stack(capture: Capture, module: nn.Module, qualname: str, why: Exception) -> Stack:
    """A module fx cannot trace, read from the sample run: its children must have run as a
    chain (each one's input the previous one's output, from the module's input to its output)."""
    call = capture.calls.get(qualname or "")
    refusal = ImportRefused(
        f"{source_of(module)}: {type(module).__name__} (`{qualname or 'the model'}`): torch.fx "
        f"cannot trace its forward ({type(why).__name__}: {str(why).splitlines()[0]}), and its "
        "submodules did not run as a chain in the sample forward",
        hint="make the forward traceable by torch.fx (no Python control flow on tensor values)",
    )
    if call is None or not call.children:
        raise refusal from why
    current = call.inputs[0] if call.inputs else -1
    stack: list[Node] = []
    for child in call.children:
        c = capture.calls[child]
        if c.inputs[:1] != (current,):
            raise refusal from why
        stack += _module_nodes(capture, child, source_of(module))
        current = c.output
    if current != call.output:
        raise refusal from why
    return tuple(stack)


def _module_nodes(capture: Capture, qualname: str, where: str) -> list[Node]:
    """A call of a submodule: a layer, an inlined `nn.Sequential`, or a use of the user's class."""
    module = capture.root.get_submodule(qualname)
    if type(module) is nn.Sequential:
        return list(module_stack(capture, module, qualname))
    if isinstance(module, SKIPPED_LAYERS):
        return []
    if is_torch_layer(module):
        return [layer_of(module, qualname, where)]
    call = capture.calls.get(qualname)
    shape = call.in_shape if call is not None else ()
    in_name = "in_channels" if len(shape) >= 3 else "in_features" if len(shape) == 2 else None
    in_size = shape[1] if in_name == "in_channels" else shape[-1] if in_name else None
    body = module_stack(capture, module, qualname)
    return [Use(qualname, type(module).__name__, body, in_size, in_name)]


class _GraphReader:
    """Reads one fx graph back into spec nodes (series-parallel, from the output backwards)."""

    def __init__(self, capture: Capture, module: nn.Module, qualname: str, graph: fx.Graph):
        self.capture, self.module, self.qualname = capture, module, qualname
        self.nodes = list(graph.nodes)
        self.source = source_of(module)
        self.inputs: dict[fx.Node, list[fx.Node]] = {}
        self.idom: dict[fx.Node, fx.Node | None] = {}
        self.depth: dict[fx.Node, int] = {}
        self.emitted: set[fx.Node] = set()

    def refuse(self, node: fx.Node, what: str, hint: str | None = None) -> ImportRefused:
        where = _where(node, self.source)
        owner = f"{type(self.module).__name__} (`{self.qualname or 'the model'}`)"
        return ImportRefused(f"{where}: in {owner}: {what}", hint=hint)

    def read(self) -> Stack:
        placeholders = [n for n in self.nodes if n.op == "placeholder"]
        if len(placeholders) != 1:
            raise self.refuse(
                placeholders[-1] if placeholders else self.nodes[0],
                f"forward takes {len(placeholders)} inputs; a spec model takes one tensor",
            )
        for n in self.nodes:
            if n.op == "output":
                out = n.args[0]
                if not isinstance(out, fx.Node):
                    raise self.refuse(n, "forward returns a tuple or a constant, not one tensor")
                result = self._build(out, placeholders[0])
                break
            if n.op != "placeholder" and self._flows(n):
                self._dominate(n)
            elif n.op == "placeholder":
                self.inputs[n], self.idom[n], self.depth[n] = [], None, 0
        return tuple(result)

    def _flows(self, n: fx.Node) -> bool:
        """Whether `n` carries the tensor (not a size read for a `view`)."""
        if n.op == "call_method" and n.target == "size":
            return False
        if n.op == "get_attr" or (n.op == "call_function" and n.target is getattr):
            return False
        if n.op == "call_function" and n.target is operator.getitem:  # `x.shape[0]`, not `out[0]`
            return isinstance(n.args[0], fx.Node) and n.args[0] in self.inputs
        return True

    def _dominate(self, n: fx.Node) -> None:
        ins = [a for a in n.all_input_nodes if a in self.inputs]
        if not ins:
            raise self.refuse(n, f"`{n.format_node()}` does not read the input")
        self.inputs[n] = ins
        dom = ins[0]
        for other in ins[1:]:
            dom = self._common(dom, other)
        self.idom[n] = dom
        self.depth[n] = self.depth[dom] + 1

    def _common(self, a: fx.Node, b: fx.Node) -> fx.Node:
        while a is not b:
            if self.depth[a] < self.depth[b]:
                a, b = b, a
            parent = self.idom[a]
            assert parent is not None
            a = parent
        return a

    def _build(self, node: fx.Node, stop: fx.Node) -> list[Node]:
        """The nodes computing `node` from `stop` (which dominates it)."""
        out: list[Node] = []
        while node is not stop:
            if node in self.emitted:
                raise self.refuse(
                    node,
                    f"the value of `{node.name}` is used by two branches",
                    "a spec merge takes one input; compute the shared value once, before it",
                )
            self.emitted.add(node)
            listed = self.capture.listed.get(self.qualname)
            if listed is not None and is_input_cat(node, listed):
                node = self.inputs[node][0]  # the caller concatenated the list: the identity
                continue
            if node.op == "placeholder":
                raise self.refuse(node, "a branch does not start at its merge's input")
            merge = self._merge(node)
            if merge is not None:
                out[:0] = [merge]
                parent = self.idom[node]
                assert parent is not None
                node = parent
                continue
            out[:0] = self._line(node)
            node = self.inputs[node][0]
        return out

    def _merge(self, node: fx.Node) -> Merge | None:
        kind = (
            "add"
            if node.target in ADD
            else "multiply"
            if node.target in MUL
            else "concat"
            if node.target in CAT
            else None
        )
        if kind is None or node.op != "call_function":
            return None
        tensors = node.args[0] if kind == "concat" else node.args[:2]
        if not isinstance(tensors, (list, tuple)) or not all(
            isinstance(t, fx.Node) and t in self.inputs for t in tensors
        ):
            raise self.refuse(
                node,
                f"`{node.format_node()}` combines the input with a constant or a weight",
                "a spec merge combines branches computed from one input",
            )
        fork = self.idom[node]
        assert fork is not None
        branches = [tuple(self._build(t, fork)) for t in tensors if isinstance(t, fx.Node)]
        if kind == "concat":
            dim = node.args[1] if len(node.args) > 1 else node.kwargs.get("dim", 0)
            if not isinstance(dim, int):
                raise self.refuse(node, "a concatenation along a computed dim")
            return Merge("concat", tuple(b or (_identity(),) for b in branches), dim)
        if kind == "multiply":
            ordered = sorted(branches, key=len)  # the identity first: `x * gate`
            return Merge("multiply", tuple(b or (_identity(),) for b in ordered))
        if not any(branches) or len(branches) != 2:
            raise self.refuse(node, "an addition of a value to itself")
        body, other = sorted(branches, key=lambda b: -_weight(b))
        return Merge("residual", (body, other) if other else (body,))

    def _line(self, node: fx.Node) -> list[Node]:
        if node.op == "call_module":
            if node.args and isinstance(node.args[0], (list, tuple)):
                raise self.refuse(
                    node,
                    f"`{node.target}` is called with a list of tensors, and its forward does not "
                    "begin by concatenating them",
                    "a spec layer takes one tensor; a list is read only as DenseNet's layers "
                    "take it: `torch.cat(inputs, dim)` first",
                )
            if len(self.inputs[node]) != 1 or len(node.args) != 1:
                raise self.refuse(node, f"`{node.target}` is called with several inputs")
            qualname = _join(self.qualname, str(node.target))
            return _module_nodes(self.capture, qualname, _where(node, self.source))
        if len(self.inputs[node]) != 1:
            raise self.refuse(node, f"`{node.format_node()}` combines several tensors")
        flat = node.target in ("view", "reshape") and self._is_batch_flatten(node)
        if flat or node.op in ("call_method", "call_function"):
            target, args = (torch.flatten, (None, 1)) if flat else (node.target, node.args)
            where = _where(node, "")
            layer = functional_layer(target, args, dict(node.kwargs), where) or op_layer(
                target, args, dict(node.kwargs), where
            )
            if layer is not None:
                return [] if layer.word == "dropout" and _never_drops(node) else [layer]
        name = getattr(node.target, "__name__", str(node.target))
        if name == "stochastic_depth" and _depth_kept(node):
            return []  # torchvision.ops.stochastic_depth off (eval mode, or p=0): the identity
        hint = (
            "write `x.flatten(1)` (or `x.view(x.size(0), -1)`): a shape written out would fix "
            "the batch or the sizes"
            if name in ("view", "reshape")
            else "use a torch.nn layer for it (seqgen writes each torch.nn class that maps one "
            "tensor to one tensor), or leave it out of the model you import"
        )
        raise self.refuse(node, f"`{name}` ({node.op}) has no spec equivalent", hint)

    def _is_batch_flatten(self, node: fx.Node) -> bool:
        """`x.view(x.size(0), -1)` / `x.reshape(x.shape[0], -1)`."""
        sizes = node.args[1:]
        if len(sizes) == 1 and isinstance(sizes[0], (tuple, list)):
            sizes = tuple(sizes[0])
        if len(sizes) != 2 or sizes[1] != -1 or not isinstance(sizes[0], fx.Node):
            return False
        first = sizes[0]
        if first.op == "call_method" and first.target == "size":
            return bool(first.args[1:] == (0,) and first.args[0] is node.args[0])
        if first.op == "call_function" and first.target is operator.getitem:
            shape = first.args[0]
            return bool(
                first.args[1] == 0
                and isinstance(shape, fx.Node)
                and shape.target == "shape"
                and shape.args[0] is node.args[0]
            )
        return False


def _never_drops(node: fx.Node) -> bool:
    """`F.dropout(x, p, training=False)`: the identity, written as nothing."""
    training = node.kwargs.get("training", node.args[2] if len(node.args) > 2 else True)
    return training is False


def _depth_kept(node: fx.Node) -> bool:
    """`stochastic_depth(x, p, mode, training)` that keeps every row: not training, or p=0."""
    args = (*node.args, None, None, None, None)
    p = node.kwargs.get("p", args[1])
    training = node.kwargs.get("training", args[3] if len(node.args) > 3 else True)
    return training is False or (isinstance(p, float) and p == 0.0)


def _identity() -> Layer:
    return Layer("identity", (), None, "")


def _weight(stack: Stack) -> int:
    total = 0
    for n in stack:
        if isinstance(n, Merge):
            total += sum(_weight(b) for b in n.branches)
        elif isinstance(n, Use):
            total += _weight(n.body)
        else:
            total += 1
    return total


def capture_stack(root: nn.Module, input_shape: tuple[int, ...]) -> tuple[Stack, Capture]:
    """The whole model as spec nodes, and how each module was read."""
    capture = Capture(root, sample_run(root, input_shape))
    return module_stack(capture, root, ""), capture
