"""When adaptive repeats may stop drawing judge samples (``sampling.adaptive: true``).

Why these rules: repeats exist because a judge asked three times gives 3, 4 and 5. When its first samples
already agree, more samples mostly repeat them, so they are drawn only for the answers where the judge
disagrees with itself -- where they change the result. Single grading starts with two samples and stops when
their overall scores are equal (with k = 3 the median of three can then no longer move); pairwise grading
starts with one sample in each order (both orders are always judged: the position-bias correction needs them)
and stops when both orders give the candidate the same outcome. Otherwise samples are drawn one (per order) at
a time, up to k, and aggregation uses the samples that exist (median per dimension, both orders' means).
Unparsed or failed samples never count as agreement.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

from .aggregate import _TO_CANDIDATE, verdict_label

#: samples (per order, for pairs) drawn before the first stop check
SINGLE_FIRST_ROUND = 2
PAIR_FIRST_ROUND = 1


def _overall(sample: Any) -> Optional[float]:
    if sample is None or getattr(sample, "status", "ok") != "ok":
        return None
    value = getattr(sample, "overall", None)
    return None if value is None else float(value)


def single_agrees(samples: Sequence[Any]) -> bool:
    """Stop: at least two parsed samples, all with the same overall score (unparsed ones are left aside)."""
    scores = [s for s in map(_overall, samples) if s is not None]
    return len(scores) >= 2 and len(set(scores)) == 1


def pair_agrees(ab: Sequence[Any], ba: Sequence[Any]) -> bool:
    """Stop: every sample of both orders parsed and gives the candidate the same outcome (win, tie or loss)."""
    outcomes = []
    for order, samples in (("AB", ab), ("BA", ba)):
        labels = [verdict_label(s) for s in samples]
        if not labels or any(v is None for v in labels):
            return False
        outcomes += [_TO_CANDIDATE[order][v] for v in labels]  # type: ignore[index]
    return len(set(outcomes)) == 1
