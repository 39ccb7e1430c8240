"""`sfteval suites plan`: how many items each task_type needs for the diff to see its minimum effect.

Why: hard task_types deserve more items, and "more" can be computed. A task_type's power depends on its n and
on how much the paired outcomes of two checkpoints disagree there: the discordance of a 0/1 metric, the
spread of a score's paired differences (harness/differ/power.py). A hard task_type (accuracy near 50%) has
more discordance than an easy one (near 100%) and so needs more items for the same minimum effect.

The spread comes from the baseline run alone -- as two independent checkpoints would differ: discordance
2p(1 - p) for a rate p, sd * sqrt(2) for a score (conservative: real checkpoints agree more) -- or, with a
second run (``--candidate``), from the observed paired differences of the two, as the diff measures them.
The level is the diff's: alpha over the number of cells a diff of these runs would test.
"""

from __future__ import annotations

import math
from typing import Any, Optional, Sequence

import numpy as np
import pandas as pd

from ..gate import GateConfig
from ..scoring import BASE_COLUMNS
from .cells import build_groups, is_binary
from .power import POWER, cell_power, spread
from .rules import resolve


def plan(suite_counts: dict[str, int], baseline: pd.DataFrame, config: Optional[GateConfig] = None,
         metrics: Sequence[str] = (), candidate: Optional[pd.DataFrame] = None,
         power: float = POWER) -> dict[str, Any]:
    """Rows per (group, metric): suite items, baseline n, spread, MDE with the suite's items, min effect,
    items needed. ``suite_counts``: task_type -> items in the suite (two-level names)."""
    config = config or GateConfig()
    frame = baseline
    if candidate is not None:
        frame = baseline.loc[baseline.index.intersection(candidate.index, sort=False)]
        cand = candidate.loc[frame.index]
    all_metrics = [c for c in frame.columns if c not in BASE_COLUMNS and pd.api.types.is_numeric_dtype(frame[c])]
    chosen = list(metrics) or [m for m in ("usable", "judge:overall", "rule:normalized_match", "rule:exact_match",
                                           "rule:choice", "probe:choice_acc") if m in all_metrics][:1]
    unknown = [m for m in chosen if m not in all_metrics]
    if unknown:
        raise ValueError(f"metric {unknown[0]!r} is not in the baseline run (it has: {', '.join(all_metrics)})")
    groups = build_groups(frame, config)
    values = {m: _has_value(frame, cand if candidate is not None else None, m) for m in all_metrics
              if candidate is None or m in cand.columns}
    # the cells a diff of these runs tests: a group and a metric with a value (on both sides) in the group
    tests = max(1, sum(1 for g in groups if not g.same_as for has in values.values() if has[g.rows].any()))
    task_types = frame["task_type"].astype(str).to_numpy()
    rows = []
    for m in chosen:
        a = frame[m].to_numpy(np.float64)
        b = cand[m].to_numpy(np.float64) if candidate is not None else None
        binary = is_binary(a) if b is None else is_binary(a, b)
        for g in groups:
            if g.same_as:
                continue
            rule = resolve(config, g.name, m, binary)
            va = a[g.rows]
            va_ok = va[~np.isnan(va)]
            if not va_ok.size:
                continue  # the metric does not apply to this task_type (no rule, no judge)
            if b is not None:
                s = spread(va, b[g.rows], binary)
                how = "observed"
            elif binary:
                p = float(va_ok.mean()) if va_ok.size else math.nan
                s, how = 2 * p * (1 - p), "independent"
            else:
                s = float(np.std(va_ok, ddof=1) * math.sqrt(2)) if va_ok.size > 1 else math.nan
                how = "independent"
            thr = rule.threshold(float(va_ok.mean())) if va_ok.size else math.nan
            n_suite = _suite_items(g, suite_counts, set(task_types[g.rows][values[m][g.rows]]),
                                   set(task_types[g.rows]), int(va_ok.size))
            level = rule.alpha / tests
            mde, needed = cell_power(n_suite, binary, s, thr if thr > 0 else 0.0, level, power)
            rows.append({"group": g.name, "kind": g.kind, "metric": m, "binary": binary, "items": n_suite,
                         "baseline_n": int(va_ok.size), "baseline_mean": float(va_ok.mean()) if va_ok.size else None,
                         "spread": s, "spread_from": how, "mde": mde, "min_effect": thr, "items_needed": needed,
                         "more": None if needed is None else max(0, needed - n_suite),
                         "blind": bool(mde > thr) if thr > 0 and not math.isnan(mde) else None})
    return {"metrics": chosen, "power": power, "tests": tests, "level": config.alpha / tests, "rows": rows}


def _has_value(a: pd.DataFrame, b: Optional[pd.DataFrame], metric: str) -> np.ndarray:
    """Per item: whether the metric has a value (in both runs when there are two): the items a diff pairs."""
    has = a[metric].notna().to_numpy()
    return has & b[metric].notna().to_numpy() if b is not None else has


def _suite_items(g: Any, suite_counts: dict[str, int], scored: set[str], in_run: set[str], fallback: int) -> int:
    """The suite's items in group ``g`` that the metric applies to: those of its task_types where the run has
    a value (choices in one task_type, a reference match in another: the overall row of a rule counts only its
    own items, as the diff's does), plus task_types the run did not reach (limited runs), which may apply."""
    if g.kind == "robustness":
        return fallback
    if g.kind == "task_type":
        return suite_counts.get(g.name, fallback)
    n = sum(k for tt, k in suite_counts.items()
            if (g.kind == "overall" or tt == g.name or tt.startswith(g.name + "/"))
            and (tt in scored or tt not in in_run))
    return n or fallback
