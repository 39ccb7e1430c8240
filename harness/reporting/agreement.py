"""The judge-human agreement section of the HTML reports (diff and run) as plain values for the templates
(``templates/macros.html.j2``: ``agreement_section``), which escape every text."""

from __future__ import annotations

from typing import Any, Optional

from ..labels.report import enough, fmt_stat, not_enough_text

RATING_HEADERS = ["raters", "rating", "n", "κw (quadratic)", "Spearman ρ", "mean abs. difference"]


def _score_rows(who: str, part: dict[str, Any], names: dict[str, str]) -> list[dict[str, Any]]:
    rows = []
    for name, s in [("overall", part["overall"]), *part["dimensions"].items()]:
        row: dict[str, Any] = {"who": who, "rating": names.get(name, name), "n": s.get("n", 0), "note": None,
                               "cells": []}
        if enough(s):
            row["cells"] = [fmt_stat(s["kappa_w"]), fmt_stat(s["spearman"]), fmt_stat(s["mad"])]
        else:
            row["note"] = not_enough_text(s)
        rows.append(row)
    return rows


def _usable_line(who: str, u: dict[str, Any]) -> str:
    if not enough(u):
        return f"usable decision, {who}: {not_enough_text(u)}"
    c = u["confusion"]
    return (f"usable decision, {who} (n={u['n']}): Cohen's κ {fmt_stat(u['kappa'])}, precision "
            f"{fmt_stat(u['precision'])}, recall {fmt_stat(u['recall'])}; both usable {c['tp']}, only the first "
            f"{c['fp']}, only the second {c['fn']}, neither {c['tn']}")


def _byline(b: dict[str, Any]) -> str:
    stale = f" ({b['stale']} stale, not counted)" if b.get("stale") else ""
    return f"{b['labels']} labels on {b['items']} items by {', '.join(b['reviewers']) or '–'}{stale}"


def single_view(b: dict[str, Any], title: str) -> dict[str, Any]:
    names = b.get("dimension_names") or {}
    parts = [(who, key) for who, key in (("judge vs human", "judge_vs_human"), ("human vs human", "human_vs_human"))
             if b.get(key) and not (key == "human_vs_human" and not b[key].get("pairs"))]
    rows = [row for who, key in parts for row in _score_rows(who, b[key], names)]
    lines = []
    if b.get("human_vs_human") and not b["human_vs_human"].get("pairs"):
        lines.append("human vs human: no answer labelled by two reviewers yet")
    lines += [_usable_line(who, b[key]["usable"]) for who, key in parts if b[key].get("usable") is not None]
    return {"title": title, "byline": f"{_byline(b)}; judge {b.get('judge') or '–'}", "rows": rows, "lines": lines}


def pair_view(b: dict[str, Any], title: str) -> dict[str, Any]:
    jh, hh = b.get("judge_vs_human") or {}, b.get("human_vs_human") or {}
    if not b.get("judged"):
        lines = ["judge vs human: no pairwise judge verdicts for this pair"]
    elif enough(jh):
        lines = [f"judge vs human (n={jh['n']}): agreement on decisive verdicts {fmt_stat(jh['decisive_agreement'])} "
                 f"(n={jh['decisive_n']}), κ over win/tie/loss {fmt_stat(jh['kappa'])}, the judge's score minus the "
                 f"humans' {fmt_stat(jh['bias_points'], 1, ' points')}"]
    else:
        lines = [f"judge vs human: {not_enough_text(jh)}"]
    if enough(hh):
        lines.append(f"human vs human (n={hh['n']}): agreement on decisive verdicts "
                     f"{fmt_stat(hh['decisive_agreement'])}, κ {fmt_stat(hh['kappa'])}")
    else:
        lines.append(f"human vs human: {not_enough_text(hh)}")
    return {"title": title, "byline": _byline({**b, "stale": None}), "rows": [], "lines": lines}


def _note(block: dict[str, Any]) -> str:
    return (f"Estimates with {block.get('confidence', 0.95):.0%} percentile bootstrap intervals over items "
            f"({block.get('resamples')} resamples); below {block.get('min_n')} pairs of ratings no number is given.")


def run_agreement(block: Optional[dict[str, Any]]) -> Optional[dict[str, Any]]:
    """The run page's section (None without labels)."""
    if not block or not block.get("single"):
        return None
    return {"headers": RATING_HEADERS, "sections": [single_view(block["single"], "Single grading")],
            "note": _note(block)}


def diff_agreement(block: Optional[dict[str, Any]], run_a: str, run_b: str) -> Optional[dict[str, Any]]:
    """The diff page's section: each run's single grading, then the blind pairwise labels (None without labels)."""
    if not block:
        return None
    sections = [single_view(block[side], title) for side, title in
                (("candidate", f"Candidate {run_b}: single grading"), ("baseline", f"Baseline {run_a}: single grading"))
                if block.get(side)]
    if block.get("pair"):
        sections.append(pair_view(block["pair"], f"Pairwise (blind): {run_b} vs {run_a}"))
    return {"headers": RATING_HEADERS, "sections": sections, "note": _note(block)}
