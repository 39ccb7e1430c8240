"""Human-readable views of one run: the terminal table and report.md."""

from __future__ import annotations

from typing import Any, Optional

from tabulate import tabulate

from .models import RunManifest
from .scoring import OVERALL, headline_metrics

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


def task_type_rows(summary: dict[str, Any], metrics: list[str]) -> list[list[str]]:
    rows = []
    for name, group in summary["task_types"].items():
        label = f"└ {name.split('/', 1)[1]}" if "/" in name else name  # second level under its first
        rows.append([label, group["n"]] + [format_value(m, group["metrics"].get(m)) for m in metrics])
    for name in ("robustness", OVERALL):
        if name in summary:
            group = summary[name]
            rows.append([f"[{name}]", group["n"]] + [format_value(m, group["metrics"].get(m)) for m in metrics])
    return rows


def summary_table(summary: dict[str, Any], *, fmt: str = "simple", limit: int = 6) -> str:
    metrics = headline_metrics(summary, limit)
    return tabulate(task_type_rows(summary, metrics), headers=["task_type", "n"] + metrics, tablefmt=fmt,
                    disable_numparse=True)


def run_report_markdown(manifest: RunManifest, summary: dict[str, Any]) -> str:
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
    from .judging.report import run_judge_markdown
    from .probes.metrics import probe_markdown

    return "\n".join(lines) + run_judge_markdown(summary) + probe_markdown(summary)
