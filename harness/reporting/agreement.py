"""The judge-human agreement section of the HTML reports (diff and run): tables, every text escaped."""

from __future__ import annotations

import html
from typing import Any, Optional

from ..labels.report import enough, fmt_stat, not_enough_text


def _e(v: Any) -> str:
    return html.escape("" if v is None else str(v), quote=True)


def _score_rows(who: str, part: dict[str, Any], names: dict[str, str]) -> list[str]:
    rows = []
    for name, s in [("overall", part["overall"]), *part["dimensions"].items()]:
        if enough(s):
            cells = [fmt_stat(s["kappa_w"]), fmt_stat(s["spearman"]), fmt_stat(s["mad"])]
            rows.append(f"<tr><td>{_e(who)}</td><td>{_e(names.get(name, name))}</td><td>{s['n']}</td>"
                        + "".join(f"<td>{_e(c)}</td>" for c in cells) + "</tr>")
        else:
            rows.append(f"<tr><td>{_e(who)}</td><td>{_e(names.get(name, name))}</td><td>{s.get('n', 0)}</td>"
                        f"<td colspan='3'>{_e(not_enough_text(s))}</td></tr>")
    return rows


def single_html(b: dict[str, Any], title: str) -> str:
    rows = []
    names = b.get("dimension_names") or {}
    parts = [(who, key) for who, key in (("judge vs human", "judge_vs_human"), ("human vs human", "human_vs_human"))
             if b.get(key) and not (key == "human_vs_human" and not b[key].get("pairs"))]
    for who, key in parts:
        rows += _score_rows(who, b[key], names)
    usable = []
    if b.get("human_vs_human") and not b["human_vs_human"].get("pairs"):
        usable.append("<li>human vs human: no answer labelled by two reviewers yet</li>")
    for who, key in parts:
        u = b[key].get("usable")
        if u is None:
            continue
        if enough(u):
            c = u["confusion"]
            usable.append(f"<li>usable decision, {_e(who)} (n={u['n']}): Cohen's κ {_e(fmt_stat(u['kappa']))}, "
                          f"precision {_e(fmt_stat(u['precision']))}, recall {_e(fmt_stat(u['recall']))}; "
                          f"both usable {c['tp']}, only the first {c['fp']}, only the second {c['fn']}, "
                          f"neither {c['tn']}</li>")
        else:
            usable.append(f"<li>usable decision, {_e(who)}: {_e(not_enough_text(u))}</li>")
    stale = f" ({b['stale']} stale, not counted)" if b.get("stale") else ""
    return (f"<h3>{_e(title)}</h3><p>{b['labels']} labels on {b['items']} items by "
            f"{_e(', '.join(b['reviewers']) or '–')}{_e(stale)}; judge {_e(b.get('judge') or '–')}</p>"
            "<table><tr><th>raters</th><th>rating</th><th>n</th><th>κw (quadratic)</th><th>Spearman ρ</th>"
            "<th>mean abs. difference</th></tr>" + "".join(rows) + "</table><ul>" + "".join(usable) + "</ul>")


def pair_html(b: dict[str, Any], title: str) -> str:
    items = []
    jh, hh = b.get("judge_vs_human") or {}, b.get("human_vs_human") or {}
    if not b.get("judged"):
        items.append("<li>judge vs human: no pairwise judge verdicts for this pair</li>")
    elif enough(jh):
        items.append(f"<li>judge vs human (n={jh['n']}): agreement on decisive verdicts "
                     f"{_e(fmt_stat(jh['decisive_agreement']))} (n={jh['decisive_n']}), κ over win/tie/loss "
                     f"{_e(fmt_stat(jh['kappa']))}, the judge's score minus the humans' "
                     f"{_e(fmt_stat(jh['bias_points'], 1, ' points'))}</li>")
    else:
        items.append(f"<li>judge vs human: {_e(not_enough_text(jh))}</li>")
    if enough(hh):
        items.append(f"<li>human vs human (n={hh['n']}): agreement on decisive verdicts "
                     f"{_e(fmt_stat(hh['decisive_agreement']))}, κ {_e(fmt_stat(hh['kappa']))}</li>")
    else:
        items.append(f"<li>human vs human: {_e(not_enough_text(hh))}</li>")
    return (f"<h3>{_e(title)}</h3><p>{b['labels']} labels on {b['items']} items by "
            f"{_e(', '.join(b['reviewers']) or '–')}</p><ul>" + "".join(items) + "</ul>")


def note(block: dict[str, Any]) -> str:
    return (f"<p class='small'>Estimates with {block.get('confidence', 0.95):.0%} percentile bootstrap intervals "
            f"over items ({_e(block.get('resamples'))} resamples); below {_e(block.get('min_n'))} pairs of ratings "
            "no number is given.</p>")


def run_agreement_html(block: Optional[dict[str, Any]]) -> str:
    if not block or not block.get("single"):
        return ""
    return "<h2>Judge-human agreement</h2>" + single_html(block["single"], "Single grading") + note(block)


def diff_agreement_html(block: Optional[dict[str, Any]], run_a: str, run_b: str) -> str:
    if not block:
        return ""
    parts = ["<h2>Judge-human agreement</h2>"]
    for side, title in (("candidate", f"Candidate {run_b}: single grading"),
                        ("baseline", f"Baseline {run_a}: single grading")):
        if block.get(side):
            parts.append(single_html(block[side], title))
    if block.get("pair"):
        parts.append(pair_html(block["pair"], f"Pairwise (blind): {run_b} vs {run_a}"))
    return "".join(parts) + note(block)
