"""trend(run 1..k): one suite's metrics per task_type across many checkpoints, the best run per task_type, and
each run's significant regressions against the best run before it.

Why: learning-rate sweeps and "squeeze" experiments (PRACTICE 7) produce step-1000 ... step-8000, and the
question is which checkpoint is best where, not how two of them differ. Probe metrics come along: log P of
the reference often rises before accuracy moves (PRACTICE 6).

* Runs are ordered as given, or by their step when every run has one: ``--label RUN=STEP`` or a number
  after step/checkpoint/ckpt/iter/global_step in the run id or model path (``ckpt/step-1200``).
* Items are those every run has (paired across all runs); groups are the diff's (overall, both task_type
  levels, robustness; a first level holding one second level is shown once as it).
* Best run of a (group, metric) with a direction: the highest (or lowest) mean; ties go to the earliest.
* Regressions: run j against the best of runs 1..j-1, by the diff's paired tests (exact McNemar / Wilcoxon)
  on the group's items, Holm over every such test in the table; a regression is significant after Holm and
  worse by more than the metric's minimum effect (harness/differ/rules.py, gate.yaml), for gated metrics.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass, field
from typing import Any, Optional, Sequence

import numpy as np
import pandas as pd

from . import stats
from .differ.cells import build_groups, is_binary
from .differ.result import _clean
from .differ.rules import resolve
from .gate import GateConfig
from .scoring import BASE_COLUMNS

#: the metric a trend leads with: the first of these the runs have (as the diff's headline)
HEADLINE_ORDER = ("usable", "judge:overall", "rule:normalized_match", "rule:exact_match", "rule:choice",
                  "rule:checks", "probe:choice_acc", "probe:ref_greedy")

_STEP = re.compile(r"(?:^|[^a-z])(?:global_step|step|checkpoint|ckpt|iter)[-_]?(\d+)", re.I)


def parse_step(*texts: Optional[str]) -> Optional[int]:
    """The training step in a run id or model path (the last match of the first text that has one)."""
    for t in texts:
        if t:
            found = _STEP.findall(t)
            if found:
                return int(found[-1])
    return None


@dataclass
class TrendRun:
    run_id: str
    label: str
    step: Optional[float]
    model: str = ""
    suite_hash: str = ""


@dataclass
class TrendResult:
    runs: list[TrendRun]
    metrics: list[str]
    rows: list[dict[str, Any]]  # group, kind, same_as, metric, direction, binary, means, n, best
    regressions: list[dict[str, Any]]  # gated metrics: significant after Holm and worse than the minimum effect
    settings: dict[str, Any]
    warnings: list[str] = field(default_factory=list)
    paired: int = 0
    training: Optional[dict[str, Any]] = None
    worse: list[dict[str, Any]] = field(default_factory=list)  # the same for metrics not gated (latency, log P)

    def best_runs(self, metric: str) -> dict[str, Optional[str]]:
        """group -> label of the best run for ``metric`` (None where the metric has no direction)."""
        return {r["group"]: (self.runs[r["best"]].label if r["best"] is not None else None)
                for r in self.rows if r["metric"] == metric}

    def headline_metric(self) -> Optional[str]:
        for m in HEADLINE_ORDER:
            if m in self.metrics:
                return m
        return self.metrics[0] if self.metrics else None

    def best_table(self, candidates: Sequence[str]) -> list[dict[str, Any]]:
        """Per group (aliases left out), the table row of the first of ``candidates`` the group has with a best
        run: a task_type the headline metric does not score (choices where the others match references) still
        gets its best run, on its own metric."""
        out: dict[str, dict[str, Any]] = {}
        for m in candidates:
            for r in self.rows:
                if r["metric"] == m and not r["same_as"] and r["best"] is not None:
                    out.setdefault(r["group"], r)
        return list(out.values())

    def as_dict(self) -> dict[str, Any]:
        return _clean({"schema_version": 1, "runs": [vars(r) for r in self.runs], "paired_items": self.paired,
                       "metrics": self.metrics, "settings": self.settings, "warnings": self.warnings,
                       "table": self.rows, "regressions": self.regressions, "worse": self.worse,
                       "training": self.training})


def order_runs(runs: list[TrendRun]) -> tuple[list[int], str]:
    """Positions in display order, and how they were ordered."""
    if all(r.step is not None for r in runs):
        return sorted(range(len(runs)), key=lambda i: (runs[i].step, i)), "by step"
    return list(range(len(runs))), "as given"


def trend_frames(frames: Sequence[pd.DataFrame], runs: list[TrendRun], config: Optional[GateConfig] = None,
                 metrics: Sequence[str] = ()) -> TrendResult:
    """The trend of item frames (harness.scoring.item_frame), one per run, in the order given."""
    config = config or GateConfig()
    warnings: list[str] = []
    common = frames[-1].index
    for f in frames[:-1]:
        common = common[f.index.get_indexer(common) >= 0]
    dropped = max(len(f) for f in frames) - len(common)
    if dropped:
        warnings.append(f"{dropped} items are not in every run; the trend uses the {len(common)} items all runs have")
    if len({r.suite_hash for r in runs}) > 1:
        warnings.append("the runs used different suites (hashes differ); items are paired by id")
    frames = [f.loc[common] for f in frames]
    cols = [c for c in frames[-1].columns if c not in BASE_COLUMNS and all(c in f.columns and
            pd.api.types.is_numeric_dtype(f[c]) for f in frames)]
    if metrics:
        unmatched = [p for p in metrics if not any(fnmatch.fnmatchcase(c, p) for c in cols)]
        if unmatched:
            raise ValueError(f"metric {unmatched[0]!r} matches no metric of these runs (they have: {', '.join(cols)})")
        cols = [c for c in cols if any(fnmatch.fnmatchcase(c, p) for p in metrics)]
    groups = build_groups(frames[-1], config) if len(common) else []
    rows, tests = [], []
    values = {m: [f[m].to_numpy(dtype=np.float64) for f in frames] for m in cols}
    for m in cols:
        binary = is_binary(*values[m])
        for g in groups:
            if config.metric_ignored(g.name, m):
                continue
            rule = resolve(config, g.name, m, binary)
            sub = [v[g.rows] for v in values[m]]
            n = [int((~np.isnan(v)).sum()) for v in sub]
            means = [float(np.nanmean(v)) if k else np.nan for v, k in zip(sub, n)]
            best = _best(means, rule.direction)
            row = {"group": g.name, "kind": g.kind, "same_as": g.same_as, "metric": m, "direction": rule.direction,
                   "binary": binary, "means": means, "n": n, "best": best, "gate": rule.gate}
            rows.append(row)
            if rule.direction == "none" or g.same_as:
                continue
            for j in range(1, len(frames)):
                k = _best(means[:j], rule.direction)
                if k is None or np.isnan(means[j]):
                    continue
                a, b = sub[k], sub[j]
                keep = ~(np.isnan(a) | np.isnan(b))
                if not keep.any():
                    continue
                p = stats.mcnemar_exact(a[keep], b[keep]) if binary else stats.wilcoxon_signed_rank(a[keep], b[keep]).p_value
                delta = float(b[keep].mean() - a[keep].mean())
                tests.append({"run": j, "against": k, "group": g.name, "kind": g.kind, "metric": m, "binary": binary,
                              "mean_best": float(a[keep].mean()), "mean_run": float(b[keep].mean()), "delta": delta,
                              "n": int(keep.sum()), "p_value": float(p), "threshold": rule.threshold(means[k]),
                              "alpha": rule.alpha, "gate": rule.gate, "direction": rule.direction,
                              "test": "mcnemar" if binary else "wilcoxon"})
    if tests:
        for t, ph in zip(tests, stats.holm(np.array([t["p_value"] for t in tests]))):
            t["p_holm"] = float(ph)
            sign = 1.0 if t["direction"] == "higher" else -1.0
            t["significant"] = t["p_holm"] <= t["alpha"]
            worse = bool(t["significant"] and sign * t["delta"] < -t["threshold"])
            t["regression"] = worse and t["gate"]
            t["worse"] = worse and not t["gate"]
    labelled = [{**t, "run_label": runs[t["run"]].label, "against_label": runs[t["against"]].label} for t in tests]
    regressions = sorted((t for t in labelled if t["regression"]), key=lambda t: (t["run"], t["p_holm"]))
    worse_only = sorted((t for t in labelled if t["worse"]), key=lambda t: (t["run"], t["p_holm"]))
    settings = {"alpha": config.alpha, "correction": "holm", "tests": len(tests), "order": ""}
    return TrendResult(runs=runs, metrics=cols, rows=[r for r in rows if any(r["n"])], regressions=regressions,
                       settings=settings, warnings=warnings, paired=len(common), worse=worse_only)


def _best(means: Sequence[float], direction: str) -> Optional[int]:
    vals = np.array(means, dtype=np.float64)
    if direction == "none" or np.isnan(vals).all():
        return None
    vals = np.where(np.isnan(vals), -np.inf if direction == "higher" else np.inf, vals)
    return int(np.argmax(vals) if direction == "higher" else np.argmin(vals))  # first of equals: the earliest


def trend_runs(folders: Sequence[Any], labels: Optional[dict[str, str]] = None,
               config: Optional[GateConfig] = None, metrics: Sequence[str] = (),
               training: Optional[dict[int, Any]] = None) -> TrendResult:
    """Load run folders (harness.runfolder.RunFolder) and compute their trend; ``labels``: run id or folder
    name -> step or label; ``training``: position -> TrainingSet, for the mix per task_type per run."""
    from .differ.load import load_run

    labels = labels or {}
    loaded = [load_run(f) for f in folders]
    runs = []
    for f, lr in zip(folders, loaded):
        given = labels.get(lr.info.run_id, labels.get(f.path.name))
        step: Optional[float] = None
        if given is not None:
            try:
                step = float(given)
            except ValueError:
                step = None
        else:
            parsed = parse_step(lr.info.run_id, lr.manifest.model.path, lr.manifest.model.name)
            step = float(parsed) if parsed is not None else None
        if step is not None:
            label = f"{lr.info.run_id} (step {step:g})" if str(step) not in lr.info.run_id else lr.info.run_id
        else:
            label = given if given is not None else lr.info.run_id
        runs.append(TrendRun(lr.info.run_id, label, step, lr.info.model, lr.info.suite_hash))
    order, how = order_runs(runs)
    result = trend_frames([loaded[i].frame for i in order], [runs[i] for i in order], config, metrics)
    result.settings["order"] = how
    if training:
        from .traindata import mix

        result.training = {"runs": [runs[i].label for i in order],
                           "mix": {runs[i].label: mix(training[i]).reset_index(names="task_type").to_dict("records")
                                   for i in order if i in training}}
    return result
