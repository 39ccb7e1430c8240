"""Self-contained HTML pages (one file, no external assets, inline SVG) for a diff and for one run.

Why HTML besides markdown: people read a comparison best as a picture -- a per-task_type x metric heatmap
of the deltas and the score distributions side by side -- and need every flipped item's full text, which a
PR comment cannot hold.

The markup lives in Jinja2 templates (``templates/*.html.j2``) with autoescaping on: answers, prompts,
references, rationales and task_type names come from models and suites and are untrusted, so every value is
escaped unless it is one of the inline SVG charts, which :mod:`.svg` builds with its own escaping. This module
only turns results into plain values for the templates.
"""

from __future__ import annotations

import functools
import math
from pathlib import Path
from typing import Any, Iterable, Optional

import numpy as np
import pandas as pd
from markupsafe import Markup

from .. import __version__
from ..differ import format as fmt
from ..differ.result import DiffResult, FlipItem
from ..gate import Verdict
from . import svg

TEMPLATES = Path(__file__).with_name("templates")


@functools.lru_cache(maxsize=1)
def environment() -> Any:
    """The template environment: autoescape everything; an undefined name is an error, not an empty string."""
    import jinja2

    return jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True,
                              undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)


def render(template: str, **context: Any) -> str:
    return environment().get_template(template).render(version=__version__, **context)


def chart(text: str) -> Markup:
    """An SVG chart from :mod:`.svg` (which escapes every label itself) to be inserted as markup."""
    return Markup(text)


def _span(lo: Optional[float], hi: Optional[float]) -> str:
    return "–" if lo is None or hi is None or math.isnan(lo) or math.isnan(hi) else f"[{lo:.3f}, {hi:.3f}]"


def _pct(v: Optional[float]) -> str:
    return "–" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{100 * v:.1f}%"


CELL_HEADERS = ["task_type", "metric", "baseline", "candidate", "Δ", "95% CI", "p", "p (Holm)", "n", "MDE",
                "Δ length-adj.", "status"]
VERDICT_HEADERS = ["task_type", "metric", "baseline", "candidate", "Δ", "95% CI", "p (Holm)", "min effect", "n"]


def _cell_row(r: dict[str, Any]) -> list[str]:
    m, b = r["metric"], bool(r["binary"])
    return [fmt.group_label(r["group"], r["kind"]), m, fmt.value(m, r["mean_a"], b), fmt.value(m, r["mean_b"], b),
            fmt.delta(m, r["delta"], b, fmt.rel_base(r)), fmt.interval(m, r["ci_low"], r["ci_high"], b),
            fmt.pvalue(r["p_value"]), fmt.pvalue(r["p_holm"]), str(int(r["n"])), fmt.mde(r), fmt.length_adjusted(r),
            r["status"]]


def _cells(title: str, rows: list[dict[str, Any]]) -> dict[str, Any]:
    return {"title": title, "headers": CELL_HEADERS, "rows": [_cell_row(r) for r in rows],
            "classes": [r["status"] for r in rows]}


def _min_effect(r: dict[str, Any]) -> str:
    thr = r.get("threshold")
    if thr is None or (isinstance(thr, float) and math.isnan(thr)):
        return "–"
    if r.get("relative"):
        return f"{100 * thr:.0f}% of baseline"
    return f"{100 * thr:.1f} pp" if fmt.is_rate(r["metric"], bool(r["binary"])) else f"{thr:.3g}"


def _verdict_row(r: dict[str, Any]) -> list[str]:
    m, b = r["metric"], bool(r["binary"])
    return [fmt.group_label(r["group"], r["kind"]), m, fmt.value(m, r["mean_a"], b), fmt.value(m, r["mean_b"], b),
            fmt.delta(m, r["delta"], b, fmt.rel_base(r)), fmt.interval(m, r["ci_low"], r["ci_high"], b),
            fmt.pvalue(r["p_holm"]), _min_effect(r), str(int(r["n"]))]


def verdict_view(diff: DiffResult, verdict: Verdict) -> dict[str, Any]:
    """The page's opening table: pass/fail, one row per regression, and the reasons that are not regressions
    (guards, required metrics), which the gate lists after its regression lines."""
    regressions = diff.regressions()
    return {"passed": verdict.passed, "n_regressions": len(regressions), "n_improvements": len(diff.improvements()),
            "headers": VERDICT_HEADERS, "rows": [_verdict_row(r) for r in regressions],
            "other_reasons": [r for r in verdict.reasons if not r.startswith("regression: ")],
            "warnings": list(verdict.warnings)}


