"""Probe records -> per-item metric columns and per-group aggregates (the probe stage's metrics).

Per item (then averaged per task_type like every other metric):
  probe:ref_sum, probe:ref_mean (per token), probe:ref_tokens, probe:ref_greedy,
  probe:choice_acc, probe:choice_acc_norm, probe:choice_margin (label log-prob minus the best other),
  probe:cont_base_knows, probe:cont_sft_correct, probe:cont_lost, probe:cont_gap (SFT - base log P(answer)).
Per group, not a mean of items (PRACTICE 10: short answers weigh differently per item and per token):
  probe:ref_token_mean = sum of sums / sum of tokens, probe:ref_sum_total = sum of sums.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Optional

import pandas as pd

from ..models import ProbeResult
from ..stages.base import RunRecords, empty_metrics
from ..summary import LostKnowledge, ProbeBlock

if TYPE_CHECKING:
    from ..summary import RunSummary


def probe_item_metrics(records: RunRecords) -> pd.DataFrame:
    rows: list[dict[str, Any]] = []
    for r in records.probes.values():
        if r.status != "ok":
            continue
        row: dict[str, Any] = {"item_id": r.item_id}
        if r.kind == "reference":
            row.update({"probe:ref_sum": r.sum_logprob, "probe:ref_mean": r.mean_logprob,
                        "probe:ref_tokens": float(r.n_tokens or 0), "probe:ref_greedy": float(bool(r.greedy))})
        elif r.kind == "choice":
            row.update({"probe:choice_acc": float(bool(r.correct)),
                        "probe:choice_acc_norm": float(bool(r.details.get("correct_normalized"))),
                        "probe:choice_margin": r.details.get("margin")})
        elif r.kind == "continuation":
            d = r.details
            row.update({"probe:cont_base_knows": float(bool(d.get("base_knows"))),
                        "probe:cont_sft_correct": float(bool(d.get("sft_correct"))),
                        "probe:cont_lost": float(bool(d.get("lost"))), "probe:cont_gap": d.get("logprob_gap")})
        rows.append(row)
    if not rows:
        return empty_metrics()
    return pd.DataFrame(rows).groupby("item_id").mean(numeric_only=True)


def ref_token_mean(frame: pd.DataFrame) -> Optional[float]:
    if "probe:ref_sum" not in frame or "probe:ref_tokens" not in frame:
        return None
    ok = frame[["probe:ref_sum", "probe:ref_tokens"]].dropna()
    tokens = float(ok["probe:ref_tokens"].sum())
    return float(ok["probe:ref_sum"].sum()) / tokens if tokens else None


def ref_sum_total(frame: pd.DataFrame) -> Optional[float]:
    if "probe:ref_sum" not in frame:
        return None
    values = frame["probe:ref_sum"].dropna()
    return float(values.sum()) if len(values) else None


def lost_knowledge(records: dict[str, ProbeResult]) -> list[ProbeResult]:
    """Continuation records where the base knew the answer and the SFT model did not, worst gap first."""
    lost = [r for r in records.values() if r.kind == "continuation" and r.status == "ok" and r.details.get("lost")]
    return sorted(lost, key=lambda r: r.details.get("logprob_gap", 0.0))


def probe_summary(probes: dict[str, ProbeResult]) -> ProbeBlock:
    """The summary.json ``probes`` section: counts per kind and the items where SFT lost base knowledge."""
    counts: dict[str, dict[str, int]] = {}
    for r in probes.values():
        c = counts.setdefault(r.kind, {"ok": 0, "error": 0})
        c[r.status] += 1
    lost = [LostKnowledge(item_id=r.item_id, task_type=r.task_type, base=r.details.get("base_continuation"),
                          sft=r.details.get("sft_answer"), logprob_gap=r.details.get("logprob_gap"))
            for r in lost_knowledge(probes)]
    return ProbeBlock(counts=counts, lost_knowledge=lost)


def probe_markdown(summary: "RunSummary", limit: int = 20) -> str:
    """report.md section: probe counts and the lost-knowledge list (empty when the run has no probes)."""
    section = summary.probes
    if section is None:
        return ""
    counts = ", ".join(f"{k}: {v['ok']} ok, {v['error']} failed" for k, v in section.counts.items())
    lines = ["", "## Probes", "", f"- records: {counts}"]
    if "continuation" in section.counts:
        lines.append(f"- knowledge the base model had and the SFT model lost: {len(section.lost_knowledge)} items")
        for row in section.lost_knowledge[:limit]:
            gap = "–" if row.logprob_gap is None else f"{row.logprob_gap:.2f}"
            lines.append(f"  - `{row.item_id}` ({row.task_type}): base `{_short(row.base)}`, "
                         f"SFT `{_short(row.sft)}`, log P(answer) gap {gap}")
    return "\n".join(lines) + "\n"


def _short(text: Optional[str], n: int = 60) -> str:
    text = (text or "").replace("\n", " ").replace("`", "'")
    return text if len(text) <= n else text[: n - 1] + "…"
