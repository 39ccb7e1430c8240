"""diff(A, B): paired comparison of two runs per task_type x metric, flipped items, pairwise outcomes.

A is the baseline, B the candidate; every delta is B - A. Items are paired by id. See cells.py for the
statistics, rules.py for what counts as a regression, flips.py for the item ranking.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any, Callable, Optional

import numpy as np
import pandas as pd

from ..gate import GateConfig
from ..scoring import BASE_COLUMNS
from ..store import RunStore
from .cells import build_groups, compute_cells, is_binary
from .flips import TextSource, flipped_items
from .lengthctl import add_length_adjustment
from .power import POWER, add_power
from .result import DiffResult, RunInfo

if TYPE_CHECKING:
    from .load import LoadedRun

__all__ = ["DiffResult", "diff_frames", "diff_loaded", "diff_runs"]

#: Per-item metrics that are not comparable item by item (none today; group metrics are not in the frame).
SKIP_METRICS: frozenset[str] = frozenset()


def _metrics(a: pd.DataFrame, b: pd.DataFrame) -> list[str]:
    cols_b = set(b.columns)
    return [c for c in a.columns if c in cols_b and c not in BASE_COLUMNS and c not in SKIP_METRICS
            and pd.api.types.is_numeric_dtype(a[c]) and pd.api.types.is_numeric_dtype(b[c])]


def diff_frames(frame_a: pd.DataFrame, frame_b: pd.DataFrame, config: Optional[GateConfig] = None, *,
                run_a: Optional[RunInfo] = None, run_b: Optional[RunInfo] = None, top: int = 10,
                texts_a: Optional[TextSource] = None, texts_b: Optional[TextSource] = None,
                workers: Optional[int] = None) -> DiffResult:
    """The diff of two item frames (harness.scoring.item_frame), paired on the index (item id)."""
    config = config or GateConfig()
    ids_a, ids_b = frame_a.index, frame_b.index
    for name, ids in (("baseline", ids_a), ("candidate", ids_b)):
        if not ids.is_unique:
            raise ValueError(f"{name} run has duplicate item ids, e.g. {ids[ids.duplicated()][0]!r}")
    pos_a = ids_a.get_indexer(ids_b)  # hash join on ids (Index.isin is slow on Arrow-backed strings)
    in_a = pos_a >= 0
    a = frame_a.iloc[pos_a[in_a]]
    b = frame_b.iloc[np.flatnonzero(in_a)]
    common = b.index
    if len(common):
        a = a.assign(task_type=b["task_type"], level1=b["level1"], robustness=b["robustness"])  # B's labels rule
    metrics = _metrics(frame_a, frame_b)
    groups = build_groups(b, config)
    cells = compute_cells(a, b, groups, metrics, config, workers=workers)
    worse, better, n_worse, n_better = flipped_items(a, b, top, texts_a, texts_b)
    warnings = []
    only_a = [str(i) for i in ids_a[ids_b.get_indexer(ids_a) < 0]]
    only_b = [str(i) for i in ids_b[~in_a]]
    one_sided = sorted(set(frame_a.columns) ^ set(frame_b.columns))
    one_sided = [m for m in one_sided if m not in BASE_COLUMNS]
    if one_sided:
        warnings.append(f"metrics present in one run only (not compared): {', '.join(one_sided)}")
    tested = int((cells["p_value"].notna() & cells["same_as"].isna()).sum()) if len(cells) else 0
    rows_of = {g.name: g.rows for g in groups}
    add_power(cells, a, b, rows_of, tested)
    length_control = add_length_adjustment(cells, a, b, rows_of, config.confidence)
    if length_control:
        warnings += length_warnings(cells)
    settings = {"alpha": config.alpha, "confidence": config.confidence, "resamples": config.resamples,
                "seed": config.seed, "correction": "holm", "cells_tested": tested, "top": top,
                "power": {"target": POWER, "level": "alpha / cells tested (Holm's first step)",
                          "alpha_level": config.alpha / max(tested, 1)},
                "length_control": length_control}
    return DiffResult(
        run_a=run_a or RunInfo("A"), run_b=run_b or RunInfo("B"), settings=settings, cells=cells,
        paired=len(common), only_a=only_a, only_b=only_b, warnings=warnings, worse=worse, better=better,
        n_worse=n_worse, n_better=n_better, distributions=distributions(a, b, metrics),
        group_sizes={g.name: int(g.rows.size) for g in groups},
    )


def length_warnings(cells: pd.DataFrame, show: int = 5) -> list[str]:
    """One warning naming the judge cells whose length-adjusted delta has the other sign than the raw one."""
    if "length_sign_flip" not in cells or not len(cells):
        return []
    flips = cells[cells["length_sign_flip"].fillna(False).astype(bool) & cells["same_as"].isna()]
    if not len(flips):
        return []
    named = ", ".join(f"{r.group} {r.metric} {r.delta:+.3g} -> {r.length_adjusted_delta:+.3g}"
                      for r in flips.head(show).itertuples())
    more = f" and {len(flips) - show} more" if len(flips) > show else ""
    return [f"judge scores and answer length: {len(flips)} cell(s) change sign once the change in answer length "
            f"is controlled for (raw delta -> length-adjusted delta): {named}{more}. The judge may be rewarding "
            "length rather than quality."]


def pairwise_control_warnings(groups: list[dict[str, Any]]) -> list[str]:
    """Pairwise groups whose length- or style-controlled win rate lies on the other side of 1/2."""
    from .lengthctl import sign_disagrees

    out = []
    for g in groups:
        if g.get("same_as"):
            continue
        for key, what in (("lc", "length-controlled"), ("sc", "style-controlled")):
            if sign_disagrees(g.get("corrected_score"), g.get("corrected_ci_low"), g.get("corrected_ci_high"),
                              g.get(f"{key}_win_rate"), g.get(f"{key}_ci_low"), g.get(f"{key}_ci_high"), 0.5):
                out.append(f"pairwise {g['group']}: the judge prefers the candidate {g['corrected_score']:.2f} "
                           f"(bias-corrected) but {g[f'{key}_win_rate']:.2f} {what}: the raw preference "
                           f"follows {'answer length' if key == 'lc' else 'length and markdown'}, not quality")
                break
    return out


def distributions(a: pd.DataFrame, b: pd.DataFrame, metrics: list[str], max_bins: int = 20) -> dict[str, Any]:
    """Histograms of every non-binary metric over all paired items (for the HTML plots)."""
    out: dict[str, Any] = {}
    for m in metrics:
        va = a[m].to_numpy(dtype=np.float64)
        vb = b[m].to_numpy(dtype=np.float64)
        va, vb = va[~np.isnan(va)], vb[~np.isnan(vb)]
        if not (va.size and vb.size) or is_binary(va, vb):
            continue
        both = np.concatenate([va, vb])
        lo, hi = float(both.min()), float(both.max())
        distinct = np.unique(both)
        if distinct.size <= max_bins:  # discrete scores: one bar per value
            out[m] = {"values": distinct.tolist(), "a": _counts(va, distinct), "b": _counts(vb, distinct)}
        else:
            edges = np.linspace(lo, hi if hi > lo else lo + 1, max_bins + 1)
            out[m] = {"edges": edges.tolist(), "a": np.histogram(va, edges)[0].tolist(),
                      "b": np.histogram(vb, edges)[0].tolist()}
    return out


def _counts(v: np.ndarray, values: np.ndarray) -> list[int]:
    return np.bincount(np.searchsorted(values, v), minlength=values.size).tolist()


def diff_runs(store_a: RunStore, store_b: RunStore, config: Optional[GateConfig] = None, *, top: int = 10,
              log: Callable[[str], None] = lambda m: print(m, file=sys.stderr), train_a: Any = None,
              train_b: Any = None) -> DiffResult:
    """Load two runs and diff them: A is the baseline, B the candidate. ``train_a`` / ``train_b``: the runs'
    training sets (harness.traindata.TrainingSet), for the training mix and the flipped items' neighbours."""
    from .load import load_run

    return diff_loaded(load_run(store_a), load_run(store_b), config, top=top, log=log, train_a=train_a,
                       train_b=train_b)