def _group_order(cells: pd.DataFrame) -> list[tuple[str, str]]:
    seen = cells[["group", "kind"]].drop_duplicates()
    order = {"overall": 0, "level1": 1, "task_type": 1, "robustness": 2}
    return sorted(((g, k) for g, k in seen.itertuples(index=False)),
                  key=lambda gk: (order[gk[1]], gk[0].split("/")[0], gk[1] == "task_type", gk[0]))


MARKS = {"regression": "▼", "improvement": "▲", "worse": "▽", "better": "△", "changed": "•"}


def delta_heatmap(diff: DiffResult) -> str:
    """The task_type x metric heatmap as SVG text (or a note when there is nothing to draw)."""
    cells = diff.shown_cells
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
            mrow.append(MARKS.get(r["status"], ""))
            trow.append(fmt.describe_cell(r) + (f" — {r['status']}" if r["status"] else ""))
        scores.append(srow)
        marks.append(mrow)
        tips.append(trow)
    neutral = [bool((cells[cells["metric"] == m]["direction"] == "none").all()) for m in metrics]
    labels = [fmt.group_label(g, k) if k != "task_type" else "  " + g for g, k in groups]
    return svg.heatmap(labels, metrics, scores, marks, tips, neutral)


def _text(v: Any) -> str:
    return "" if v is None else str(v)


def _flip(item: FlipItem, a: str, b: str) -> dict[str, Any]:
    d = item.detail or {}
    sides = []
    for key, label in (("a", f"Baseline {a}"), ("b", f"Candidate {b}")):
        side = d.get(key) or {}
        judge = side.get("judge")
        judge_view = None
        if judge:
            texts = judge.get("all_rationales") or [judge.get("rationale")]
            judge_view = {"overall": _text(judge.get("overall")),
                          "scores": ", ".join(f"{k} {v:g}" for k, v in (judge.get("scores") or {}).items()),
                          "rationales": [{"which": f" (sample {i})" if i else "", "text": _text(t)}
                                         for i, t in enumerate(texts)]}
        rules = ", ".join(f"{r['scorer']}={r['score']}" for r in side.get("rules") or [])
        sides.append({"label": label, "answer": _text(side.get("answer")), "judge": judge_view, "rules": rules})
    train = d.get("training")
    train_view = None
    if train:
        train_view = {"index": train.get("index", "candidate"), "membership": train.get("membership") or "not in it",
                      "neighbours": [{"source": n["source"], "task_type": n["task_type"],
                                      "similarity": f"{n['similarity']:.2f}", "exact": n["exact"],
                                      "prompt": n["prompt"], "answer": _text(n.get("answer"))}
                                     for n in train.get("neighbours") or []]}
    return {"item_id": item.item_id, "task_type": item.task_type, "reasons": "; ".join(item.reasons),
            "training": train_view,
            "prompt": d.get("prompt"), "reference": d.get("reference"), "sides": sides,
            "metric_rows": [[m, *v] for m, v in item.values.items()]}


def _facts(diff: DiffResult) -> list[list[Any]]:
    a, b = diff.run_a, diff.run_b
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
    return facts


def _method(diff: DiffResult) -> str:
    st = diff.settings
    return (f"{diff.paired} paired items; {len(diff.only_a)} only in the baseline, {len(diff.only_b)} only in the "
            f"candidate. Δ = candidate − baseline. {st['confidence']:.0%} stratified paired bootstrap intervals "
            f"({st['resamples']} resamples, seed {st['seed']}); exact McNemar for 0/1 metrics, Wilcoxon signed-rank "
            f"otherwise; Holm over {st.get('cells_tested', 0)} cells, α={st['alpha']:g}.")


def _headline_bars(diff: DiffResult) -> Optional[str]:
    metric = diff.headline_metric()
    shown = diff.shown_cells
    if not metric or not len(shown):
        return None
    sel = [r for r in shown[shown["metric"] == metric].to_dict("records")]
    order = {g: i for i, g in enumerate(_group_order(shown))}
    sel.sort(key=lambda r: order.get((r["group"], r["kind"]), 0))
    rate = fmt.is_rate(metric, bool(sel[0]["binary"])) if sel else True
    return svg.paired_bars([fmt.group_label(r["group"], r["kind"]) for r in sel], [r["mean_a"] for r in sel],
                           [r["mean_b"] for r in sel], title=f"{metric} per task_type",
                           names=(diff.run_a.run_id, diff.run_b.run_id), percent=rate)


