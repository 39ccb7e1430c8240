"""`sfteval backends`, `sfteval plugins`, `sfteval runs`, `sfteval schema`: what is installed and stored."""

from __future__ import annotations

from pathlib import Path

import click

BACKENDS_EPILOG = """
\b
A backend from another package appears here once installed: it declares
[project.entry-points."sfteval.backends"] name = "package.module:Class".
"""


@click.command("backends", epilog=BACKENDS_EPILOG)
def backends_cmd() -> None:
    """List model backends (built-in and plugins), without loading any."""
    from ..backends import available, describe

    for name in available():
        click.echo(f"{name:8} {describe(name)}")


@click.command("plugins")
@click.option("--kind", type=click.Choice(["backends", "importers", "rules", "judge_configs", "stages"]),
              help="Only this kind.")
def plugins_cmd(kind: str | None) -> None:
    """Everything registered through sfteval's entry points: backends, importers, rules, judge configs, stages.

    The built-ins are registered the same way as a plugin package's (see the README's Architecture section).
    """
    from tabulate import tabulate

    from .. import plugins as registry

    rows = []
    for k in [kind] if kind else list(registry.GROUPS):
        for p in registry.plugins(k):
            rows.append([k, p.name, p.target, p.distribution + (" (shadowed by the built-in)" if p.shadowed else "")])
    click.echo(tabulate(rows, headers=["kind", "name", "target", "from"]))


@click.command("runs")
@click.option("--out", default="results", show_default=True, type=click.Path(path_type=Path),
              help="Results root to list.")
def runs_cmd(out: Path) -> None:
    """List stored runs with their status."""
    from tabulate import tabulate

    from ..runfolder import RunFolder
    from ..store import StoreError

    rows = []
    for path in sorted(out.iterdir()) if out.exists() else []:
        folder = RunFolder(path)
        if not folder.exists():
            continue
        try:
            m = folder.manifest()
        except (StoreError, ValueError) as e:  # shown, not hidden: a broken run folder needs a look
            rows.append([path.name, "unreadable", f"{type(e).__name__}: {str(e).splitlines()[0][:60]}", "", "", ""])
            continue
        rows.append([m.run_id, m.status, m.model.name, m.suite_name, m.counts.get("items", ""), m.started_at])
    click.echo(tabulate(rows, headers=["run", "status", "model", "suite", "items", "started"]) if rows else "no runs")


SCHEMA_EPILOG = """
\b
Examples:
  sfteval schema summary                   # the JSON Schema of summary.json
  sfteval schema --out docs/schema         # every public record's schema, one file each
"""


@click.command("schema", epilog=SCHEMA_EPILOG)
@click.argument("name", required=False, type=click.Choice(["item", "generation", "judgment", "probe", "manifest",
                                                             "summary"]))
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), metavar="DIR",
              help="Write NAME.schema.json files here instead of printing.")
def schema_cmd(name: str | None, out: Path | None) -> None:
    """JSON Schemas of what sfteval stores: items, generations, judgments, probes, manifest, summary."""
    from ..schema import PUBLIC, schema_text
    from .common import emit

    names = [name] if name else list(PUBLIC)
    if out is None:
        if len(names) > 1:
            raise click.UsageError("name one schema to print, or pass --out DIR for all of them")
        click.echo(schema_text(names[0]), nl=False)
        return
    out.mkdir(parents=True, exist_ok=True)
    for n in names:
        emit(schema_text(n), out / f"{n}.schema.json")
