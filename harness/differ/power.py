"""What a suite can detect: the minimum detectable effect (MDE) of every cell and the items a cell would need.

Why: a task_type with 8 items cannot show a 5-point drop as significant, and a diff that says "no
regression" there says nothing. For every cell the diff reports the smallest change its own paired test
would find with 80% power, given the cell's n and the spread the two runs actually showed, and how many
paired items it would need to see the metric's minimum effect. A cell whose MDE exceeds its minimum
effect is *blind*: this suite cannot see a change of that size there.

The level. A cell is a regression only when significant after Holm over all the diff's cells, and a lone
regression must then pass Holm's first step, alpha / m (m = cells tested). The MDE is computed at that
level, so "can see" means "can be flagged by this diff", not merely "nominally significant".

The tests, as the diff runs them:

* 0/1 metrics, exact McNemar. Under the alternative a pair is discordant with probability p (the observed
  share of discordant pairs; at least delta, since a change of delta needs that many flips) and a
  discordant pair favours the better run with probability (p + delta) / (2 p). The power is summed
  exactly over the binomial number of discordant pairs D, each with McNemar's exact rejection region
  for D (``stats.mcnemar_exact``'s p-value), for n <= ``EXACT_MAX_N``; above it the normal
  approximation (Connor 1987), which agrees there within a fraction of a percent.
* other metrics, Wilcoxon signed-rank. The paired t-test's detectable mean difference,
  (t(1 - level/2) + t(power)) * sd / sqrt(n), at the Wilcoxon test's asymptotic relative efficiency
  3/pi (Noether): n * 3/pi effective pairs. sd is the standard deviation of the observed paired
  differences; when the runs did not differ at all (sd = 0: identical answers) it is the spread two
  independent runs would show, sqrt(var A + var B), since a real change brings its own noise.

tests/test_power.py checks both against simulation of the tests themselves (harness.stats).
"""

from __future__ import annotations

import functools
import math
from typing import Callable, Optional

import numpy as np
import pandas as pd
from scipy import optimize, special

POWER = 0.8
ARE_WILCOXON = 3.0 / math.pi  # asymptotic relative efficiency of the signed-rank test vs the t-test (normal)
EXACT_MAX_N = 1000  # exact McNemar power up to this many pairs; the normal approximation above
MAX_N = 10_000_000  # "items needed" beyond this is reported as unreachable (None)


# -- McNemar (0/1 metrics) --------------------------------------------------------------------------------
@functools.lru_cache(maxsize=64)
def _critical(level: float) -> np.ndarray:
    """For D = 0..EXACT_MAX_N discordant pairs: the largest k with 2 * P(Bin(D, 1/2) <= k) <= level, i.e.
    McNemar's exact test rejects when min(b01, b10) <= k (-1: it never rejects)."""
    D = np.arange(EXACT_MAX_N + 1, dtype=np.int64)
    k = np.nan_to_num(np.floor(special.bdtrik(level / 2, D.astype(np.float64), 0.5)), nan=-1.0).astype(np.int64)
    k = np.clip(k, -1, D)
    for _ in range(3):  # bdtrik is a continuous inverse: settle on the exact integer
        up = np.minimum(k + 1, D)
        k = np.where((k + 1 <= D) & (special.bdtr(up, D, 0.5) <= level / 2 * (1 + 1e-12)), k + 1, k)
        k = np.where((k >= 0) & (special.bdtr(np.maximum(k, 0), D, 0.5) > level / 2 * (1 + 1e-12)), k - 1, k)
    return np.where(D > 0, k, -1)


def _normal_power(n: float, p: float, delta: float, level: float) -> float:
    """Connor (1987): Phi((delta sqrt(n) - z sqrt(p)) / sqrt(p - delta^2))."""
    z = special.ndtri(1 - level / 2)
    return float(special.ndtr((delta * math.sqrt(n) - z * math.sqrt(p)) / math.sqrt(max(p - delta * delta, 1e-12))))


def mcnemar_power(n: int, p_disc: float, delta: float, level: float) -> float:
    """Power of the two-sided exact McNemar test at ``level`` for a change of ``delta`` (a difference of two
    proportions) over ``n`` pairs, with a share ``p_disc`` of discordant pairs (raised to ``delta`` if below)."""
    delta = abs(delta)
    if n <= 0 or delta <= 0:
        return level if n > 0 else 0.0
    p = min(1.0, max(p_disc, delta))
    if n > EXACT_MAX_N:
        return _normal_power(n, p, delta, level)
    pi = min(1.0, (p + delta) / (2 * p))
    D = np.arange(n + 1, dtype=np.int64)
    weight = np.exp(special.gammaln(n + 1) - special.gammaln(D + 1) - special.gammaln(n - D + 1)
                    + special.xlogy(D, p) + special.xlog1py(n - D, -p))
    k = _critical(level)[: n + 1]
    ok = k >= 0
    reject = np.zeros(D.size)
    # reject when the count favouring either side is <= k: X <= k or X >= D - k, X ~ Bin(D, pi)
    reject[ok] = special.bdtr(k[ok], D[ok], pi) + special.bdtrc(D[ok] - k[ok] - 1, D[ok], pi)
    return float(np.clip(weight @ np.minimum(reject, 1.0), 0.0, 1.0))


def mcnemar_mde(n: int, p_disc: float, level: float, power: float = POWER) -> float:
    """Smallest change (in proportion units) detected with ``power``; inf when even every pair flipping
    one way would not be significant (too few pairs for this level)."""
    if n <= 0:
        return math.nan
    if mcnemar_power(n, p_disc, 1.0, level) < power:
        return math.inf
    return float(optimize.brentq(lambda d: mcnemar_power(n, p_disc, d, level) - power, 1e-9, 1.0, xtol=1e-5))


