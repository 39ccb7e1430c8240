"""The trend over k runs as markdown (size-budgeted like the diff), and as one HTML page with line plots.

The JSON is :meth:`harness.trend.TrendResult.as_dict`. Markdown and HTML show the headline metric and the probe
metrics (or the ``--metric`` ones): per task_type a row, per run a column, ★ on the best run, 🔴 on a run that
regressed against the best run before it; then every regression with its numbers.
"""

from __future__ import annotations

import math
from typing import Any, Optional

from ..differ import format as fmt
from ..trend import HEADLINE_ORDER, TrendResult
from .markdown import GITHUB_COMMENT_LIMIT, _Doc, cell_text, table_head, table_row

_KIND = {"overall": 0, "level1": 1, "task_type": 1, "robustness": 2}


def shown_metrics(t: TrendResult, chosen: tuple[str, ...] = ()) -> list[str]:
    if chosen:
        return t.metrics
    head = t.headline_metric()
    probes = [m for m in ("probe:ref_mean", "probe:ref_sum", "probe:choice_acc", "probe:ref_greedy") if m in t.metrics]
    return [m for m in dict.fromkeys(([head] if head else []) + probes)]


def _rows(t: TrendResult, metric: str) -> list[dict[str, Any]]:
    return _sorted([r for r in t.rows if r["metric"] == metric and not r["same_as"]])


