"""`sfteval labels export|import` and `sfteval agreement`: human labels in and out, and how far the judge agrees."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import click

from .common import emit, friendly, results_option

LABELS_EPILOG = """
\b
Labels are made in `sfteval view` (review queues) or anywhere else and imported.
Format: one JSON object per line (see the README, "labels JSONL format"):
  {"item_id": "likes-003", "reviewer": "alice", "mode": "single",
   "scores": {"factuality": 8}, "overall": 7, "usable": true, "comment": "..."}
  {"item_id": "likes-003", "reviewer": "bob", "mode": "pair", "baseline": "v1",
   "preferred": "candidate"}
"""


@click.group("labels", epilog=LABELS_EPILOG)
def labels_group() -> None:
    """Human labels: export them as JSONL, import labels made elsewhere."""


EXPORT_EPILOG = """
\b
Examples:
  sfteval labels export v2                      # single-grading labels of run v2
  sfteval labels export --pair v1 v2 --out pair-labels.jsonl   # blind pairwise labels of v2 vs v1
  sfteval labels export v2 --history            # every edit, not only the latest label per answer
"""


@labels_group.command("export", epilog=EXPORT_EPILOG)
@click.argument("run", required=False, metavar="[RUN]")
@click.option("--pair", nargs=2, metavar="RUN_A RUN_B", help="Pairwise labels of candidate RUN_B vs baseline RUN_A.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), metavar="FILE", help="Write here (default stdout).")
@click.option("--history", is_flag=True, help="Every label ever written (edits included), oldest first.")
@results_option()
def export_cmd(run: Optional[str], pair: Optional[tuple[str, str]], out: Optional[Path], history: bool,
               results: Path) -> None:
    """Write a run's labels (or a pair's, with --pair) as JSONL, one label per line."""

    @friendly
    def go() -> None:
        from ..labels.exchange import export_lines
        from ..runfolder import RunFolder

        if run is None and pair is None:
            raise click.UsageError("name a RUN, or --pair RUN_A RUN_B")
        lines = []
        if run is not None:
            lines += export_lines(RunFolder.open(run, results), history=history)
        if pair is not None:
            a, b = (RunFolder.open(r, results) for r in pair)
            lines += export_lines(b, baseline=a, history=history)
        emit("".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines), out)
        click.echo(f"{len(lines)} label(s)", err=True)

    go()


IMPORT_EPILOG = """
\b
Examples:
  sfteval labels import v2 spreadsheet.jsonl
  sfteval labels import v2 labels.jsonl --dry-run     # check only
\b
Every line is checked first; any problem is printed as FILE:LINE: field 'x':
message, the exit status is 2 and nothing is written. A label that carries
answer_sha256 must match the run's current answer. Single-grading lines
grade RUN's answers; pairwise lines name their baseline run ("baseline").
"""


@labels_group.command("import", epilog=IMPORT_EPILOG)
@click.argument("run", metavar="RUN")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path), metavar="FILE")
@click.option("--dry-run", is_flag=True, help="Check the file and say what would be imported; write nothing.")
@results_option()
def import_cmd(run: str, file: Path, dry_run: bool, results: Path) -> None:
    """Import labels (JSONL) made in a spreadsheet or another tool into RUN (and its pair folders)."""

    @friendly
    def go() -> None:
        from ..labels.exchange import apply, plan_import
        from ..labels.folders import refresh_summary, run_block
        from ..labels.stage import settings
        from ..runfolder import RunFolder

        folder = RunFolder.open(run, results)
        plan = plan_import(folder, file, results)
        n = sum(len(v) for v in plan.writes.values())
        if dry_run:
            click.echo(f"{file}: {n} label(s) would be imported ({plan.skipped} already stored); nothing written")
            return
        apply(plan)
        block = run_block(folder)
        refresh_summary(folder, {**settings(), "single": block} if block else None)
        click.echo(f"imported {n} label(s) from {file} ({plan.skipped} already stored, skipped)")

    go()


AGREEMENT_EPILOG = """
\b
Examples:
  sfteval agreement v2                     # judge vs human and human vs human on v2's labels
  sfteval agreement --pair v1 v2           # blind pairwise labels of v2 vs v1
  sfteval agreement v2 --pair v1 v2 --format json --out agreement.json
\b
Single grading, per dimension and overall: quadratic-weighted Cohen's kappa,
Spearman's rho and the mean absolute difference; the usable decision: kappa,
precision, recall and the confusion counts. Pairwise: agreement on decisive
verdicts, kappa over win/tie/loss and the judge's bias in points. Every
number has n and a 95% bootstrap interval over items; below --min-n pairs of
ratings: "not enough labels". RUN's block is also stored in its summary.json.
"""


@click.command("agreement", epilog=AGREEMENT_EPILOG)
@click.argument("run", required=False, metavar="[RUN]")
@click.option("--pair", nargs=2, metavar="RUN_A RUN_B", help="Pairwise labels of candidate RUN_B vs baseline RUN_A.")
@click.option("--format", "fmt", type=click.Choice(["md", "json"]), default="md", show_default=True)
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), metavar="FILE", help="Write here (default stdout).")
@click.option("--min-n", default=10, show_default=True, type=click.IntRange(2),
              help="Fewest pairs of ratings that give a number.")
@click.option("--resamples", default=1000, show_default=True, type=click.IntRange(100), help="Bootstrap resamples.")
@click.option("--seed", default=0, show_default=True, type=int, help="Bootstrap seed.")
@results_option()
def agreement_cmd(run: Optional[str], pair: Optional[tuple[str, str]], fmt: str, out: Optional[Path], min_n: int,
                  resamples: int, seed: int, results: Path) -> None:
    """How far the LLM judge agrees with human labels (and people with each other), with n and intervals."""

    @friendly
    def go() -> None:
        from ..labels.folders import pair_block_of, refresh_summary, run_block
        from ..labels.report import pair_markdown, single_markdown
        from ..labels.stage import settings
        from ..runfolder import RunFolder

        if run is None and pair is None:
            raise click.UsageError("name a RUN, or --pair RUN_A RUN_B")
        opts = settings(min_n=min_n, resamples=resamples, seed=seed)
        block: dict = {**opts}
        if run is not None:
            folder = RunFolder.open(run, results)
            block["candidate"] = run_block(folder, opts)
            if opts == settings():
                refresh_summary(folder, {**opts, "single": block["candidate"]} if block["candidate"] else None)
        if pair is not None:
            a, b = (RunFolder.open(r, results) for r in pair)
            block["pair"] = pair_block_of(a, b, opts)
        if not block.get("candidate") and not block.get("pair"):
            click.echo("no labels yet: review items in `sfteval view` or `sfteval labels import RUN FILE`", err=True)
        if fmt == "json":
            emit(json.dumps(block, ensure_ascii=False, indent=1) + "\n", out)
            return
        parts = ["# Judge-human agreement\n\n"]
        if block.get("candidate"):
            parts.append(f"Run `{run}` · " + single_markdown(block["candidate"]) + "\n")
        if block.get("pair"):
            parts.append(f"`{pair[1]}` vs `{pair[0]}` · " + pair_markdown(block["pair"]) + "\n")  # type: ignore[index]
        if len(parts) == 1:
            parts.append("no labels\n")
        parts.append(f"Intervals: {opts['confidence']:.0%} percentile bootstrap over items ({resamples} resamples); "
                     f"fewer than {min_n} pairs of ratings give no number.\n")
        emit("".join(parts), out)

    go()
