"""The statistics of a diff: one cell per (group, metric) over paired items, Holm across all cells.

Groups are overall, each first-level task_type, each two-level task_type and the robustness items. A first
level whose items all sit in one second-level task_type (``math`` holding only ``math/addition``) is the same
items, so the same test: its cells copy the second level's, carry ``same_as``, and count once in Holm.

* p-value (per cell, on the group's pooled paired items): exact McNemar when the metric is 0/1 in both
  runs (usable, rule:*, gen:error, ...), else the Wilcoxon signed-rank test (harness.stats; scipy-equal).
* 95% interval on the mean difference B - A: a paired percentile bootstrap, *stratified* by task_type and
  robustness tag. A suite's composition is fixed by design (hard task_types get more items), so a resample
  keeps every stratum's size and draws items within it; a group's resampled mean is then the sum of its
  strata's resampled sums over their counts. One resampling pass over the strata therefore serves every
  level (task_type, first level, overall, robustness) instead of resampling each level again.
  Within a stratum, per metric:
  - *discrete* metrics (at most n/20 distinct differences: judge scores, 0/1 outcomes) use harness.stats'
    multinomial fast path (cost resamples x distinct values), with the stratum+metric seed -- a group that
    is a single stratum gets exactly ``harness.stats.paired_bootstrap_ci(a, b, seed=cell_seed(...))``;
  - all other metrics (latency, lengths, log-prob sums) *share one set of resampled item indices per
    stratum*: the indices become a per-item count matrix, and one matrix product gives every such metric's
    resampled sums (cost resamples x items once per stratum, not once per metric). A metric's missing
    items are left out of both its sums and its counts.
* Seeds are derived by hashing (seed, stratum, metric), so adding a metric or a task_type never changes
  the numbers of the others, and a re-diff gives identical numbers.
"""

from __future__ import annotations

import hashlib
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Optional

import numpy as np
import pandas as pd

from .. import stats
from ..gate import GateConfig
from .rules import resolve

_COUNTS_FACTOR = 20  # harness.stats' fast-path rule: k distinct differences with k * 20 <= n
_CHUNK = 1 << 16  # count-matrix elements per block: 512 KiB as float64 stays in cache (2x faster than 8 MiB)
_SHARED = "\x00shared"


@dataclass
class Group:
    kind: str  # overall | level1 | task_type | robustness
    name: str
    rows: np.ndarray  # positions in the paired frames
    strata: list[int]  # indices of the strata it is made of
    same_as: Optional[str] = None  # the second-level group with exactly these items (a first level's only one)


@dataclass
class Stratum:
    name: str  # "<task_type>" or "<task_type> [robustness]"
    rows: np.ndarray


def derived_seed(seed: int, *parts: str) -> int:
    blob = "\x1f".join([str(seed), *parts]).encode()
    return int.from_bytes(hashlib.blake2b(blob, digest_size=8).digest(), "little") >> 1


def cell_seed(seed: int, stratum: str, metric: str) -> int:
    """The seed of one stratum's discrete-metric bootstrap (what tests pass to harness.stats)."""
    return derived_seed(seed, stratum, metric)


