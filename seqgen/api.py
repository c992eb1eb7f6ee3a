"""The library entry points the CLI calls: parse, trace, render, and the up-to-date check.

torch is imported only when a spec is actually traced (`seqgen --help` and an up-to-date
`--check` never import it).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from . import __version__
from .dsl import parse, read_spec
from .render import Options, fingerprint, module_stem, templates_fingerprint
from .spec import GeneratedFile, ModelSpec, TracedModel
from .write import body_of, recorded_fingerprint


@dataclass(frozen=True)
class Generated:
    """The result of running the pipeline on one spec."""

    traced: TracedModel
    files: tuple[GeneratedFile, ...]


def options_for(spec_path: str, out_dir: str | None = None, tests_dir: str | None = None,
                templates_dir: str | None = None) -> Options:
    """Where a spec's outputs go: next to the spec unless told otherwise."""
    out = out_dir if out_dir is not None else str(Path(spec_path).parent)
    return Options(
        module_stem=module_stem(spec_path),
        out_dir=out,
        tests_dir=tests_dir if tests_dir is not None else out,
        spec_name=Path(spec_path).name,
        templates_dir=templates_dir,
    )


def spec_key(spec_text: str, options: Options, input_override: str | None) -> str:
    """What the outputs depend on besides the templates: spec, version and layout options."""
    rel = os.path.relpath(options.out_dir, options.tests_dir)
    return fingerprint("\0".join([__version__, spec_text, input_override or "", Path(rel).as_posix(),
                                  options.module_stem]))


def load(spec_path: str, input_override: str | None = None) -> tuple[str, ModelSpec]:
    """Read and parse a spec file."""
    text = read_spec(spec_path)
    return text, parse(text, spec_path, input_override=input_override)


def trace_spec(spec: ModelSpec, device: str | None = None) -> TracedModel:
    """Trace symbolically; with `device`, also run a real forward there and compare."""
    from .compat import check_torch

    check_torch()  # before the first torch import: an unverified torch fails with one line
    from .confirm import verify_on_device
    from .trace import trace

    traced = trace(spec)
    if device is not None:
        verify_on_device(traced, device)
    return traced


def traced_spec(spec_path: str, input_override: str | None = None,
                device: str | None = None) -> tuple[str, TracedModel]:
    """Read, parse and trace a spec file, reusing a cached trace when nothing it depends on
    changed (then torch is never imported). `device` always traces and runs for real."""
    from . import cache

    text, spec = load(spec_path, input_override)
    cache_key = cache.key(spec_path, text, input_override)
    if device is None:
        cached = cache.load(cache_key)
        if cached is not None and cached.spec == spec:
            return text, cached
    traced = trace_spec(spec, device)
    cache.store(cache_key, traced)
    return text, traced


def generate(spec_path: str, options: Options, input_override: str | None = None,
             device: str | None = None) -> Generated:
    """Parse, trace and render one spec (writes nothing)."""
    from .render import render

    text, traced = traced_spec(spec_path, input_override, device)
    files = render(traced, options, spec_key(text, options, input_override))
    return Generated(traced, tuple(files))


def output_paths(options: Options) -> tuple[str, str]:
    """The model module and test file a spec generates."""
    return (str(Path(options.out_dir) / f"{options.module_stem}.py"),
            str(Path(options.tests_dir) / f"test_{options.module_stem}.py"))


def is_up_to_date(spec_path: str, options: Options, input_override: str | None = None) -> bool:
    """True when both outputs exist, untouched, and were made from this spec, version and templates.

    Reads headers only: no torch import, no trace.
    """
    try:
        text = read_spec(spec_path)
    except Exception:
        return False
    want_spec = spec_key(text, options, input_override)
    want_templates = templates_fingerprint(options.templates_dir)
    for path in output_paths(options):
        try:
            current = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            return False
        recorded = recorded_fingerprint(current)
        if (recorded.get("spec") != want_spec or recorded.get("templates") != want_templates
                or recorded.get("body") != fingerprint(body_of(current))):
            return False
    return True
