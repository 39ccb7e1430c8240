"""Aggregation: stored records -> one row of metrics per item -> means per task_type.

Metrics are averaged per item first (over samples), then over items, so an item with
several samples weighs as much as one with a single sample. Failed and unparsed records
are excluded from score means and counted in their own rate columns: they are never 0.
The per-item frame is also what the differ pairs across runs.
"""

from __future__ import annotations

import math
from typing import Any, Optional

import pandas as pd

from .stages.base import GroupMetric, RunRecords, Stage
from .stages.registry import stages as registered_stages
from .summary import OVERALL, GroupSummary

BASE_COLUMNS = ("task_type", "level1", "robustness", "tags")
#: the release metric leads every table and summary.json, whichever stage provides it
LEAD_METRICS = ("usable", "usable_score")


def item_frame(records: RunRecords, stages: Optional[list[Stage]] = None) -> pd.DataFrame:
    """One row per item: task_type, levels, tags and every metric column the stages provide."""
    base = pd.DataFrame(
        {
            "task_type": [it.task_type for it in records.items],
            "level1": [it.task_type.split("/")[0] for it in records.items],
            "robustness": [it.is_robustness for it in records.items],
            "tags": [",".join(it.tags) for it in records.items],
        },
        index=pd.Index([it.id for it in records.items], name="item_id"),
    )
    for stage in stages if stages is not None else registered_stages():
        part = stage.item_metrics(records)
        if part is not None and len(part.columns):
            base = base.join(part, how="left")
    lead = [c for c in LEAD_METRICS if c in base.columns]
    return base[list(BASE_COLUMNS) + lead + [c for c in base.columns if c not in BASE_COLUMNS and c not in lead]]


def metric_columns(frame: pd.DataFrame) -> list[str]:
    return [c for c in frame.columns if c not in BASE_COLUMNS]


def group_metrics(stages: Optional[list[Stage]] = None) -> dict[str, GroupMetric]:
    out: dict[str, GroupMetric] = {}
    for stage in stages if stages is not None else registered_stages():
        out.update(stage.group_metrics())
    return out


def _group_summary(frame: pd.DataFrame, extra: dict[str, GroupMetric]) -> GroupSummary:
    metrics: dict[str, Optional[float]] = {}
    for col in metric_columns(frame):
        values = frame[col].dropna()
        metrics[col] = _num(values.mean()) if len(values) else None
    for name, fn in extra.items():
        value = _num(fn(frame))
        if value is not None:  # a group metric whose inputs this run lacks (e.g. --no-probes) is left out
            metrics[name] = value
    return GroupSummary(n=int(len(frame)), metrics=metrics)


def _num(v: Any) -> Optional[float]:
    if v is None:
        return None
    v = float(v)
    return None if math.isnan(v) else round(v, 6)


def summarize(frame: pd.DataFrame, extra: Optional[dict[str, GroupMetric]] = None) -> dict[str, Any]:
    """Per-group metrics: overall, every task_type at both levels, robustness items apart.

    ``extra`` are the group-level metrics (default: those of the registered stages).
    """
    extra = group_metrics() if extra is None else extra
    task_types: dict[str, GroupSummary] = {}
    for level1, group in frame.groupby("level1", sort=True):
        task_types[str(level1)] = _group_summary(group, extra)
    for tt, group in frame.groupby("task_type", sort=True):
        if tt not in task_types:
            task_types[str(tt)] = _group_summary(group, extra)
    out: dict[str, Any] = {OVERALL: _group_summary(frame, extra), "task_types": dict(sorted(task_types.items()))}
    robust = frame[frame["robustness"]]
    if len(robust):
        out["robustness"] = _group_summary(robust, extra)
    return out


def headline_metrics(overall: GroupSummary, limit: int = 6) -> list[str]:
    """The metrics worth a column in a terminal table, most important first."""
    present = [m for m, v in overall.metrics.items() if v is not None]
    order = ["usable", "usable_score", "judge:overall", "rule:normalized_match", "rule:exact_match", "rule:choice",
             "rule:checks", "probe:ref_mean", "probe:choice_acc", "gen:answer_chars", "gen:error"]
    ranked = [m for m in order if m in present] + [m for m in present if m not in order]
    return ranked[:limit]
