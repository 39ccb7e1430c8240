"""Pure aggregation of judge samples: medians and spread, usability, position-swapped pair verdicts.

Why these rules: a judge asked k times gives 3, 4 and 5, so per-dimension medians (robust to one wild
sample) are the item's scores and the spread is kept as a reliability number; unparsed samples are
excluded and counted, never scored. Judges prefer the first position, so a pair is judged in both
orders and only a consistent verdict counts; an inconsistent one is a tie and is flagged ``flipped``.
Ties for flips pull the score towards 1/2, so :func:`balanced_outcome` also gives each item a
position-bias-corrected outcome from the samples of both orders weighted equally.
"""

from __future__ import annotations

import statistics
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Literal, Mapping, Optional, Sequence

from sfteval.judges.config import JudgeConfig

Outcome = Literal["win", "loss", "tie"]


@dataclass(frozen=True)
class Spread:
    range: float  # max - min
    std: float  # population standard deviation


@dataclass(frozen=True)
class AggregatedScores:
    """Median scores over the parsed samples of one judgment; ``overall`` None when none parsed."""

    scores: dict[str, float]
    overall: Optional[float]
    spread: dict[str, Spread]
    n_parsed: int
    n_unparsed: int

    @property
    def ok(self) -> bool:
        return self.overall is not None


@dataclass(frozen=True)
class Usability:
    usable: bool
    weighted_score: Optional[float]
    threshold: float
    failed_floors: list[str] = field(default_factory=list)  # dimension keys below their floor
    reason: str = ""


@dataclass(frozen=True)
class PairResult:
    """One item's pairwise result from the candidate's side, after combining both orders."""

    outcome: Optional[Outcome]  # None: an order is missing/unparsed (excluded and counted)
    flipped: bool  # the two orders disagree after mapping back to candidate/baseline
    position_bias: Optional[Literal["A", "B"]]  # both orders picked this position (a pure position preference)
    ab: Optional[str]
    ba: Optional[str]
    reason: str = ""


def _sample_scores(sample: Any) -> Optional[tuple[Mapping[str, float], float]]:
    """(scores, overall) of a parsed sample; None for Unparsed/None/status != 'ok'/no overall.

    Accepts :class:`judges.parse.ParsedScores` and stored ``harness.models.Judgment`` records alike.
    """
    if sample is None or getattr(sample, "status", "ok") != "ok":
        return None
    overall = getattr(sample, "overall", None)
    if overall is None:
        return None
    return getattr(sample, "scores", {}) or {}, float(overall)


def _spread(values: list[float]) -> Spread:
    return Spread(max(values) - min(values), statistics.pstdev(values) if len(values) > 1 else 0.0)


def aggregate_samples(samples: Sequence[Any], overall_key: str = "overall") -> AggregatedScores:
    """Median per dimension (and overall) over the parsed samples; spread per dimension, overall under ``overall_key``."""
    parsed = [p for p in (_sample_scores(s) for s in samples) if p is not None]
    n_unparsed = len(samples) - len(parsed)
    if not parsed:
        return AggregatedScores({}, None, {}, 0, n_unparsed)
    per_dim: dict[str, list[float]] = {}
    for scores, _ in parsed:
        for k, v in scores.items():
            per_dim.setdefault(k, []).append(float(v))
    overalls = [o for _, o in parsed]
    spread = {k: _spread(v) for k, v in per_dim.items()}
    spread[overall_key] = _spread(overalls)
    return AggregatedScores(
        {k: float(statistics.median(v)) for k, v in per_dim.items()},
        float(statistics.median(overalls)),
        spread,
        len(parsed),
        n_unparsed,
    )


def decide_usability(
    scores: Mapping[str, float], overall: Optional[float], config: JudgeConfig, answer_type: str
) -> Usability:
    """Usable iff the weighted mean of the answer type's dimensions >= threshold and every floor holds.

    Weights are the answer type's effective weights (plus ``usability.overall_weight`` on the overall
    score). Floors on dimensions the answer type does not score do not apply. Missing scores make the
    item not usable with a reason, rather than silently weighting the rest.
    """
    rule = config.usability
    dims = config.dimensions_for(answer_type)
    missing = [d.key for d in dims if d.key not in scores]
    if missing or overall is None:
        what = ", ".join(missing + (["overall"] if overall is None else []))
        return Usability(False, None, rule.threshold, [], f"missing scores: {what}")
    terms = [(float(scores[d.key]), d.weight) for d in dims]
    if rule.overall_weight > 0:
        terms.append((float(overall), rule.overall_weight))
    total_w = sum(w for _, w in terms)
    if total_w == 0:
        weighted = float(overall)  # overall-only answer type (or all weights zero): the overall score decides
    else:
        weighted = sum(v * w for v, w in terms) / total_w
    values = dict(scores) | {config.overall.key: overall}
    failed = [k for k, floor in rule.floors.items() if k in values and float(values[k]) < floor]
    reasons = []
    if weighted < rule.threshold:
        reasons.append(f"weighted score {weighted:.2f} < {rule.threshold:g}")
    reasons += [f"{k} {float(values[k]):g} < floor {rule.floors[k]:g}" for k in failed]
    return Usability(not reasons, weighted, rule.threshold, failed, "; ".join(reasons))


def majority(labels: Sequence[Optional[str]]) -> Optional[str]:
    """Most common label among the parsed ones (None = unparsed); a tie for first place gives 'tie'."""
    votes = Counter(label for label in labels if label is not None)
    if not votes:
        return None
    top = votes.most_common()
    if len(top) > 1 and top[0][1] == top[1][1]:
        return "tie"
    return top[0][0]


