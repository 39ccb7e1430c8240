"""Markdown for the judge: the run report's judge section and the pairwise report.

Why its own section: the usable rate per task_type is the release number, so it leads, next to each
dimension's mean; the reliability numbers follow immediately so nobody reads a score without them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Optional

from tabulate import tabulate

from ..summary import task_type_label

if TYPE_CHECKING:
    from ..summary import RunSummary


def _pct(v: Optional[float]) -> str:
    return "–" if v is None else f"{100 * v:.1f}%"


def _num(v: Optional[float]) -> str:
    return "–" if v is None else f"{v:.2f}"


def judge_table(summary: "RunSummary") -> str:
    """task_type | n | usable | usable score | each dimension | overall | spread | unparsed | errors."""
    assert summary.judge is not None
    dims = summary.judge.dimensions
    metrics = ["usable", "usable_score"] + [f"judge:{d}" for d in dims] + ["judge:overall", "judge:spread",
                                                                          "judge:unparsed", "judge:error"]
    if summary.judge.reliability.not_judged:
        metrics.append("judge:not_judged")
    headers = ["task_type", "n", "usable", "usable score"] + list(dims.values()) \
        + ["overall", "spread", "unparsed", "errors"] + (["not judged"] if "judge:not_judged" in metrics else [])
    groups = list(summary.task_types.items()) + [("[overall]", summary.overall)]
    rows = []
    for name, g in groups:
        m = g.metrics
        rows.append([task_type_label(name), g.n] + [_pct(m.get(x)) if x in ("usable", "judge:unparsed", "judge:error",
                                                                   "judge:not_judged")
                                           else _num(m.get(x)) for x in metrics])
    return tabulate(rows, headers=headers, tablefmt="github", disable_numparse=True)


def reliability_lines(r: dict[str, Any]) -> list[str]:
    spread = r.get("repeat_spread")
    lines = [
        f"- unparsed: {_pct(r.get('unparsed_rate'))} of {r.get('samples', 0)} judge samples "
        f"(excluded from scores, never 0); errors: {_pct(r.get('error_rate'))}",
    ]
    if r.get("not_judged"):
        lines.append(f"- not judged (the budget ran out; excluded from scores, never 0): {r['not_judged']} judge "
                     f"samples ({_pct(r.get('not_judged_rate'))})")
    if spread:
        worst = max(spread.items(), key=lambda kv: kv[1]["mean_std"])
        lines.append(f"- repeat spread (std over judge samples, mean over items): {_num(r.get('mean_repeat_std'))}; "
                     f"largest on `{worst[0]}` (std {worst[1]['mean_std']:.2f}, range {worst[1]['mean_range']:.2f})")
    elif spread is not None:
        lines.append("- repeat spread: – (one judge sample per answer; use k > 1)")
    if "length_correlation" in r:
        corr = r.get("length_correlation")
        lines.append(f"- Spearman correlation of overall score with answer length: "
                     f"{'–' if corr is None else f'{corr:+.2f}'}")
    for key, text in (("swap_flip_rate", "swap flip rate"), ("first_position_rate", "first-position verdict rate"),
                      ("longer_answer_win_rate", "longer answer's win rate"),
                      ("repeat_agreement", "repeat agreement (all k samples of an order agree)")):
        if key in r:
            only_pairs = r[key] is None and key == "swap_flip_rate"
            extra = " (pairwise judging only: `sfteval judge --pair RUN_A RUN_B`)" if only_pairs else ""
            lines.append(f"- {text}: {_pct(r[key])}{extra}")
    if r.get("identical_pairs"):
        lines.append(f"- pairs of identical answers: {r['identical_pairs']} (ties without a judge call; "
                     "left out of the flip and position rates)")
    flagged = r.get("injection_flagged_items") or []
    if flagged:
        lines.append(f"- answers that address the judge (flagged, scores untouched): {len(flagged)} "
                     f"({', '.join(flagged[:5])}{' ...' if len(flagged) > 5 else ''})")
    lines += [f"- **warning**: {w}" for w in r.get("warnings", [])]
    return lines


def run_judge_markdown(summary: "RunSummary") -> str:
    """The judge section of a run's report.md ('' when the run was not judged)."""
    j = summary.judge
    if j is None:
        return ""
    lines = [
        "",
        "## LLM judge",
        "",
        f"- judge: `{j.model}` with config `{j.config}` (hash `{j.config_hash[:12]}`), "
        f"{j.samples} sample(s) per answer, median per dimension; {j.items_scored} of {j.items_judged} "
        "judged items scored",
        "",
        judge_table(summary),
        "",
        "### Judge reliability",
        "",
        *reliability_lines(j.reliability.model_dump()),
        "",
    ]
    if j.usage is not None:
        lines += ["### Judge cost", "", *usage_lines(j.usage.model_dump()), ""]
    return "\n".join(lines)


