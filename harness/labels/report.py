"""The judge-human agreement section in markdown (run report, diff report, ``sfteval agreement``).

Numbers read ``0.71 [0.52, 0.85]`` (estimate and 95% bootstrap interval) with n beside them; below the minimum
n a row says "not enough labels" and shows no number. Text from labels (reviewer names) is escaped.
"""

from __future__ import annotations

import html
from typing import Any, Optional


def _esc(v: Any) -> str:
    return html.escape(str(v), quote=False).replace("|", "\\|")


def fmt_stat(s: Optional[dict[str, Any]], digits: int = 2, unit: str = "") -> str:
    if not s or s.get("value") is None:
        return "– (undefined)"
    ci = s.get("ci")
    text = f"{s['value']:.{digits}f}{unit}"
    return text + (f" [{ci[0]:.{digits}f}, {ci[1]:.{digits}f}]" if ci else " [–]")


def enough(block: Optional[dict[str, Any]]) -> bool:
    return bool(block) and bool(block.get("enough"))


def not_enough_text(block: Optional[dict[str, Any]]) -> str:
    n = (block or {}).get("n", 0)
    need = (block or {}).get("min_n")
    return f"not enough labels (n={n}" + (f", need {need})" if need else ")")


def _score_row(who: str, name: str, s: dict[str, Any]) -> str:
    if not enough(s):
        return f"| {who} | {_esc(name)} | {s.get('n', 0)} | {not_enough_text(s)} | | |\n"
    return (f"| {who} | {_esc(name)} | {s['n']} | {fmt_stat(s['kappa_w'])} | {fmt_stat(s['spearman'])} | "
            f"{fmt_stat(s['mad'])} |\n")


def _usable_line(who: str, u: Optional[dict[str, Any]]) -> str:
    if not u:
        return ""
    if not enough(u):
        return f"- usable decision, {who}: {not_enough_text(u)}\n"
    c = u["confusion"]
    return (f"- usable decision, {who} (n={u['n']}): Cohen's κ {fmt_stat(u['kappa'])} · precision "
            f"{fmt_stat(u['precision'])} · recall {fmt_stat(u['recall'])} · usable by both {c['tp']}, only by the "
            f"first {c['fp']}, only by the second {c['fn']}, by neither {c['tn']}\n")


def single_markdown(b: dict[str, Any]) -> str:
    reviewers = ", ".join(_esc(r) for r in b["reviewers"]) or "–"
    out = [f"**Single grading**: {b['labels']} labels on {b['items']} items by {reviewers}"
           + (f" ({b['stale']} stale: made on an answer that has changed since, not counted)" if b["stale"] else "")
           + (f"; judge `{_esc(b['judge'])}`" if b.get("judge") else "; no LLM judge in this run") + "\n\n"]
    names = b.get("dimension_names") or {}
    out.append("| raters | rating | n | κw (quadratic) | Spearman ρ | mean abs. difference |\n|---|---|---|---|---|---|\n")
    parts = [(who, key) for who, key in (("judge vs human", "judge_vs_human"), ("human vs human", "human_vs_human"))
             if b.get(key) and not (key == "human_vs_human" and not b[key].get("pairs"))]
    for who, key in parts:
        out.append(_score_row(who, "overall", b[key]["overall"]))
        for d, s in b[key]["dimensions"].items():
            out.append(_score_row(who, names.get(d, d), s))
    out.append("\n")
    for who, key in parts:
        out.append(_usable_line(who, b[key].get("usable")))
    if b.get("human_vs_human") and not b["human_vs_human"].get("pairs"):
        out.append("- human vs human: no answer labelled by two reviewers yet (`sfteval view --overlap 2`)\n")
    return _with_footnote("".join(out))


