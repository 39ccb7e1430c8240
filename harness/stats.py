"""Paired statistics for comparing two runs item by item (used by the differ).

Both runs score the same items, so every comparison here is *paired*: it works on the per-item
differences ``d = b - a`` and so cancels the item-to-item spread that an unpaired comparison would
count as noise.

Conventions shared by every function:

* Pure: numpy arrays in, numbers out; no I/O, no global state. Randomness only through an
  explicit ``seed`` (a numpy ``Generator`` is built from it), so a diff re-run gives the same numbers.
* Missing values: a pair with NaN (or None) on either side is dropped before anything is computed,
  and the number of pairs actually used is reported (``n``). ±inf is an error, not data: it would
  silently turn every mean into inf/NaN.
* No data (n = 0) gives NaN, never a made-up 0 or 1. "Nothing changed" (all differences zero, no
  discordant pairs) gives p = 1.0.
* No warnings leak out for these edge cases (scipy warns or divides by zero on several of them).
"""

from __future__ import annotations

import math
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from typing import Any, Literal, NamedTuple

import numpy as np
from scipy import special

__all__ = [
    "PairedResult",
    "WilcoxonResult",
    "compare_paired",
    "holm",
    "mcnemar_exact",
    "paired_bootstrap_ci",
    "wilcoxon_signed_rank",
]

Seed = int | np.random.SeedSequence

# Work is done in blocks of about this many array elements (2 MiB of int64), so memory stays
# bounded whatever n is, and the blocks stay cache friendly.
_CHUNK_ELEMS = 1 << 18
# Resample per-value counts (one multinomial draw over the k distinct differences: k binomial
# draws, each measured at 13-30x the cost of one index draw) instead of n item indices when
# k * this <= n.
_COUNTS_PATH_FACTOR = 20
# Resampling work of at least this many array elements (resamples x values per resample) is split
# into _N_STREAMS fixed streams with their own child seeds, run on up to `workers` threads (numpy
# releases the GIL in the random draws, the gathers and the sums). The split depends only on the
# data size, never on the thread count, so results are identical for any `workers`.
_PARALLEL_MIN_ELEMS = 1 << 22
_N_STREAMS = 8
# scipy.stats.wilcoxon(method="auto") thresholds, mirrored here (see wilcoxon_signed_rank).
_WILCOXON_EXACT_MAX_N = 50
_WILCOXON_PERMUTATION_MAX_N = 13


# --------------------------------------------------------------------------------------------
# input handling


def _as_float_1d(x: Any, name: str) -> np.ndarray:
    try:
        arr = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{name}: expected numbers (or NaN/None for missing), got {x!r:.80}") from e
    if arr.ndim != 1:
        raise ValueError(f"{name}: expected a 1-D array, got shape {arr.shape}")
    if np.isinf(arr).any():
        raise ValueError(f"{name}: contains ±inf; drop or fix those items (NaN marks a missing value)")
    return arr


def _complete_pairs(a: Any, b: Any, names: tuple[str, str] = ("a", "b")) -> tuple[np.ndarray, np.ndarray]:
    """Both arrays as float64, with every pair that has a NaN on either side dropped."""
    a = _as_float_1d(a, names[0])
    b = _as_float_1d(b, names[1])
    if a.shape != b.shape:
        raise ValueError(f"paired arrays differ in length: {names[0]} has {a.size}, {names[1]} has {b.size}")
    keep = ~(np.isnan(a) | np.isnan(b))
    if not keep.all():
        a, b = a[keep], b[keep]
    return a, b


def _check_binary(x: np.ndarray, name: str) -> None:
    if not np.isin(x, (0.0, 1.0)).all():
        bad = np.unique(x[~np.isin(x, (0.0, 1.0))])[:5]
        raise ValueError(f"{name}: binary outcomes must be 0/1 or bool, found {bad.tolist()}")


