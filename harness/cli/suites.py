"""`sfteval suites`: list, show, validate, stats, lint, sample and import suites."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Optional

import click

from .common import friendly


@click.group("suites")
def suites_group() -> None:
    """Inspect and check eval suites."""


@suites_group.command("validate")
@click.argument("paths", nargs=-1, required=True, metavar="SUITE...")
@friendly
def suites_validate(paths: tuple[str, ...]) -> None:
    """Check every item of each suite; print each suite's first problem with its file, line and field.

    Exit status 2 when any suite is invalid (every suite is still checked).
    """
    from ..suite import SuiteError, load_suite

    bad = 0
    for path in paths:
        try:
            s = load_suite(path)
        except SuiteError as e:
            click.echo(f"sfteval: error: {e}", err=True)
            bad += 1
            continue
        click.echo(f"ok: {s.name} v{s.version}: {len(s.items)} items, {len(s.task_type_counts())} task_types, "
                   f"hash {s.content_hash[:12]}")
    if bad:
        sys.exit(2)


@suites_group.command("show")
@click.argument("path")
@friendly
def suites_show(path: str) -> None:
    """Item counts per task_type (both levels) and the settings each one runs with."""
    from tabulate import tabulate

    from ..suite import load_suite
    from ..summary import task_type_label

    s = load_suite(path)
    level1: dict[str, int] = {}
    for tt, n in s.task_type_counts().items():
        level1[tt.split("/")[0]] = level1.get(tt.split("/")[0], 0) + n
    rows = []
    for top in sorted(level1):
        rows.append([top, level1[top], "", "", ""])
        for tt, n in s.task_type_counts().items():
            if tt.split("/")[0] == top and "/" in tt:
                st = s.settings_for(tt)
                rows.append([task_type_label(tt), n, st.temperature, st.max_new_tokens, st.answer_type or ""])
    click.echo(f"{s.name} v{s.version}  ({len(s.items)} items, hash {s.content_hash[:12]})")
    if s.config.description:
        click.echo(s.config.description)
    click.echo(tabulate(rows, headers=["task_type", "items", "temperature", "max_new_tokens", "answer_type"]))


class _FormatChoice(click.Choice):
    """The importer registry's format names, loaded only when a command needs them."""

    def __init__(self) -> None:
        super().__init__([])

    @property  # type: ignore[override]
    def choices(self) -> list[str]:
        from ..importers import importers

        return sorted(importers())

    @choices.setter
    def choices(self, value: Any) -> None:
        pass


IMPORT_EPILOG = """
\b
Examples:
  sfteval suites import --format mt-bench data/mt_bench/ suites/mt-bench
  sfteval suites import --format alignbench data_release.jsonl suites/alignbench
  sfteval suites import --format arena-hard question.jsonl suites/arena-hard
  sfteval suites import --format chat-jsonl sft_train.jsonl suites/recall --task-type recall
  sfteval suites import --format table train.parquet suites/qa \\
      --map prompt=question --map reference=answer --map task_type=category
"""


@suites_group.command("import", epilog=IMPORT_EPILOG)
@click.option("--format", "-f", "fmt", required=True, type=_FormatChoice(), help="Source format.")
@click.argument("src", type=click.Path(exists=True, path_type=Path))
@click.argument("dest", type=click.Path(path_type=Path))
@click.option("--map", "field_map", multiple=True, metavar="FIELD=COLUMN",
              help="Read item FIELD from source COLUMN (repeatable), e.g. --map prompt=question.")
