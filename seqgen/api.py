"""The library entry points the CLI calls: parse, trace, render, and the up-to-date check.

torch is imported only when a spec is actually traced (`seqgen --help` and an up-to-date
`--check` never import it).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from seqgen.errors import InternalError, SeqgenError, SpecReadError, WriteError, raise_all
from seqgen.ir import GeneratedFile, ModelSpec, TracedModel
from seqgen.ir.spec import Num
from seqgen.lang.parser import parse_partial, read_spec
from seqgen.lang.uses import allow_errors, allowed_modules, allowing, is_use_line
from seqgen.project import cache
from seqgen.project.config import allowed_imports
from seqgen.project.header import (
    generated_files,
    is_current,
    spec_key,
    templates_fingerprint,
)
from seqgen.project.options import Options, options_for, output_paths, recorded_options
from seqgen.project.templates import templates_root

__all__ = [
    "Generated",
    "Imported",
    "Options",
    "diagram",
    "generate",
    "import_model",
    "import_to_files",
    "is_up_to_date",
    "load",
    "options_for",
    "output_paths",
    "recorded_options",
    "trace_spec",
    "traced_spec",
]


@dataclass(frozen=True)
class Generated:
    """The result of running the pipeline on one spec."""

    traced: TracedModel
    files: tuple[GeneratedFile, ...]


def load(spec_path: str, input_override: str | None = None) -> tuple[str, ModelSpec]:
    """Read and parse a spec file.

    With syntax errors, the lines that did parse are bound to their torch.nn classes too, so a
    single run reports every parse and binding error (torch is imported on this error path only).
    """
    text = read_spec(spec_path)
    spec, errors = parse_partial(text, spec_path, input_override=input_override)
    if errors:
        from seqgen.layers.preflight import layer_errors
        from seqgen.trace.model import errors_before

        if spec is not None:
            first = min((e.location.line for e in errors if e.location is not None), default=0)
            errors += layer_errors((*spec.layers, *spec.head_nodes), spec.blocks) + errors_before(
                spec, first
            )
        raise_all(errors)
    if spec is None:  # an assert would vanish under -O
        raise InternalError(f"internal error: parsing {spec_path} gave neither a spec nor an error")
    return text, spec


def trace_spec(spec: ModelSpec, device: str | None = None) -> TracedModel:
    """Trace symbolically; with `device`, also run a real forward there and compare. `use`
    lines import what the run allows (`traced_spec`), and what the spec's project allows."""
    from seqgen.torch_version import check_torch

    check_torch()  # before the first torch import: an unverified torch fails with one line
    from seqgen.check.realize import verify_on_device
    from seqgen.layers.preflight import quiet_torch_warnings
    from seqgen.trace.model import trace

    with allowing(allowed_modules() | allowed_imports(spec.path)):
        traced = trace(spec)
        if device is not None:
            with quiet_torch_warnings():  # lint says it, located in the spec
                verify_on_device(traced, device)
    return traced


def traced_spec(
    spec_path: str,
    input_override: str | None = None,
    device: str | None = None,
    allow_imports: Sequence[str] = (),
) -> tuple[str, TracedModel]:
    """Read, parse and trace a spec file, reusing a cached trace when nothing it depends on
    changed (then torch is never imported). `device` always traces and runs for real. `use`
    lines import only the modules the spec's project allows, and `allow_imports`."""
    with allowing(allowed_imports(spec_path) | set(allow_imports)):
        text, spec = load(spec_path, input_override)
        raise_all(allow_errors(spec.uses, allowed_modules()))
        cache_key = cache.key(spec_path, text, input_override)
        # a user's class may change without the spec changing: never reuse its trace
        if device is None and not spec.uses:
            cached = cache.load(cache_key)
            if cached is not None and cached.spec == spec:
                return text, cached
        traced = trace_spec(spec, device)
    if not spec.uses:  # never served (above): not kept either
        cache.store(cache_key, traced)
    return text, traced


def generate(
    spec_path: str, options: Options, device: str | None = None, allow_imports: Sequence[str] = ()
) -> Generated:
    """Parse, trace and render one spec (writes nothing)."""
    text, traced = traced_spec(spec_path, options.input_override, device, allow_imports)
    source = str(Path(spec_path).resolve())  # which spec owns the files (never written)
    templates = templates_fingerprint(templates_root(options.templates_dir))
    trace_key = cache.key(spec_path, text, options.input_override)
    render_key = cache.render_key(
        trace_key, templates, str(options.templates_dir), options.rendering_inputs()
    )
    # a spec with `use` lines is traced every time (its classes may change): so is it rendered
    cached = not traced.spec.uses
    bodies = cache.load_bodies(render_key) if cached else None
    if bodies is None:
        from seqgen.render import render_bodies  # jinja2 and black: only when rendering

        bodies = render_bodies(traced, options)
        if cached:
            cache.store_bodies(render_key, bodies)
    # the headers (layout, spec key) are never cached: one rendering serves every layout
    files = generated_files(bodies, options, spec_key(text, options), templates)
    return Generated(traced, tuple(replace(f, source=source) for f in files))


