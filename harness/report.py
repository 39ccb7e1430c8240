"""Human-readable views of one run: the terminal table and report.md."""

from __future__ import annotations

from typing import Optional

from tabulate import tabulate

from .models import RunManifest
from .scoring import headline_metrics
from .stages.base import Stage
from .stages.registry import stages as registered_stages
from .summary import RunSummary, task_type_label

#: Metrics that are rates in [0, 1] and read best as percentages.
_RATE_PREFIXES = ("rule:", "gen:error", "gen:truncated", "probe:choice_acc", "probe:ref_greedy",
                  "probe:cont_base_knows", "probe:cont_sft_correct", "probe:cont_lost")


def format_value(metric: str, value: Optional[float]) -> str:
    if value is None:
        return "–"
    if metric == "usable" or metric.startswith(_RATE_PREFIXES) or metric.endswith((":unparsed", ":error")):
        return f"{100 * value:.1f}%"
    if abs(value) >= 100:
        return f"{value:.0f}"
    return f"{value:.3g}" if abs(value) < 1 else f"{value:.2f}"


def task_type_rows(summary: RunSummary, metrics: list[str]) -> list[list[str]]:
    rows = []
    for name, group in summary.groups():
        if name in summary.task_types:
            label = task_type_label(name)
        else:
            label = f"[{name}]"
        rows.append([label, group.n] + [format_value(m, group.metrics.get(m)) for m in metrics])
    return rows


def summary_table(summary: RunSummary, *, fmt: str = "simple", limit: int = 6) -> str:
    metrics = headline_metrics(summary.overall, limit)
    return tabulate(task_type_rows(summary, metrics), headers=["task_type", "n"] + metrics, tablefmt=fmt,
                    disable_numparse=True)


def run_report_markdown(manifest: RunManifest, summary: RunSummary, stages: Optional[list[Stage]] = None) -> str:
    """report.md: the run's facts, the per-task_type table, then every stage's own section."""
    counts = manifest.counts
    lines = [
        f"# sfteval run `{manifest.run_id}`",
        "",
        f"- model: `{manifest.model.name}` (`{manifest.model.path}`, fingerprint `{manifest.model.fingerprint}`)",
        f"- backend: `{manifest.backend}`, prompts: {manifest.prompt_mode}",
        f"- suite: `{manifest.suite_name}` v{manifest.suite_version} (hash `{manifest.suite_hash[:12]}`)",
        f"- items: {counts.get('items', 0)}, generations: {counts.get('generations', 0)} "
        f"({counts.get('generation_errors', 0)} failed), judgments: {counts.get('judgments', 0)} "
        f"({counts.get('unparsed', 0)} unparsed)",
    ]
    for note in manifest.render_notes:
        lines.append(f"- note: {note}")
    lines += ["", "## Per task_type", "", summary_table(summary, fmt="github", limit=12), ""]
    sections = [stage.report_section(summary) for stage in (registered_stages() if stages is None else stages)]
    return "\n".join(lines) + "".join(sections)
