"""`sfteval diff`, `sfteval report` and `sfteval gate`.

Importing this module loads only click (the heavy work is imported inside the commands), so
`sfteval --help` stays fast. Exit codes: diff/report 0 (2 on usage errors); gate 0 pass, 1 fail, 2 usage.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Callable, Optional

import click

from .common import emit, friendly, load_train_data, train_data_options

FORMATS = click.Choice(["md", "json", "html"])


def _min_effects(pairs: tuple[str, ...]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for pair in pairs:
        metric, sep, value = pair.partition("=")
        try:
            relative = value.strip().endswith("%")
            number = float(value.strip().rstrip("%")) / (100 if relative else 1)
            if not sep or not metric.strip() or number < 0:
                raise ValueError
        except ValueError:
            raise click.BadParameter(f"expected METRIC=VALUE or METRIC=PERCENT% with a value >= 0, got {pair!r}",
                                     param_hint="--min-effect") from None
        out[metric.strip()] = {"min_effect": number, "relative": relative}
    return out


def _config(path: Optional[Path], alpha: Optional[float], min_effect: tuple[str, ...], seed: Optional[int],
            resamples: Optional[int]) -> Any:
    from ..gate import GateConfig, MetricRule, load_config

    config: GateConfig = load_config(path)
    given = (("alpha", alpha), ("seed", seed), ("resamples", resamples))
    update: dict[str, Any] = {k: v for k, v in given if v is not None}
    if min_effect:
        metrics = dict(config.metrics)
        for metric, fields in _min_effects(min_effect).items():
            base = metrics.get(metric, MetricRule())
            metrics[metric] = base.model_copy(update=fields)
        update["metrics"] = metrics
    return config.model_copy(update=update) if update else config


def render_diff(diff: Any, verdict: Any, fmt: str, max_chars: int, view_url: Optional[str] = None) -> str:
    if fmt == "json":
        return json.dumps(diff.as_dict(verdict.as_dict()), ensure_ascii=False, indent=1) + "\n"
    if fmt == "html":
        from ..reporting.html import diff_html

        return diff_html(diff, verdict)
    from ..reporting.markdown import diff_markdown

    return diff_markdown(diff, verdict, limit=max_chars, view_url=view_url)


def _run_diff(run_a: str, run_b: str, results: Path, config: Any, top: int, train_data: tuple[str, ...] = (),
              train_map: tuple[str, ...] = ()) -> tuple[Any, Any]:
    from ..differ import diff_runs
    from ..gate import evaluate
    from ..runfolder import RunFolder

    a, b = RunFolder.open(run_a, results), RunFolder.open(run_b, results)
    names = {k: (arg, f.run_id, f.path.name) for k, arg, f in (("a", run_a, a), ("b", run_b, b))}
    if run_a == run_b:
        names = {"b": names["b"]}
    train = load_train_data(train_data, train_map, names)
    diff = diff_runs(a, b, config, top=top, log=lambda m: click.secho(m, err=True, fg="yellow", bold=True),
                     train_a=train.get("a"), train_b=train.get("b"))
    return diff, evaluate(diff, config)


def stat_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    options = [
        click.option("--config", "config_path", type=click.Path(dir_okay=False, path_type=Path), metavar="GATE_YAML",
                     help="Rules: minimum effects, alpha, ignores, required metrics, guards (see examples/gate.yaml)."),
        click.option("--min-effect", multiple=True, metavar="METRIC=VALUE",
                     help="Minimum effect for a metric or glob, repeatable: usable=0.03, 'judge:*'=0.5, "
                          "gen:ttft_s=25% (relative). Overrides the config."),
        click.option("--alpha", type=click.FloatRange(0, 1, min_open=True, max_open=True),
                     help="Family-wise significance level after Holm correction (default 0.05)."),
        click.option("--top", default=10, show_default=True, type=click.IntRange(0),
                     help="Flipped items to list, each way."),
        click.option("--seed", type=int, help="Bootstrap seed (default 0)."),
        click.option("--resamples", type=click.IntRange(100), help="Bootstrap resamples (default 2000)."),
        click.option("--results", default="results", show_default=True,
                     type=click.Path(file_okay=False, path_type=Path),
                     help="Results root that run names are looked up in."),
    ]
    for opt in reversed(options):
        fn = opt(fn)
    return fn


DIFF_EPILOG = """
\b
Examples:
  sfteval diff v1 v2                                  # markdown to stdout (a PR comment)
  sfteval diff results/v1 results/v2 --format html --out diff.html
  sfteval diff v1 v2 --format json --out diff.json --config gate.yaml
  sfteval diff v1 v2 --min-effect usable=0.03 --min-effect gen:ttft_s=25% --alpha 0.01
  sfteval diff v1 v2 --train-data v1=data/sft_v1.jsonl --train-data v2=data/sft_v2.parquet \\
      --train-map task_type=category
  sfteval diff v1 v2 --view-url http://127.0.0.1:8765   # flipped items link to `sfteval view`