def diagram(
    spec_path: str,
    fmt: str = "mermaid",
    at: Sequence[str] = (),
    expand: bool = False,
    input_override: str | None = None,
    markdown: bool = False,
    allow_imports: Sequence[str] = (),
) -> str:
    """The network of a spec drawn from its trace, nothing run: Mermaid, SVG or dot text; with
    `markdown`, a Markdown page holding the Mermaid in a ```mermaid block."""
    from seqgen import diagram as diagrams  # only `seqgen diagram` draws

    _, traced = traced_spec(spec_path, input_override, allow_imports=allow_imports)
    if markdown:
        return diagrams.markdown(diagrams.build(traced, at, expand), Path(spec_path).name)
    return diagrams.draw(traced, fmt, at, expand)


def is_up_to_date(spec_path: str, options: Options) -> bool:
    """True when both outputs exist, untouched, and were made from this spec, version and templates.

    Reads headers only: no torch import, no trace. Never for a spec with `use` lines: what the
    outputs say of a class of the user's (its shapes, its parameter count) depends on its code,
    which no header records, so such a spec is traced every time and its files rewritten only
    where they differ.
    """
    try:
        text = read_spec(spec_path)
    except SpecReadError:  # not up to date: `generate` reports the error
        return False
    if any(map(is_use_line, text.splitlines())):  # its class may change while the spec does not
        return False
    want_spec = spec_key(text, options)
    want_templates = templates_fingerprint(templates_root(options.templates_dir))
    for path in output_paths(options):
        try:
            current = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            return False
        if not is_current(current, want_spec, want_templates):
            return False
    return True


@dataclass(frozen=True)
class Imported:
    """A model brought in by `seqgen import`: its spec, and how its weights map."""

    spec_text: str
    keys_text: str  # the `<stem>.keys.json` mapping, {original key: generated key}
    class_name: str
    how: str  # "torch.fx", or the modules read from forward hooks and why
    blocks: int
    total_params: int


def keys_path(spec_path: str) -> str:
    """Where `seqgen import` writes the weights mapping: beside the spec, `<stem>.keys.json`."""
    return str(Path(spec_path).with_suffix(".keys.json"))


def import_model(
    target: str, input_shape: str, spec_path: str, arg_pairs: tuple[str, ...] = ()
) -> Imported:
    """Capture MODULE:CALLABLE as a spec, check that seqgen traces and generates it, map the
    original's state_dict keys to the generated model's, and check that the generated model
    with the original's weights computes the same outputs (writes nothing)."""
    import tempfile

    from seqgen.torch_version import check_torch

    check_torch()
    from seqgen.importer import (
        capture,
        check_outputs,
        key_mapping,
        keys_json,
        load_generated,
        parse_args,
    )
    from seqgen.lang.parser import parse, parse_shape

    sizes, _ = parse_shape(input_shape)
    shape = tuple(d.value for d in sizes if isinstance(d, Num) and isinstance(d.value, int))
    if len(shape) != len(sizes):
        raise SpecReadError(f"--input {input_shape}: give plain sizes, e.g. 3x224x224")
    draft = capture(target, shape, parse_args(arg_pairs))
    with tempfile.TemporaryDirectory() as tmp:
        path = str(Path(tmp) / Path(spec_path).name)
        options = options_for(path, tmp, project_root=Path(tmp))
        try:
            from seqgen.render import render

            traced = trace_spec(parse(draft.text, path))
            files = render(traced, options, spec_key(draft.text, options))
        except InternalError:
            raise  # a bug in seqgen, not in the model: reported as one
        except SeqgenError as e:
            raise draft.relocate(e) from e
        for f in files:
            Path(f.path).write_text(f.text, encoding="utf-8")
        generated = load_generated(output_paths(options)[0], traced.spec.class_name)
    mapping = key_mapping(draft.stack, draft.model, generated)
    check_outputs(draft.model, generated, mapping, shape)
    return Imported(
        draft.text,
        keys_json(target, draft.class_name, mapping),
        draft.class_name,
        draft.how,
        len(draft.blocks),
        int(traced.total_params.value),
    )


def import_to_files(
    target: str,
    input_shape: str,
    spec_path: str | None = None,
    arg_pairs: tuple[str, ...] = (),
    force: bool = False,
) -> str:
    """`seqgen import`: write the spec (default `CALLABLE.seq`) and its `<stem>.keys.json`,
    never over existing files without `force`; return what to tell the user."""
    from seqgen.project.write import write_atomic

    path = spec_path or f"{target.rpartition(':')[2].split('.')[-1]}.seq"
    keys = keys_path(path)
    existing = [p for p in (path, keys) if Path(p).exists()]
    if existing and not force:
        raise WriteError(f"{existing[0]} already exists; left unchanged (--force overwrites it)")
    result = import_model(target, input_shape, path, arg_pairs)
    write_atomic(path, result.spec_text)
    write_atomic(keys, result.keys_text)
    lines = len(result.spec_text.splitlines())
    blocks = f"{result.blocks} block{'' if result.blocks == 1 else 's'}"
    return (
        f"wrote {path} ({result.class_name}: {lines} lines, {blocks}, "
        f"{result.total_params:,} parameters) and {keys}; captured with {result.how}\n"
        f"next: seqgen new {path}"
    )
