"""`sfteval trend`: one suite's metrics per task_type over many runs (checkpoints)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import click

from .common import emit, friendly, load_train_data, results_option, train_data_options

TREND_EPILOG = """
\b
Examples:
  sfteval trend step-1000 step-2000 step-4000 step-8000          # markdown to stdout
  sfteval trend lr1e-5 lr2e-5 lr5e-5 --format html --out sweep.html
  sfteval trend v1 v2 v3 --label v1=1000 --label v2=2000 --label v3=3000 --metric usable --metric 'probe:*'
  sfteval trend s1 s2 --train-data s1=data/mix1.jsonl --train-data s2=data/mix2.jsonl --format json

\b
Runs are ordered by their step when every run has one (--label RUN=STEP, or a
number after step/checkpoint/ckpt/iter in the run id or model path), else as
given. Per task_type and metric: the mean of every run on the items all runs
have, the best run (★), and each run's significant regressions against the
best earlier run (exact McNemar / Wilcoxon, Holm over the whole table).
"""


@click.command("trend", epilog=TREND_EPILOG)
@click.argument("runs", nargs=-1, required=True, metavar="RUN...")
@click.option("--metric", "metrics", multiple=True, metavar="METRIC",
              help="Metrics to compare (globs, repeatable): only these are tested, so Holm's correction runs over "
                   "fewer tests. Default: every metric is tested; markdown/HTML show the headline metric and the "
                   "probe metrics, JSON all.")
@click.option("--label", "labels", multiple=True, metavar="RUN=STEP",
              help="The step (a number: orders the runs) or a label of a run, repeatable.")
@click.option("--format", "fmt", type=click.Choice(["md", "json", "html"]), default="md", show_default=True)
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), metavar="FILE",
              help="Write here (default stdout).")
@click.option("--config", "config_path", type=click.Path(dir_okay=False, path_type=Path), metavar="GATE_YAML",
              help="Minimum effects, directions, alpha, ignores (as for diff and gate).")
@results_option()
@train_data_options
def trend_cmd(runs: tuple[str, ...], metrics: tuple[str, ...], labels: tuple[str, ...], fmt: str,
              out: Optional[Path], config_path: Optional[Path], results: Path, train_data: tuple[str, ...],
              train_map: tuple[str, ...]) -> None:
    """Compare many runs of one suite: per task_type x metric, the best run and the regressions."""

    @friendly
    def go() -> None:
        import json

        from ..gate import load_config
        from ..runfolder import RunFolder
        from ..trend import trend_runs

        if len(runs) < 2:
            raise click.UsageError("trend needs at least two runs")
        folders = [RunFolder.open(r, results) for r in runs]
        names = {str(i): (arg, f.run_id, f.path.name) for i, (arg, f) in enumerate(zip(runs, folders))}
        label_map: dict[str, str] = {}
        for pair in labels:
            name, sep, value = pair.partition("=")
            key = next((k for k, ns in names.items() if name.strip() in ns), None)
            if not sep or not value.strip() or key is None:
                raise click.BadParameter(f"expected RUN=STEP with RUN one of the runs, got {pair!r}",
                                         param_hint="--label")
            label_map[folders[int(key)].run_id] = value.strip()
        train = {int(k): v for k, v in load_train_data(train_data, train_map, names).items()}
        try:
            result = trend_runs(folders, label_map, load_config(config_path), metrics, train)
        except ValueError as e:
            if not str(e).startswith("metric "):
                raise
            raise click.BadParameter(str(e), param_hint="--metric") from None
        if fmt == "json":
            text = json.dumps(result.as_dict(), ensure_ascii=False, indent=1) + "\n"
        elif fmt == "html":
            from ..reporting.trend import trend_html

            text = trend_html(result, metrics)
        else:
            from ..reporting.trend import trend_markdown

            text = trend_markdown(result, metrics)
        emit(text, out)

    go()