\b
RUN_A is the baseline, RUN_B the candidate; every delta is B - A. A cell is a
regression when its drop is larger than the metric's minimum effect and
significant after Holm correction over all cells. Every cell also has its
minimum detectable effect (MDE, 80% power at Holm's first-step level) and the
items it would need for its minimum effect; a cell whose MDE is larger is
marked blind. Judge cells carry a length-adjusted delta, pairwise groups
length- and style-controlled win rates. With --train-data, the training mix
per task_type stands next to the deltas and each flipped item shows its
nearest training examples.
"""


@click.command("diff", epilog=DIFF_EPILOG)
@click.argument("run_a", metavar="RUN_A")
@click.argument("run_b", metavar="RUN_B")
@click.option("--format", "fmt", type=FORMATS, default="md", show_default=True)
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), metavar="FILE",
              help="Write here (default stdout).")
@click.option("--max-chars", default=65_536, show_default=True, type=click.IntRange(2000),
              help="Markdown size limit (GitHub comments hold 65,536 characters); longer reports are cut with a note.")
@click.option("--view-url", metavar="BASE", help="Address of a running `sfteval view` (e.g. http://127.0.0.1:8765): "
              "the markdown links each flipped item to its page there.")
@stat_options
@train_data_options
def diff_cmd(run_a: str, run_b: str, fmt: str, out: Optional[Path], max_chars: int, view_url: Optional[str],
             config_path: Optional[Path], min_effect: tuple[str, ...], alpha: Optional[float], top: int,
             seed: Optional[int], resamples: Optional[int], results: Path, train_data: tuple[str, ...],
             train_map: tuple[str, ...]) -> None:
    """Compare two runs per task_type x metric: deltas, intervals, p-values, flipped items."""

    @friendly
    def go() -> None:
        config = _config(config_path, alpha, min_effect, seed, resamples)
        if view_url is not None and not view_url.startswith(("http://", "https://")):
            raise click.BadParameter(f"expected an http(s) address, got {view_url!r}", param_hint="--view-url")
        diff, verdict = _run_diff(run_a, run_b, results, config, top, train_data, train_map)
        emit(render_diff(diff, verdict, fmt, max_chars, view_url), out)

    go()


GATE_EPILOG = """
\b
Examples:
  sfteval gate --baseline v1 --candidate v2
  sfteval gate --baseline v1 --candidate v2 --config gate.yaml --report comment.md

\b
Exit status: 0 the candidate passes, 1 it regresses (each regression and failed
guard is listed with its numbers), 2 usage error (bad config, missing run).
"""


@click.command("gate", epilog=GATE_EPILOG)
@click.option("--baseline", required=True, metavar="RUN_A", help="The run to compare against (e.g. the last release).")
@click.option("--candidate", required=True, metavar="RUN_B", help="The run under test.")
@click.option("--report", "report_path", type=click.Path(dir_okay=False, path_type=Path), metavar="FILE",
              help="Also write the diff report here (.md, .json or .html, by extension).")
@stat_options
def gate_cmd(baseline: str, candidate: str, report_path: Optional[Path], config_path: Optional[Path],
             min_effect: tuple[str, ...], alpha: Optional[float], top: int, seed: Optional[int],
             resamples: Optional[int], results: Path) -> None:
    """Pass or fail a candidate run against a baseline: regressions, required metrics, judge guards."""

    @friendly
    def go() -> int:
        config = _config(config_path, alpha, min_effect, seed, resamples)
        diff, verdict = _run_diff(baseline, candidate, results, config, top)
        if report_path is not None:
            fmt = {".json": "json", ".html": "html", ".htm": "html"}.get(report_path.suffix.lower(), "md")
            emit(render_diff(diff, verdict, fmt, 65_536), report_path)
        head = "PASS" if verdict.passed else "FAIL"
        click.echo(f"sfteval gate: {head}: candidate {diff.run_b.run_id} vs baseline {diff.run_a.run_id} "
                   f"({diff.paired} paired items, {diff.settings.get('cells_tested', 0)} cells)")
        for reason in verdict.reasons:
            click.echo(f"  - {reason}")
        for w in verdict.warnings:
            click.echo(f"  warning: {w}", err=True)
        return verdict.exit_code

    sys.exit(go())


@click.command("report")
@click.argument("run", metavar="RUN")
@click.option("--format", "fmt", type=FORMATS, default="md", show_default=True)
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), metavar="FILE",
              help="Write here (default stdout).")
@click.option("--results", default="results", show_default=True, type=click.Path(file_okay=False, path_type=Path),
              help="Results root that run names are looked up in.")
def report_cmd(run: str, fmt: str, out: Optional[Path], results: Path) -> None:
    """One run's report: per task_type metrics, judge reliability (md, json, or html with plots)."""

    @friendly
    def go() -> None:
        from ..runfolder import RunFolder

        from ..labels.folders import run_block
        from ..labels.stage import settings

        folder = RunFolder.open(run, results)
        manifest = folder.manifest()
        summary = folder.summary()
        block = run_block(folder)  # labels added since the summary was written count too
        if block:
            summary.agreement = {**settings(), "single": block}
        if fmt == "md":
            from ..report import run_report_markdown

            text = run_report_markdown(manifest, summary)
        elif fmt == "json":
            text = json.dumps({"manifest": manifest.model_dump(mode="json"), "summary": summary.as_json()},
                              ensure_ascii=False, indent=1) + "\n"
        else:
            from ..reporting.html import run_html
            from ..scoring import item_frame

            text = run_html(manifest, summary.as_json(), item_frame(folder.records(manifest)))
        emit(text, out)

    go()
