"""`seqgen new` for one spec: generate, lint, and write (or, when dry, show) its outputs."""

from __future__ import annotations

import click

from seqgen.project.plan import Job


def new_one(
    job: Job,
    device: str | None,
    dry: bool,
    diff: bool,
    force: bool,
    quiet: bool,
    allow_imports: tuple[str, ...],
) -> int:
    """Generate one spec; return how many outputs changed (or would change, when dry)."""
    spec_path, options = job.spec_path, job.options
    from seqgen.api import generate, is_up_to_date, output_paths
    from seqgen.project.write import pending, write_files
    from seqgen.report.lint import lint
    from seqgen.report.table import device_report, shape_table

    if device is None and not force and is_up_to_date(spec_path, options):
        # recognised from the headers alone: no torch import, no trace
        if not (dry or quiet):
            click.echo(f"unchanged (up to date, not traced): {', '.join(output_paths(options))}")
        return 0
    result = generate(spec_path, options, device, allow_imports)
    for w in lint(result.traced):
        click.echo(w.render(), err=True)
    if device is not None:  # what the user asked for: said even with -q (which hides the table)
        click.echo(device_report(result.traced, device))
    if dry:
        changes = pending(list(result.files), with_diff=diff)
        for change in changes:
            click.echo(change.describe())
            if diff:
                click.echo(change.diff, nl=False)
        if changes:
            clobbers = any(c.status.state in ("edited", "foreign", "other") for c in changes)
            click.echo(f"  to update them, run: {job.command(force=clobbers)}")
        return len(changes)
    statuses = write_files(list(result.files), force=force)
    if not quiet:
        click.echo(f"{spec_path}: {result.traced.spec.class_name}")
        click.echo(shape_table(result.traced))
    wrote = [s.path for s in statuses if s.state != "unchanged"]
    same = [s.path for s in statuses if s.state == "unchanged"]
    if wrote:
        click.echo(f"wrote {', '.join(wrote)}")
    if same and not quiet:
        click.echo(f"unchanged {', '.join(same)}")
    return 0
