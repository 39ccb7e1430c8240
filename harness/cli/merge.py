"""`sfteval merge`: join the shard runs of one `--shard I/N` evaluation into one run."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from .common import friendly, results_option

MERGE_EPILOG = """
\b
Examples:
  sfteval merge 'results/v2__shard-*' --into v2            # a glob (quoted: sfteval expands it)
  sfteval merge v2__shard-0-of-2 v2__shard-1-of-2 --into v2
  sfteval merge /shared/results/v2__shard-* --into /shared/results/v2
\b
The shards must share the suite content, model, backend, chat template and run settings, and hold every
item exactly once; a missing, unfinished or foreign shard is named. The merged run equals the same run done
in one process (records, summary.json, report.md). Merging again, e.g. after `sfteval run ... --shard 3/8
--resume v2` finished a failed shard, replaces the merged run and keeps what was added to it since
(`sfteval judge v2`, pairwise results). Then judge, probe, diff, gate and view it like any run.
"""


@click.command("merge", epilog=MERGE_EPILOG)
@click.argument("shards", nargs=-1, required=True, metavar="SHARD_RUN...")
@click.option("--into", required=True, metavar="RUN",
              help="The merged run: a name under --results, or a folder path.")
@results_option("Results root that run names (shards and --into) are looked up in.")
@click.option("--quiet", "-q", is_flag=True,
              help="Print only the final line (the merged run folder, on stdout), warnings and errors.")
@friendly
def merge_cmd(shards: tuple[str, ...], into: str, results: Path, quiet: bool) -> None:
    """Merge the shard runs of one sharded evaluation into exactly one run."""
    from ..merge import merge_shards
    from ..quiet import make_quiet, stderr_log
    from ..report import summary_table

    if quiet:
        make_quiet()
    result = merge_shards(list(shards), into, results, command=["sfteval"] + sys.argv[1:], log=stderr_log)
    summary = result.folder.summary()
    if not quiet:
        click.echo(summary_table(summary))
    verb = "replaced" if result.replaced else "wrote"
    click.echo(("" if quiet else "\n") + f"merge: {verb} {result.folder.path} from {len(result.shards)} shards "
               f"({result.items} items)")  # the final line, with -q the only one
    failed = summary.counts.get("generation_errors", 0)
    if failed:
        click.echo(f"sfteval: {failed} requests failed in the shards (see generations.jsonl); resume those shards and "
                   "merge again", err=True)
        sys.exit(3)