def mcnemar_n(p_disc: float, delta: float, level: float, power: float = POWER) -> Optional[int]:
    """Pairs needed to detect ``delta`` with ``power`` (None: not reachable)."""
    delta = abs(delta)
    if not delta > 0 or delta > 1:
        return None
    p = min(1.0, max(p_disc, delta))
    za, zb = special.ndtri(1 - level / 2), special.ndtri(power)
    approx = math.ceil(((za * math.sqrt(p) + zb * math.sqrt(max(p - delta * delta, 0.0))) / delta) ** 2)
    if approx > EXACT_MAX_N:
        return approx if approx <= MAX_N else None
    return _smallest_n(lambda n: mcnemar_power(n, p_disc, delta, level) >= power, max(2, int(approx * 1.25)),
                       low=int(approx * 0.75))


# -- Wilcoxon signed-rank (other metrics) ------------------------------------------------------------------
def wilcoxon_mde(n: int, sd: float, level: float, power: float = POWER) -> float:
    """Smallest mean paired difference detected with ``power`` (see the module docstring)."""
    if n < 2 or not sd > 0:
        return math.nan
    df = n - 1
    return float((special.stdtrit(df, 1 - level / 2) + special.stdtrit(df, power)) * sd / math.sqrt(n * ARE_WILCOXON))


def wilcoxon_n(sd: float, delta: float, level: float, power: float = POWER) -> Optional[int]:
    delta = abs(delta)
    if not delta > 0 or not sd > 0:
        return None
    za, zb = special.ndtri(1 - level / 2), special.ndtri(power)
    approx = max(2, math.floor(((za + zb) * sd / delta) ** 2 / ARE_WILCOXON))
    if approx > MAX_N:
        return None
    return _smallest_n(lambda n: n >= 2 and wilcoxon_mde(n, sd, level, power) <= delta, approx)


def _smallest_n(ok: Callable[[int], bool], start: int, low: int = 0) -> Optional[int]:
    """The smallest n with ok(n), from a guess by doubling then bisection (power grows with n, up to
    McNemar's sawtooth); ``low``: an n known (or taken) to fall short."""
    lo, hi = max(0, low), max(2, start)
    if lo >= hi or ok(lo):
        lo = 0
    while not ok(hi):
        lo, hi = hi, hi * 2
        if hi > MAX_N:
            return None
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if ok(mid):
            hi = mid
        else:
            lo = mid
    return hi


# -- per cell ----------------------------------------------------------------------------------------------
def spread(ag: np.ndarray, bg: np.ndarray, binary: bool) -> float:
    """What the power depends on: the share of discordant pairs (0/1) or the sd of the paired differences."""
    keep = ~(np.isnan(ag) | np.isnan(bg))
    ag, bg = ag[keep], bg[keep]
    if ag.size == 0:
        return math.nan
    if binary:
        return float(np.mean(ag != bg))
    if ag.size < 2:
        return math.nan
    sd = float(np.std(bg - ag, ddof=1))
    if sd > 0:
        return sd
    return float(math.sqrt(np.var(ag, ddof=1) + np.var(bg, ddof=1)))


def cell_power(n: int, binary: bool, spread_value: float, threshold: float, level: float,
               power: float = POWER) -> tuple[float, Optional[int]]:
    """(MDE, items needed to see ``threshold``) of one cell."""
    if n <= 0 or math.isnan(spread_value):
        return math.nan, None
    if binary:
        mde = mcnemar_mde(n, spread_value, level, power)
        needed = mcnemar_n(spread_value, threshold, level, power) if threshold > 0 else None
    else:
        mde = wilcoxon_mde(n, spread_value, level, power)
        needed = wilcoxon_n(spread_value, threshold, level, power) if threshold > 0 else None
    return mde, needed


def add_power(cells: pd.DataFrame, a: pd.DataFrame, b: pd.DataFrame, rows_of: dict[str, np.ndarray],
              tests: int, power: float = POWER) -> None:
    """Columns ``spread``, ``mde``, ``n_needed`` and ``blind`` (MDE > the cell's minimum effect) on ``cells``,
    each at the level its alpha has at Holm's first step over ``tests`` cells.

    ``rows_of``: group name -> positions of its items in the paired frames ``a`` and ``b``."""
    if not len(cells):
        return
    values: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    out_spread, out_mde, out_needed = [], [], []
    tests = max(1, tests)
    for r in cells[["group", "metric", "n", "binary", "threshold", "alpha"]].itertuples(index=False):
        if r.metric not in values:
            values[r.metric] = (a[r.metric].to_numpy(dtype=np.float64), b[r.metric].to_numpy(dtype=np.float64))
        av, bv = values[r.metric]
        rows = rows_of[r.group]
        s = spread(av[rows], bv[rows], bool(r.binary))
        thr = float(r.threshold) if r.threshold == r.threshold else math.nan
        mde, needed = cell_power(int(r.n), bool(r.binary), s, thr if thr > 0 else 0.0, float(r.alpha) / tests, power)
        out_spread.append(s)
        out_mde.append(mde)
        out_needed.append(needed)
    cells["spread"] = out_spread
    cells["mde"] = out_mde
    cells["n_needed"] = pd.Series(out_needed, index=cells.index, dtype=object)
    thr = cells["threshold"].to_numpy(dtype=np.float64)
    mde = cells["mde"].to_numpy(dtype=np.float64)
    with np.errstate(invalid="ignore"):
        cells["blind"] = (mde > thr) & (thr > 0)
