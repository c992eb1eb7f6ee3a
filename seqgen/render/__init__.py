"""Stage 3: TracedModel -> formatted Python source (the model module and its pytest file).

context.py computes what the templates place, helpers.py the helper classes copied in,
environment.py finds the templates, and budget.py decides whether the tests may allocate.
"""

from __future__ import annotations

import jinja2

from seqgen.errors import RenderError
from seqgen.ir import GeneratedFile, TracedModel
from seqgen.project.header import generated_files, templates_fingerprint
from seqgen.project.options import Options
from seqgen.project.templates import templates_root
from seqgen.render.context import model_context, test_context
from seqgen.render.environment import environment

__all__ = ["format_source", "render", "render_bodies"]


def format_source(source: str) -> str:
    """black with a fixed Mode, so output never depends on a user's configuration."""
    import black
    from black.mode import TargetVersion

    mode = black.Mode(target_versions={TargetVersion.PY311}, line_length=88)
    try:
        return black.format_str(source, mode=mode)
    except Exception as e:  # a template bug, never a user error
        raise RenderError(f"generated code does not parse: {e}") from e


def render_bodies(traced: TracedModel, options: Options) -> tuple[str, str]:
    """The formatted bodies of the model module and its test file, headers aside. Of the
    options they read only the templates and `Options.rendering_inputs` (the rendering cache's
    key relies on that)."""
    env = environment(options.templates_dir)
    bodies = []
    for template, context in (
        ("model.py.jinja", model_context(traced)),
        (
            "test_model_inputs.py.jinja" if traced.inputs else "test_model.py.jinja",
            test_context(traced, options),
        ),
    ):
        try:
            source = env.get_template(template).render(header=[], **context)
        except jinja2.TemplateError as e:
            raise RenderError(f"template {template} failed: {e}") from e
        bodies.append(format_source(source))
    model, test = bodies
    return model, test


def render(traced: TracedModel, options: Options, spec_hash: str) -> list[GeneratedFile]:
    """Render and format the model module and its test file; `spec_hash` goes in the header."""
    templates_hash = templates_fingerprint(templates_root(options.templates_dir))
    return generated_files(render_bodies(traced, options), options, spec_hash, templates_hash)
