"""How the original model's state_dict keys map to the generated model's.

Both models hold the same layers in the same order: the spec lists the original's layers in the
order the generated `__init__` registers them. So the layers with weights or buffers are paired
in that order, each pair checked (same torch.nn class, same keys, same shapes), and every key of
the original must be paired: the mapping is exact or it is refused.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from typing import Any

import torch
from torch import nn

from seqgen.importer.nodes import ImportRefused, Stack, layers_in_order
from seqgen.importer.run import source_of

FORMAT = "seqgen-keys/1"


def _own_state(module: nn.Module) -> dict[str, torch.Tensor]:
    return module.state_dict() if not list(module.children()) else {}


def key_mapping(stack: Stack, original: nn.Module, generated: nn.Module) -> dict[str, str]:
    """{original key: generated key} for every entry of the original's state_dict."""
    origins = [layer.origin for layer in layers_in_order(stack) if layer.origin is not None]
    origins = [o for o in origins if _own_state(original.get_submodule(o))]
    twice = sorted({o for o in origins if origins.count(o) > 1})
    if twice:
        raise ImportRefused(
            f"module `{twice[0]}` is called more than once in the forward (shared weights); "
            "a spec layer has its own weights",
            hint="give each call its own module",
        )
    ours = [(q, original.get_submodule(q)) for q in origins]
    theirs = [(q, m) for q, m in generated.named_modules() if _own_state(m)]
    if len(ours) != len(theirs):
        raise ImportRefused(
            f"internal mismatch: {len(ours)} layers with weights in the original's forward, "
            f"{len(theirs)} in the generated model"
        )
    mapping: dict[str, str] = {}
    for (q, m), (g, n) in zip(ours, theirs, strict=True):
        a, b = _own_state(m), _own_state(n)
        same = type(m) is type(n) and {k: v.shape for k, v in a.items()} == {
            k: v.shape for k, v in b.items()
        }
        if not same:
            raise ImportRefused(
                f"module `{q}` (nn.{type(m).__name__}) does not match the generated `{g}` "
                f"(nn.{type(n).__name__}): the weights cannot be carried over"
            )
        for k in a:
            mapping[_join(q, k)] = _join(g, k)
    missing = [k for k in original.state_dict() if k not in mapping]
    if missing:
        unused = _unused_module(original, missing[0], origins)
        where = (
            f"{source_of(original.get_submodule(unused))}: "
            f"{type(original.get_submodule(unused)).__name__} (`{unused}`): "
            if unused
            else ""
        )
        raise ImportRefused(
            f"{where}the original's `{missing[0]}` ({len(missing)} keys in all) belongs to no "
            "layer that its forward runs, so the generated model has no place for it",
            hint="remove modules the forward does not use (auxiliary heads) before importing",
        )
    return {k: mapping[k] for k in original.state_dict()}


def _unused_module(original: nn.Module, key: str, used: list[str]) -> str:
    """The outermost module holding `key` that the forward never runs ("" if none)."""
    parts = key.split(".")[:-1]
    for i in range(1, len(parts) + 1):
        name = ".".join(parts[:i])
        if not any(o == name or o.startswith(name + ".") for o in used):
            return name
    return ""


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def load_generated(model_path: str, class_name: str) -> nn.Module:
    """The generated model, imported from its file and built on the CPU at its defaults."""
    name = f"seqgen_imported_{Path(model_path).stem}"
    spec = importlib.util.spec_from_file_location(name, model_path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
        model: nn.Module = getattr(module, class_name)()
    finally:
        sys.modules.pop(name, None)
    return model


def check_outputs(
    original: nn.Module, generated: nn.Module, mapping: dict[str, str], shape: tuple[int, ...]
) -> None:
    """Load the original's weights into the generated model through the mapping and compare
    the two in eval mode on a random sample: an import that computes anything else is refused."""
    generated.load_state_dict({mapping[k]: v for k, v in original.state_dict().items()})
    x = torch.randn(2, *shape, generator=torch.Generator().manual_seed(0))
    training = original.training
    try:
        with torch.no_grad():
            want, got = original.eval()(x), generated.eval()(x)
    finally:
        original.train(training)
    if got.shape != want.shape or not torch.allclose(got, want, rtol=1e-4, atol=1e-5):
        diff = (got - want).abs().max().item() if got.shape == want.shape else "shape"
        raise ImportRefused(
            f"internal mismatch: the generated model, with the original's weights, computes "
            f"another output (largest difference: {diff}); nothing was written",
            hint="please report it with the model's code",
        )


def keys_json(target: str, class_name: str, mapping: dict[str, str]) -> str:
    """The mapping file written beside the spec."""
    doc = {"format": FORMAT, "source": target, "model": class_name, "keys": mapping}
    return json.dumps(doc, indent=1) + "\n"


def remap(state_dict: dict[str, Any], keys_path: str | Path) -> dict[str, Any]:
    """The original's state_dict under the generated model's keys (for `load_state_dict`)."""
    doc = json.loads(Path(keys_path).read_text(encoding="utf-8"))
    if doc.get("format") != FORMAT:
        raise ImportRefused(f"{keys_path}: not a {FORMAT} mapping")
    keys: dict[str, str] = doc["keys"]
    unknown = [k for k in state_dict if k not in keys]
    if unknown:
        raise ImportRefused(f"{keys_path}: no mapping for `{unknown[0]}` ({len(unknown)} keys)")
    return {keys[k]: v for k, v in state_dict.items()}
