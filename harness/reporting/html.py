"""Self-contained HTML pages (one file, no external assets, inline SVG) for a diff and for one run.

Why HTML besides markdown: people read a comparison best as a picture -- a per-task_type x metric heatmap
of the deltas and the score distributions side by side -- and need every flipped item's full text, which a
PR comment cannot hold.
"""

from __future__ import annotations

import html
import math
from typing import Any, Iterable, Optional, Sequence

import numpy as np
import pandas as pd

from .. import __version__
from ..differ import format as fmt
from ..differ.result import DiffResult, FlipItem
from ..gate import Verdict
from . import svg

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:24px auto;max-width:1200px;padding:0 16px;
color:#222}
h1{font-size:22px}h2{font-size:18px;margin-top:32px;border-bottom:1px solid #ddd;padding-bottom:4px}
table{border-collapse:collapse;font-size:13px;margin:8px 0}th,td{border:1px solid #ddd;padding:3px 7px;text-align:right}
th{background:#f6f6f6}td:first-child,td:nth-child(2),th:first-child{text-align:left}
.pass{background:#e7f5e9;border-left:6px solid #2e7d32;padding:8px 12px}
.fail{background:#fdecea;border-left:6px solid #c62828;padding:8px 12px}
.warn{background:#fff8e1;border-left:6px solid #f9a825;padding:6px 12px;margin:4px 0}
.regression{background:#fde0dc}.improvement{background:#dcebf7}.worse{background:#fff0e0}.better{background:#eaf3fb}
pre{white-space:pre-wrap;background:#f7f7f7;padding:8px;border:1px solid #e3e3e3;max-height:420px;overflow:auto}
details{margin:6px 0}summary{cursor:pointer}.grid{display:flex;flex-wrap:wrap;gap:18px}.small{color:#666;font-size:12px}
.cols{display:grid;grid-template-columns:1fr 1fr;gap:12px}
"""


def esc(v: Any) -> str:
    return html.escape("" if v is None else str(v), quote=True)


def page(title: str, body: Iterable[str]) -> str:
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{esc(title)}</title>'
            f'<meta name="viewport" content="width=device-width,initial-scale=1"><style>{CSS}</style></head><body>\n'
            + "\n".join(body) + f'\n<p class="small">sfteval {esc(__version__)}</p></body></html>\n')


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]], classes: Optional[Iterable[str]] = None) -> str:
    cls = list(classes) if classes is not None else None
    out = ["<table><tr>" + "".join(f"<th>{esc(h)}</th>" for h in headers) + "</tr>"]
    for i, r in enumerate(rows):
        c = f' class="{esc(cls[i])}"' if cls and cls[i] else ""
        out.append(f"<tr{c}>" + "".join(f"<td>{esc(v)}</td>" for v in r) + "</tr>")
    return "".join(out) + "</table>"


def _span(lo: Optional[float], hi: Optional[float]) -> str:
    return "–" if lo is None or hi is None or math.isnan(lo) or math.isnan(hi) else f"[{lo:.3f}, {hi:.3f}]"


def _pct(v: Optional[float]) -> str:
    return "–" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{100 * v:.1f}%"


CELL_HEADERS = ["task_type", "metric", "baseline", "candidate", "Δ", "95% CI", "p", "p (Holm)", "n", "status"]


def _cell_row(r: dict[str, Any]) -> list[str]:
    m, b = r["metric"], bool(r["binary"])
    return [fmt.group_label(r["group"], r["kind"]), m, fmt.value(m, r["mean_a"], b), fmt.value(m, r["mean_b"], b),
            fmt.delta(m, r["delta"], b, fmt.rel_base(r)), fmt.interval(m, r["ci_low"], r["ci_high"], b),
            fmt.pvalue(r["p_value"]), fmt.pvalue(r["p_holm"]), str(int(r["n"])), r["status"]]


def _cells_table(rows: list[dict[str, Any]]) -> str:
    return table(CELL_HEADERS, (_cell_row(r) for r in rows), (r["status"] for r in rows))


def _group_order(cells: pd.DataFrame) -> list[tuple[str, str]]:
    seen = cells[["group", "kind"]].drop_duplicates()
    order = {"overall": 0, "level1": 1, "task_type": 1, "robustness": 2}
    return sorted(((g, k) for g, k in seen.itertuples(index=False)),
                  key=lambda gk: (order[gk[1]], gk[0].split("/")[0], gk[1] == "task_type", gk[0]))


def delta_heatmap(diff: DiffResult) -> str:
    cells = diff.cells
    if not len(cells):
        return "<p>No cells.</p>"
    groups = _group_order(cells)
    metrics = list(dict.fromkeys(cells["metric"]))
    index = {(r["group"], r["metric"]): r for r in cells.to_dict("records")}
    scores: list[list[Optional[float]]] = []
    marks: list[list[str]] = []
    tips: list[list[str]] = []
    for g, _k in groups:
        srow: list[Optional[float]] = []
        mrow: list[str] = []
        trow: list[str] = []
        for m in metrics:
            r = index.get((g, m))
            if r is None or r["n"] == 0:
                srow.append(None)
                mrow.append("")
                trow.append(f"{g} {m}: no data")
                continue
            thr = r["threshold"] if r["threshold"] and r["threshold"] > 0 else None
            raw = r["effect"] if r["direction"] != "none" else abs(r["delta"])
            score = None if thr is None or math.isnan(raw) else raw / thr
            srow.append(score if score is None or r["significant"] else 0.3 * score)  # faint: not significant
            mrow.append({"regression": "▼", "improvement": "▲", "worse": "▽", "better": "△", "changed": "•"}.get(
                r["status"], ""))
            trow.append(fmt.describe_cell(r) + (f" — {r['status']}" if r["status"] else ""))
        scores.append(srow)
        marks.append(mrow)
        tips.append(trow)
    neutral = [bool((cells[cells["metric"] == m]["direction"] == "none").all()) for m in metrics]
    labels = [fmt.group_label(g, k) if k != "task_type" else "  " + g for g, k in groups]
    return svg.heatmap(labels, metrics, scores, marks, tips, neutral)


def _flip(item: FlipItem, a: str, b: str) -> str:
    d = item.detail or {}
    parts = [f"<details><summary><b>{esc(item.item_id)}</b> · {esc(item.task_type)} · {esc('; '.join(item.reasons))}"
             "</summary>"]
    if d.get("prompt") is not None:
        parts.append(f"<h4>Prompt</h4><pre>{esc(d['prompt'])}</pre>")
    if d.get("reference") is not None:
        parts.append(f"<h4>Reference</h4><pre>{esc(d['reference'])}</pre>")
    parts.append('<div class="cols">')
    for key, label in (("a", f"Baseline {a}"), ("b", f"Candidate {b}")):
        side = d.get(key) or {}
        parts.append(f"<div><h4>{esc(label)}</h4><pre>{esc(side.get('answer'))}</pre>")
        judge = side.get("judge")
        if judge:
            scores = ", ".join(f"{k} {v:g}" for k, v in (judge.get("scores") or {}).items())
            parts.append(f"<p class='small'>judge overall {esc(judge.get('overall'))}; {esc(scores)}</p>")
            for i, text in enumerate(judge.get("all_rationales") or [judge.get("rationale")]):
                which = f" (sample {i})" if i else ""
                parts.append(f"<p class='small'>judge rationale{which}</p><pre>{esc(text)}</pre>")
        rules = side.get("rules") or []
        if rules:
            parts.append("<p class='small'>" + esc(", ".join(f"{r['scorer']}={r['score']}" for r in rules)) + "</p>")
        parts.append("</div>")
    parts.append("</div>" + table(["metric", "baseline", "candidate"], ([m, *v] for m, v in item.values.items()))
                 + "</details>")
    return "".join(parts)


def diff_html(diff: DiffResult, verdict: Verdict) -> str:
    a, b = diff.run_a, diff.run_b
    body = [f"<h1>sfteval diff: candidate <code>{esc(b.run_id)}</code> vs baseline <code>{esc(a.run_id)}</code></h1>"]
    n_reg = len(diff.regressions())
    body.append(f'<div class="{"pass" if verdict.passed else "fail"}"><b>{"PASS" if verdict.passed else "FAIL"}</b> · '
                f"{n_reg} regressions · {len(diff.improvements())} improvements</div>")
    body += [f"<div class='fail'>{esc(r)}</div>" for r in verdict.reasons]
    body += [f"<div class='warn'>{esc(w)}</div>" for w in verdict.warnings]
    facts: list[list[Any]] = [
        ["model", a.model, b.model],
        ["suite", *(f"{r.suite_name} v{r.suite_version} {r.suite_hash[:12]}" for r in (a, b))],
        ["items", a.items, b.items],
        ["generation error rate", _pct(a.generation_error_rate), _pct(b.generation_error_rate)],
        ["judge", a.judge or "–", b.judge or "–"],
        ["judge unparsed rate", _pct(a.judge_unparsed_rate), _pct(b.judge_unparsed_rate)],
        ["judge error rate", _pct(a.judge_error_rate), _pct(b.judge_error_rate)],
    ]
    if diff.pairwise:
        facts.append(["pairwise swap flip rate", "", _pct(diff.pairwise.swap_flip_rate)])
    body.append(table(["", f"baseline {a.run_id}", f"candidate {b.run_id}"], facts))
    st = diff.settings
    body.append(f"<p class='small'>{diff.paired} paired items; {len(diff.only_a)} only in the baseline, "
                f"{len(diff.only_b)} only in the candidate. Δ = candidate − baseline. {st['confidence']:.0%} "
                f"stratified paired bootstrap intervals ({st['resamples']} resamples, seed {st['seed']}); "
                f"exact McNemar for 0/1 metrics, Wilcoxon signed-rank otherwise; "
                f"Holm over {st.get('cells_tested', 0)} cells, α={st['alpha']:g}.</p>")
    body += ["<h2>Delta per task_type and metric</h2>",
             "<p class='small'>Colour: change relative to the metric's minimum effect, direction-aware "
             "(blue better, red worse; grey: no direction; faint: not significant after Holm). "
             "▼ regression, ▲ improvement, ▽/△ significant but not gated, • changed. "
             "Hover a cell for its numbers.</p>", delta_heatmap(diff)]
    metric = diff.headline_metric()
    if metric and len(diff.cells):
        sel = [r for r in diff.cells[diff.cells["metric"] == metric].to_dict("records")]
        order = {g: i for i, g in enumerate(_group_order(diff.cells))}
        sel.sort(key=lambda r: order.get((r["group"], r["kind"]), 0))
        rate = fmt.is_rate(metric, bool(sel[0]["binary"])) if sel else True
        body.append(svg.paired_bars([fmt.group_label(r["group"], r["kind"]) for r in sel], [r["mean_a"] for r in sel],
                                    [r["mean_b"] for r in sel], title=f"{metric} per task_type",
                                    names=(a.run_id, b.run_id), percent=rate))
    for status, title in (("regression", "Regressions"), ("improvement", "Improvements")):
        rows = diff.rows(status)
        body += [f"<h2>{title} ({len(rows)})</h2>", _cells_table(rows) if rows else "<p>none</p>"]
    other = diff.rows("worse") + diff.rows("better") + diff.rows("changed")
    if other:
        body += [f"<h2>Other significant changes, not gated ({len(other)})</h2>", _cells_table(other)]
    if diff.pairwise:
        p = diff.pairwise
        body += ["<h2>Pairwise judge (candidate vs baseline, both orders)</h2>",
                 table(["task_type", "n", "corrected score", "95% CI", "win", "tie", "loss", "score (flips as ties)",
                        "95% CI", "p (sign test)", "flip rate"],
                       ([fmt.group_label(g["group"], g["kind"]), g["n"],
                         "–" if g["corrected_score"] is None else f"{g['corrected_score']:.3f}",
                         _span(g["corrected_ci_low"], g["corrected_ci_high"]), _pct(g["win"]), _pct(g["tie"]),
                         _pct(g["loss"]), "–" if g["score"] is None else f"{g['score']:.3f}",
                         _span(g["ci_low"], g["ci_high"]), fmt.pvalue(g["p_value"]), _pct(g["swap_flip_rate"])]
                        for g in p.groups)),
                 f"<p class='small'>source: {esc(p.source)}"
                 f"{' (read from the reverse pair, outcomes mapped)' if p.inverted else ''}</p>"]
    from .agreement import diff_agreement_html

    body.append(diff_agreement_html(diff.agreement, a.run_id, b.run_id))
    if diff.distributions:
        body.append("<h2>Distributions (all paired items)</h2><div class='grid'>")
        for m, dist in diff.distributions.items():
            body.append(svg.histogram(m, svg.bin_labels(dist), dist["a"], dist["b"], names=(a.run_id, b.run_id)))
        body.append("</div>")
    for items, total, title in ((diff.worse, diff.n_worse, "Items that got worse"),
                                (diff.better, diff.n_better, "Items that got better")):
        body.append(f"<h2>{title} (top {len(items)} of {total})</h2>")
        body += [_flip(it, a.run_id, b.run_id) for it in items] or ["<p>none</p>"]
    if len(diff.cells):
        order = {g: i for i, g in enumerate(_group_order(diff.cells))}
        rows = sorted(diff.cells.to_dict("records"), key=lambda r: order[(r["group"], r["kind"])])
        body += [f"<h2>All cells ({len(rows)})</h2>", _cells_table(rows)]
    if diff.only_a or diff.only_b:
        body += ["<h2>Items in one run only</h2>", f"<p>baseline only: {esc(', '.join(diff.only_a))}</p>",
                 f"<p>candidate only: {esc(', '.join(diff.only_b))}</p>"]
    return page(f"sfteval diff {b.run_id} vs {a.run_id}", body)


def run_html(manifest: Any, summary: dict[str, Any], frame: Optional[pd.DataFrame]) -> str:
    """One run: facts, per-task_type metrics, judge reliability, headline bars, distributions."""
    from ..report import format_value
    from ..scoring import headline_metrics, metric_columns

    body = [f"<h1>sfteval run <code>{esc(manifest.run_id)}</code></h1>",
            table(["", ""], [["model", f"{manifest.model.name} ({manifest.model.path})"], ["backend", manifest.backend],
                             ["suite", f"{manifest.suite_name} v{manifest.suite_version} {manifest.suite_hash[:12]}"],
                             ["status", manifest.status], *[[k, v] for k, v in manifest.counts.items()]])]
    metrics = [m for m in summary["overall"]["metrics"]]
    groups = list(summary["task_types"].items())
    groups += [(f"[{k}]", summary[k]) for k in ("robustness", "overall") if k in summary]
    body += ["<h2>Per task_type</h2>", table(["task_type", "n"] + metrics, (
        [name, g["n"]] + [format_value(m, g["metrics"].get(m)) for m in metrics] for name, g in groups))]
    from ..summary import GroupSummary

    head = headline_metrics(GroupSummary.model_validate(summary["overall"]), 1)
    if head:
        m = head[0]
        vals = [g["metrics"].get(m) for _, g in groups]
        body.append(svg.paired_bars([n for n, _ in groups], vals, [None] * len(vals), title=f"{m} per task_type",
                                    names=(manifest.run_id, ""), percent=format_value(m, 0.5).endswith("%")))
    judge = summary.get("judge")
    if judge:
        from ..judging.report import reliability_lines

        body += ["<h2>Judge reliability</h2>", f"<p>judge {esc(judge['model'])} · config {esc(judge['config'])} · "
                 f"{esc(judge['samples'])} sample(s) per answer</p><ul>"]
        body += [f"<li>{esc(line.lstrip('- ').replace('**', '').replace('`', ''))}</li>"
                 for line in reliability_lines(judge["reliability"])] + ["</ul>"]
    from .agreement import run_agreement_html

    body.append(run_agreement_html(summary.get("agreement")))
    if frame is not None and len(frame):
        body.append("<h2>Distributions</h2><div class='grid'>")
        for m in metric_columns(frame):
            v = frame[m].to_numpy(dtype=np.float64)
            v = v[~np.isnan(v)]
            if v.size == 0 or np.isin(v, (0.0, 1.0)).all():
                continue
            distinct = np.unique(v)
            if distinct.size <= 20:
                labels, counts = [f"{x:.3g}" for x in distinct], np.bincount(np.searchsorted(distinct, v)).tolist()
            else:
                counts_arr, edges = np.histogram(v, 20)
                labels, counts = [f"{e:.3g}" for e in edges[:-1]], counts_arr.tolist()
            body.append(svg.histogram(m, labels, counts, names=(manifest.run_id, "")))
        body.append("</div>")
    return page(f"sfteval run {manifest.run_id}", body)
