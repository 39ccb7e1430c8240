"""Length and style control: did the candidate get better, or only longer (and more formatted)?

Why: SFT moves answer length more than anything, and LLM judges prefer the longer answer (on AlpacaEval,
"always pick the longer one" agrees with humans 62% of the time). A wordier candidate must not look better.

Pairwise judgments -- the length-controlled win rate (AlpacaEval 2.0's construction, Dubois et al. 2024):
a logistic model of the judge's preference for the candidate,

    logit P(candidate preferred) = theta_0 + theta_1 * tanh(delta_len / sd(delta_len)),

fitted over the group's judged pairs (the outcome is the position-bias-corrected one: win 1, tie 1/2,
loss 0, as a fractional response), where delta_len = candidate chars - baseline chars and sd is taken over
all judged pairs of the diff. The length-controlled win rate is the model read at zero length difference,
sigmoid(theta_0): the rate the judge would give if both answers had the same length. Its 95% interval is
sigmoid(theta_0 +- z * se), with a sandwich covariance clustered by item (several answer samples of one
item are not independent; a fractional outcome is not Bernoulli). Fitted with statsmodels' GLM (binomial
family, logit link). AlpacaEval also conditions on instruction difficulty and model identity; here both
runs answer the same items and one pair of models is compared, so only the length term remains.

The style-controlled win rate adds markdown as covariates, as Arena-Hard's style control does: for
headers, list items and bold spans, the normalised difference (c_cand - c_base) / (c_cand + c_base)
(0 when neither answer has any), each divided by its sd over all pairs (not centred, so zero still means
"no difference"). It is read at zero difference of length and of every markdown count.

Single grading -- every judge cell's delta gets a length-adjusted twin: the per-item regression (OLS,
scipy.stats.linregress) of the score change on the same normalised length change,
delta_i = alpha + beta * tanh(delta_len_i / sd), read at no length change: alpha, with its t interval.

The fits need enough pairs (``MIN_PAIRS``) and are skipped (None) otherwise; a covariate that does not vary
in a group is dropped from its fit (with no length difference at all, the controlled rate is the raw one).
"""

from __future__ import annotations

import math
import re
import warnings
from typing import Any, Optional, Sequence

import numpy as np
import pandas as pd

MIN_PAIRS = 10
LENGTH_COLUMN = "gen:answer_chars"
STYLE_KEYS = ("headers", "lists", "bold")
_HEADER = re.compile(r"^ {0,3}#{1,6}\s+\S", re.M)
_LIST = re.compile(r"^\s*(?:[-*+]|\d+[.)])\s+\S", re.M)
_BOLD = re.compile(r"\*\*[^*\n]+\*\*|__[^_\n]+__")


def markdown_counts(text: Optional[str]) -> tuple[int, int, int]:
    """(headers, list items, bold spans) in a markdown answer, as Arena-Hard's style features count them."""
    text = text or ""
    return len(_HEADER.findall(text)), len(_LIST.findall(text)), len(_BOLD.findall(text))


def adjustable(metric: str) -> bool:
    """Metrics a judge gives (its dimensions, overall, usable): the ones a length preference can inflate."""
    if metric in ("usable", "usable_score"):
        return True
    return metric.startswith("judge:") and metric not in ("judge:unparsed", "judge:error", "judge:spread")


def normalised_length(delta: np.ndarray, scale: Optional[float] = None) -> np.ndarray:
    """tanh(delta / sd(delta)): AlpacaEval's bounded length difference (0 stays 0)."""
    s = float(np.nanstd(delta)) if scale is None else scale
    if not s > 0:
        return np.zeros_like(delta, dtype=np.float64)
    return np.tanh(delta / s)


# -- single grading: length-adjusted deltas per cell --------------------------------------------------------
def adjusted_delta(d: np.ndarray, x: np.ndarray, confidence: float) -> tuple[float, float, float, float]:
    """(alpha, ci_low, ci_high, beta) of the OLS fit d = alpha + beta * x; NaN when it cannot be fitted."""
    from scipy import stats as sps

    keep = ~(np.isnan(d) | np.isnan(x))
    d, x = d[keep], x[keep]
    nan = (math.nan,) * 4
    if d.size < MIN_PAIRS:
        return nan
    if np.ptp(x) == 0:  # no length change to control for: the raw mean and its t interval
        if np.ptp(d) == 0:
            return float(d[0]), float(d[0]), float(d[0]), math.nan
        se = float(np.std(d, ddof=1) / math.sqrt(d.size))
        t = sps.t.isf((1 - confidence) / 2, d.size - 1)
        m = float(d.mean())
        return m, m - t * se, m + t * se, math.nan
    fit = sps.linregress(x, d)
    t = sps.t.isf((1 - confidence) / 2, d.size - 2)
    se = float(fit.intercept_stderr)
    return float(fit.intercept), float(fit.intercept - t * se), float(fit.intercept + t * se), float(fit.slope)


