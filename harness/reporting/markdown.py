"""The diff as GitHub-flavoured markdown for a PR comment: verdict first, regressions next, details folded.

Why a budget: a GitHub comment holds at most 65,536 characters. Sections are written in order of importance
and the less important ones (all cells, then flipped items) are cut row by row when the budget runs out,
with a note; the JSON and HTML reports are always complete. Tables are written without column padding
(a GFM table needs none), which keeps more rows inside the limit than a padded layout would.
"""

from __future__ import annotations

import html
import re
from typing import Any, Iterable, Optional

from .. import __version__
from ..differ import format as fmt
from ..differ.result import DiffResult, FlipItem
from ..gate import Verdict

COMMENT_MARKER = "<!-- sfteval-report -->"
GITHUB_COMMENT_LIMIT = 65_536
_RESERVE = 600  # footer + truncation note
_KIND_ORDER = {"overall": 0, "level1": 1, "task_type": 1, "robustness": 2}


def text_size(s: str) -> int:
    """Characters as GitHub may count them (UTF-16 code units: an emoji outside the BMP counts twice)."""
    return len(s) + sum(1 for ch in s if ord(ch) > 0xFFFF)


class _Doc:
    def __init__(self, limit: int):
        self.parts: list[str] = []
        self.size = 0
        self.limit = limit - _RESERVE
        self.omitted: list[str] = []

    def fits(self, *texts: str) -> bool:
        return self.size + sum(text_size(t) for t in texts) <= self.limit

    def add(self, text: str) -> None:
        self.parts.append(text)
        self.size += text_size(text)

    def section(self, head: str, chunks: Iterable[str], tail: str, total: int, what: str,
                share: float = 1.0) -> None:
        """head, as many chunks as fit, a note on what was cut, tail (a closing </details> is never lost).

        ``share``: the most of the whole budget this section may take, so that one huge section (900
        regressions) cannot crowd out the flipped items that explain them.
        """
        note_room = " " * 160
        if not self.fits(head, tail, note_room):
            self.omitted.append(what)
            return
        cap = self.size + max(0, int(share * self.limit) - text_size(head) - text_size(tail))
        self.add(head)
        shown = 0
        for chunk in chunks:
            if not self.fits(chunk, tail, note_room) or (shown and self.size + text_size(chunk) > cap):
                break
            self.add(chunk)
            shown += 1
        if shown < total:
            self.add(f"\n_… {total - shown} more {what} not shown (comment size limit); "
                     "the JSON/HTML report has all._\n")
            self.omitted.append(f"{total - shown} {what}")
        self.add(tail)


def cell_text(v: Any) -> str:
    """A table cell: no pipes, newlines or raw HTML can break the row."""
    s = html.escape(str(v), quote=False).replace("|", "\\|")
    return re.sub(r"\s*\n\s*", " ", s)


def table_head(headers: list[str]) -> str:
    return "| " + " | ".join(cell_text(h) for h in headers) + " |\n|" + "---|" * len(headers) + "\n"


def table_row(cells: list[Any]) -> str:
    return "| " + " | ".join(cell_text(c) for c in cells) + " |\n"


def _cell_row(r: dict[str, Any], with_status: bool = False) -> list[str]:
    m, b = r["metric"], bool(r["binary"])
    row = [fmt.group_label(r["group"], r["kind"]), f"`{m}`", fmt.value(m, r["mean_a"], b), fmt.value(m, r["mean_b"], b),
           fmt.delta(m, r["delta"], b, fmt.rel_base(r)), fmt.interval(m, r["ci_low"], r["ci_high"], b),
           fmt.pvalue(r["p_holm"]), str(int(r["n"])), fmt.mde(r), fmt.length_adjusted(r)]
    if with_status:
        row.append(f"{fmt.STATUS_MARK.get(r['status'], '')} {r['status']}".strip())
    return row


CELL_HEADERS = ["task_type", "metric", "baseline", "candidate", "Δ", "95% CI", "p (Holm)", "n", "MDE",
                "Δ length-adj."]


def fence(text: str, limit: Optional[int]) -> str:
    """A code block that no backtick run inside the text can close early; cut to ``limit`` characters."""
    text = text or ""
    if limit is not None and len(text) > limit:
        text = text[:limit] + f"\n… [{len(text) - limit} more characters in the JSON/HTML report]"
    ticks = "`" * max(3, 1 + max((len(m) for m in re.findall(r"`+", text)), default=0))
    return f"{ticks}text\n{text}\n{ticks}\n\n"