def _value_counts(d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct differences (sorted) and how often each occurs: all that the mean/median bootstrap
    and the signed-rank test need, and usually far smaller than d (scores are discrete)."""
    return np.unique(d, return_counts=True)


# --------------------------------------------------------------------------------------------
# bootstrap


def paired_bootstrap_ci(
    a: Any,
    b: Any,
    *,
    n_resamples: int = 2000,
    confidence: float = 0.95,
    seed: Seed = 0,
    statistic: Literal["mean", "median"] = "mean",
    workers: int | None = None,
) -> tuple[float, float]:
    """Percentile bootstrap interval for the mean (or median) of the paired differences ``b - a``.

    Items are resampled with replacement, as pairs; since the statistic of the resampled pairs'
    difference depends only on ``d = b - a``, ``d`` is what gets resampled. Two exact ways to draw
    a resample, picked deterministically from the data (same distribution, different cost):

    * few distinct differences (judge scores, 0/1 outcomes: k distinct values with 20k <= n): draw
      how many times each distinct value is picked, ``Multinomial(n, counts/n)``. Cost ~ B*k, not B*n.
    * otherwise: draw the n item indices per resample, in blocks of ~2**18 indices so memory stays
      bounded (a few MiB per thread) for any n. Cost ~ B*n, 5-8 ns per index per core: this is
      the expensive case (continuous metrics such as latency or log-prob sums).

    Large jobs are split into 8 fixed seed streams spread over ``workers`` threads (default: the
    CPUs this process may use). The number of resamples is always ``n_resamples`` (never reduced
    for large n). The result is a deterministic function of (data, seed, n_resamples, confidence,
    statistic) for a given numpy version, whatever ``workers`` is. Pairs with a NaN on either side
    are dropped. n = 0 gives (nan, nan); n = 1 (or all differences equal) gives the degenerate
    interval (d, d).
    """
    a, b = _complete_pairs(a, b)
    _check_bootstrap_args(n_resamples, confidence, seed, statistic, workers)
    return _bootstrap_ci(
        b - a, n_resamples=n_resamples, confidence=confidence, seed=seed, statistic=statistic, workers=workers
    )


def _check_bootstrap_args(n_resamples: Any, confidence: Any, seed: Any, statistic: Any, workers: Any) -> None:
    if isinstance(n_resamples, bool) or not isinstance(n_resamples, (int, np.integer)) or n_resamples < 1:
        raise ValueError(f"n_resamples must be a positive integer, got {n_resamples!r}")
    if not (isinstance(confidence, (int, float)) and 0.0 < confidence < 1.0):
        raise ValueError(f"confidence must be strictly between 0 and 1, got {confidence!r}")
    if seed is None or isinstance(seed, (bool, np.random.Generator)):
        raise TypeError("seed must be an int (or a numpy SeedSequence): results have to be reproducible")
    if statistic not in ("mean", "median"):
        raise ValueError(f"statistic must be 'mean' or 'median', got {statistic!r}")
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
        raise ValueError(f"workers must be a positive integer or None, got {workers!r}")


def _bootstrap_ci(
    d: np.ndarray,
    *,
    n_resamples: int,
    confidence: float,
    seed: Seed,
    statistic: str,
    workers: int | None = None,
    value_counts: tuple[np.ndarray, np.ndarray] | None = None,
) -> tuple[float, float]:
    n = d.size
    if n == 0:
        return (math.nan, math.nan)
    vals, counts = value_counts if value_counts is not None else _value_counts(d)
    if vals.size == 1:  # every resample is identical: no randomness needed
        return (float(vals[0]), float(vals[0]))
    dist = _bootstrap_distribution(d, vals, counts, n_resamples, seed, statistic, workers)
    alpha = 1.0 - confidence
    low, high = np.quantile(dist, [alpha / 2.0, 1.0 - alpha / 2.0])
    return (float(low), float(high))


def _bootstrap_distribution(
    d: np.ndarray,
    vals: np.ndarray,
    counts: np.ndarray,
    n_resamples: int,
    seed: Seed,
    statistic: str,
    workers: int | None,
) -> np.ndarray:
    """The statistic of each of the n_resamples resamples (order fixed by the seed)."""
    n = d.size
    by_counts = vals.size * _COUNTS_PATH_FACTOR <= n
    width = vals.size if by_counts else n

    def draw(m: int, rng: np.random.Generator) -> np.ndarray:
        if by_counts:
            return _resample_by_counts(vals, counts, n, m, rng, statistic)
        return _resample_by_index(d, m, rng, statistic)

    if n_resamples * width < _PARALLEL_MIN_ELEMS or n_resamples < _N_STREAMS:
        return draw(n_resamples, np.random.default_rng(seed))
    root = seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(seed)
    bounds = [n_resamples * j // _N_STREAMS for j in range(_N_STREAMS + 1)]

    def stream(j: int) -> np.ndarray:
        # the j-th child of root, built explicitly so that a SeedSequence the caller has already
        # spawned from still gives the same children
        child = np.random.SeedSequence(root.entropy, spawn_key=(*root.spawn_key, j), pool_size=root.pool_size)
        return draw(bounds[j + 1] - bounds[j], np.random.Generator(np.random.PCG64(child)))

    n_threads = min(_N_STREAMS, workers if workers is not None else _usable_cpus())
    if n_threads <= 1:
        return np.concatenate([stream(j) for j in range(_N_STREAMS)])
    with ThreadPoolExecutor(max_workers=n_threads) as pool:
        return np.concatenate(list(pool.map(stream, range(_N_STREAMS))))


def _usable_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _resample_by_counts(
    vals: np.ndarray, counts: np.ndarray, n: int, n_resamples: int, rng: np.random.Generator, statistic: str
) -> np.ndarray:
    """Bootstrap statistic from multinomial counts over the distinct values (vals sorted ascending)."""
    k = vals.size
    pvals = counts / n
    rows = max(1, _CHUNK_ELEMS // k)
    out = np.empty(n_resamples)
    if statistic == "median":
        lo_pos, hi_pos = (n - 1) // 2, n // 2  # 0-based positions of the middle order statistics
    for start in range(0, n_resamples, rows):
        stop = min(n_resamples, start + rows)
        c = rng.multinomial(n, pvals, size=stop - start)
        if statistic == "mean":
            out[start:stop] = (c @ vals) / n
        else:
            cum = np.cumsum(c, axis=1)
            # position p of the sorted resample holds the first value whose cumulative count exceeds p
            lo = vals[(cum <= lo_pos).sum(axis=1)]
            hi = vals[(cum <= hi_pos).sum(axis=1)]
            out[start:stop] = (lo + hi) / 2.0
    return out


def _resample_by_index(d: np.ndarray, n_resamples: int, rng: np.random.Generator, statistic: str) -> np.ndarray:
    """Bootstrap statistic from explicit item indices, a block of resamples at a time."""
    n = d.size
    rows = max(1, _CHUNK_ELEMS // n)
    out = np.empty(n_resamples)
    for start in range(0, n_resamples, rows):
        stop = min(n_resamples, start + rows)
        x = d.take(rng.integers(0, n, size=(stop - start, n)))
        out[start:stop] = x.mean(axis=1) if statistic == "mean" else np.median(x, axis=1)
    return out


# --------------------------------------------------------------------------------------------
# Wilcoxon signed-rank


class WilcoxonResult(NamedTuple):
    p_value: float
    n: int  # complete pairs used (NaN pairs dropped; zero differences still counted here)
    method: str  # "exact" | "permutation" | "asymptotic" | "all-zero" | "empty"


def wilcoxon_signed_rank(a: Any, b: Any) -> WilcoxonResult:
    """Two-sided Wilcoxon signed-rank test of ``b - a`` (equal to ``scipy.stats.wilcoxon(a, b)``'s p).

    zero_method="wilcox" (scipy's default): zero differences are dropped before ranking. The test is
    then conditional on the pairs that changed, which is how McNemar treats binary outcomes too, so
    both halves of a report read the same way; a run where most items are unchanged is not diluted.
    Ties among |d| get average ranks. No continuity correction (scipy's default).

    Method, as scipy's method="auto" picks it, with n = complete pairs (zeros included):
    exact null distribution when n <= 50 and there are no ties and no zeros ("exact"); exact
    enumeration of all sign flips when n <= 13 otherwise (scipy's "permutation" branch); else the
    normal approximation with the tie correction over the nonzero differences ("asymptotic").
    All three are computed here from the distinct differences, exactly as scipy defines them: scipy
    itself takes seconds on its permutation branch and ~1 ms per call elsewhere, this takes
    microseconds, and the tests pin every branch to scipy.stats.wilcoxon.

    Edge cases: pairs with a NaN on either side are dropped and the returned ``n`` says how many
    were used; n = 0 gives p = NaN; all differences zero gives p = 1.0 (scipy warns and may return NaN).
    """
    a, b = _complete_pairs(a, b)
    return _wilcoxon(b - a)


def _wilcoxon(d: np.ndarray, value_counts: tuple[np.ndarray, np.ndarray] | None = None) -> WilcoxonResult:
    n = int(d.size)
    if n == 0:
        return WilcoxonResult(math.nan, 0, "empty")
    vals, counts = value_counts if value_counts is not None else _value_counts(d)
    nonzero = vals != 0
    v, c = vals[nonzero], counts[nonzero]
    m = int(c.sum())  # differences that enter the ranking
    if m == 0:
        return WilcoxonResult(1.0, n, "all-zero")
    n_zero = n - m
    abs_vals, group = np.unique(np.abs(v), return_inverse=True)
    ties = np.bincount(group, weights=c)  # size of each group of equal |d|
    has_ties = abs_vals.size < m
    small_exact = n <= _WILCOXON_EXACT_MAX_N and not has_ties and n_zero == 0
    if small_exact or n <= _WILCOXON_PERMUTATION_MAX_N:
        # Exact null distribution of W+ over all 2**m equally likely sign patterns. Average ranks
        # are multiples of 1/2, so work with doubled ranks (integers) and count exactly.
        doubled = (2.0 * np.cumsum(ties) - (ties - 1.0)).astype(np.int64)  # 2 * average rank per group
        w2 = int(np.bincount(group, weights=c * (v > 0)) @ doubled)  # 2 * observed W+
        null = _signed_rank_null_counts(np.repeat(doubled, ties.astype(np.int64)))
        p = 2.0 * min(int(null[: w2 + 1].sum()), int(null[w2:].sum())) / 2.0**m
        return WilcoxonResult(min(1.0, p), n, "exact" if small_exact else "permutation")
    positives = np.bincount(group, weights=c * (v > 0))
    avg_rank = np.cumsum(ties) - (ties - 1.0) / 2.0  # average rank of each tie group
    r_plus = float(positives @ avg_rank)
    mean = m * (m + 1) / 4.0
    var = (m * (m + 1) * (2 * m + 1) - (ties**3 - ties).sum() / 2.0) / 24.0
    z = (r_plus - mean) / math.sqrt(var)  # var > 0 whenever m >= 1
    return WilcoxonResult(float(2.0 * special.ndtr(-abs(z))), n, "asymptotic")


def _signed_rank_null_counts(doubled_ranks: np.ndarray) -> np.ndarray:
    """How many of the 2**m sign patterns give each value of 2*W+: the coefficients of
    prod_i (1 + x**r_i) over the doubled ranks r_i. Exact integers (m <= 50 keeps them below 2**53)."""
    counts = np.zeros(int(doubled_ranks.sum()) + 1, dtype=np.int64)
    counts[0] = 1
    top = 0
    for r in doubled_ranks.tolist():
        counts[r : top + r + 1] += counts[: top + 1].copy()
        top += r
    return counts


# --------------------------------------------------------------------------------------------
# McNemar


def mcnemar_exact(a_bool: Any, b_bool: Any) -> float:
    """Two-sided exact McNemar test for paired binary outcomes (e.g. "usable" under run A and B).

    Only discordant pairs carry information: b01 = items a=0 -> b=1 (improved), b10 = a=1 -> b=0
    (regressed). Under H0 each discordant pair goes either way with probability 1/2, so
    p = min(1, 2 * P(Binomial(b01 + b10, 1/2) <= min(b01, b10))), which equals
    ``scipy.stats.binomtest(b01, b01 + b10, 0.5).pvalue``. Exact at any size: no chi-square
    approximation, which is poor for the few discordant pairs a small task_type has.

    Inputs: bool, or 0/1 numbers; anything else is an error. Pairs with a NaN/None on either side
    are dropped. No discordant pairs gives p = 1.0; no complete pairs at all gives NaN.
    """
    a, b = _complete_pairs(a_bool, b_bool, names=("a_bool", "b_bool"))
    _check_binary(a, "a_bool")
    _check_binary(b, "b_bool")
    if a.size == 0:
        return math.nan
    b01, b10 = _discordant(a, b)
    return _mcnemar_p(b01, b10)


def _discordant(a: np.ndarray, b: np.ndarray) -> tuple[int, int]:
    diff = b - a
    return int(np.count_nonzero(diff > 0)), int(np.count_nonzero(diff < 0))


def _mcnemar_p(b01: int, b10: int) -> float:
    m = b01 + b10
    if m == 0:
        return 1.0
    return float(min(1.0, 2.0 * special.bdtr(min(b01, b10), m, 0.5)))


# --------------------------------------------------------------------------------------------
# multiple comparisons


def holm(pvalues: Any) -> np.ndarray:
    """Holm-Bonferroni step-down adjusted p-values (family-wise error control across a report's cells).

    Sorted ascending, p_(i) becomes max_{j <= i} min(1, (m - j + 1) * p_(j)): monotone in the raw
    p-values and capped at 1; reject the cells whose adjusted p <= alpha. Valid under any dependence
    between cells (they share items), unlike procedures that assume independence. NaN (a cell with
    no test) passes through as NaN and does not count in m. Ties keep their input order (stable).
    Returns a new float array of the input's shape.
    """
    p = np.array(pvalues, dtype=np.float64)  # copy
    flat = p.reshape(-1)
    have = ~np.isnan(flat)
    q = flat[have]
    if ((q < 0) | (q > 1)).any():
        raise ValueError(f"p-values must lie in [0, 1] (or be NaN), got {q[(q < 0) | (q > 1)][:5].tolist()}")
    m = q.size
    if m:
        order = np.argsort(q, kind="stable")
        adjusted = np.minimum(1.0, np.maximum.accumulate((m - np.arange(m)) * q[order]))
        out = np.empty(m)
        out[order] = adjusted
        flat[have] = out
    return p


# --------------------------------------------------------------------------------------------
# one cell of the diff


@dataclass(frozen=True)
class PairedResult:
    """One (task_type, metric) cell: run A vs run B over the items both have a value for."""

    n: int  # complete pairs used
    mean_a: float
    mean_b: float
    delta: float  # mean_b - mean_a (> 0: B is higher)
    ci_low: float  # percentile bootstrap interval for delta
    ci_high: float
    p_value: float  # two-sided, unadjusted (adjust across cells with holm())
    test: str  # "wilcoxon" | "mcnemar"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def compare_paired(
    a: Any,
    b: Any,
    *,
    kind: Literal["score", "binary"],
    seed: Seed = 0,
    n_resamples: int = 2000,
    confidence: float = 0.95,
    workers: int | None = None,
) -> PairedResult:
    """Everything the differ reports for one cell: means, delta, bootstrap CI and a paired p-value.

    ``kind="score"`` (judge dimensions, overall, probe sums, latency) uses the Wilcoxon signed-rank
    test: no normality assumption for bounded, lumpy judge scores. ``kind="binary"`` (usable, rule
    pass) uses the exact McNemar test and requires 0/1 values; its delta is the change in rate.
    Pairs with a NaN on either side are dropped first (an unparsed judgment is missing, never 0),
    so n, the means, the CI and the test all use the same items. n = 0 gives NaN everywhere.
    ``seed``/``n_resamples``/``confidence``/``workers`` go to the bootstrap (see paired_bootstrap_ci);
    ``workers`` only changes the speed, never the numbers.
    """
    if kind not in ("score", "binary"):
        raise ValueError(f"kind must be 'score' or 'binary', got {kind!r}")
    _check_bootstrap_args(n_resamples, confidence, seed, "mean", workers)
    a, b = _complete_pairs(a, b)
    test = "wilcoxon" if kind == "score" else "mcnemar"
    if kind == "binary":
        _check_binary(a, "a")
        _check_binary(b, "b")
    n = int(a.size)
    if n == 0:
        nan = math.nan
        return PairedResult(0, nan, nan, nan, nan, nan, nan, test)
    d = b - a
    vc = _value_counts(d)
    ci_low, ci_high = _bootstrap_ci(
        d,
        n_resamples=n_resamples,
        confidence=confidence,
        seed=seed,
        statistic="mean",
        workers=workers,
        value_counts=vc,
    )
    if kind == "score":
        p = _wilcoxon(d, value_counts=vc).p_value
    else:
        p = _mcnemar_p(*_discordant(a, b))
    mean_a, mean_b = float(a.mean()), float(b.mean())
    return PairedResult(n, mean_a, mean_b, mean_b - mean_a, ci_low, ci_high, p, test)