def pair_markdown(b: dict[str, Any]) -> str:
    reviewers = ", ".join(_esc(r) for r in b["reviewers"]) or "–"
    out = [f"**Pairwise (blind)**: {b['labels']} labels on {b['items']} items by {reviewers}"
           + (f" ({b['stale']} stale, not counted)" if b["stale"] else "") + "\n\n"]
    jh, hh = b.get("judge_vs_human") or {}, b.get("human_vs_human") or {}
    if not b.get("judged"):
        out.append("- judge vs human: no pairwise judge verdicts for this pair (`sfteval judge --pair A B`)\n")
    elif not enough(jh):
        out.append(f"- judge vs human: {not_enough_text(jh)}\n")
    else:
        out.append(f"- judge vs human (n={jh['n']}): agreement on decisive verdicts {fmt_stat(jh['decisive_agreement'])} "
                   f"(n={jh['decisive_n']}) · κ over win/tie/loss {fmt_stat(jh['kappa'])} · the judge's score minus "
                   f"the humans' {fmt_stat(jh['bias_points'], 1, ' points')}\n")
    if not enough(hh):
        out.append(f"- human vs human: {not_enough_text(hh)}\n")
    else:
        out.append(f"- human vs human (n={hh['n']}): agreement on decisive verdicts "
                   f"{fmt_stat(hh['decisive_agreement'])} · κ over win/tie/loss {fmt_stat(hh['kappa'])}\n")
    return _with_footnote("".join(out))


def _with_footnote(text: str) -> str:
    """The text, and what "[–]" means where it shows one."""
    return text + ("- [–]: no interval (too many resamples without variation to give one)\n" if " [–]" in text else "")


def agreement_markdown(block: Optional[dict[str, Any]], heading: str = "##") -> str:
    """The section for a block ``{"single": ..., "pair": ..., "min_n": ...}`` ('' when there are no labels)."""
    if not block or not (block.get("single") or block.get("pair")):
        return ""
    out = [f"\n{heading} Judge-human agreement\n\n"]
    if block.get("single"):
        out.append(single_markdown(block["single"]) + "\n")
    if block.get("pair"):
        out.append(pair_markdown(block["pair"]) + "\n")
    conf = block.get("confidence", 0.95)
    out.append(f"<sub>Intervals: {conf:.0%} percentile bootstrap over items ({block.get('resamples')} resamples); "
               f"fewer than {block.get('min_n')} pairs of ratings give no number.</sub>\n")
    return "".join(out)


def diff_agreement_markdown(block: Optional[dict[str, Any]], run_a: str, run_b: str) -> str:
    """The diff's section: each run's single-grading agreement and the pair's pairwise agreement."""
    if not block:
        return ""
    out = []
    for side, title in (("candidate", f"Candidate `{_esc(run_b)}`"), ("baseline", f"Baseline `{_esc(run_a)}`")):
        if block.get(side):
            out.append(f"{title} · " + single_markdown(block[side]) + "\n")
    if block.get("pair"):
        out.append(f"Candidate `{_esc(run_b)}` vs baseline `{_esc(run_a)}` · " + pair_markdown(block["pair"]) + "\n")
    conf = block.get("confidence", 0.95)
    out.append(f"<sub>Intervals: {conf:.0%} percentile bootstrap over items ({block.get('resamples')} resamples); "
               f"fewer than {block.get('min_n')} pairs of ratings give no number.</sub>\n")
    return "".join(out)


def headline_line(block: Optional[dict[str, Any]]) -> Optional[str]:
    """One line for a report's headline: the judge-human kappa on the overall score / pairwise, with n."""
    if not block:
        return None
    parts = []
    for side in ("candidate", "baseline"):
        s = ((block.get(side) or {}).get("judge_vs_human") or {}).get("overall")
        if s is not None:
            parts.append(f"{side} κw {fmt_stat(s['kappa_w'])} (n={s['n']})" if enough(s)
                         else f"{side}: {not_enough_text(s)}")
    p = (block.get("pair") or {}).get("judge_vs_human")
    if p is not None and (block.get("pair") or {}).get("judged"):
        parts.append(f"pairwise κ {fmt_stat(p['kappa'])} (n={p['n']})" if enough(p) else
                     f"pairwise: {not_enough_text(p)}")
    return " · ".join(parts) if parts else None
