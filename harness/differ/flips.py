"""Flipped items: the items that got most worse (and most better) between the runs, with their texts.

Why: a per-task_type delta says *where* to look; the items say *what* changed -- a reviewer reads the
prompt, both answers, the reference and both judge rationales, then asks what in the training data did it.

Severity (vectorised over all paired items; > 0 means B is worse), each term in [-1, 1] per unit:
    3 x usable drop (1 -> 0)  +  2 x mean rule-score drop (correct -> wrong)
  + 2 x judge overall drop / 9 (a 1-10 scale)  +  1 x lost probe mass (drop of log P(ref), nats / 10, clipped)
An item qualifies as flipped when usable or a rule flips, the judge's overall moves by >= ``JUDGE_POINTS``,
or log P(reference) moves by >= ``PROBE_NATS``; improvements are the same with the sign reversed.
"""

from __future__ import annotations

import warnings
from typing import Any, Optional, Protocol

import numpy as np
import pandas as pd

from .result import FlipItem

JUDGE_POINTS = 2.0
PROBE_NATS = 2.0
WEIGHTS = {"usable": 3.0, "rule": 2.0, "judge": 2.0, "probe": 1.0}


class TextSource(Protocol):
    def detail(self, item_id: str) -> dict[str, Any]:
        """prompt/messages, reference, answer, judge rationale and scores, rule outcomes of one item."""


def _col(frame: pd.DataFrame, name: str) -> Optional[np.ndarray]:
    return frame[name].to_numpy(dtype=np.float64) if name in frame.columns else None


def severity(a: pd.DataFrame, b: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Per-item severity, a 'flipped' mask, and the metrics that went into it."""
    n = len(a)
    sev = np.zeros(n)
    flipped = np.zeros(n, dtype=bool)
    used: list[str] = []

    def add(drop: np.ndarray, weight: float, flip: np.ndarray) -> None:
        nonlocal sev, flipped
        sev = sev + weight * np.nan_to_num(drop)
        flipped |= np.nan_to_num(flip).astype(bool)

    ua, ub = _col(a, "usable"), _col(b, "usable")
    if ua is not None and ub is not None:
        drop = ua - ub
        add(drop, WEIGHTS["usable"], np.abs(drop) >= 0.5)
        used.append("usable")
    rules = [c for c in a.columns if c.startswith("rule:") and not c.endswith(":unparsed") and c in b.columns]
    if rules:
        with warnings.catch_warnings():  # an item no rule applies to is an all-NaN row: NaN, not a problem
            warnings.simplefilter("ignore", RuntimeWarning)
            drop = np.nanmean(a[rules].to_numpy(np.float64) - b[rules].to_numpy(np.float64), axis=1)
        add(drop, WEIGHTS["rule"], np.abs(drop) >= 0.5)
        used += rules
    judge = "judge:overall" if "judge:overall" in a.columns and "judge:overall" in b.columns else None
    if judge:
        drop = _col(a, judge) - _col(b, judge)  # type: ignore[operator]
        add(drop / 9.0, WEIGHTS["judge"], np.abs(drop) >= JUDGE_POINTS)
        used.append(judge)
    pa, pb = _col(a, "probe:ref_sum"), _col(b, "probe:ref_sum")
    if pa is not None and pb is not None:
        drop = pa - pb
        add(np.clip(drop / 10.0, -1, 1), WEIGHTS["probe"], np.abs(drop) >= PROBE_NATS)
        used.append("probe:ref_sum")
    return sev, flipped, used


def flipped_items(a: pd.DataFrame, b: pd.DataFrame, top: int, texts_a: Optional[TextSource] = None,
                  texts_b: Optional[TextSource] = None) -> tuple[list[FlipItem], list[FlipItem], int, int]:
    """The ``top`` worst and ``top`` best flipped items (texts filled for those only) and the totals."""
    sev, flipped, used = severity(a, b)
    worse_idx = np.flatnonzero(flipped & (sev > 0))
    better_idx = np.flatnonzero(flipped & (sev < 0))
    worse_top = worse_idx[np.argsort(-sev[worse_idx], kind="stable")[:top]]
    better_top = better_idx[np.argsort(sev[better_idx], kind="stable")[:top]]
    metrics = [m for m in a.columns if m in b.columns and (m in used or m.startswith("judge:") or m == "usable")]
    metrics = [m for m in metrics if m not in ("judge:unparsed", "judge:error", "judge:not_judged", "judge:spread")]

    va, vb = a[metrics].to_numpy(np.float64), b[metrics].to_numpy(np.float64)

    def build(i: int) -> FlipItem:
        item_id = str(a.index[i])
        values = {m: [_f(va[i, j]), _f(vb[i, j])] for j, m in enumerate(metrics)}
        values = {m: v for m, v in values.items() if v != [None, None]}
        item = FlipItem(item_id, str(b["task_type"].iat[i]), float(sev[i]), _reasons(values), values)
        if texts_a is not None and texts_b is not None:
            da, db = texts_a.detail(item_id), texts_b.detail(item_id)
            item.detail = {"prompt": db.get("prompt") or da.get("prompt"), "messages": db.get("messages"),
                           "reference": db.get("reference") if db.get("reference") is not None else da.get("reference"),
                           "a": _side(da), "b": _side(db)}
        return item

    return ([build(i) for i in worse_top], [build(i) for i in better_top], int(worse_idx.size), int(better_idx.size))


def _side(d: dict[str, Any]) -> dict[str, Any]:
    return {k: d.get(k) for k in ("answer", "think", "finish_reason", "generation_status", "judge", "rules")}


def _f(v: Any) -> Optional[float]:
    v = float(v)
    return None if np.isnan(v) else v


def _priority(metric: str) -> int:
    for i, prefix in enumerate(("usable", "rule:", "judge:overall", "probe:ref_sum")):
        if metric.startswith(prefix):
            return i
    return 9


def _reasons(values: dict[str, list[Optional[float]]]) -> list[str]:
    """What changed, most telling first: usable, rules, the judge's overall, probe mass, then dimensions."""
    out = []
    for m, (va, vb) in sorted(values.items(), key=lambda kv: _priority(kv[0])):
        if va is None or vb is None or va == vb:
            if (va is None) != (vb is None):
                out.append(f"{m} {_fmt(va)} → {_fmt(vb)}")
            continue
        if m == "usable":
            out.append(f"usable {'yes' if va >= 0.5 else 'no'} → {'yes' if vb >= 0.5 else 'no'}")
        elif m == "probe:ref_sum":
            out.append(f"log P(ref) {va:.2f} → {vb:.2f} ({vb - va:+.2f} nats)")
        else:
            out.append(f"{m} {_fmt(va)} → {_fmt(vb)}")
    return out


def _fmt(v: Optional[float]) -> str:
    if v is None:
        return "–"
    return f"{v:g}" if float(v).is_integer() else f"{v:.2f}"