def flip_block(item: FlipItem, run_a: str, run_b: str, text_chars: Optional[int],
               view_url: Optional[str] = None) -> str:
    d = item.detail or {}
    summary = html.escape(f"{item.item_id} · {item.task_type} · " + "; ".join(item.reasons[:3]))
    parts = [f"<details><summary>{summary}</summary>\n\n"]
    if view_url:
        from ..view.urls import compare_item_url

        parts.append(f"[Open in sfteval view]({compare_item_url(view_url, run_a, run_b, item.item_id)})\n\n")
    if len(item.reasons) > 3:  # the summary line shows the first three
        parts.append("Changes: " + html.escape("; ".join(item.reasons)) + "\n\n")
    if d.get("prompt") is not None:
        parts += ["**Prompt**\n\n", fence(d["prompt"], text_chars)]
    if d.get("reference") is not None:
        parts += ["**Reference**\n\n", fence(d["reference"], text_chars)]
    for key, label, run in (("a", "Baseline", run_a), ("b", "Candidate", run_b)):
        side = d.get(key) or {}
        if side.get("answer") is not None:
            parts += [f"**{label} answer** (`{cell_text(run)}`)\n\n", fence(side["answer"], text_chars)]
        judge = side.get("judge")
        if judge and judge.get("rationale"):
            overall = judge.get("overall")
            score = f", overall {overall:g}" if isinstance(overall, (int, float)) else ""
            parts += [f"**{label} judge rationale**{score}\n\n", fence(judge["rationale"], text_chars)]
        rules = side.get("rules") or []
        if rules:
            parts.append(f"{label} rules: " + html.escape(", ".join(
                f"{r['scorer']}={_num(r['score'])}" for r in rules)) + "\n\n")
    train = d.get("training")
    if train:
        member = {"exact": "the eval prompt itself is in the training data",
                  "near-duplicate": "a near-duplicate of the eval prompt is in the training data"}.get(
            train.get("membership") or "", "the eval prompt is not in the training data")
        parts.append(f"**Nearest training examples** ({train.get('index', 'candidate')}'s training data; {member})\n\n")
        for n in train.get("neighbours") or []:
            parts.append(f"- `{cell_text(n['source'])}` · {cell_text(n['task_type'])} · similarity "
                         f"{n['similarity']:.2f}{' (exact)' if n['exact'] else ''}\n\n")
            parts += [fence(f"{n['prompt']}\n→ {n['answer']}" if n.get("answer") is not None else n["prompt"],
                            text_chars)]
    parts.append("</details>\n")
    return "".join(parts)


