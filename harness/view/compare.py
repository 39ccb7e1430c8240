"""A compared pair of runs in the viewer: the diff (the differ's own result) plus per-item arrays for the filters.

The item arrays are aligned exactly as the differ aligns the runs (B's items that A also has, in B's order)
and the severity is the differ's (differ.flips.severity), so an item list sorted by severity agrees with the
report's "items that got worse". A filter is a boolean mask over the arrays; a page is 50 rows of it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Optional

import numpy as np
import pandas as pd

from ..differ.flips import JUDGE_POINTS, PROBE_NATS, severity
from ..differ.result import DiffResult
from .data import RunState

PAGE_SIZE = 50
FAMILIES = ("usable", "rules", "judge", "probe")
SPREAD_DISAGREES = 1.0  #: judge:spread (std over judge samples) from which the judge disagrees with itself


def _col(frame: pd.DataFrame, name: str) -> np.ndarray:
    if name in frame.columns:
        return frame[name].to_numpy(dtype=np.float64)
    return np.full(len(frame), np.nan)


@dataclass
class Comparison:
    a: str
    b: str
    diff: DiffResult
    ids: np.ndarray
    pos_a: np.ndarray  #: each paired item's position in run A's item order
    pos_b: np.ndarray
    task_type: np.ndarray
    level1: np.ndarray
    robustness: np.ndarray
    tags: np.ndarray
    severity: np.ndarray
    flipped: np.ndarray
    direction: dict[str, np.ndarray]  #: family -> -1 worse, +1 better, 0 unchanged (or not measured)
    spread: np.ndarray
    problems: np.ndarray  #: a judge sample unparsed or failed, or a failed generation, on either side
    chars_a: np.ndarray
    chars_b: np.ndarray
    swap_flip: np.ndarray
    frame_a: pd.DataFrame  #: paired rows of A's item frame, aligned with ``ids``
    frame_b: pd.DataFrame
    shown: dict[str, tuple[np.ndarray, np.ndarray]]  #: the metrics an item list shows: metric -> (A, B) values
    rule: Optional[str]  #: the rule an item list shows
    groups: list[str]  #: task_types at both levels (the filter's choices)
    tag_names: list[str]

    @cached_property
    def index(self) -> dict[str, int]:
        """item id -> its row in the arrays"""
        return {str(i): k for k, i in enumerate(self.ids)}


def build(a: str, b: str, ra: RunState, rb: RunState, diff: DiffResult,
          pair_rows: Optional[dict[str, list[dict[str, Any]]]] = None) -> Comparison:
    fa, fb = ra.frame, rb.frame
    pos_a = fa.index.get_indexer(fb.index)
    in_a = pos_a >= 0
    pa, pb = pos_a[in_a], np.flatnonzero(in_a)
    xa, xb = fa.iloc[pa], fb.iloc[pb]
    sev, flipped, _ = severity(xa, xb)
    direction: dict[str, np.ndarray] = {}
    ua, ub = _col(xa, "usable"), _col(xb, "usable")
    direction["usable"] = _dir(ub - ua, 0.5)
    rules = [c for c in xa.columns if c.startswith("rule:") and not c.endswith(":unparsed") and c in xb.columns]
    if rules:
        with np.errstate(invalid="ignore"):
            import warnings

            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                change = np.nanmean(xb[rules].to_numpy(np.float64) - xa[rules].to_numpy(np.float64), axis=1)
    else:
        change = np.full(len(xb), np.nan)
    direction["rules"] = _dir(change, 0.5)
    direction["judge"] = _dir(_col(xb, "judge:overall") - _col(xa, "judge:overall"), JUDGE_POINTS)
    direction["probe"] = _dir(_col(xb, "probe:ref_sum") - _col(xa, "probe:ref_sum"), PROBE_NATS)
    spread = np.fmax(_col(xa, "judge:spread"), _col(xb, "judge:spread"))
    problems = np.zeros(len(xb), dtype=bool)
    for name in ("judge:unparsed", "judge:error", "gen:error"):
        problems |= np.nan_to_num(_col(xa, name)) > 0
        problems |= np.nan_to_num(_col(xb, name)) > 0
    ids = xb.index.to_numpy().astype(str)
    swap = np.zeros(len(ids), dtype=bool)
    if pair_rows:
        swap = np.fromiter((any(r.get("flipped") for r in pair_rows.get(i, [])) for i in ids), dtype=bool,
                           count=len(ids))
    rule = rules[0] if rules else None
    shown = {m: (_col(xa, m), _col(xb, m)) for m in ("usable", "judge:overall", "probe:ref_sum", rule) if m}
    task_type, level1 = xb["task_type"].to_numpy().astype(str), xb["level1"].to_numpy().astype(str)
    tags = xb["tags"].to_numpy().astype(str)
    return Comparison(a, b, diff, ids, pa, pb, task_type, level1, xb["robustness"].to_numpy().astype(bool), tags,
                      sev, flipped, direction, spread, problems, _col(xa, "gen:answer_chars"),
                      _col(xb, "gen:answer_chars"), swap, xa, xb, shown, rule,
                      sorted(set(np.unique(task_type)) | set(np.unique(level1))),
                      sorted({t for ts in np.unique(tags) for t in ts.split(",") if t}))


def _dir(change: np.ndarray, threshold: float) -> np.ndarray:
    out = np.zeros(len(change), dtype=np.int8)
    with np.errstate(invalid="ignore"):
        out[change <= -threshold] = -1
        out[change >= threshold] = 1
    return out


@dataclass
class Filters:
    """The items page's query: every field optional; ``page`` is 1-based."""

    tt: str = ""
    tag: str = ""
    flip: str = ""  # worse | better | unchanged
    on: str = "any"  # any | usable | rules | judge | probe
    spread: Optional[float] = None
    problems: bool = False
    length: str = ""  # longer | shorter
    length_pct: float = 20.0
    labelled: str = ""  # yes | no
    q: str = ""
    metric: str = ""
    sort: str = "severity"  # severity | -severity | id | change
    page: int = 1

    @classmethod
    def parse(cls, params: Any) -> "Filters":
        f = cls()
        for name in ("tt", "tag", "flip", "on", "length", "labelled", "q", "metric", "sort"):
            value = str(params.get(name, "") or "").strip()
            if value:
                setattr(f, name, value[:500])
        f.spread = _float(params.get("spread"))
        f.problems = str(params.get("problems", "")) in ("1", "yes", "on", "true")
        f.length_pct = _float(params.get("length_pct")) or 20.0
        try:
            f.page = max(1, int(params.get("page", 1)))
        except ValueError:
            f.page = 1
        if f.flip not in ("", "worse", "better", "unchanged"):
            f.flip = ""
        if f.on not in ("any", *FAMILIES):
            f.on = "any"
        return f

    def query(self, **changes: Any) -> dict[str, Any]:
        """The filter as URL parameters (defaults left out), with ``changes`` applied."""
        data = {"tt": self.tt, "tag": self.tag, "flip": self.flip, "on": "" if self.on == "any" else self.on,
                "spread": "" if self.spread is None else f"{self.spread:g}", "problems": "1" if self.problems else "",
                "length": self.length, "length_pct": "" if self.length_pct == 20.0 else f"{self.length_pct:g}",
                "labelled": self.labelled, "q": self.q, "metric": self.metric,
                "sort": "" if self.sort == "severity" else self.sort, "page": "" if self.page == 1 else self.page}
        data.update(changes)
        return {k: v for k, v in data.items() if v not in ("", None)}


