"""The library entry points the CLI calls: parse, trace, render, and the up-to-date check.

torch is imported only when a spec is actually traced (`seqgen --help` and an up-to-date
`--check` never import it).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path

from seqgen import __version__
from seqgen.errors import raise_all
from seqgen.ir import GeneratedFile, ModelSpec, TracedModel
from seqgen.lang.parser import parse_partial, read_spec
from seqgen.project.layout import Layout, Recorded, package_of, relative
from seqgen.project.layout import project_root as find_project_root
from seqgen.project.write import body_of, recorded_fingerprint
from seqgen.render.context import Options, fingerprint, module_stem, templates_fingerprint


@dataclass(frozen=True)
class Generated:
    """The result of running the pipeline on one spec."""

    traced: TracedModel
    files: tuple[GeneratedFile, ...]


def options_for(
    spec_path: str,
    out_dir: str | None = None,
    tests_dir: str | None = None,
    templates_dir: str | None = None,
    input_override: str | None = None,
    project_root: Path | None = None,
) -> Options:
    """Where a spec's outputs go (next to the spec unless told otherwise), and what the headers
    record about it, relative to the project root (found from the spec unless given)."""
    out = out_dir if out_dir is not None else str(Path(spec_path).parent)
    tests = tests_dir if tests_dir is not None else out
    root = (
        project_root if project_root is not None else find_project_root(Path(spec_path).parent)[0]
    )
    stem = module_stem(spec_path)
    package = package_of(Path(out))
    # pytest (prepend mode) names a test module after its file when its folder is no package:
    # two models `cnn` in two packages would both get `test_cnn` there, so name it in full
    test_stem = (
        "test_" + "_".join((*package, stem))
        if package and not package_of(Path(tests))
        else f"test_{stem}"
    )
    layout = Layout(
        spec=relative(Path(spec_path), root),
        out=relative(Path(out), root),
        tests=relative(Path(tests), root),
        module=stem,
        test=test_stem,
        input=input_override,
        templates=relative(Path(templates_dir), root) if templates_dir is not None else None,
    )
    return Options(
        module_stem=stem,
        out_dir=out,
        tests_dir=tests,
        layout=layout,
        package=package,
        test_stem=test_stem,
        templates_dir=templates_dir,
        input_override=input_override,
    )


def recorded_options(recorded: Recorded) -> tuple[str, Options]:
    """The spec a generated file was made from and the options it was made with, read back
    from its header (paths relative to the current directory where possible)."""
    root, layout = recorded.root, recorded.layout

    def here(rel: str) -> str:
        path = Path(os.path.normpath(root / rel))
        try:
            return os.path.relpath(path)
        except ValueError:  # another drive (Windows)
            return str(path)

    spec = here(layout.spec)
    return spec, options_for(
        spec,
        here(layout.out),
        here(layout.tests),
        here(layout.templates) if layout.templates is not None else None,
        layout.input,
        project_root=root,
    )


def spec_key(spec_text: str, options: Options) -> str:
    """What the outputs depend on besides the templates: spec, version, layout and imports."""
    return fingerprint(
        "\0".join([__version__, spec_text, options.layout.record(), options.model_import])
    )


def load(spec_path: str, input_override: str | None = None) -> tuple[str, ModelSpec]:
    """Read and parse a spec file.

    With syntax errors, the lines that did parse are bound to their torch.nn classes too, so a
    single run reports every parse and binding error (torch is imported on this error path only).
    """
    text = read_spec(spec_path)
    spec, errors = parse_partial(text, spec_path, input_override=input_override)
    if errors:
        from seqgen.layers.preflight import layer_errors

        raise_all(errors + (layer_errors(spec.layers, spec.blocks) if spec is not None else []))
    assert spec is not None
    return text, spec


def trace_spec(spec: ModelSpec, device: str | None = None) -> TracedModel:
    """Trace symbolically; with `device`, also run a real forward there and compare."""
    from seqgen.torch_version import check_torch

    check_torch()  # before the first torch import: an unverified torch fails with one line
    from seqgen.check.realize import verify_on_device
    from seqgen.layers.preflight import quiet_torch_warnings
    from seqgen.trace.model import trace

    traced = trace(spec)
    if device is not None:
        with quiet_torch_warnings():  # lint says it, located in the spec
            verify_on_device(traced, device)
    return traced


def traced_spec(
    spec_path: str, input_override: str | None = None, device: str | None = None
) -> tuple[str, TracedModel]:
    """Read, parse and trace a spec file, reusing a cached trace when nothing it depends on
    changed (then torch is never imported). `device` always traces and runs for real."""
    from seqgen.project import cache

    text, spec = load(spec_path, input_override)
    cache_key = cache.key(spec_path, text, input_override)
    if device is None:
        cached = cache.load(cache_key)
        if cached is not None and cached.spec == spec:
            return text, cached
    traced = trace_spec(spec, device)
    cache.store(cache_key, traced)
    return text, traced


def generate(spec_path: str, options: Options, device: str | None = None) -> Generated:
    """Parse, trace and render one spec (writes nothing)."""
    from seqgen.render.context import render

    text, traced = traced_spec(spec_path, options.input_override, device)
    source = str(Path(spec_path).resolve())  # which spec owns the files (never written)
    files = [replace(f, source=source) for f in render(traced, options, spec_key(text, options))]
    return Generated(traced, tuple(files))


def output_paths(options: Options) -> tuple[str, str]:
    """The model module and test file a spec generates."""
    return (
        str(Path(options.out_dir) / f"{options.module_stem}.py"),
        str(Path(options.tests_dir) / f"{options.test_stem}.py"),
    )


def is_up_to_date(spec_path: str, options: Options) -> bool:
    """True when both outputs exist, untouched, and were made from this spec, version and templates.

    Reads headers only: no torch import, no trace.
    """
    try:
        text = read_spec(spec_path)
    except Exception:
        return False
    want_spec = spec_key(text, options)
    want_templates = templates_fingerprint(options.templates_dir)
    for path in output_paths(options):
        try:
            current = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            return False
        recorded = recorded_fingerprint(current)
        if (
            recorded.get("spec") != want_spec
            or recorded.get("templates") != want_templates
            or recorded.get("body") != fingerprint(body_of(current))
        ):
            return False
    return True