def _headline(diff: DiffResult, verdict: Verdict) -> list[str]:
    a, b = diff.run_a, diff.run_b
    n_reg = len(diff.regressions())
    if verdict.passed:
        title = f"### 🟢 sfteval: `{b.run_id}` passes against `{a.run_id}`"
    else:
        what = f"{n_reg} regression{'s' if n_reg != 1 else ''}" if n_reg else "gate failed"
        title = f"### 🔴 sfteval: `{b.run_id}` fails against `{a.run_id}` — {what}"
    lines = [COMMENT_MARKER, title, ""]
    metric = diff.headline_metric()
    cell = diff.cell("overall", metric) if metric else None
    if metric and cell:
        bn = bool(cell["binary"])
        lines.append(f"- **{metric}**: {fmt.value(metric, cell['mean_a'], bn)} → "
                     f"{fmt.value(metric, cell['mean_b'], bn)} "
                     f"({fmt.delta(metric, cell['delta'], bn, fmt.rel_base(cell))}, 95% CI "
                     f"{fmt.interval(metric, cell['ci_low'], cell['ci_high'], bn)}, p={fmt.pvalue(cell['p_value'])})")
    suite = (f"✅ suite `{b.suite_name}` v{b.suite_version} `{b.suite_hash[:12]}` in both" if diff.suite_match else
             f"⚠️ **suites differ**: `{a.suite_hash[:12]}` vs `{b.suite_hash[:12]}`")
    lines.append(f"- **items**: {diff.paired} paired · {len(diff.only_a)} only in baseline · "
                 f"{len(diff.only_b)} only in candidate · {suite}")
    if a.judge or b.judge:
        flip = diff.pairwise.swap_flip_rate if diff.pairwise else None
        lines.append(f"- **judge** `{cell_text(b.judge or a.judge)}`: unparsed {_pct(a.judge_unparsed_rate)} → "
                     f"{_pct(b.judge_unparsed_rate)} · errors {_pct(a.judge_error_rate)} → "
                     f"{_pct(b.judge_error_rate)} · "
                     f"swap flip rate {_pct(flip) if diff.pairwise else '– (no pairwise judging)'}")
    else:
        lines.append("- **judge**: none in these runs (rule and probe metrics only)")
    lines.append(f"- **generation errors**: {_pct(a.generation_error_rate)} → {_pct(b.generation_error_rate)}")
    counts = diff.counts()
    other = counts["worse"] + counts["better"] + counts["changed"]
    lines.append(f"- **cells**: {diff.settings.get('cells_tested', 0)} tested (task_type × metric, Holm-corrected, "
                 f"α={diff.settings['alpha']:g}): {counts['regression']} regressions · {counts['improvement']} "
                 f"improvements · {other} other changes · flipped items: {diff.n_worse} worse, {diff.n_better} better")
    from ..labels.report import headline_line

    calibration = headline_line(diff.agreement)
    if calibration:
        lines.append(f"- **judge-human agreement**: {calibration}")
    if diff.pairwise:
        o = next((g for g in diff.pairwise.groups if g["kind"] == "overall"), None)
        if o and o["n"]:
            lines.append(f"- **pairwise** (candidate vs baseline, both orders): position-bias-corrected score "
                         f"{o['corrected_score']:.2f} [{o['corrected_ci_low']:.2f}, {o['corrected_ci_high']:.2f}] · "
                         f"length-controlled {_rate(o, 'lc')} · style-controlled {_rate(o, 'sc')} · "
                         f"win {_pct(o['win'])} · tie {_pct(o['tie'])} · loss {_pct(o['loss'])} · score "
                         f"{o['score']:.2f} [{o['ci_low']:.2f}, {o['ci_high']:.2f}] (flips as ties), sign test "
                         f"p={fmt.pvalue(o['p_value'])}")
    power = _power_line(diff)
    if power:
        lines.append(power)
    return lines


def _rate(g: dict[str, Any], key: str) -> str:
    v = g.get(f"{key}_win_rate")
    if v is None:
        return "–"
    return f"{v:.2f} {_plain_interval(g.get(f'{key}_ci_low'), g.get(f'{key}_ci_high'))}"


def _power_line(diff: DiffResult) -> Optional[str]:
    cells = diff.shown_cells
    if not len(cells) or "blind" not in cells:
        return None
    gated = cells[cells["gate"].astype(bool)]
    blind = gated[gated["blind"].astype(bool)]
    level = diff.settings.get("power", {}).get("alpha_level")
    at = f" at α={level:.2g}" if level else ""
    return (f"- **power**: {len(blind)} of {len(gated)} gated cells cannot see a change of their minimum effect "
            f"🙈 (MDE at 80% power{at}, Holm's first step); their \"no regression\" says little — "
            "see *What this suite can detect*")


def _same_as_note(diff: DiffResult) -> str:
    pairs = diff.same_as_pairs()
    if not pairs:
        return ""
    return " · " + ", ".join(f"`{cell_text(b)}` also stands for `{cell_text(a)}`" for a, b in pairs) + \
        " (its only second-level task_type)"


def _plain_interval(lo: Optional[float], hi: Optional[float]) -> str:
    return "–" if lo is None or hi is None or lo != lo or hi != hi else f"[{lo:.2f}, {hi:.2f}]"


def _num(v: Optional[float]) -> str:
    return "–" if v is None else f"{v:g}"


def _pct(v: Optional[float]) -> str:
    return "–" if v is None else f"{100 * v:.1f}%"


def _sorted_cells(diff: DiffResult) -> list[dict[str, Any]]:
    cells = diff.shown_cells
    if not len(cells):
        return []
    metric_rank = {m: i for i, m in enumerate(dict.fromkeys(cells["metric"]))}
    head = diff.headline_metric()
    rows = cells.to_dict("records")
    return sorted(rows, key=lambda r: (_KIND_ORDER[r["kind"]], r["group"].split("/")[0], r["kind"] == "task_type",
                                       r["group"], r["metric"] != head, metric_rank[r["metric"]]))