def _float(v: Any) -> Optional[float]:
    try:
        x = float(v)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def group_mask(c: Comparison, tt: str) -> np.ndarray:
    if tt in ("", "overall"):
        return np.ones(len(c.ids), dtype=bool)
    if tt == "robustness":
        return c.robustness.copy()
    return (c.task_type == tt) | (c.level1 == tt)


def metric_change(c: Comparison, metric: str) -> Optional[np.ndarray]:
    """B - A of one metric per item, signed so that positive is better (None: unknown metric)."""
    if metric not in c.frame_a.columns or metric not in c.frame_b.columns:
        return None
    change = _col(c.frame_b, metric) - _col(c.frame_a, metric)
    cell = c.diff.cells[c.diff.cells["metric"] == metric] if len(c.diff.cells) else None
    direction = cell["direction"].iloc[0] if cell is not None and len(cell) else "none"
    return -change if direction == "lower" else change


def select(c: Comparison, f: Filters, labelled: Optional[np.ndarray], search: Any) -> tuple[np.ndarray, Optional[np.ndarray]]:
    """Positions of the items that pass the filters, in the requested order; and the metric change if any."""
    mask = group_mask(c, f.tt)
    if f.tag:
        mask &= np.fromiter((f.tag in t.split(",") for t in c.tags), dtype=bool, count=len(c.tags))
    if f.flip:
        if f.on == "any":
            target = {"worse": c.flipped & (c.severity > 0), "better": c.flipped & (c.severity < 0),
                      "unchanged": ~c.flipped}[f.flip]
        else:
            d = c.direction[f.on]
            target = {"worse": d < 0, "better": d > 0, "unchanged": d == 0}[f.flip]
        mask &= target
    if f.spread is not None:
        with np.errstate(invalid="ignore"):
            mask &= c.spread > f.spread
    if f.problems:
        mask &= c.problems
    if f.length in ("longer", "shorter"):
        with np.errstate(invalid="ignore", divide="ignore"):
            rel = (c.chars_b - c.chars_a) / np.maximum(c.chars_a, 1)
            mask &= rel >= f.length_pct / 100 if f.length == "longer" else rel <= -f.length_pct / 100
    if f.labelled in ("yes", "no") and labelled is not None:
        mask &= labelled if f.labelled == "yes" else ~labelled
    change = metric_change(c, f.metric) if f.metric else None
    if change is not None:
        with np.errstate(invalid="ignore"):
            mask &= ~np.isnan(change) & (change != 0)
    if f.q:
        idx = np.flatnonzero(mask)
        hit = search(f.q, idx)
        mask = np.zeros(len(mask), dtype=bool)
        mask[idx[hit]] = True
    rows = np.flatnonzero(mask)
    if f.sort == "id":
        rows = rows[np.argsort(c.ids[rows], kind="stable")]
    elif f.sort == "-severity":
        rows = rows[np.argsort(c.severity[rows], kind="stable")]
    elif (f.sort == "change" or f.metric) and change is not None:
        rows = rows[np.argsort(np.nan_to_num(change[rows]), kind="stable")]  # worst change first
    else:
        rows = rows[np.argsort(-c.severity[rows], kind="stable")]
    return rows, change


