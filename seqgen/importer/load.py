"""`MODULE:CALLABLE` to a model instance: import the module (a dotted name, or a `.py` path),
find the callable, and call it (a class or a factory) with the `--arg k=v` values."""

from __future__ import annotations

import ast
import importlib
import importlib.util
import sys
from pathlib import Path

from torch import nn

from seqgen.importer.nodes import ImportRefused


def parse_args(pairs: tuple[str, ...]) -> dict[str, object]:
    """`k=v` pairs, each value a Python literal (`10`, `'relu'`, `(6, 12)`) or else a string."""
    out: dict[str, object] = {}
    for pair in pairs:
        key, eq, text = pair.partition("=")
        if not eq or not key.strip().isidentifier():
            raise ImportRefused(
                f"--arg {pair!r} is not KEY=VALUE", hint="e.g. --arg num_classes=10"
            )
        try:
            out[key.strip()] = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            out[key.strip()] = text
    return out


def _module(name: str) -> object:
    if name.endswith(".py") or "/" in name:
        path = Path(name).resolve()
        if not path.is_file():
            raise ImportRefused(f"{name}: no such file")
        module_name = f"seqgen_import_{path.stem}"
        spec = importlib.util.spec_from_file_location(module_name, path)
        if spec is None or spec.loader is None:
            raise ImportRefused(f"{name}: cannot be loaded as a Python module")
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module  # dataclasses and pickling look modules up by name
        spec.loader.exec_module(module)
        return module
    if "" not in sys.path and str(Path.cwd()) not in sys.path:
        sys.path.insert(0, str(Path.cwd()))  # as `python -m` finds the user's modules
    return importlib.import_module(name)


def instantiate(target: str, kwargs: dict[str, object]) -> tuple[nn.Module, str]:
    """The model `MODULE:CALLABLE(**kwargs)` builds, and the callable's name."""
    module_name, colon, attr = target.rpartition(":")
    if not colon or not module_name or not attr:
        raise ImportRefused(
            f"{target!r} is not MODULE:CALLABLE",
            hint="e.g. `torchvision.models:resnet18` or `models/net.py:Net`",
        )
    try:
        found: object = _module(module_name)
        for part in attr.split("."):
            found = getattr(found, part)
        model = found(**kwargs) if callable(found) else found
    except ImportRefused:
        raise
    except Exception as e:
        raise ImportRefused(
            f"{target}: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}",
            hint="check the module path and the --arg values",
        ) from e
    if not isinstance(model, nn.Module):
        raise ImportRefused(f"{target} gave a {type(model).__name__}, not an nn.Module")
    return model, attr.split(".")[-1]
