"""Pairwise judge outcomes (harness/judging/pair.py's pair folder) as win/tie/loss per group with an interval.

Why recompute here rather than copy pair_summary.json: the diff reports every group with the same items
and the same interval method as its other cells. Per item (answer samples averaged): win = 1, tie = 1/2,
loss = 0; the group's score is the item mean, with a seeded bootstrap interval, and a two-sided sign test
(exact, wins vs losses: McNemar on the discordant pairs) says whether B wins more often than it loses.
Both scores are reported: the tie-based one (an inconsistent pair is a tie) and the position-bias-corrected
one (``corrected_outcome``: the balanced vote over both orders, judges/aggregate.py), which the pairwise
summary leads with because flips-as-ties pull the score towards 1/2.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

import numpy as np
import pandas as pd

from sfteval.judges.aggregate import OUTCOME_POINTS

from .. import stats
from ..store import PAIR_ITEMS, PAIR_SUMMARY, iter_jsonl
from .cells import derived_seed
from .lengthctl import PairCovariates, controlled_rates, markdown_counts
from .result import Pairwise

_INVERT = {"win": "loss", "loss": "win", "tie": "tie", None: None}


def read_pairwise(folder: Path, inverted: bool, groups_of: dict[str, list[tuple[str, str]]], *, seed: int,
                  n_resamples: int, confidence: float, same_as: Optional[dict[str, str]] = None,
                 answers: Optional[dict[str, str]] = None) -> Optional[Pairwise]:
    """``groups_of``: item id -> [(kind, group name)] for the items the diff pairs; ``same_as``: first level ->
    its only second level, whose numbers it takes (marked ``same_as``, as the diff's cells); ``answers``:
    generation key -> answer text of both runs, for the style-controlled rate (lengths come from the rows)."""
    same_as = same_as or {}
    rows = list(iter_jsonl(folder / PAIR_ITEMS))
    if not rows:
        return None
    try:
        summary = json.loads((folder / PAIR_SUMMARY).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        summary = {}
    frame = pd.DataFrame({"item_id": [r["item_id"] for r in rows],
                          "outcome": [_INVERT[r.get("outcome")] if inverted else r.get("outcome") for r in rows],
                          "flipped": [bool(r.get("flipped")) for r in rows]})
    corrected = [r.get("corrected_outcome", r.get("outcome")) for r in rows]  # older pair files: tie-based only
    frame["corrected"] = [_INVERT[c] if inverted else c for c in corrected]
    decided = frame[frame["outcome"].notna()]
    per_item = decided.assign(points=decided["outcome"].map(OUTCOME_POINTS),
                              corrected=decided["corrected"].map(OUTCOME_POINTS),
                              win=decided["outcome"] == "win", tie=decided["outcome"] == "tie",
                              loss=decided["outcome"] == "loss").groupby("item_id")[
        ["points", "corrected", "win", "tie", "loss", "flipped"]].mean()
    excluded = frame[frame["outcome"].isna()].groupby("item_id").size()
    y, fit_items, cov = _control_inputs(rows, frame, inverted, answers)
    members: dict[tuple[str, str], list[str]] = {}
    for item_id in set(frame["item_id"]):
        for key in groups_of.get(item_id, []):
            members.setdefault(key, []).append(item_id)
    computed = {}
    for (kind, name), ids in members.items():
        if kind == "level1" and same_as.get(name) is not None:
            continue
        sub = per_item.reindex(sorted(i for i in ids if i in per_item.index))
        computed[(kind, name)] = _group(kind, name, sub, int(excluded.reindex(ids).fillna(0).sum()), seed,
                                        n_resamples, confidence)
        in_group = np.flatnonzero(np.isin(fit_items, np.asarray(ids, dtype=object)))
        computed[(kind, name)].update(controlled_rates(y, fit_items, in_group, cov, confidence))
    out = []
    for kind, name in sorted(members, key=lambda key: _group_key(*key)):
        twin = same_as.get(name) if kind == "level1" else None
        out.append({**computed[("task_type", twin)], "group": name, "kind": kind, "same_as": twin} if twin
                   else computed[(kind, name)])
    rel = dict(summary.get("reliability") or {})
    flip = rel.get("swap_flip_rate")
    if flip is None and len(decided):
        flip = float(decided["flipped"].mean())
    return Pairwise(source=str(folder), groups=out, swap_flip_rate=flip, reliability=rel, inverted=inverted)


def _control_inputs(rows: list[dict[str, Any]], frame: pd.DataFrame, inverted: bool,
                    answers: Optional[dict[str, str]]) -> tuple[np.ndarray, np.ndarray, Optional[PairCovariates]]:
    """Outcome points (corrected), item ids and covariates of the decided pairs for the controlled rates.

    Pairs of identical answers stay in (ties at zero length difference), so the controlled rates cover the
    same pairs as the raw scores beside them."""
    keep = np.flatnonzero(frame["corrected"].notna().to_numpy())
    y = frame["corrected"].to_numpy(dtype=object)[keep]
    points = np.array([OUTCOME_POINTS[o] for o in y], dtype=np.float64)
    items = frame["item_id"].to_numpy(dtype=object)[keep]
    kept = [rows[i] for i in keep]
    if not kept or any(r.get("candidate_chars") is None or r.get("baseline_chars") is None for r in kept):
        return points, items, None  # older pair files carry no lengths
    cand, base = ("baseline", "candidate") if inverted else ("candidate", "baseline")
    style = None
    if answers is not None and all(r.get(f"{s}_generation_key") in answers for r in kept for s in (cand, base)):
        style = [np.array([markdown_counts(answers[r[f"{s}_generation_key"]]) for r in kept], dtype=np.float64)
                 for s in (cand, base)]
    cov = PairCovariates([r[f"{cand}_chars"] for r in kept], [r[f"{base}_chars"] for r in kept],
                         *(style or (None, None)))
    return points, items, cov


_KIND_ORDER = {"overall": 0, "level1": 1, "task_type": 1, "robustness": 2}


def _group_key(kind: str, name: str) -> tuple[int, str, bool, str]:
    """overall, then each first level followed by its task_types, then robustness (as in the cell tables)."""
    return (_KIND_ORDER[kind], name.split("/")[0], kind == "task_type", name)


def _group(kind: str, name: str, sub: pd.DataFrame, excluded: int, seed: int, n_resamples: int,
           confidence: float) -> dict[str, Any]:
    n = len(sub)
    points = sub["points"].to_numpy(dtype=np.float64)
    lo, hi = stats.paired_bootstrap_ci(np.zeros(n), points, n_resamples=n_resamples, confidence=confidence,
                                       seed=derived_seed(seed, name, "\x00pairwise"))
    # sign test: an item B won is (0 -> 1), one B lost is (1 -> 0), a tie is concordant
    won, lost = points > 0.5, points < 0.5
    p = stats.mcnemar_exact(lost.astype(float), won.astype(float)) if n else float("nan")
    corrected = sub["corrected"].to_numpy(dtype=np.float64)
    c_lo, c_hi = stats.paired_bootstrap_ci(np.zeros(n), corrected, n_resamples=n_resamples, confidence=confidence,
                                           seed=derived_seed(seed, name, "\x00pairwise-corrected"))
    mean = lambda c: float(sub[c].mean()) if n else None  # noqa: E731
    return {"group": name, "kind": kind, "same_as": None, "n": n, "excluded": excluded, "win": mean("win"),
            "tie": mean("tie"), "loss": mean("loss"), "score": mean("points"), "ci_low": lo, "ci_high": hi, "p_value": p,
            "corrected_score": mean("corrected"), "corrected_ci_low": c_lo, "corrected_ci_high": c_hi,
            "swap_flip_rate": mean("flipped")}