def build_strata(frame: pd.DataFrame) -> tuple[list[Stratum], np.ndarray]:
    """Strata = (task_type, robustness tag); returns them and each row's stratum index."""
    robust = frame["robustness"].to_numpy(dtype=bool)
    codes, names = pd.factorize(frame["task_type"], sort=True)
    key = codes * 2 + robust
    uniq, inverse = np.unique(key, return_inverse=True)
    order = np.argsort(inverse, kind="stable")
    bounds = np.searchsorted(inverse[order], np.arange(uniq.size + 1))
    strata = [Stratum(str(names[k // 2]) + (" [robustness]" if k % 2 else ""), order[bounds[i]:bounds[i + 1]])
              for i, k in enumerate(uniq)]
    return strata, inverse


def build_groups(frame: pd.DataFrame, config: GateConfig) -> list[Group]:
    """overall, each first level, each two-level task_type, robustness items -- minus ignored groups."""
    strata, of_row = build_strata(frame)
    first = [int(s.rows[0]) for s in strata]
    tt = frame["task_type"].to_numpy(dtype=object)
    rb = frame["robustness"].to_numpy(dtype=bool)

    def group(kind: str, name: str, keep: list[bool]) -> Group:
        ids = [i for i, k in enumerate(keep) if k]
        rows = np.concatenate([strata[i].rows for i in ids]) if ids else np.empty(0, dtype=np.int64)
        return Group(kind, name, np.sort(rows), ids)

    groups = [group("overall", "overall", [True] * len(strata))] if len(frame) else []
    for name in sorted({str(tt[r]).split("/")[0] for r in first}):
        groups.append(group("level1", name, [str(tt[r]).split("/")[0] == name for r in first]))
    for name in sorted({str(tt[r]) for r in first if "/" in str(tt[r])}):
        groups.append(group("task_type", name, [str(tt[r]) == name for r in first]))
    if rb.any():
        groups.append(group("robustness", "robustness", [bool(rb[r]) for r in first]))
    groups = [g for g in groups if not config.group_ignored(g.name)]
    second = {tuple(g.strata): g.name for g in groups if g.kind == "task_type"}
    for g in groups:
        if g.kind == "level1":
            g.same_as = second.get(tuple(g.strata))
    return groups


def is_binary(*arrays: np.ndarray) -> bool:
    for x in arrays:
        v = x[~np.isnan(x)]
        if v.size and not np.isin(v, (0.0, 1.0)).all():
            return False
    return True


def compute_cells(a: pd.DataFrame, b: pd.DataFrame, groups: list[Group], metrics: list[str], config: GateConfig,
                  workers: Optional[int] = None) -> pd.DataFrame:
    """All cells as a frame (one row each), Holm-adjusted and classified."""
    strata, _ = build_strata(b)
    B = config.resamples
    rows: list[dict[str, Any]] = []
    # resampled (sum, count) per stratum and metric: arrays of length B (count: a scalar when fixed)
    sums: dict[tuple[int, str], tuple[np.ndarray, Any]] = {}
    shared: dict[int, list[str]] = {}
    values = {m: (a[m].to_numpy(dtype=np.float64), b[m].to_numpy(dtype=np.float64)) for m in metrics}
    binary = {m: is_binary(*values[m]) for m in metrics}
    needed = {si for g in groups for si in g.strata}
    for m in metrics:
        av, bv = values[m]
        for si in sorted(needed):
            s = strata[si]
            ag, bg = av[s.rows], bv[s.rows]
            d = (bg - ag)[~(np.isnan(ag) | np.isnan(bg))]
            vals, counts = np.unique(d, return_counts=True)
            if d.size == 0:
                sums[(si, m)] = (np.zeros(B), 0)
            elif vals.size == 1:
                sums[(si, m)] = (np.full(B, vals[0] * d.size), d.size)
            elif vals.size * _COUNTS_FACTOR <= d.size:
                # exactly what harness.stats.paired_bootstrap_ci draws for this stratum with this seed
                means = stats._bootstrap_distribution(d, vals, counts, B, cell_seed(config.seed, s.name, m), "mean", 1)
                sums[(si, m)] = (means * d.size, d.size)
            else:
                shared.setdefault(si, []).append(m)
    _shared_sums(sums, shared, strata, values, config, workers)
    for m in metrics:
        av, bv = values[m]
        kept = [g for g in groups if not config.metric_ignored(g.name, m)]
        second = {g.name for g in kept if g.kind == "task_type"}
        own = {(g.kind, g.name): _cell(g, m, av[g.rows], bv[g.rows], binary[m], sums, config)
               for g in kept if g.same_as not in second}
        for g in kept:  # a first level that is its only second level: the identical test, its numbers and verdict
            twin = own.get(("task_type", g.same_as)) if g.same_as in second else None
            rows.append(own[(g.kind, g.name)] if twin is None else {**twin, "group": g.name, "kind": g.kind,
                                                                      "same_as": g.same_as})
    cells = pd.DataFrame(rows)
    if not len(cells):
        return cells
    primary = cells["same_as"].isna().to_numpy()
    cells["same_as"] = cells["same_as"].astype(object).where(~primary, None)
    cells["p_holm"] = np.nan
    cells.loc[primary, "p_holm"] = stats.holm(cells["p_value"].to_numpy(dtype=np.float64)[primary])
    if not primary.all():
        tested = cells[cells["kind"] == "task_type"].set_index(["group", "metric"])["p_holm"]
        twins = pd.MultiIndex.from_frame(cells.loc[~primary, ["same_as", "metric"]])
        cells.loc[~primary, "p_holm"] = tested.reindex(twins).to_numpy()
    classify(cells)
    return cells


def _cell(g: Group, m: str, ag: np.ndarray, bg: np.ndarray, binary: bool,
          sums: dict[tuple[int, str], tuple[np.ndarray, Any]], config: GateConfig) -> dict[str, Any]:
    rule = resolve(config, g.name, m, binary)
    keep = ~(np.isnan(ag) | np.isnan(bg))
    ag, bg = ag[keep], bg[keep]
    n = int(ag.size)
    row: dict[str, Any] = {"group": g.name, "kind": g.kind, "same_as": None, "metric": m, "binary": binary, "n": n,
                           "direction": rule.direction, "min_effect": rule.min_effect, "relative": rule.relative,
                           "gate": rule.gate, "alpha": rule.alpha, "test": "mcnemar" if binary else "wilcoxon",
                           "strata": len(g.strata)}
    if n == 0:
        return {**row, "mean_a": np.nan, "mean_b": np.nan, "delta": np.nan, "ci_low": np.nan, "ci_high": np.nan,
                "p_value": np.nan}
    ma, mb = float(ag.mean()), float(bg.mean())
    p = stats.mcnemar_exact(ag, bg) if binary else stats.wilcoxon_signed_rank(ag, bg).p_value
    total = sum(sums[(si, m)][0] for si in g.strata)
    count = sum(sums[(si, m)][1] for si in g.strata)
    with np.errstate(invalid="ignore", divide="ignore"):
        dist = total / count
    alpha = 1.0 - config.confidence
    if np.isnan(dist).any():
        lo, hi = np.nanquantile(dist, [alpha / 2, 1 - alpha / 2])
    else:
        lo, hi = np.quantile(dist, [alpha / 2, 1 - alpha / 2])
    return {**row, "mean_a": ma, "mean_b": mb, "delta": mb - ma, "ci_low": float(lo), "ci_high": float(hi),
            "p_value": float(p)}


def _shared_sums(sums: dict[tuple[int, str], tuple[np.ndarray, Any]], shared: dict[int, list[str]],
                 strata: list[Stratum], values: dict[str, tuple[np.ndarray, np.ndarray]], config: GateConfig,
                 workers: Optional[int]) -> None:
    def one(si: int) -> None:
        s, ms = strata[si], shared[si]
        d = np.column_stack([values[m][1][s.rows] - values[m][0][s.rows] for m in ms])  # n x m, NaN = missing
        total, count = shared_bootstrap_sums(d, n_resamples=config.resamples,
                                             seed=derived_seed(config.seed, s.name, _SHARED))
        for j, m in enumerate(ms):
            sums[(si, m)] = (total[:, j], count[:, j])

    # the largest strata first, so two threads finish together
    order = sorted(shared, key=lambda si: -strata[si].rows.size)
    n_threads = min(len(order), workers or _cpus())
    if n_threads <= 1:
        for si in order:
            one(si)
    else:
        with ThreadPoolExecutor(n_threads) as pool:  # numpy releases the GIL in the draws and the products
            list(pool.map(one, order))


def _cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def shared_bootstrap_sums(d: np.ndarray, *, n_resamples: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Resampled column sums and valid counts of ``d`` (n items x m metrics) from one set of resamples.

    Each resample draws n item indices; their counts c (a length-n vector) give every column's resampled
    sum as c @ d_valid and its count of valid items as c @ valid. Blocks of resamples small enough for the
    CPU cache (``_CHUNK`` elements) keep memory flat whatever n is; the block size is part of the seed
    contract (it decides how the draws are split), so changing it changes the intervals.
    """
    n, m = d.shape
    valid = ~np.isnan(d)
    gaps = np.flatnonzero(~valid.all(axis=0))  # only columns with missing items need counting
    weights = np.hstack([np.where(valid, d, 0.0), valid[:, gaps].astype(np.float64)])
    rng = np.random.default_rng(seed)
    rows = max(1, _CHUNK // max(n, 1))
    out = np.empty((n_resamples, weights.shape[1]))
    for start in range(0, n_resamples, rows):
        r = min(rows, n_resamples - start)
        idx = rng.integers(0, n, size=(r, n))
        idx += (np.arange(r) * n)[:, None]
        c = np.bincount(idx.ravel(), minlength=r * n).reshape(r, n).astype(np.float64)
        np.matmul(c, weights, out=out[start:start + r])
    count = np.full((n_resamples, m), float(n))
    count[:, gaps] = out[:, m:]
    return out[:, :m], count


def classify(cells: pd.DataFrame) -> None:
    """Status per cell: regression / improvement (gated metrics), worse / better (watched), changed (no
    direction), or '' -- a change counts only when larger than the minimum effect AND significant after Holm."""
    delta = cells["delta"].to_numpy(dtype=np.float64)
    mean_a = cells["mean_a"].to_numpy(dtype=np.float64)
    rel = cells["relative"].to_numpy(dtype=bool)
    thr = np.where(rel, cells["min_effect"].to_numpy(dtype=np.float64) * np.abs(mean_a),
                   cells["min_effect"].to_numpy(dtype=np.float64))
    direction = cells["direction"].to_numpy()
    sign = np.select([direction == "higher", direction == "lower"], [1.0, -1.0], 0.0)
    effect = sign * delta  # > 0: B is better
    with np.errstate(invalid="ignore"):
        sig = cells["p_holm"].to_numpy(dtype=np.float64) <= cells["alpha"].to_numpy(dtype=np.float64)
        big = np.abs(delta) > thr
    gate = cells["gate"].to_numpy(dtype=bool)
    status = np.full(len(cells), "", dtype=object)
    moved = sig & big
    status[moved & (sign == 0)] = "changed"
    status[moved & (effect < 0)] = np.where(gate[moved & (effect < 0)], "regression", "worse")
    status[moved & (effect > 0)] = np.where(gate[moved & (effect > 0)], "improvement", "better")
    cells["threshold"] = thr
    cells["effect"] = effect
    cells["significant"] = sig
    cells["status"] = status
