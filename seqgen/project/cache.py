"""A cache of traces, so `check`, `summary` and `new` on an unchanged spec never import torch.

A TracedModel is frozen plain dataclasses, stored as tagged JSON under the user's cache
directory. The key covers everything a trace depends on: the spec's meaning (lang/canonical.py:
its tokens, not its comments or spacing) and path, `--input`, the torch version (read from
package metadata, not by importing torch) and the bytes of seqgen's own source, so any change
to seqgen or torch misses the cache.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import os
from functools import cache
from importlib import metadata
from pathlib import Path
from types import ModuleType
from typing import Any

from seqgen import errors, ir
from seqgen.lang.canonical import canonical_spec
from seqgen.project.write import write_atomic

FORMAT = "2"
_log = logging.getLogger(__name__)


def _dataclasses(*modules: ModuleType) -> dict[str, type]:
    """Every dataclass these modules define or re-export, by class name (what _encode writes;
    tests/test_cache.py checks that no two share a name)."""
    return {
        value.__name__: value
        for module in modules
        for value in vars(module).values()
        if isinstance(value, type) and dataclasses.is_dataclass(value)
    }


# The classes a cached trace may hold: the IR, and the diagnostics inside it
_TYPES = _dataclasses(ir, errors)


def cache_dir() -> Path | None:
    """Where traces are kept; None when caching is off (SEQGEN_NO_CACHE=1)."""
    if os.environ.get("SEQGEN_NO_CACHE"):
        return None
    if os.environ.get("SEQGEN_CACHE_DIR"):
        return Path(os.environ["SEQGEN_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "seqgen"


@cache
def _code_fingerprint() -> str:
    """seqgen's source and the torch version: a change to either is a different tracer."""
    h = hashlib.sha256(FORMAT.encode())
    root = Path(__file__).resolve().parent.parent  # the seqgen package
    # recursive: the tracer lives in subpackages, and runtime/ is copied into outputs
    for path in sorted(root.rglob("*.py")):
        h.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes())
    with contextlib.suppress(metadata.PackageNotFoundError):
        h.update(metadata.version("torch").encode())
    return h.hexdigest()


def key(spec_path: str, spec_text: str, input_override: str | None) -> str:
    """The cache key of one trace: the spec as the header's fingerprint sees it (comments and
    spacing aside); `api.traced_spec` still compares the cached spec with the parsed one."""
    parts = [_code_fingerprint(), spec_path, canonical_spec(spec_text), input_override or ""]
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:32]


def load(cache_key: str) -> ir.TracedModel | None:
    """The cached trace, or None (missing, unreadable, or from another format)."""
    traced = _load(cache_key)
    return traced if isinstance(traced, ir.TracedModel) else None


def store(cache_key: str, traced: ir.TracedModel) -> None:
    """Keep a trace; a cache that cannot be written is skipped (it is only a cache), with a
    debug-level log message saying why."""
    _store(cache_key, traced, "trace")


def render_key(trace_key: str, *parts: str) -> str:
    """The cache key of one rendering's bodies: the trace's key, and what else the bodies
    depend on (the templates and their folder, `Options.rendering_inputs`, black's version).
    Not the headers' spec key or layout: the headers are written after, so a rendering cached
    for one output folder serves another."""
    with contextlib.suppress(metadata.PackageNotFoundError):
        parts = (*parts, metadata.version("black"))
    return hashlib.sha256("\0".join(("bodies", trace_key, *parts)).encode()).hexdigest()[:32]


def load_bodies(cache_key: str) -> tuple[str, str] | None:
    """The bodies a rendering gave (model module, test file), or None: a cached run writes
    its files again without importing jinja2 or black."""
    bodies = _load(cache_key)
    if isinstance(bodies, tuple) and len(bodies) == 2 and all(isinstance(b, str) for b in bodies):
        return bodies[0], bodies[1]
    return None


def store_bodies(cache_key: str, bodies: tuple[str, str]) -> None:
    """Keep a rendering's bodies (as `store` keeps a trace)."""
    _store(cache_key, bodies, "rendering")


def _load(cache_key: str) -> Any:
    root = cache_dir()
    if root is None:
        return None
    try:
        data = json.loads((root / f"{cache_key}.json").read_text(encoding="utf-8"))
        return _decode(data)
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _store(cache_key: str, value: Any, what: str) -> None:
    root = cache_dir()
    if root is None:
        return
    try:
        write_atomic(root / f"{cache_key}.json", json.dumps(_encode(value), separators=(",", ":")))
    except errors.SeqgenError as e:
        _log.debug("%s not cached: %s", what, e)


def _encode(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        out = {"__t": type(value).__name__}
        out.update({f.name: _encode(getattr(value, f.name)) for f in dataclasses.fields(value)})
        return out
    if isinstance(value, tuple):
        return [_encode(v) for v in value]
    return value


def _decode(value: Any) -> Any:
    if isinstance(value, dict):
        cls = _TYPES[value["__t"]]
        return cls(**{k: _decode(v) for k, v in value.items() if k != "__t"})
    if isinstance(value, list):
        return tuple(_decode(v) for v in value)
    return value