@click.option("--task-type-map", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="YAML: source category (or 'category/subcategory') -> task_type, or -> {task_type, answer_type}.")
@click.option("--task-type", metavar="NAME", help="task_type for records that carry none.")
@click.option("--references", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="mt-bench: reference-answer file (default: reference_answer/gpt-4.jsonl beside the questions).")
@click.option("--name", help="Suite name (default: the DEST folder name).")
@click.option("--id-prefix", metavar="TEXT", help="Prefix of item ids (default per format, e.g. mt-bench-81).")
@click.option("--force", is_flag=True, help="Replace DEST if it exists.")
@friendly
def suites_import(fmt: str, src: Path, dest: Path, field_map: tuple[str, ...], task_type_map: Optional[Path],
                  task_type: Optional[str], references: Optional[Path], name: Optional[str], id_prefix: Optional[str],
                  force: bool) -> None:
    """Convert a third-party eval set into a suite folder (items.jsonl, suite.yaml, README.md).

    Everything is read and validated before anything is written, and the folder appears atomically:
    a broken record names its file, line and field, and leaves nothing behind.
    """
    from ..importers import ImportOptions, import_suite, load_task_type_map

    mapping = {}
    for pair in field_map:
        target, sep, column = pair.partition("=")
        if not sep or not target.strip() or not column.strip():
            raise click.BadParameter(f"expected FIELD=COLUMN, got {pair!r}", param_hint="--map")
        mapping[target.strip()] = column.strip()
    opts = ImportOptions(field_map=mapping, task_type=task_type, references=references, name=name, id_prefix=id_prefix,
                         task_type_map=load_task_type_map(task_type_map) if task_type_map else {})
    s = import_suite(fmt, src, dest, opts, force=force)
    click.echo(f"imported {len(s.items)} items over {len(s.task_type_counts())} task_types into {dest} "
               f"(hash {s.content_hash[:12]}); next: sfteval suites lint {dest}")


@suites_group.command("stats")
@click.argument("path")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.option("--tokenizer", metavar="PATH", help="Also count tokens with this (Hugging Face) tokenizer.")
@friendly
def suites_stats(path: str, fmt: str, tokenizer: Optional[str]) -> None:
    """Items per task_type (both levels), prompt/reference lengths, tags, multi-turn, references, choices, checks."""
    import json

    from ..suite import load_suite
    from ..suitetools.stats import stats_text, suite_stats

    tok = None
    if tokenizer:
        from transformers import AutoTokenizer

        tok = AutoTokenizer.from_pretrained(tokenizer)
    stats = suite_stats(load_suite(path), tok)
    click.echo(json.dumps(stats, ensure_ascii=False, indent=1) if fmt == "json" else stats_text(stats))


LINT_EPILOG = """
\b
Examples:
  sfteval suites lint my_suite/
  sfteval suites lint suites/*                      # several suites, one report each
  sfteval suites lint my_suite/ --format json --min-level warning
"""


@suites_group.command("lint", epilog=LINT_EPILOG)
@click.argument("paths", nargs=-1, required=True, metavar="SUITE...")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.option("--threshold", type=click.FloatRange(0, 1, min_open=True), default=0.9, show_default=True,
              help="Character-shingle Jaccard from which two prompts (or two answers) are near-duplicates.")
@click.option("--min-level", type=click.Choice(["error", "warning", "info"]), default="info", show_default=True,
              help="Least severe findings to print (text format).")
@friendly
def suites_lint(paths: tuple[str, ...], fmt: str, threshold: float, min_level: str) -> None:
    """Near-duplicate prompts and answers, suspicious references, punctuation width, checks the reference fails.

    Every suite is loaded (and validated) before the first is linted. With several suites, text reports follow
    each other and JSON is an array of reports. Exit status 1 when any finding is an error.
    """
    from ..suite import load_suite
    from ..suitetools.lint import lint_suite

    reports = [lint_suite(s, threshold=threshold) for s in [load_suite(p) for p in paths]]
    if fmt == "json":
        texts = [r.to_json() for r in reports]
        click.echo(texts[0] if len(texts) == 1 else "[\n" + ",\n".join(texts) + "\n]")
    else:
        click.echo("\n\n".join(r.to_text(min_level) for r in reports))  # type: ignore[arg-type]
    if any(r.has_errors for r in reports):
        sys.exit(1)


@suites_group.command("sample")
@click.argument("path")
@click.argument("dest", type=click.Path(path_type=Path))
@click.option("--per-task-type", "-n", required=True, type=click.IntRange(1), metavar="N",
              help="Items per (full) task_type.")
@click.option("--seed", default=0, show_default=True, help="Same seed, same sample.")
@click.option("--force", is_flag=True, help="Replace DEST if it exists.")
@friendly
def suites_sample(path: str, dest: Path, per_task_type: int, seed: int, force: bool) -> None:
    """Write a smaller suite for a quick run: N items per task_type, same settings, deterministic.

    A sampled robustness variant brings its original along (it is read against it).
    """
    from ..suite import load_suite
    from ..suitetools.sample import sample_suite

    s = sample_suite(load_suite(path), dest, per_task_type, seed, force=force)
    click.echo(f"sampled {len(s.items)} items over {len(s.task_type_counts())} task_types into {dest} "
               f"(hash {s.content_hash[:12]})")