def _usd(v: Optional[float]) -> str:
    return "–" if v is None else f"${v:,.4f}"


def usage_lines(u: dict[str, Any]) -> list[str]:
    """Calls, tokens and cost in total and per task_type; what adaptive repeats saved; what was not judged."""
    head = (f"- {u['calls']} judge calls ({u['batch_calls']} in batches), {u['prompt_tokens']:,} prompt + "
            f"{u['completion_tokens']:,} completion tokens, cost {_usd(u.get('cost'))}"
            + ("" if u.get("cost") is not None else " (no prices: --judge-option price_per_1k_prompt=USD "
                                                    "--judge-option price_per_1k_completion=USD)")
            + f"; {u['cached']} samples from the cache (free)")
    lines = [head]
    a = u.get("adaptive")
    if a:
        share = a["saved"] / a["samples_max"] if a["samples_max"] else 0.0
        lines.append(f"- adaptive repeats: {a['samples_drawn']} of {a['samples_max']} judge samples drawn, "
                     f"{a['saved']} calls saved ({_pct(share)})")
    if u.get("not_judged"):
        lines.append(f"- {u['not_judged']} judge samples not judged (budget): `sfteval judge` again continues")
    rows = [[task_type_label(name), g["calls"], f"{g['prompt_tokens']:,}", f"{g['completion_tokens']:,}", _usd(g.get("cost")),
             g["cached"], g["not_judged"]] for name, g in (u.get("task_types") or {}).items()]
    if rows:
        headers = ["task_type", "calls", "prompt tokens", "completion tokens", "cost", "cached", "not judged"]
        lines += ["", tabulate(rows, headers=headers, tablefmt="github", disable_numparse=True)]
    return lines


def _signed(v: Optional[float]) -> str:
    return "–" if v is None else f"{100 * v:+.1f} pts"


def pair_report_markdown(s: dict[str, Any]) -> str:
    o = s["overall"]
    c = o["corrected"]
    lines = [
        f"# Pairwise: `{s['candidate_run']}` (candidate) vs `{s['baseline_run']}` (baseline)",
        "",
        f"- judge: `{s['judge']['model']}` with config `{s['judge']['config']}`, {s['judge']['samples']} sample(s) "
        "per order, both orders (AB: candidate first, BA: baseline first)",
        f"- **candidate score {_num(o['corrected_score'])}** (position-bias-corrected: both orders' samples weighted "
        f"equally; {_pct(c['win'])} win, {_pct(c['tie'])} tie, {_pct(c['loss'])} loss); tie-based score "
        f"{_num(o['score'])} (inconsistent verdicts count as ties: {_pct(o['win'])} win, {_pct(o['tie'])} tie, "
        f"{_pct(o['loss'])} loss)",
        f"- {o['decided']} items decided, {o['excluded']} pairs excluded (an order unparsed or failed), "
        f"{o['identical']} pairs of identical answers (a tie, not sent to the judge); first-position advantage "
        f"{_signed(o['position_advantage'])}",
    ]
    if s["suite"]["hash_mismatch"]:
        lines.append("- **warning**: the two runs used different suites; only shared item ids are compared")
    groups = list(s["task_types"].items()) + [("[overall]", o)]
    rows = [[task_type_label(name), g["n"], _num(g["corrected_score"]), _num(g["score"]), _pct(g["win"]), _pct(g["tie"]),
             _pct(g["loss"]), _pct(g["swap_flip_rate"]), _signed(g["position_advantage"]), g["identical"],
             g["excluded"]] for name, g in groups]
    headers = ["task_type", "n", "corrected", "tie-based", "win", "tie", "loss", "flips", "1st-position adv.",
               "identical", "excluded"]
    lines += ["", tabulate(rows, headers=headers, tablefmt="github", disable_numparse=True),
              "", "## Judge reliability", "", *reliability_lines(s["reliability"]), ""]
    if s.get("usage"):
        lines += ["## Judge cost", "", *usage_lines(s["usage"]), ""]
    return "\n".join(lines)
