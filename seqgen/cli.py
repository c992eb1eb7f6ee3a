"""The command line: parse options, call the library, turn SeqgenErrors into messages and exits.

Keep imports here light: `seqgen --help` must not import torch (the pipeline imports it lazily).
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from . import __version__
from .errors import Exit, SeqgenError

DEVICES = click.Choice(["meta", "cpu", "cuda"])


def _err(message: str) -> None:
    click.echo(message, err=True)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="seqgen")
def main() -> None:
    """Generate shape-checked PyTorch nn.Sequential models, and their tests, from a layer spec.

    \b
    Exit codes: 0 success; 1 a problem in a spec (or, with --check, stale output);
    2 bad command-line usage.
    """


@main.command()
@click.argument("specs", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("-o", "--out-dir", type=click.Path(file_okay=False),
              help="Directory for <stem>.py (default: next to the spec).")
@click.option("--tests-dir", type=click.Path(file_okay=False),
              help="Directory for test_<stem>.py (default: the output directory).")
@click.option("--input", "input_shape", metavar="SHAPE",
              help="Override the spec's `input` line, e.g. 3x64x64 or '(1, seq_len=100)'.")
@click.option("--device", type=DEVICES,
              help="Also build the model for real on this device and compare shapes.")
@click.option("--force", is_flag=True, help="Overwrite generated files that were edited by hand.")
@click.option("-q", "--quiet", is_flag=True, help="Do not print the shape table.")
def new(specs: tuple[str, ...], out_dir: str | None, tests_dir: str | None,
        input_shape: str | None, device: str | None, force: bool, quiet: bool) -> None:
    """Generate <stem>.py and test_<stem>.py from each SPEC."""
    from .api import generate, options_for
    from .report import shape_table
    from .write import write_files

    failed = 0
    for spec_path in specs:
        try:
            options = options_for(spec_path, out_dir, tests_dir)
            result = generate(spec_path, options, input_shape, device)
            statuses = write_files(list(result.files), force=force)
        except SeqgenError as e:
            _err(e.render())
            failed += 1
            continue
        if not quiet:
            click.echo(f"{spec_path}: {result.traced.spec.class_name}")
            click.echo(shape_table(result.traced))
        for w in result.traced.warnings:
            _err(w.render())
        wrote = [s.path for s in statuses if s.state != "unchanged"]
        same = [s.path for s in statuses if s.state == "unchanged"]
        if wrote:
            click.echo(f"wrote {', '.join(wrote)}")
        if same:
            click.echo(f"unchanged {', '.join(same)}")
    if failed:
        sys.exit(Exit.SPEC_ERROR)


if __name__ == "__main__":  # pragma: no cover
    main()
