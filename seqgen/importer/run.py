"""The sample forward the importer runs once: each module call's input shape, and the tensor
identities that show whether a module's children ran as a chain."""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field

import torch
from torch import nn

from seqgen.importer.nodes import ImportRefused


@dataclass
class Call:
    """One call of a module in the sample run: its input's and output's identity and shape."""

    inputs: tuple[int, ...]
    output: int
    in_shape: tuple[int, ...]
    children: list[str] = field(default_factory=list)
    out_rank: int = -1


def source_of(module: nn.Module) -> str:
    """`file:line` of a module class's forward, or ""."""
    try:
        forward = type(module).forward
        return f"{inspect.getsourcefile(forward)}:{inspect.getsourcelines(forward)[1]}"
    except (TypeError, OSError):
        return ""


def sample_run(root: nn.Module, input_shape: tuple[int, ...]) -> dict[str, Call]:
    """Run the model once on a batch of 2 (on `meta`, else on the CPU), recording each module
    call: its qualified name, input shape, and the identities that show how calls chain."""
    calls: dict[str, Call] = {}
    names = {m: n for n, m in root.named_modules()}
    stack: list[str] = []
    keep: list[torch.Tensor] = []  # keeps ids unique while the run lasts

    def pre(m: nn.Module, args: tuple[object, ...]) -> None:
        name = names[m]
        if stack:
            calls[stack[-1]].children.append(name)
        tensors = [a for a in args if isinstance(a, torch.Tensor)]
        keep.extend(tensors)
        shape = tuple(tensors[0].shape) if tensors else ()
        calls.setdefault(name, Call(tuple(id(t) for t in tensors), -1, shape))
        stack.append(name)

    def post(m: nn.Module, args: tuple[object, ...], out: object) -> None:
        stack.pop()
        if isinstance(out, torch.Tensor):
            keep.append(out)
            calls[names[m]].output = id(out)
            calls[names[m]].out_rank = out.dim()

    handles = [m.register_forward_pre_hook(pre) for m in names] + [
        m.register_forward_hook(post) for m in names
    ]
    training = root.training
    root.eval()  # a training-mode run would update BatchNorm statistics: the user's weights
    try:
        with torch.no_grad():
            root(torch.zeros(2, *input_shape))
    except Exception as e:
        raise ImportRefused(
            f"{source_of(root)}: the model fails on a (2, {', '.join(map(str, input_shape))}) "
            f"input: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}",
            hint="give the input shape it expects with --input",
        ) from e
    finally:
        root.train(training)
        for h in handles:
            h.remove()
    return calls
