"""Warnings about specs that trace but are probably not what the author meant. No torch here."""

from __future__ import annotations

from .errors import Diagnostic
from .spec import TracedLayer, TracedModel

_SPATIAL = ("Conv", "Pool", "Pad", "Upsample", "Norm")
_BIASED = ("Conv1d", "Conv2d", "Conv3d", "ConvTranspose1d", "ConvTranspose2d", "ConvTranspose3d",
           "Linear")


def _warn(layer: TracedLayer, message: str, hint: str) -> Diagnostic:
    return Diagnostic("warning", message, layer.spec.loc, hint)


def _has_bias(layer: TracedLayer) -> bool:
    return dict(layer.call_kwargs).get("bias") != "False"


def lint(traced: TracedModel) -> list[Diagnostic]:
    """Every warning for a traced model, in spec order."""
    out: list[Diagnostic] = list(traced.warnings)
    layers = traced.layers
    for i, layer in enumerate(layers):
        prev = layers[i - 1] if i else None
        rank_in = len(prev.out_shape) if prev else len(traced.input_shape)
        if layer.class_name == "Linear" and rank_in > 2 and (
                prev is None or any(k in prev.class_name for k in _SPATIAL)
                or prev.class_name in ("ReLU", "GELU", "SiLU", "Tanh", "Sigmoid", "LeakyReLU")):
            out.append(_warn(layer, f"linear is applied to a rank-{rank_in} tensor; it maps only "
                                    "the last dimension", "did you forget `flatten` before it?"))
        if prev is not None and layer.class_name.startswith("BatchNorm") \
                and prev.class_name in _BIASED and _has_bias(prev):
            out.append(_warn(layer, f"{layer.class_name} right after {prev.class_name} cancels "
                                    f"that layer's bias", f"add bias=False to line {prev.line}"))
        if i == len(layers) - 1:
            if layer.class_name in ("Softmax", "LogSoftmax"):
                out.append(_warn(layer, f"{layer.class_name.lower()} is the last layer",
                                 "nn.CrossEntropyLoss expects raw logits: drop it, or use "
                                 "NLLLoss after log_softmax"))
            if layer.class_name.startswith("Dropout") or layer.class_name.endswith("Dropout"):
                out.append(_warn(layer, "dropout is the last layer: it zeroes outputs in training",
                                 "move it before the last linear"))
        spatial = layer.out_shape[2:]
        if spatial and all(d.value == 1 and not d.symbolic for d in spatial) \
                and "Adaptive" not in layer.class_name and any(
                    any(k in later.class_name for k in ("Conv", "Pool")) for later in layers[i + 1:]):
            out.append(_warn(layer, f"spatial size is reduced to 1 here, before later "
                                    "conv/pool layers", "use a larger input or fewer "
                                                        "downsampling layers"))
    return out