def _sorted(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(rows, key=lambda r: (_KIND[r["kind"]], r["group"].split("/")[0], r["kind"] == "task_type",
                                       r["group"]))


def best_rows(t: TrendResult, chosen: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """The best run per group: on the first shown metric, else (a task_type that metric does not score) on the
    first headline metric the group has, else on another shown metric; only chosen metrics when chosen."""
    shown = shown_metrics(t, chosen)
    if not shown:
        return []
    pool = shown if chosen else [*HEADLINE_ORDER, *shown]
    order = [shown[0], *(m for m in HEADLINE_ORDER if m in pool), *shown]
    return _sorted(t.best_table(list(dict.fromkeys(order))))


def _cells(t: TrendResult, r: dict[str, Any]) -> list[str]:
    regressed = {(x["run"]) for x in t.regressions + t.worse if x["group"] == r["group"] and x["metric"] == r["metric"]}
    out = []
    for j, v in enumerate(r["means"]):
        text = fmt.value(r["metric"], v, r["binary"])
        if r["best"] == j:
            text += " ★"
        if j in regressed:
            text += " 🔴"
        out.append(text)
    return out


def trend_markdown(t: TrendResult, chosen: tuple[str, ...] = (), limit: int = GITHUB_COMMENT_LIMIT) -> str:
    doc = _Doc(limit)
    labels = [r.label for r in t.runs]
    doc.add(f"### sfteval trend: {len(t.runs)} runs ({t.settings.get('order', '')}), {t.paired} items in every run\n\n"
            f"Runs: {' → '.join(f'`{cell_text(x)}`' for x in labels)} · ★ best run · 🔴 significant regression against "
            f"the best earlier run (paired test, Holm over {t.settings['tests']} tests, α={t.settings['alpha']:g}; "
            f"metrics not gated, such as log P, count as worse, not as regressions)\n")
    for w in t.warnings:
        doc.add(f"\n> ⚠️ {cell_text(w)}\n")
    head = shown_metrics(t, chosen)
    best = best_rows(t, chosen)
    if best:
        doc.add("\n#### Best run per task_type\n\n" + table_head(["task_type", "metric", "best run"])
                + "".join(table_row([fmt.group_label(r["group"], r["kind"]), f"`{r['metric']}`",
                                     t.runs[r["best"]].label]) for r in best))
    regs = t.regressions
    doc.section(f"\n#### Regressions ({len(regs)})\n\n" + (table_head(
        ["run", "against", "task_type", "metric", "best earlier", "this run", "Δ", "p (Holm)", "n"]) if regs else "none\n"),
        (table_row([x["run_label"], x["against_label"], fmt.group_label(x["group"], x["kind"]), f"`{x['metric']}`",
                    fmt.value(x["metric"], x["mean_best"], x["binary"]), fmt.value(x["metric"], x["mean_run"], x["binary"]),
                    fmt.delta(x["metric"], x["delta"], x["binary"]), fmt.pvalue(x["p_holm"]), x["n"]]) for x in regs),
        "", len(regs), "regressions", share=0.3)
    for m in head:
        rows = _rows(t, m)
        doc.section(f"\n#### `{m}`\n\n" + table_head(["task_type", "n"] + labels),
                    (table_row([fmt.group_label(r["group"], r["kind"]), max(r["n"])] + _cells(t, r)) for r in rows),
                    "", len(rows), f"{m} rows", share=0.2)
    if t.training:
        doc.add(_training_md(t))
    return "".join(doc.parts) + "\n<sub>The JSON report (--format json) has every metric and test.</sub>\n"


def _training_md(t: TrendResult) -> str:
    mixes = t.training["mix"]  # type: ignore[index]
    labels = list(mixes)
    names = sorted({r["task_type"] for rows in mixes.values() for r in rows},
                   key=lambda n: (n != "overall", n.split("/")[0], "/" in n, n))
    by = {lab: {r["task_type"]: r for r in rows} for lab, rows in mixes.items()}
    out = ["\n#### Training rows per task_type\n\n", table_head(["task_type"] + labels)]
    for n in names:
        out.append(table_row([n] + [str(by[lab][n]["count"]) if n in by[lab] else "0" for lab in labels]))
    return "".join(out)


def trend_html(t: TrendResult, chosen: tuple[str, ...] = ()) -> str:
    from .html import chart, render
    from .lines import line_chart

    labels = [r.label for r in t.runs]
    xs = [r.step if r.step is not None else float(i) for i, r in enumerate(t.runs)]
    sections = []
    for m in shown_metrics(t, chosen):
        rows = _rows(t, m)
        series = [(fmt.group_label(r["group"], r["kind"]), r["means"]) for r in rows][:14]
        rate = fmt.is_rate(m, bool(rows and rows[0]["binary"]))
        sections.append({"metric": m, "chart": chart(line_chart(series, xs, labels, title=f"{m} per task_type",
                                                                percent=rate)),
                         "headers": ["task_type", "n"] + labels, "omitted": max(0, len(rows) - 14),
                         "rows": [[fmt.group_label(r["group"], r["kind"]), max(r["n"])] + _cells(t, r) for r in rows]})
    best = best_rows(t, chosen)
    regs = [[x["run_label"], x["against_label"], fmt.group_label(x["group"], x["kind"]), x["metric"],
             fmt.value(x["metric"], x["mean_best"], x["binary"]), fmt.value(x["metric"], x["mean_run"], x["binary"]),
             fmt.delta(x["metric"], x["delta"], x["binary"]), fmt.pvalue(x["p_holm"]), x["n"]] for x in t.regressions]
    training = None
    if t.training:
        mixes = t.training["mix"]
        names = sorted({r["task_type"] for rows in mixes.values() for r in rows},
                       key=lambda n: (n != "overall", n.split("/")[0], "/" in n, n))
        by = {lab: {r["task_type"]: r for r in rows} for lab, rows in mixes.items()}
        training = {"headers": ["task_type"] + list(mixes),
                    "rows": [[n] + [by[lab][n]["count"] if n in by[lab] else 0 for lab in mixes] for n in names]}
    return render("trend.html.j2", title=f"sfteval trend over {len(t.runs)} runs", runs=labels, t=t,
                  best=[[fmt.group_label(r["group"], r["kind"]), r["metric"], t.runs[r["best"]].label] for r in best],
                  regressions=regs, sections=sections, training=training)


def _num(v: Optional[float]) -> bool:
    return v is not None and not (isinstance(v, float) and math.isnan(v))
