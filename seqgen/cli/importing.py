"""`seqgen import`'s command line (registered on the `seqgen` group in cli/__init__.py): options
in, one call of the library, its message or error out."""

from __future__ import annotations

import sys

import click

from seqgen.errors import Exit, InternalError, SeqgenError


@click.command(name="import")
@click.argument("target", metavar="MODULE:CALLABLE")
@click.option(
    "--input",
    "input_shape",
    metavar="SHAPE",
    required=True,
    help="One sample's shape, batch excluded, e.g. 3x224x224 (one forward runs at batch 2).",
)
@click.option(
    "-o",
    "--output",
    "spec_path",
    metavar="SPEC",
    help="The spec to write (default: CALLABLE.seq here); the weights mapping goes beside it.",
)
@click.option(
    "--arg",
    "arg_pairs",
    multiple=True,
    metavar="KEY=VALUE",
    help="A keyword argument for CALLABLE, as a Python literal (repeatable).",
)
@click.option("--force", is_flag=True, help="Overwrite SPEC and its mapping if they exist.")
def import_command(
    target: str, input_shape: str, spec_path: str | None, arg_pairs: tuple[str, ...], force: bool
) -> None:
    """Write a spec for an existing nn.Module (a class or a factory), and the mapping that loads
    its weights into the generated model (SPEC's stem + .keys.json). Runs MODULE's code."""
    from seqgen.api import import_to_files

    try:
        click.echo(import_to_files(target, input_shape, spec_path, arg_pairs, force))
    except SeqgenError as e:
        click.echo(e.render(), err=True)
        if isinstance(e, InternalError):
            click.echo("seqgen bug: please report it with the model's code", err=True)
            sys.exit(Exit.INTERNAL)
        sys.exit(Exit.SPEC_ERROR)