def _power_section(doc: _Doc, diff: DiffResult) -> None:
    """Per group, the headline metric's MDE and the items it would need: where the suite is blind."""
    metric = diff.headline_metric()
    rows = [r for r in _sorted_cells(diff) if r["metric"] == metric and "mde" in r and r["n"]]
    if not rows:
        return
    blind = sum(bool(r["blind"]) for r in rows)
    head = (f"\n<details><summary>What this suite can detect: `{metric}` per task_type ({blind} of {len(rows)} "
            "blind 🙈)</summary>\n\nMDE: the smallest change this diff would flag with 80% power "
            "(paired test at Holm's first-step level, from the observed discordance or spread); "
            "items needed: for the minimum effect.\n\n"
            + table_head(["task_type", "n", "MDE", "min effect", "items needed", "can see its minimum effect"]))
    chunks = (table_row([fmt.group_label(r["group"], r["kind"]), int(r["n"]), fmt.mde(r, mark=False),
                         fmt.threshold(r), "–" if r.get("n_needed") is None else str(int(r["n_needed"])),
                         "no 🙈" if r["blind"] else "yes"]) for r in rows)
    doc.section(head, chunks, "\n</details>\n", len(rows), "power rows", share=0.08)


def _training_section(doc: _Doc, diff: DiffResult) -> None:
    t = diff.training
    if not t:
        return
    rows = [r for r in t["task_types"] if r.get("changes") or (r.get("eval") or {}).get("status")]
    both = t["baseline"] is not None and t["candidate"] is not None
    src = " · ".join(f"{side}: `{cell_text(v['path'])}` ({v['rows']} rows)" for side, v in
                     (("baseline", t["baseline"]), ("candidate", t["candidate"])) if v)
    head = (f"\n<details><summary>Training data per task_type ({len(rows)} changed or moved)</summary>\n\n{src}\n\n"
            + table_head(["task_type", "rows", "share", "answer chars", "duplicates", "relabelled", "new prompts",
                          f"eval Δ `{t['metric']}`"]))

    def pair(r: dict[str, Any], col: str, f: Any) -> str:
        va, vb = r.get(f"{col}_a"), r.get(f"{col}_b")
        if not both:
            v = vb if t["candidate"] is not None else va
            return "–" if v is None else f(v)
        return f"{'–' if va is None else f(va)} → {'–' if vb is None else f(vb)}"

    def chunk(r: dict[str, Any]) -> str:
        ev = r.get("eval") or {}
        delta = "–" if not ev else (fmt.delta(t["metric"], ev.get("delta"), fmt.is_rate(t["metric"]))
                                    + (f" {fmt.STATUS_MARK.get(ev.get('status') or '', '')}" if ev.get("status") else ""))
        return table_row([r["task_type"], pair(r, "count", str), pair(r, "share", lambda v: f"{100 * v:.1f}%"),
                          pair(r, "mean_answer_chars", lambda v: f"{v:.0f}"),
                          pair(r, "duplicate_rate", lambda v: f"{100 * v:.1f}%"),
                          r.get("changed_answers", "–"), r.get("new_prompts", "–"), delta])

    doc.section(head, (chunk(r) for r in rows), "\n</details>\n", len(rows), "training rows", share=0.08)


