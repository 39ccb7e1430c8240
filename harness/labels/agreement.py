"""Agreement statistics between two raters (the judge and a person, or two people), with bootstrap intervals.

- **scores** (1-10 per dimension and overall): quadratic-weighted Cohen's kappa (scikit-learn's
  ``cohen_kappa_score(weights="quadratic")`` over the whole scale), Spearman's rho (scipy's ``spearmanr``)
  and the mean absolute difference. A judge's score is the median over its samples and may be a half point:
  for kappa it is rounded half up to the scale; rho and the difference use it as it is.
- **a yes/no decision** (usable): Cohen's kappa, the confusion matrix, and the judge's precision and recall
  with the person as the truth.
- **pairwise verdicts** (win / tie / loss from the candidate's side): the agreement on decisive verdicts
  (both said win or loss: the share that agree), Cohen's kappa over win/tie/loss, and the judge's score
  (win 1, tie 1/2) minus the person's, in points: its bias.

Every number comes with n (pairs of ratings) and a percentile bootstrap interval that resamples *items*
(a person's and the judge's ratings of one item move together; so do several reviewers' of one item). The
point estimates are scikit-learn's and scipy's; the resamples use the same formulas vectorised over all
resamples at once (``tests/test_agreement.py`` checks them against the libraries). Below ``min_n`` pairs
there is no number, only "not enough labels".
"""

from __future__ import annotations

import math
import warnings
from typing import Any, Optional, Sequence

import numpy as np

MIN_N = 10  #: fewer pairs than this: "not enough labels", never a number
RESAMPLES = 1000
CONFIDENCE = 0.95
OUTCOMES = ("loss", "tie", "win")


def _round_half_up(x: np.ndarray) -> np.ndarray:
    return np.floor(np.asarray(x, dtype=np.float64) + 0.5).astype(np.int64)


def _stat(value: Optional[float], ci: Optional[tuple[float, float]]) -> dict[str, Any]:
    ok = value is not None and not math.isnan(value)
    return {"value": float(value) if ok else None,  # type: ignore[arg-type]
            "ci": [float(ci[0]), float(ci[1])] if ok and ci is not None else None}


def _clusters(clusters: Sequence[Any]) -> tuple[np.ndarray, int]:
    _, codes = np.unique(np.asarray([str(c) for c in clusters]), return_inverse=True)
    return codes.reshape(-1), int(codes.max()) + 1 if len(codes) else 0


def resample_index(clusters: Sequence[Any], resamples: int, seed: int) -> list[np.ndarray]:
    """Per resample, the pair indices drawn: items (clusters) drawn with replacement, each bringing its pairs."""
    codes, k = _clusters(clusters)
    rng = np.random.default_rng(seed)
    members = [np.flatnonzero(codes == c) for c in range(k)]
    if all(len(m) == 1 for m in members):
        order = np.array([m[0] for m in members], dtype=np.int64)
        return list(order[rng.integers(0, k, size=(resamples, k))])
    draws = rng.integers(0, k, size=(resamples, k))
    return [np.concatenate([members[c] for c in row]) for row in draws]


def _interval(values: np.ndarray, confidence: float) -> Optional[tuple[float, float]]:
    v = values[~np.isnan(values)]
    if v.size < 0.9 * values.size or v.size == 0:  # mostly undefined resamples: no honest interval
        return None
    tail = 100 * (1 - confidence) / 2
    lo, hi = np.percentile(v, [tail, 100 - tail])
    return float(lo), float(hi)


# -- the statistics, for one sample (the library versions) ---------------------------------------------------
def weighted_kappa(x: Sequence[int], y: Sequence[int], labels: Sequence[int], weights: Optional[str]) -> float:
    from sklearn.metrics import cohen_kappa_score

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # one category only: kappa is undefined (nan), said as such
        return float(cohen_kappa_score(x, y, labels=list(labels), weights=weights))


def spearman(x: Sequence[float], y: Sequence[float]) -> float:
    from scipy.stats import spearmanr

    if len(set(x)) < 2 or len(set(y)) < 2:
        return float("nan")  # a constant rating has no rank order
    return float(spearmanr(x, y).statistic)


# -- the same, vectorised over resamples (rows) ----------------------------------------------------------------
def kappa_rows(x: np.ndarray, y: np.ndarray, k: int, weights: Optional[str]) -> np.ndarray:
    """Cohen's kappa of each row pair; x, y hold category codes 0..k-1 (rows of equal length)."""
    b, m = x.shape
    flat = (np.arange(b)[:, None] * k * k + x * k + y).ravel()
    observed = np.bincount(flat, minlength=b * k * k).reshape(b, k, k).astype(np.float64)
    expected = observed.sum(2)[:, :, None] * observed.sum(1)[:, None, :] / m
    i, j = np.indices((k, k))
    w = (i - j) ** 2 if weights == "quadratic" else (i != j).astype(np.float64)
    num, den = (w * observed).sum((1, 2)), (w * expected).sum((1, 2))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, 1 - num / np.where(den > 0, den, 1), np.nan)


