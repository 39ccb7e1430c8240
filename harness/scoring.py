"""Aggregation: stored records -> one row of metrics per item -> means per task_type.

Metrics are averaged per item first (over samples), then over items, so an item with
several samples weighs as much as one with a single sample. Failed and unparsed records
are excluded from score means and counted in their own rate columns: they are never 0.
The per-item frame is also what the differ pairs across runs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

import numpy as np
import pandas as pd

from .models import Generation, Item, Judgment, ProbeResult

OVERALL = "overall"


@dataclass
class RunRecords:
    items: list[Item]
    generations: dict[str, Generation] = field(default_factory=dict)
    judgments: dict[str, Judgment] = field(default_factory=dict)
    probes: dict[str, ProbeResult] = field(default_factory=dict)
    judge: Optional[Any] = None  #: the run's active LLM judge (harness.judging.spec.ActiveJudge), if judged


#: Extra per-item metric sources (judges, probes): records -> frame indexed by item_id.
ItemMetricSource = Callable[[RunRecords], pd.DataFrame]
METRIC_SOURCES: list[ItemMetricSource] = []
#: Group-level metrics that are not a mean of per-item values: (records subset frame) -> value.
GROUP_METRICS: dict[str, Callable[[pd.DataFrame], Optional[float]]] = {}


def metric_source(fn: ItemMetricSource) -> ItemMetricSource:
    METRIC_SOURCES.append(fn)
    return fn


def _final_turns(records: RunRecords) -> dict[str, int]:
    return {it.id: it.n_answer_turns - 1 for it in records.items}


def generation_metrics(records: RunRecords) -> pd.DataFrame:
    """Answer length, token counts, latency (b = ttft, k = per-token) and failure rates per item."""
    last = _final_turns(records)
    rows = []
    for g in records.generations.values():
        if g.item_id not in last:
            continue
        ok = g.status == "ok"
        row = {"item_id": g.item_id, "gen:error": float(not ok)}
        if ok:
            row.update({
                "gen:ttft_s": g.timing.ttft_s, "gen:per_token_s": g.timing.per_token_s,
            })
            if g.turn == last[g.item_id]:
                row.update({
                    "gen:answer_chars": float(len(g.answer)), "gen:completion_tokens": g.completion_tokens,
                    "gen:truncated": float(g.finish_reason == "length"),
                })
        rows.append(row)
    if not rows:
        return pd.DataFrame(index=pd.Index([], name="item_id"))
    return pd.DataFrame(rows).groupby("item_id").mean(numeric_only=True)


def judgment_metrics(records: RunRecords) -> pd.DataFrame:
    """Rule scores per item (mean over answer samples); LLM-judge scores come from sfteval.harness.judging.metrics."""
    per_gen: dict[tuple[str, Optional[str]], dict[str, list[float]]] = {}
    for j in records.judgments.values():
        if j.mode != "rule":
            continue
        bucket = per_gen.setdefault((j.item_id, j.generation_key), {})
        bucket.setdefault(f"{j.scorer}:unparsed", []).append(float(j.status != "ok"))
        if j.status == "ok":
            bucket.setdefault(j.scorer, []).append(float(j.overall))  # type: ignore[arg-type]
    if not per_gen:
        return pd.DataFrame(index=pd.Index([], name="item_id"))
    flat = [{"item_id": item_id, **{name: float(np.mean(v)) for name, v in metrics.items()}}
            for (item_id, _gen), metrics in per_gen.items()]
    return pd.DataFrame(flat).groupby("item_id").mean(numeric_only=True)


def item_frame(records: RunRecords) -> pd.DataFrame:
    """One row per item: task_type, levels, tags and every metric column."""
    base = pd.DataFrame(
        {
            "task_type": [it.task_type for it in records.items],
            "level1": [it.task_type.split("/")[0] for it in records.items],
            "robustness": [it.is_robustness for it in records.items],
            "tags": [",".join(it.tags) for it in records.items],
        },
        index=pd.Index([it.id for it in records.items], name="item_id"),
    )
    from .judging.metrics import judge_item_metrics

    parts = [judge_item_metrics(records), generation_metrics(records), judgment_metrics(records)]
    parts += [src(records) for src in METRIC_SOURCES]
    for part in parts:
        if len(part.columns):
            base = base.join(part, how="left")
    return base


BASE_COLUMNS = ("task_type", "level1", "robustness", "tags")


def metric_columns(frame: pd.DataFrame) -> list[str]:
    return [c for c in frame.columns if c not in BASE_COLUMNS]


def _group_summary(frame: pd.DataFrame) -> dict[str, Any]:
    metrics: dict[str, Optional[float]] = {}
    for col in metric_columns(frame):
        values = frame[col].dropna()
        metrics[col] = _num(values.mean()) if len(values) else None
    for name, fn in GROUP_METRICS.items():
        value = _num(fn(frame))
        if value is not None:  # a group metric whose inputs this run lacks (e.g. --no-probes) is left out
            metrics[name] = value
    return {"n": int(len(frame)), "metrics": metrics}


def _num(v: Any) -> Optional[float]:
    if v is None:
        return None
    v = float(v)
    return None if math.isnan(v) else round(v, 6)


def summarize(frame: pd.DataFrame) -> dict[str, Any]:
    """The machine-readable summary: overall, every task_type at both levels, robustness items apart."""
    task_types: dict[str, Any] = {}
    for level1, group in frame.groupby("level1", sort=True):
        task_types[str(level1)] = _group_summary(group)
    for tt, group in frame.groupby("task_type", sort=True):
        if tt not in task_types:
            task_types[str(tt)] = _group_summary(group)
    summary = {OVERALL: _group_summary(frame), "task_types": dict(sorted(task_types.items()))}
    robust = frame[frame["robustness"]]
    if len(robust):
        summary["robustness"] = _group_summary(robust)
    return summary


def headline_metrics(summary: dict[str, Any], limit: int = 6) -> list[str]:
    """The metrics worth a column in a terminal table, most important first."""
    present = [m for m, v in summary[OVERALL]["metrics"].items() if v is not None]
    order = ["usable", "usable_score", "judge:overall", "rule:normalized_match", "rule:exact_match", "rule:choice",
             "rule:checks", "probe:ref_mean", "probe:choice_acc", "gen:answer_chars", "gen:error"]
    ranked = [m for m in order if m in present] + [m for m in present if m not in order]
    return ranked[:limit]


from .probes import metrics as _probe_metrics  # noqa: E402,F401  (registers the probe metric sources)