def _pairwise(diff: DiffResult) -> Optional[dict[str, Any]]:
    p = diff.pairwise
    if not p:
        return None
    rows = [[fmt.group_label(g["group"], g["kind"]), g["n"],
             "–" if g["corrected_score"] is None else f"{g['corrected_score']:.3f}",
             _span(g["corrected_ci_low"], g["corrected_ci_high"]), _ctl(g, "lc"), _ctl(g, "sc"),
             _pct(g["win"]), _pct(g["tie"]), _pct(g["loss"]),
             "–" if g["score"] is None else f"{g['score']:.3f}", _span(g["ci_low"], g["ci_high"]),
             fmt.pvalue(g["p_value"]), _pct(g["swap_flip_rate"])] for g in p.groups if g.get("same_as") is None]
    return {"headers": ["task_type", "n", "corrected score", "95% CI", "length-controlled (95% CI)",
                        "style-controlled (95% CI)", "win", "tie", "loss", "score (flips as ties)",
                        "95% CI", "p (sign test)", "flip rate"], "rows": rows, "source": p.source,
            "inverted": bool(p.inverted)}


def _ctl(g: dict[str, Any], key: str) -> str:
    v = g.get(f"{key}_win_rate")
    return "–" if v is None else f"{v:.3f} {_span(g.get(f'{key}_ci_low'), g.get(f'{key}_ci_high'))}"


def _power(diff: DiffResult) -> Optional[dict[str, Any]]:
    """The headline metric's MDE per group: what this suite can and cannot see."""
    metric = diff.headline_metric()
    shown = diff.shown_cells
    if metric is None or not len(shown) or "mde" not in shown:
        return None
    sel = shown[(shown["metric"] == metric) & (shown["n"] > 0)].to_dict("records")
    order = {g: i for i, g in enumerate(_group_order(shown))}
    sel.sort(key=lambda r: order[(r["group"], r["kind"])])
    rows = [[fmt.group_label(r["group"], r["kind"]), int(r["n"]), fmt.mde(r, mark=False), fmt.threshold(r),
             "–" if r.get("n_needed") is None else str(int(r["n_needed"])), "no" if r["blind"] else "yes"]
            for r in sel]
    return {"metric": metric, "headers": ["task_type", "n", "MDE (80% power)", "min effect", "items needed",
                                          "can see its minimum effect"], "rows": rows,
            "classes": ["blind" if r["blind"] else "" for r in sel],
            "level": diff.settings.get("power", {}).get("alpha_level")}


def _training(diff: DiffResult) -> Optional[dict[str, Any]]:
    t = diff.training
    if not t:
        return None

    def two(r: dict[str, Any], col: str, f: Any) -> str:
        va, vb = r.get(f"{col}_a"), r.get(f"{col}_b")
        return f"{'–' if va is None else f(va)} → {'–' if vb is None else f(vb)}"

    rows = []
    for r in t["task_types"]:
        ev = r.get("eval") or {}
        rows.append([r["task_type"], two(r, "count", str), two(r, "share", _pct),
                     two(r, "mean_answer_chars", lambda v: f"{v:.0f}"), two(r, "duplicate_rate", _pct),
                     r.get("changed_answers", "–"), r.get("new_prompts", "–"), r.get("dropped_prompts", "–"),
                     fmt.delta(t["metric"], ev.get("delta"), fmt.is_rate(t["metric"])) if ev else "–",
                     ev.get("status", "") if ev else "", "; ".join(r.get("changes") or [])])
    return {"metric": t["metric"], "sources": [(side, v["path"], v["rows"]) for side, v in
                                               (("baseline", t["baseline"]), ("candidate", t["candidate"])) if v],
            "headers": ["task_type", "rows", "share", "answer chars", "duplicates", "relabelled", "new prompts",
                        "dropped prompts", f"eval Δ {t['metric']}", "status", "what changed"],
            "rows": rows, "classes": [(r.get("eval") or {}).get("status", "") for r in t["task_types"]]}


