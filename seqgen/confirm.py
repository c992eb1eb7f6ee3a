"""Real-tensor checks (part of the trace stage): `--device`, and confirming on a tiny CPU sample
the layers whose fake/meta kernels are known to accept arguments the real kernels reject.
"""

from __future__ import annotations

import warnings
from typing import Any

import torch
from torch import nn

from .errors import TraceError
from .layers import INFERRED, _Bound, _bind, _first_line, _Values, concrete_values, resolve_layer
from .spec import LayerSpec, TracedLayer, TracedModel

BATCH_HINT = 2
# Real checks allocate: confirm a layer only when its sample and weights are this small.
CONFIRM_LIMIT = 1 << 22


def real_module(cls: type[nn.Module], bound: _Bound, values: _Values,
                in_shape: tuple[int, ...]) -> nn.Module:
    """Construct `cls` for real from concrete values, inferring sizes from `in_shape`."""
    kwargs: dict[str, Any] = {k: values.eval(e) for k, e in bound.args.items()}
    kwargs.update({k: values.eval(e) for k, e in bound.extra_kwargs.items()})
    for pname in bound.sig.inferred:
        if pname not in kwargs:
            kwargs[pname] = in_shape[INFERRED[pname]]
    return cls(*(values.eval(e) for e in bound.extra_args), **kwargs)


def _untrusted(cls: type[nn.Module], bound: _Bound) -> bool:
    """Layers whose fake kernels skip checks the CPU kernels make (seen in fuzzing)."""
    name = cls.__name__
    return (name.startswith(("ConvTranspose", "Upsampl", "Fold", "Unfold"))
            or name in ("Softmax", "LogSoftmax", "Softmin")
            or (name.startswith("Conv") and "groups" in bound.args))


def confirm_on_cpu(cls: type[nn.Module], bound: _Bound, values: _Values,
                   in_shape: tuple[int, ...], out_shape: tuple[int, ...], layer: LayerSpec) -> None:
    """Run an untrusted layer on a small real CPU sample; raise if torch disagrees."""
    if not _untrusted(cls, bound):
        return
    sample = (1, *in_shape[1:])
    if _numel(sample) > CONFIRM_LIMIT:
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
            raise TraceError(f"torch rejects {cls.__name__} on a real tensor of shape "
                             f"{sample}: {_first_line(e)}", location=layer.loc) from e
    if got[1:] != out_shape[1:]:
        raise TraceError(f"{cls.__name__} gives {got[1:]} per sample on the CPU, the symbolic "
                         f"trace said {out_shape[1:]}", location=layer.loc,
                         hint="please report this as a seqgen bug")


def _numel(shape: tuple[int, ...]) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


def verify_on_device(traced: TracedModel, device: str) -> None:
    """Build the model for real on `device`, run a random sample, and compare every shape.

    The default device is never changed: modules and the sample are placed explicitly.
    """
    try:
        dev = torch.device(device)
        if dev.type == "cuda" and not torch.cuda.is_available():
            raise TraceError("--device cuda: no CUDA device is available here",
                             hint="use --device cpu or meta")
    except RuntimeError as e:
        raise TraceError(f"unknown device {device!r}: {_first_line(e)}",
                         hint="use meta, cpu or cuda") from e
    spec = traced.spec
    values = concrete_values(spec)
    shape = [BATCH_HINT] + [int(values.eval(e)) for e in spec.input_shape]
    with torch.no_grad(), torch.device(dev):
        x = torch.randn(shape)
        for layer in traced.layers:
            try:
                _, x = run_real(layer, values, x)
            except Exception as e:
                raise TraceError(f"on {dev.type}, {layer.class_name} failed: {_first_line(e)}",
                                 location=layer.spec.loc) from e
            want = tuple(d.value for d in layer.out_shape)
            if tuple(x.shape) != want:
                raise TraceError(
                    f"on {dev.type}, {layer.class_name} gives {tuple(x.shape)}, "
                    f"the symbolic trace said {want}", location=layer.spec.loc,
                    hint="please report this as a seqgen bug")


def run_real(layer: TracedLayer, values: _Values, x: torch.Tensor
             ) -> tuple[list[nn.Module], torch.Tensor]:
    """Build a traced layer concretely from `values` for the input `x` (on the current default
    device), run it in eval mode, and return its modules and output. A `repeat depth:` block
    builds its body `depth` times."""
    if layer.repeat is not None:
        modules: list[nn.Module] = []
        for _ in range(int(values.eval(layer.spec.args[0]))):
            for inner in layer.body:
                built, x = run_real(inner, values, x)
                modules += built
        return modules, x
    cls = resolve_layer(layer.spec)
    module = real_module(cls, _bind(cls, layer.spec), values, tuple(x.shape)).eval()
    return [module], module(x)
