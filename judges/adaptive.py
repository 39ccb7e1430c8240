"""When adaptive repeats may stop drawing judge samples (``sampling.adaptive: true``).

Why these rules: repeats exist because a judge asked three times gives 3, 4 and 5. When its first samples
already agree, more samples mostly repeat them, so they are drawn only for the answers where the judge
disagrees with itself -- where they change the result.

- Single grading stops once one overall score holds a strict majority of the k samples (k // 2 + 1 of them:
  two of three, three of five): whatever the samples not drawn would say, the median overall score is that
  value. So it starts with k // 2 + 1 samples (two agreeing samples, for the shipped k = 3) and then draws one
  at a time. Per-dimension medians are taken over the samples that exist.
- Pairwise grading starts with one sample in each order (both orders are always judged: the position-bias
  correction needs them) and stops when both orders give the candidate the same outcome; otherwise one more
  sample per order at a time, up to k. Aggregation uses both orders' samples that exist.

Unparsed or failed samples never count towards agreement.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

from .aggregate import _TO_CANDIDATE, verdict_label

#: samples per order drawn before the first stop check of a pair
PAIR_FIRST_ROUND = 1


def majority(k: int) -> int:
    """Equal overall scores that fix the median of k samples: the first round of single grading."""
    return k // 2 + 1


def _overall(sample: Any) -> Optional[float]:
    if sample is None or getattr(sample, "status", "ok") != "ok":
        return None
    value = getattr(sample, "overall", None)
    return None if value is None else float(value)


def single_agrees(samples: Sequence[Any], k: int) -> bool:
    """Stop: one overall score among the parsed samples holds a strict majority of k (the median is fixed)."""
    scores = [s for s in map(_overall, samples) if s is not None]
    return bool(scores) and max(scores.count(v) for v in set(scores)) >= majority(k)


def pair_agrees(ab: Sequence[Any], ba: Sequence[Any]) -> bool:
    """Stop: every sample of both orders parsed and gives the candidate the same outcome (win, tie or loss)."""
    outcomes = []
    for order, samples in (("AB", ab), ("BA", ba)):
        labels = [verdict_label(s) for s in samples]
        if not labels or any(v is None for v in labels):
            return False
        outcomes += [_TO_CANDIDATE[order][v] for v in labels]  # type: ignore[index]
    return len(set(outcomes)) == 1
