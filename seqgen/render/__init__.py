"""Stage 3: TracedModel -> formatted Python source (the model module and its pytest file).

context.py computes what the templates place, helpers.py the helper classes copied in,
environment.py finds the templates, and budget.py decides whether the tests may allocate.
"""

from __future__ import annotations

from pathlib import Path

import jinja2

from seqgen.errors import RenderError
from seqgen.ir import GeneratedFile, TracedModel
from seqgen.project.header import templates_fingerprint, with_header
from seqgen.project.options import Options
from seqgen.project.templates import templates_root
from seqgen.render.context import model_context, test_context
from seqgen.render.environment import environment

__all__ = ["format_source", "render"]


def format_source(source: str) -> str:
    """black with a fixed Mode, so output never depends on a user's configuration."""
    import black
    from black.mode import TargetVersion

    mode = black.Mode(target_versions={TargetVersion.PY311}, line_length=88)
    try:
        return black.format_str(source, mode=mode)
    except Exception as e:  # a template bug, never a user error
        raise RenderError(f"generated code does not parse: {e}") from e


def render(traced: TracedModel, options: Options, spec_hash: str) -> list[GeneratedFile]:
    """Render and format the model module and its test file; `spec_hash` goes in the header."""
    env = environment(options.templates_dir)
    templates_hash = templates_fingerprint(templates_root(options.templates_dir))
    files = []
    for template, directory, name, context in (
        ("model.py.jinja", options.out_dir, f"{options.module_stem}.py", model_context(traced)),
        (
            "test_model_inputs.py.jinja" if traced.inputs else "test_model.py.jinja",
            options.tests_dir,
            f"{options.test_stem}.py",
            test_context(traced, options),
        ),
    ):
        try:
            source = env.get_template(template).render(header=[], **context)
        except jinja2.TemplateError as e:
            raise RenderError(f"template {template} failed: {e}") from e
        body = format_source(source)
        text = with_header(body, options.layout, spec_hash, templates_hash)
        files.append(GeneratedFile(str(Path(directory) / name), text))
    return files
