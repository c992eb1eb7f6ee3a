"""The command line: parse options, call the library, turn SeqgenErrors into messages and exits.

Keep imports here light: `seqgen --help` must not import torch (the pipeline imports it lazily).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

import click

from seqgen import __version__
from seqgen.cli.importing import import_command
from seqgen.cli.new import new_one
from seqgen.cli.program import Program, spec_done
from seqgen.errors import Exit, InternalError, OutputConflict, SeqgenError, TorchVersionError
from seqgen.lang.starters import KINDS
from seqgen.project.discover import expand_specs
from seqgen.project.plan import Stray, plan

DEVICES = click.Choice(["meta", "cpu", "cuda"])
BUG_REPORT = (
    "seqgen bug: this is a bug in seqgen, not a problem in your spec; please report it with "
    "the spec and the output of `seqgen --version`"
)
T = TypeVar("T")
ALLOW_IMPORT = click.option(
    "--allow-import",
    "allow_imports",
    multiple=True,
    metavar="MODULE",
    help="Let `use` lines import MODULE (repeatable; also [tool.seqgen] allow-imports).",
)


def _err(message: str) -> None:
    click.echo(message, err=True)


def _report(e: SeqgenError) -> Exit:
    """Print an error as the CLI shows it; return the exit code it calls for."""
    _err(e.render())
    if isinstance(e, InternalError):
        _err(BUG_REPORT)
        return Exit.INTERNAL
    return Exit.SPEC_ERROR


def _each(
    items: Sequence[T], spec_of: Callable[[T], str], work: Callable[[T], int]
) -> tuple[int, Exit]:
    """Run `work` on every item, with progress; report each SeqgenError and go on.

    Return the sum of what `work` returned and the exit code the errors call for (the worst).
    A torch outside the verified range ends the run at once: it is the same for every spec.
    """
    total, code = 0, Exit.OK
    for i, item in enumerate(items, start=1):
        if len(items) > 3:
            _err(f"[{i}/{len(items)}] {spec_of(item)}")
        try:
            total += work(item)
        except SeqgenError as e:
            code = max(code, _report(e))
            if isinstance(e, TorchVersionError):
                sys.exit(code)  # say it once
        finally:
            spec_done()  # the garbage collector, paused for the first spec, runs again
    return total, code


@click.group(cls=Program, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="seqgen")
def main() -> None:
    """Generate shape-checked PyTorch nn.Sequential models, and their tests, from a layer spec.

    \b
    The spec language: README.md, sections "The spec language" and "Blocks, residuals and
    branches"; `seqgen init NAME` writes a commented starter spec. A project's defaults go in
    [tool.seqgen] of its pyproject.toml (README.md, "Use it in your project").
    \b
    Exit codes: 0 success; 1 a problem in a spec (or, with --check, stale output);
    2 bad command-line usage; 3 a bug in seqgen (please report it).
    """


def _expand(specs: tuple[str, ...]) -> list[str]:
    """The specs the arguments mean (globs, folders, none: the project's); exit 2 if none."""
    try:
        paths = expand_specs(specs)
    except SeqgenError as e:  # the project's [tool.seqgen] table
        sys.exit(_report(e))
    if not paths:
        where = " or ".join(specs) if specs else "this project (see [tool.seqgen] specs)"
        raise click.UsageError(f"no .seq spec found in {where}")
    return paths


SPECS_HELP = (
    "SPEC may be files, quoted globs or folders (every .seq below it); with none, every spec "
    "of the project (below the `specs` folders of [tool.seqgen], else the project root)."
)


@main.command()
@click.argument("specs", nargs=-1)
@click.option(
    "-o",
    "--out-dir",
    type=click.Path(file_okay=False),
    help="Directory for <stem>.py (default: next to the spec).",
)
@click.option(
    "--tests-dir",
    type=click.Path(file_okay=False),
    help="Directory for the test file (default: the output directory).",
)
@click.option(
    "--input",
    "input_shape",
    metavar="SHAPE",
    help="Override the spec's `input` line, e.g. 3x64x64 or '(1, seq_len=100)'.",
)
@click.option(
    "--device",
    type=DEVICES,
    help="Also build the model for real on this device and compare shapes.",
)
@click.option(
    "--check",
    "check_only",
    is_flag=True,
    help="Write nothing; exit 1 if any output would change (lists them).",
)
@click.option("--diff", is_flag=True, help="Write nothing; print the unified diff of each change.")
@click.option("--force", is_flag=True, help="Overwrite generated files that were edited by hand.")
@click.option("--prune", is_flag=True, help="Remove generated files whose spec no longer exists.")
@click.option(
    "--templates",
    "templates_dir",
    type=click.Path(file_okay=False, exists=True),
    help="Render with the templates in DIR (model.py.jinja, test_model.py.jinja).",
)
@ALLOW_IMPORT
@click.option("-q", "--quiet", is_flag=True, help="Do not print the shape table.")
def new(
    specs: tuple[str, ...],
    out_dir: str | None,
    tests_dir: str | None,
    input_shape: str | None,
    device: str | None,
    check_only: bool,
    diff: bool,
    force: bool,
    prune: bool,
    templates_dir: str | None,
    allow_imports: tuple[str, ...],
    quiet: bool,
) -> None:
    """Generate <stem>.py and its test file from each SPEC.

    \b
    With none of -o, --tests-dir, --input, --templates, each spec's outputs go where its
    generated files' headers say they went (the first time: where [tool.seqgen] says, else
    next to the spec). A generated .py file as SPEC stands for its spec; other .py files are
    skipped. SPEC may be a folder (its specs); with no SPEC, every spec of the project.
    """
    if check_only and diff:
        raise click.UsageError(
            "--check and --diff both write nothing; give one (--diff also lists what would change)"
        )
    if force and (check_only or diff):
        raise click.UsageError("--force writes files; --check and --diff write nothing")
    paths = _expand(specs)
    if input_shape is not None and len([p for p in paths if not p.endswith(".py")]) > 1:
        raise click.UsageError(
            f"--input overrides the input of one spec; {len(paths)} specs were given"
        )
    try:
        run = plan(paths, out_dir, tests_dir, input_shape, templates_dir)
    except OutputConflict as e:
        raise click.UsageError(e.diagnostic.message + f" ({e.diagnostic.hint})") from None
    except SeqgenError as e:  # the project's [tool.seqgen] table
        sys.exit(_report(e))
    dry = check_only or diff
    stale, code = _each(
        run.jobs,
        lambda job: job.spec_path,
        lambda job: new_one(job, device, dry, diff, force, quiet, allow_imports),
    )
    stale += len(run.strays)
    code = max(code, _strays(run.strays, prune and not dry, force))
    if code == Exit.OK and dry and stale:
        code = Exit.SPEC_ERROR
    if code == Exit.OK and dry:
        n = len(run.jobs)
        click.echo(f"seqgen: {n} spec{'s' if n != 1 else ''} checked, every output up to date")
    if code != Exit.OK:
        sys.exit(code)


def _strays(strays: tuple[Stray, ...], remove: bool, force: bool) -> Exit:
    """Report (or, with --prune, remove) generated files no spec of the run will rewrite;
    return the exit code a file that could not be removed calls for."""
    from seqgen.project.write import remove_generated

    code = Exit.OK
    for stray in strays:
        shown = _shown(stray.recorded.path)
        if not remove:
            _err(f"{shown}: {stray.reason}; --prune removes it (`seqgen new --prune`)")
            continue
        try:
            remove_generated(stray.recorded.path, force=force)
            click.echo(f"removed {shown}: {stray.reason}")
        except SeqgenError as e:
            code = max(code, _report(e))
    return code


def _shown(path: Path) -> str:
    """A path as messages show it: relative to the current directory when it is below it."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


@main.command(epilog=SPECS_HELP)
@click.argument("specs", nargs=-1)
@click.option("--input", "input_shape", metavar="SHAPE", help="Override the spec's `input` line.")
@click.option("--strict", is_flag=True, help="Exit 1 on warnings too.")
@click.option("-q", "--quiet", is_flag=True, help="Only report problems, not the shape table.")
@ALLOW_IMPORT
def check(
    specs: tuple[str, ...],
    input_shape: str | None,
    strict: bool,
    quiet: bool,
    allow_imports: tuple[str, ...],
) -> None:
    """Parse and trace each SPEC; print its shape table and every problem found."""
    from seqgen.api import traced_spec
    from seqgen.report.lint import lint
    from seqgen.report.table import shape_table

    def check_one(spec_path: str) -> int:
        _, traced = traced_spec(spec_path, input_shape, allow_imports=allow_imports)
        if not quiet:
            click.echo(f"{spec_path}: {traced.spec.class_name}")
            click.echo(shape_table(traced))
        found = lint(traced)
        for w in found:
            _err(w.render())
        if not found and not quiet:
            click.echo("no problems found")
        return len(found)

    warnings, code = _each(_expand(specs), str, check_one)
    if code == Exit.OK and strict and warnings:
        code = Exit.SPEC_ERROR
    if code != Exit.OK:
        sys.exit(code)


@main.command(epilog=SPECS_HELP)
@click.argument("specs", nargs=-1)
@click.option("--input", "input_shape", metavar="SHAPE", help="Override the spec's `input` line.")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "markdown", "json"]),
    default="table",
    show_default=True,
)
@click.option(
    "--batch",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Batch size for mult-adds and memory.",
)
@ALLOW_IMPORT
def summary(
    specs: tuple[str, ...],
    input_shape: str | None,
    fmt: str,
    batch: int,
    allow_imports: tuple[str, ...],
) -> None:
    """Per-layer shapes, parameters and mult-adds, and memory totals, allocating nothing.

    Several specs print one summary each (json: a list of them)."""
    from seqgen.api import traced_spec
    from seqgen.report.summary import render_summary

    paths = _expand(specs)
    if input_shape is not None and len(paths) > 1:
        raise click.UsageError(
            f"--input overrides the input of one spec; {len(paths)} specs were given"
        )
    shown: list[str] = []

    def summarise(spec: str) -> int:
        _, traced = traced_spec(spec, input_shape, allow_imports=allow_imports)
        shown.append(render_summary(traced, fmt, batch))
        return 0

    _, code = _each(paths, str, summarise)
    if fmt == "json" and len(paths) > 1:
        click.echo("[\n" + ",\n".join(shown) + "\n]")
    else:
        click.echo("\n\n".join(shown))
    if code != Exit.OK:
        sys.exit(code)


@main.command()
@click.argument("spec")
@click.option("--format", "fmt", type=click.Choice(["mermaid", "svg", "dot"]), default="mermaid")
@click.option("--at", multiple=True, metavar="NAME=VALUE", help="Sizes at NAME=VALUE (repeatable).")
@click.option("--expand", is_flag=True, help="Open each block use into its own layers.")
@click.option("--input", "input_shape", metavar="SHAPE", help="Override the spec's `input` line.")
@click.option("-o", "--output", metavar="FILE", help="Write FILE (.md: Markdown with mermaid).")
@ALLOW_IMPORT
def diagram(
    spec: str,
    fmt: str,
    at: tuple[str, ...],
    expand: bool,
    input_shape: str | None,
    output: str | None,
    allow_imports: tuple[str, ...],
) -> None:
    """Draw SPEC's network from its trace (Mermaid by default): nothing is run or allocated."""
    from seqgen.api import diagram as draw
    from seqgen.project.write import write_atomic

    markdown = output is not None and output.endswith(".md")
    if markdown and fmt != "mermaid":
        raise click.UsageError(f"a .md file holds Mermaid; write --format {fmt} to another file")
    try:
        text = draw(spec, fmt, at, expand, input_shape, markdown, allow_imports)
        if output is not None:
            write_atomic(output, text)
    except SeqgenError as e:
        sys.exit(_report(e))
    if output is None:
        click.echo(text, nl=False)


@main.command()
@click.argument("name")
@click.option("--kind", type=click.Choice(KINDS), default="mlp", show_default=True)
def init(name: str, kind: str) -> None:
    """Write a starter spec NAME.seq."""
    from seqgen.lang.starters import starter_spec

    path = Path(name if name.endswith(".seq") else f"{name}.seq")
    if path.exists():
        _err(f"error: {path} already exists; left unchanged")
        sys.exit(Exit.SPEC_ERROR)
    try:
        text = starter_spec(path.stem, kind)
        from seqgen.project.write import write_atomic

        write_atomic(path, text)
    except SeqgenError as e:
        sys.exit(_report(e))
    click.echo(f"wrote {path}; next: seqgen new {path}")


main.add_command(import_command)

if __name__ == "__main__":  # pragma: no cover
    main()