def page(rows: np.ndarray, number: int) -> tuple[np.ndarray, int]:
    pages = max(1, -(-len(rows) // PAGE_SIZE))
    number = min(max(1, number), pages)
    return rows[(number - 1) * PAGE_SIZE:number * PAGE_SIZE], pages


def row_values(c: Comparison, k: int) -> dict[str, Any]:
    """What an item list shows for one paired item."""
    def v(name: Optional[str]) -> tuple[Optional[float], Optional[float]]:
        if name is None or name not in c.shown:
            return None, None
        a, b = c.shown[name][0][k], c.shown[name][1][k]
        return (None if math.isnan(a) else float(a)), (None if math.isnan(b) else float(b))

    return {"id": str(c.ids[k]), "task_type": str(c.task_type[k]), "severity": float(c.severity[k]),
            "flipped": bool(c.flipped[k]), "usable": v("usable"), "judge": v("judge:overall"),
            "rule": (c.rule, *v(c.rule)) if c.rule else None, "probe": v("probe:ref_sum"),
            "chars": (None if math.isnan(c.chars_a[k]) else int(c.chars_a[k]),
                      None if math.isnan(c.chars_b[k]) else int(c.chars_b[k])),
            "spread": None if math.isnan(c.spread[k]) else float(c.spread[k]),
            "problems": bool(c.problems[k]), "swap_flip": bool(c.swap_flip[k]),
            "robustness": bool(c.robustness[k])}