def diff_html(diff: DiffResult, verdict: Verdict) -> str:
    a, b = diff.run_a.run_id, diff.run_b.run_id
    tables = [_cells("Regressions", diff.rows("regression")), _cells("Improvements", diff.rows("improvement"))]
    other = diff.rows("worse") + diff.rows("better") + diff.rows("changed")
    if other:
        tables.append(_cells("Other significant changes, not gated", other))
    all_cells = None
    shown = diff.shown_cells
    if len(shown):
        order = {g: i for i, g in enumerate(_group_order(shown))}
        all_cells = _cells("All cells", sorted(shown.to_dict("records"), key=lambda r: order[(r["group"], r["kind"])]))
    histograms = [chart(svg.histogram(m, svg.bin_labels(dist), dist["a"], dist["b"], names=(a, b)))
                  for m, dist in (diff.distributions or {}).items()]
    bars = _headline_bars(diff)
    flipped = [{"title": title, "total": total, "entries": [_flip(it, a, b) for it in items]}
               for items, total, title in ((diff.worse, diff.n_worse, "Items that got worse"),
                                           (diff.better, diff.n_better, "Items that got better"))]
    from .agreement import diff_agreement

    return render("diff.html.j2", title=f"sfteval diff {b} vs {a}", a=a, b=b, verdict=verdict_view(diff, verdict),
                  facts=_facts(diff), method=_method(diff), heatmap=chart(delta_heatmap(diff)),
                  bars=chart(bars) if bars else None, tables=tables, pairwise=_pairwise(diff),
                  histograms=histograms, flipped=flipped, all_cells=all_cells, same_as=diff.same_as_pairs(),
                  power=_power(diff), training=_training(diff),
                  agreement=diff_agreement(diff.agreement, a, b), only_a=list(diff.only_a),
                  only_b=list(diff.only_b))


def _run_histograms(frame: Optional[pd.DataFrame], run_id: str) -> list[Markup]:
    from ..scoring import metric_columns

    if frame is None or not len(frame):
        return []
    out = []
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
        out.append(chart(svg.histogram(m, labels, counts, names=(run_id, ""))))
    return out


def _judge_view(judge: Optional[dict[str, Any]]) -> Optional[dict[str, Any]]:
    if not judge:
        return None
    from ..judging.report import reliability_lines

    lines: Iterable[str] = reliability_lines(judge["reliability"])
    return {"model": judge["model"], "config": judge["config"], "samples": judge["samples"],
            "lines": [line.lstrip("- ").replace("**", "").replace("`", "") for line in lines]}


def run_html(manifest: Any, summary: dict[str, Any], frame: Optional[pd.DataFrame]) -> str:
    """One run: facts, per-task_type metrics, judge reliability, headline bars, distributions."""
    from ..report import format_value
    from ..scoring import headline_metrics

    facts = [["model", f"{manifest.model.name} ({manifest.model.path})"], ["backend", manifest.backend],
             ["suite", f"{manifest.suite_name} v{manifest.suite_version} {manifest.suite_hash[:12]}"],
             ["status", manifest.status], *[[k, v] for k, v in manifest.counts.items()]]
    metrics = list(summary["overall"]["metrics"])
    groups = list(summary["task_types"].items())
    groups += [(f"[{k}]", summary[k]) for k in ("robustness", "overall") if k in summary]
    table = {"headers": ["task_type", "n"] + metrics,
             "rows": [[name, g["n"]] + [format_value(m, g["metrics"].get(m)) for m in metrics] for name, g in groups]}
    bars = None
    from ..summary import GroupSummary

    head = headline_metrics(GroupSummary.model_validate(summary["overall"]), 1)
    if head:
        m = head[0]
        vals = [g["metrics"].get(m) for _, g in groups]
        bars = chart(svg.paired_bars([n for n, _ in groups], vals, [None] * len(vals), title=f"{m} per task_type",
                                     names=(manifest.run_id, ""), percent=format_value(m, 0.5).endswith("%")))
    from .agreement import run_agreement

    return render("run.html.j2", title=f"sfteval run {manifest.run_id}", run_id=manifest.run_id, facts=facts,
                  groups=table, bars=bars, judge=_judge_view(summary.get("judge")),
                  agreement=run_agreement(summary.get("agreement")),
                  histograms=_run_histograms(frame, manifest.run_id))