@suites_group.command("list")
def suites_list() -> None:
    """Built-in suites, usable by name with --suite."""
    from ..suite import list_builtin_suites, load_suite

    for name in list_builtin_suites():
        s = load_suite(name)
        click.echo(f"{name:16} {len(s.items):5} items  {s.config.description.splitlines()[0] if s.config.description else ''}")


PLAN_EPILOG = """
\b
Examples:
  sfteval suites plan general-zh --baseline v1                 # items needed per task_type, headline metric
  sfteval suites plan my_suite/ --baseline v1 --min-effect usable=0.03 --metric usable
  sfteval suites plan my_suite/ --baseline v1 --candidate v2   # spread measured from a real pair of runs

\b
For each task_type: the items the suite has, the minimum detectable effect
(MDE, 80% power) of the diff's paired test with them, the metric's minimum
effect, and the items needed to see it. Without --candidate, two checkpoints
are assumed to err independently (discordance 2p(1-p)): hard task_types
(accuracy near 50%) need the most items.
"""


@suites_group.command("plan", epilog=PLAN_EPILOG)
@click.argument("suite", metavar="SUITE")
@click.option("--baseline", required=True, metavar="RUN", help="A run of this suite: the per-item outcomes.")
@click.option("--candidate", metavar="RUN", help="A second run: measure the paired spread instead of assuming it.")
@click.option("--metric", "metrics", multiple=True, metavar="METRIC", help="Metrics to plan for (default: headline).")
@click.option("--min-effect", multiple=True, metavar="METRIC=VALUE",
              help="Minimum effect, as for diff: usable=0.03, 'judge:*'=0.5.")
@click.option("--power", default=0.8, show_default=True, type=click.FloatRange(0.5, 0.99))
@click.option("--alpha", type=click.FloatRange(0, 1, min_open=True, max_open=True), help="Family-wise level.")
@click.option("--config", "config_path", type=click.Path(dir_okay=False, path_type=Path), metavar="GATE_YAML")
@click.option("--format", "fmt", type=click.Choice(["md", "json"]), default="md", show_default=True)
@click.option("--results", default="results", show_default=True, type=click.Path(file_okay=False, path_type=Path))
@friendly
def suites_plan(suite: str, baseline: str, candidate: Optional[str], metrics: tuple[str, ...],
                min_effect: tuple[str, ...], power: float, alpha: Optional[float], config_path: Optional[Path],
                fmt: str, results: Path) -> None:
    """Items needed per task_type for the diff to see each metric's minimum effect."""
    import json
    import math

    from tabulate import tabulate

    from ..differ import format as dfmt
    from ..differ.plan import plan
    from ..differ.result import _clean
    from ..runfolder import RunFolder
    from ..scoring import item_frame
    from ..suite import load_suite
    from .reports import _config

    s = load_suite(suite)
    config = _config(config_path, alpha, min_effect, None, None)
    frames = []
    for run in (baseline, candidate):
        if run is not None:
            folder = RunFolder.open(run, results)
            frames.append(item_frame(folder.records()))
    try:
        out = plan(s.task_type_counts(), frames[0], config, metrics, frames[1] if candidate else None, power)
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--metric") from None
    if fmt == "json":
        click.echo(json.dumps(_clean(out), ensure_ascii=False, indent=1))
        return
    rows = []
    for r in out["rows"]:
        cell = {**r, "threshold": r["min_effect"]}
        mde = r["mde"]
        rows.append([dfmt.group_label(r["group"], r["kind"]), r["metric"], r["items"],
                     dfmt.value(r["metric"], r["baseline_mean"], r["binary"]),
                     "∞" if mde is not None and math.isinf(mde) else dfmt.mde(cell, mark=False),
                     dfmt.threshold(cell), "–" if r["items_needed"] is None else r["items_needed"],
                     "–" if r["more"] is None else f"+{r['more']}" if r["more"] else "enough"])
    click.echo(f"{s.name} v{s.version}: {len(s.items)} items; baseline {baseline}"
               + (f", spread from {candidate}" if candidate else ", spread assumed (independent checkpoints)")
               + f"; {power:.0%} power at α={out['level']:.2g} (alpha over the {out['tests']} cells a diff tests)")
    click.echo(tabulate(rows, headers=["task_type", "metric", "items", "baseline", "MDE now", "min effect",
                                       "items needed", "to add"]))