def add_length_adjustment(cells: pd.DataFrame, a: pd.DataFrame, b: pd.DataFrame,
                          rows_of: dict[str, np.ndarray], confidence: float) -> bool:
    """Columns ``length_adjusted_delta`` (+ interval, slope, ``length_sign_flip``) on the judge cells;
    False (nothing added) when the runs lack answer lengths."""
    if not len(cells) or LENGTH_COLUMN not in a.columns or LENGTH_COLUMN not in b.columns:
        return False
    x_all = normalised_length(b[LENGTH_COLUMN].to_numpy(np.float64) - a[LENGTH_COLUMN].to_numpy(np.float64))
    out = np.full((len(cells), 4), np.nan)
    for i, r in enumerate(cells[["group", "metric"]].itertuples(index=False)):
        if not adjustable(r.metric):
            continue
        rows = rows_of[r.group]
        d = b[r.metric].to_numpy(np.float64)[rows] - a[r.metric].to_numpy(np.float64)[rows]
        out[i] = adjusted_delta(d, x_all[rows], confidence)
    cells["length_adjusted_delta"] = out[:, 0]
    cells["length_adjusted_ci_low"] = out[:, 1]
    cells["length_adjusted_ci_high"] = out[:, 2]
    cells["length_slope"] = out[:, 3]
    raw, adj = cells["delta"].to_numpy(np.float64), out[:, 0]
    lo, hi = out[:, 1], out[:, 2]
    sig = cells["significant"].to_numpy(dtype=bool) if "significant" in cells else np.zeros(len(cells), bool)
    with np.errstate(invalid="ignore"):
        cells["length_sign_flip"] = (np.sign(raw) * np.sign(adj) < 0) & (sig | (lo > 0) | (hi < 0))
    return True


# -- pairwise: length- and style-controlled win rates -------------------------------------------------------
def _fit(y: np.ndarray, X: np.ndarray, clusters: np.ndarray, confidence: float) -> Optional[tuple[float, float, float]]:
    """sigmoid(intercept) of a fractional logit GLM and its clustered Wald interval (None: not estimable)."""
    import statsmodels.api as sm
    from scipy import special, stats as sps
    from statsmodels.tools.sm_exceptions import PerfectSeparationWarning

    design = np.ones((len(y), 1))
    for j in range(X.shape[1]):  # covariates that vary and add information (two identical counts: one column)
        if np.ptp(X[:, j]) > 0:
            trial = np.column_stack([design, X[:, j]])
            if np.linalg.matrix_rank(trial) == trial.shape[1]:
                design = trial
    if np.ptp(y) == 0:  # every pair the same outcome: that is the rate at any length
        v = float(y[0])
        return v, v, v
    with warnings.catch_warnings():
        warnings.simplefilter("error", PerfectSeparationWarning)
        warnings.simplefilter("ignore", RuntimeWarning)
        try:
            res = sm.GLM(y, design, family=sm.families.Binomial()).fit(
                cov_type="cluster", cov_kwds={"groups": clusters})
        except (PerfectSeparationWarning, np.linalg.LinAlgError, ValueError):
            return None
    theta, se = float(res.params[0]), float(res.bse[0])
    if not (math.isfinite(theta) and math.isfinite(se)):
        return None
    z = sps.norm.isf((1 - confidence) / 2)
    return float(special.expit(theta)), float(special.expit(theta - z * se)), float(special.expit(theta + z * se))


class PairCovariates:
    """Per judged pair (item, answer sample): normalised length and markdown differences, scaled over all pairs."""

    def __init__(self, cand_chars: Sequence[float], base_chars: Sequence[float],
                 cand_style: Optional[np.ndarray] = None, base_style: Optional[np.ndarray] = None):
        self.length = normalised_length(np.asarray(cand_chars, np.float64) - np.asarray(base_chars, np.float64))
        self.style: Optional[np.ndarray] = None
        if cand_style is not None and base_style is not None:
            c, bb = np.asarray(cand_style, np.float64), np.asarray(base_style, np.float64)
            with np.errstate(invalid="ignore", divide="ignore"):
                rel = np.where(c + bb > 0, (c - bb) / (c + bb), 0.0)
            sd = rel.std(axis=0)
            self.style = rel / np.where(sd > 0, sd, 1.0)


def controlled_rates(y: np.ndarray, items: Sequence[str], rows: np.ndarray, cov: Optional[PairCovariates],
                     confidence: float) -> dict[str, Any]:
    """``lc_win_rate`` / ``sc_win_rate`` with intervals for one group's pairs (positions ``rows``)."""
    out: dict[str, Any] = {"lc_win_rate": None, "lc_ci_low": None, "lc_ci_high": None,
                           "sc_win_rate": None, "sc_ci_low": None, "sc_ci_high": None, "control_pairs": int(rows.size)}
    if cov is None or rows.size < MIN_PAIRS:
        return out
    yy = y[rows]
    _, clusters = np.unique(np.asarray(items, dtype=object)[rows].astype(str), return_inverse=True)
    lc = _fit(yy, cov.length[rows, None], clusters, confidence)
    if lc is not None:
        out.update(lc_win_rate=lc[0], lc_ci_low=lc[1], lc_ci_high=lc[2])
    if cov.style is not None:
        sc = _fit(yy, np.column_stack([cov.length[rows], cov.style[rows]]), clusters, confidence)
        if sc is not None:
            out.update(sc_win_rate=sc[0], sc_ci_low=sc[1], sc_ci_high=sc[2])
    return out


def sign_disagrees(raw: Optional[float], lo: Optional[float], hi: Optional[float], ctl: Optional[float],
                   ctl_lo: Optional[float], ctl_hi: Optional[float], null: float) -> bool:
    """Raw and controlled results on opposite sides of ``null``, and at least one of them clearly so."""
    if raw is None or ctl is None or any(v is None for v in (lo, hi, ctl_lo, ctl_hi)):
        return False
    if (raw - null) * (ctl - null) >= 0:
        return False
    return bool(lo > null or hi < null or ctl_lo > null or ctl_hi < null)  # type: ignore[operator]