def spearman_rows(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    from scipy.stats import rankdata

    rx, ry = rankdata(x, axis=1), rankdata(y, axis=1)
    rx, ry = rx - rx.mean(1, keepdims=True), ry - ry.mean(1, keepdims=True)
    den = np.sqrt((rx * rx).sum(1) * (ry * ry).sum(1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, (rx * ry).sum(1) / np.where(den > 0, den, 1), np.nan)


def _by_resample(idx: list[np.ndarray], fn: Any, *arrays: np.ndarray) -> np.ndarray:
    """fn over every resample: one call on a matrix when all resamples have one length, else per resample."""
    if len({len(i) for i in idx}) == 1:
        rows = np.stack(idx)
        return fn(*(a[rows] for a in arrays))
    return np.concatenate([fn(*(a[i][None, :] for a in arrays)) for i in idx])


# -- public: one block per kind of rating ---------------------------------------------------------------------
def not_enough(n: int, items: int, min_n: int) -> dict[str, Any]:
    return {"n": n, "items": items, "enough": False, "min_n": min_n}


def score_agreement(x: Sequence[float], y: Sequence[float], clusters: Sequence[Any], *, lo: int = 1, hi: int = 10,
                    min_n: int = MIN_N, resamples: int = RESAMPLES, confidence: float = CONFIDENCE,
                    seed: int = 0) -> dict[str, Any]:
    """Weighted kappa, Spearman and mean absolute difference of two raters' scores on one scale."""
    xs, ys = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    items = len(set(map(str, clusters)))
    if len(xs) < min_n:
        return not_enough(len(xs), items, min_n)
    cx, cy = np.clip(_round_half_up(xs), lo, hi), np.clip(_round_half_up(ys), lo, hi)
    labels = list(range(lo, hi + 1))
    idx = resample_index(clusters, resamples, seed)
    k = hi - lo + 1
    kappas = _by_resample(idx, lambda a, b: kappa_rows(a, b, k, "quadratic"), cx - lo, cy - lo)
    rhos = _by_resample(idx, spearman_rows, xs, ys)
    mads = _by_resample(idx, lambda a, b: np.abs(a - b).mean(1), xs, ys)
    return {"n": len(xs), "items": items, "enough": True,
            "kappa_w": _stat(weighted_kappa(cx.tolist(), cy.tolist(), labels, "quadratic"),
                             _interval(kappas, confidence)),
            "spearman": _stat(spearman(xs.tolist(), ys.tolist()), _interval(rhos, confidence)),
            "mad": _stat(float(np.abs(xs - ys).mean()), _interval(mads, confidence)),
            "mean_a": float(xs.mean()), "mean_b": float(ys.mean())}


def binary_agreement(judge: Sequence[bool], truth: Sequence[bool], clusters: Sequence[Any], *, min_n: int = MIN_N,
                     resamples: int = RESAMPLES, confidence: float = CONFIDENCE, seed: int = 0) -> dict[str, Any]:
    """Cohen's kappa, confusion matrix, precision and recall of a yes/no decision against the truth."""
    j, t = np.asarray(judge, dtype=np.int64), np.asarray(truth, dtype=np.int64)
    items = len(set(map(str, clusters)))
    if len(j) < min_n:
        return not_enough(len(j), items, min_n)
    idx = resample_index(clusters, resamples, seed)
    kappas = _by_resample(idx, lambda a, b: kappa_rows(a, b, 2, None), j, t)

    def precision(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore"):
            return (a & b).sum(1) / a.sum(1)

    def recall(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore"):
            return (a & b).sum(1) / b.sum(1)

    tp, fp = int((j & t).sum()), int((j & (1 - t)).sum())
    fn, tn = int(((1 - j) & t).sum()), int(((1 - j) & (1 - t)).sum())
    return {"n": len(j), "items": items, "enough": True,
            "kappa": _stat(weighted_kappa(j.tolist(), t.tolist(), [0, 1], None), _interval(kappas, confidence)),
            "confusion": {"tp": tp, "fp": fp, "fn": fn, "tn": tn},
            "precision": _stat(tp / (tp + fp) if tp + fp else None,
                               _interval(_by_resample(idx, precision, j, t), confidence)),
            "recall": _stat(tp / (tp + fn) if tp + fn else None,
                            _interval(_by_resample(idx, recall, j, t), confidence)),
            "rate_a": float(j.mean()), "rate_b": float(t.mean())}


def verdict_agreement(a: Sequence[str], b: Sequence[str], clusters: Sequence[Any], *, min_n: int = MIN_N,
                      resamples: int = RESAMPLES, confidence: float = CONFIDENCE, seed: int = 0,
                      bias: bool = True) -> dict[str, Any]:
    """Two raters' win/tie/loss verdicts: decisive agreement, kappa over the three, and a's bias over b."""
    code = {o: i for i, o in enumerate(OUTCOMES)}
    ca = np.asarray([code[o] for o in a], dtype=np.int64)
    cb = np.asarray([code[o] for o in b], dtype=np.int64)
    items = len(set(map(str, clusters)))
    if len(ca) < min_n:
        return not_enough(len(ca), items, min_n)
    idx = resample_index(clusters, resamples, seed)
    tie = code["tie"]

    def decisive(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        both = (x != tie) & (y != tie)
        with np.errstate(invalid="ignore", divide="ignore"):
            return ((x == y) & both).sum(1) / both.sum(1)

    def points_gap(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        return 100 * (x - y).mean(1) / 2  # codes 0/1/2 are points 0, 1/2, 1 times two

    both = (ca != tie) & (cb != tie)
    out = {"n": len(ca), "items": items, "enough": True, "decisive_n": int(both.sum()),
           "decisive_agreement": _stat(float((ca == cb)[both].mean()) if both.any() else None,
                                       _interval(_by_resample(idx, decisive, ca, cb), confidence)),
           "kappa": _stat(weighted_kappa(ca.tolist(), cb.tolist(), [0, 1, 2], None),
                          _interval(_by_resample(idx, lambda x, y: kappa_rows(x, y, 3, None), ca, cb), confidence)),
           "score_a": float(ca.mean() / 2), "score_b": float(cb.mean() / 2)}
    if bias:
        out["bias_points"] = _stat(float(100 * (ca.mean() - cb.mean()) / 2),
                                   _interval(_by_resample(idx, points_gap, ca, cb), confidence))
    return out