def diff_markdown(diff: DiffResult, verdict: Verdict, *, limit: int = GITHUB_COMMENT_LIMIT,
                  text_chars: int = 600, view_url: Optional[str] = None) -> str:
    """``view_url``: the address of a running ``sfteval view``; flipped items then link to their page there."""
    doc = _Doc(limit)
    doc.add("\n".join(_headline(diff, verdict)) + "\n")
    if not verdict.passed:  # regressions have their own table below; list the other reasons here
        reasons = [r for r in verdict.reasons if not r.startswith("regression: ")]
        n_reg = len(verdict.reasons) - len(reasons)
        head = "\n**Gate failed:**" + (f" {n_reg} regression{'s' if n_reg != 1 else ''} (table below)" if n_reg else "")
        doc.section(head + "\n\n", (f"- {html.escape(r, quote=False)}\n" for r in reasons), "",
                    len(reasons), "gate reasons")
    if verdict.warnings:
        doc.section("\n", (f"> ⚠️ {html.escape(w, quote=False)}\n>\n" for w in verdict.warnings), "",
                    len(verdict.warnings), "warnings")
    for status, title in (("regression", "Regressions"), ("improvement", "Improvements")):
        rows = diff.rows(status)
        if not rows:
            doc.add(f"\n#### {title}\n\nnone\n")
            continue
        doc.section(f"\n#### {title} ({len(rows)})\n\n" + table_head(CELL_HEADERS),
                    (table_row(_cell_row(r)) for r in rows), "", len(rows), f"{title.lower()}",
                    share=0.45 if status == "regression" else 0.15)
    other = diff.rows("worse") + diff.rows("better") + diff.rows("changed")
    if other:
        doc.section(f"\n<details><summary>Other significant changes, not gated ({len(other)}): latency, lengths, "
                    "log-probs, judge reliability</summary>\n\n" + table_head(CELL_HEADERS + ["status"]),
                    (table_row(_cell_row(r, True)) for r in other), "\n</details>\n", len(other), "other changes",
                    share=0.1)
    if diff.pairwise:
        groups = [g for g in diff.pairwise.groups if g.get("same_as") is None]
        head = ("\n<details><summary>Pairwise judge: candidate win / tie / loss</summary>\n\n"
                + table_head(["task_type", "n", "corrected", "length-controlled", "style-controlled", "win", "tie",
                              "loss", "score", "95% CI", "p (sign test)", "flips"]))
        chunks = (table_row([fmt.group_label(g["group"], g["kind"]), g["n"],
                             "–" if g["corrected_score"] is None else f"{g['corrected_score']:.2f}",
                             _rate(g, "lc"), _rate(g, "sc"), _pct(g["win"]), _pct(g["tie"]),
                             _pct(g["loss"]), "–" if g["score"] is None else f"{g['score']:.2f}",
                             _plain_interval(g["ci_low"], g["ci_high"]), fmt.pvalue(g["p_value"]),
                             _pct(g["swap_flip_rate"])]) for g in groups)
        doc.section(head, chunks, "\n</details>\n", len(groups), "pairwise rows", share=0.08)
    _power_section(doc, diff)
    _training_section(doc, diff)
    if diff.agreement:
        from ..labels.report import diff_agreement_markdown

        text = diff_agreement_markdown(diff.agreement, diff.run_a.run_id, diff.run_b.run_id)
        doc.section("\n<details><summary>Judge-human agreement (labels from sfteval view)</summary>\n\n", [text],
                    "\n</details>\n", 1, "agreement section", share=0.1)
    for items, total, title in ((diff.worse, diff.n_worse, "Items that got worse"),
                                (diff.better, diff.n_better, "Items that got better")):
        if not items:
            continue
        doc.section(f"\n#### {title} (top {len(items)} of {total})\n\n",
                    (flip_block(it, diff.run_a.run_id, diff.run_b.run_id, text_chars, view_url) for it in items), "",
                    len(items), f"{title.lower()}", share=0.25 if items is diff.worse else 0.12)
    rows = _sorted_cells(diff)
    if rows:
        head = f"\n<details><summary>All cells ({len(rows)})</summary>\n\n" + table_head(CELL_HEADERS + ["status"])
        doc.section(head,
                    (table_row(_cell_row(r, True)) for r in rows), "\n</details>\n", len(rows), "cells")
    s = diff.settings
    a, b = diff.run_a, diff.run_b
    footer = (f"\n<sub>sfteval {__version__} · baseline `{cell_text(a.run_id)}` ({cell_text(a.model)}) · "
              f"candidate `{cell_text(b.run_id)}` ({cell_text(b.model)}) · Δ = candidate − baseline · "
              f"{s['confidence']:.0%} stratified paired bootstrap CI ({s['resamples']} resamples, seed {s['seed']}) · "
              "exact McNemar "
              f"for 0/1 metrics, Wilcoxon signed-rank otherwise · Holm over {s.get('cells_tested', 0)} cells"
              f"{_same_as_note(diff)}</sub>\n")
    if doc.omitted:
        note = ("\n> ✂️ Truncated to fit GitHub's 65,536-character comment limit: "
                + html.escape(", ".join(doc.omitted[:6]), quote=False)
                + " not shown. The JSON/HTML report is complete.\n")
        doc.parts.insert(1, note)
    return "".join(doc.parts) + footer