def verdict_label(result: Any) -> Optional[str]:
    """'A' | 'B' | 'tie' from a ParsedVerdict, a stored pair Judgment, or a plain string; None if unparsed."""
    if result is None or isinstance(result, str):
        return result
    if getattr(result, "status", "ok") != "ok":
        return None
    return getattr(result, "verdict", None)


def majority_verdict(samples: Sequence[Any]) -> Optional[str]:
    """Majority position verdict ('A' | 'B' | 'tie') over repeated samples of one order."""
    return majority([verdict_label(s) for s in samples])


#: the candidate's points per outcome (a tie is half a win): one scale for every pairwise score
OUTCOME_POINTS: dict[str, float] = {"win": 1.0, "tie": 0.5, "loss": 0.0}

_TO_CANDIDATE: dict[str, dict[str, Outcome]] = {
    "AB": {"A": "win", "B": "loss", "tie": "tie"},  # candidate shown first
    "BA": {"A": "loss", "B": "win", "tie": "tie"},  # baseline shown first
}


def combine_orders(ab: Optional[str], ba: Optional[str]) -> PairResult:
    """Combine the AB (candidate first) and BA (baseline first) verdicts into one candidate outcome.

    Consistent -> that outcome; inconsistent -> 'tie' with ``flipped``; either order missing -> outcome
    None (a single order cannot be checked for position bias, so it is excluded and counted).
    """
    if ab is None or ba is None:
        gone = " and ".join(o for o, v in (("AB", ab), ("BA", ba)) if v is None)
        return PairResult(None, False, None, ab, ba, f"no verdict for order {gone}")
    for order, v in (("AB", ab), ("BA", ba)):
        if v not in _TO_CANDIDATE[order]:
            raise ValueError(f"order {order}: verdict must be 'A', 'B' or 'tie', got {v!r}")
    x, y = _TO_CANDIDATE["AB"][ab], _TO_CANDIDATE["BA"][ba]
    if x == y:
        return PairResult(x, False, None, ab, ba, "consistent")
    bias: Optional[Literal["A", "B"]] = ab if ab == ba and ab in ("A", "B") else None  # type: ignore[assignment]
    return PairResult("tie", True, bias, ab, ba, f"inconsistent: AB says {x}, BA says {y}")


def combine_pair_samples(ab_samples: Sequence[Any], ba_samples: Sequence[Any]) -> PairResult:
    """Majority per order over repeated samples, then :func:`combine_orders`."""
    return combine_orders(majority_verdict(ab_samples), majority_verdict(ba_samples))


# -- position-bias-corrected pairwise score -------------------------------------------------------------
_EPS = 1e-9


def candidate_points(samples: Sequence[Any], order: Literal["AB", "BA"]) -> list[float]:
    """The candidate's points (win 1, tie 1/2, loss 0) of each parsed sample of one order."""
    return [OUTCOME_POINTS[_TO_CANDIDATE[order][v]] for v in map(verdict_label, samples) if v is not None]


def _order_means(ab_points: Sequence[float], ba_points: Sequence[float]) -> tuple[float, float]:
    return sum(ab_points) / len(ab_points), sum(ba_points) / len(ba_points)


def balanced_outcome(ab_points: Sequence[float], ba_points: Sequence[float]) -> Optional[Outcome]:
    """The item's position-bias-corrected outcome: the sign of m - 1/2, m = (mean AB + mean BA) / 2.

    Why this is the corrected verdict. Let a judge name a fixed position with probability p whatever the
    answers (position bias), and otherwise give a position-fair verdict worth s points to the candidate
    in expectation. With the bias on the first position, an AB sample is worth p + (1 - p)s and a BA
    sample (1 - p)s, so

        d = E[AB] - E[BA] = p                  (the first-position advantage; -p for the second position)
        m = (E[AB] + E[BA]) / 2 = p/2 + (1 - p)s,   hence   s = (m - |d|/2) / (1 - |d|).

    The map from m to s is increasing and keeps 1/2 where it is, so s > 1/2 exactly when m > 1/2: the
    item's bias-free verdict is read off m without estimating p, whatever the size or direction of the
    bias, as long as both orders count equally (hence the mean per order, not over all samples). The
    biased samples add noise that is symmetric between candidate and baseline, not a drift; and since
    all 2k samples vote, the judge's own noise is averaged down too, where majority per order turns
    every disagreement of the two orders into a tie (which pulls the score towards 1/2).
    None when an order has no parsed sample (a single order cannot be corrected).
    """
    if not ab_points or not ba_points:
        return None
    m = sum(_order_means(ab_points, ba_points)) / 2
    if abs(m - 0.5) <= _EPS:
        return "tie"
    return "win" if m > 0.5 else "loss"


def position_advantage(ab_points: Sequence[float], ba_points: Sequence[float]) -> Optional[float]:
    """d = mean candidate points in AB - in BA over all samples: the judge's first-position advantage p."""
    if not ab_points or not ba_points:
        return None
    ab, ba = _order_means(ab_points, ba_points)
    return ab - ba


def debiased_mean(ab_points: Sequence[float], ba_points: Sequence[float]) -> Optional[float]:
    """(m - |d|/2) / (1 - |d|) over all samples (see :func:`balanced_outcome`), clamped to [0, 1].

    It estimates the position-fair judge's mean points per sample, which the judge's own noise pulls
    towards 1/2 however many samples are taken; None when |d| is about 1 (every verdict by position).
    """
    d = position_advantage(ab_points, ba_points)
    if d is None or abs(d) >= 1 - 1e-6:
        return None
    m = sum(_order_means(ab_points, ba_points)) / 2
    return min(1.0, max(0.0, (m - abs(d) / 2) / (1 - abs(d))))