def diff_loaded(ra: "LoadedRun", rb: "LoadedRun", config: Optional[GateConfig] = None, *, top: int = 10,
                log: Callable[[str], None] = lambda m: print(m, file=sys.stderr), train_a: Any = None,
                train_b: Any = None) -> DiffResult:
    """The diff of two loaded runs (differ.load.load_run; a caller that keeps them loaded diffs again cheaply)."""
    from .load import changed_items, find_pairs, pair_answers
    from .pairs import read_pairwise

    config = config or GateConfig()
    store_a, store_b = ra.store, rb.store
    result = diff_frames(ra.frame, rb.frame, config, run_a=ra.info, run_b=rb.info, top=top,
                         texts_a=ra.texts, texts_b=rb.texts)
    if not result.suite_match:
        msg = (f"the runs used different suites: baseline {ra.info.suite_name} v{ra.info.suite_version} "
               f"({ra.info.suite_hash[:12]}) vs candidate {rb.info.suite_name} v{rb.info.suite_version} "
               f"({rb.info.suite_hash[:12]}); only the {result.paired} item ids they share are compared")
        result.warnings.insert(0, msg)
        log(f"WARNING: {msg}")
    result.changed_items = changed_items(ra, rb)
    if result.changed_items:
        result.warnings.append(f"{len(result.changed_items)} shared item ids have different content in the two runs "
                               f"(e.g. {result.changed_items[0]}); they are compared as the same item")
    if result.only_a or result.only_b:
        result.warnings.append(f"items in one run only (not compared): {len(result.only_a)} only in the baseline, "
                               f"{len(result.only_b)} only in the candidate")
    found = find_pairs(store_a, store_b)
    if found is not None:
        b = rb.frame.iloc[np.flatnonzero(ra.frame.index.get_indexer(rb.frame.index) >= 0)]
        groups_of: dict[str, list[tuple[str, str]]] = {}
        groups = build_groups(b, config)
        for g in groups:
            for item_id in b.index[g.rows]:
                groups_of.setdefault(str(item_id), []).append((g.kind, g.name))
        answers = pair_answers(found[0], (ra, rb))
        result.pairwise = read_pairwise(found[0], found[1], groups_of, seed=config.seed,
                                        n_resamples=config.resamples, confidence=config.confidence,
                                        same_as={g.name: g.same_as for g in groups if g.same_as}, answers=answers)
        if result.pairwise is not None:
            result.warnings += pairwise_control_warnings(result.pairwise.groups)
    for side, info in (("baseline", ra.info), ("candidate", rb.info)):
        for w in info.judge_warnings:
            result.warnings.append(f"judge ({side}): {w}")
    if train_a is not None or train_b is not None:
        from .training import add_training

        add_training(result, train_a, train_b)
    from ..labels.agreement import MIN_N
    from ..labels.collect import settings
    from ..labels.folders import diff_block

    calibration = config.guards.judge_calibration
    min_n = min(MIN_N, calibration.min_labels) if calibration is not None else MIN_N
    result.agreement = diff_block(store_a, store_b, settings(min_n=min_n, seed=config.seed))
    return result
