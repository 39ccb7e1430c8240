"""How much a position-biased, noisy judge misleads a naive pairwise comparison -- and whether sfteval's
pairwise estimates recover the truth at the k the shipped judge configs use.

The set has known true preferences: every item has a candidate and a baseline answer of known quality,
the candidate truly better on a share ``--true-win-rate`` of the items. The simulated judge answers
"[[A]]" (first position) with probability ``--bias`` whatever the answers; otherwise it compares the two
qualities plus Gaussian noise ``--noise`` and says tie when they are within ``--tie-band``. Its verdict
texts go through the real parser (judges.parse.parse_verdict) and the real combinations
(judges.aggregate.combine_pair_samples, candidate_points, balanced_outcome).

The number compared is the candidate's win rate with ties counting half (the usual pairwise score):

- naive: AB order only, one sample;
- swapped, k=1: both orders, one sample each, an inconsistent pair is a tie;
- swapped + repeated (ties): majority per order over k samples, inconsistent -> tie (the tie-based score);
- corrected: per item, the candidate's mean points in AB and in BA averaged (both orders weighted
  equally), win above 1/2, loss below -- the position-bias-corrected score pair_summary.json reports as
  its headline (the derivation is in judges.aggregate.balanced_outcome);
- debiased mean, for comparison: (m - |d|/2) / (1 - |d|) over all samples, d the first-position advantage.
  It removes the bias but keeps the judge's own noise, which pulls it towards 50%.

Why the tie-based score misses: the swap turns a biased verdict into a flip (a tie), which is only
unbiased when flips hit true wins and true losses alike; the residual error is about
0.5 x flip rate x (losses - wins), and majority per order makes flips rare only for large k.

Exit status 1 when the headline (corrected) estimate misses the truth by more than ``--tolerance``
points. ``--k`` defaults to the shipped config's sampling.k (``--config``, default default-en).

    python bench/judge_bias.py                         # bias 0.25, noise 1.0, k from default-en, 3000 items
    python bench/judge_bias.py --bias 0.45 --k 1       # the corrected estimate fails too: exit 1
"""

from __future__ import annotations

import argparse
import random
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sfteval.judges.aggregate import (OUTCOME_POINTS as POINTS, balanced_outcome, candidate_points,  # noqa: E402
                              combine_pair_samples, debiased_mean)
from sfteval.judges.config import load_judge_config  # noqa: E402
from sfteval.judges.parse import parse_verdict  # noqa: E402



@dataclass
class Judge:
    bias: float
    noise: float
    tie_band: float
    rng: random.Random

    def verdict(self, first: float, second: float) -> str:
        """The judge's text for (answer shown first, answer shown second) of these true qualities."""
        if self.rng.random() < self.bias:
            return "Both are fine, but the first answer is better.\n[[A]]"
        a = first + self.rng.gauss(0, self.noise)
        b = second + self.rng.gauss(0, self.noise)
        label = "C" if abs(a - b) < self.tie_band else ("A" if a > b else "B")
        return f"After comparing both answers with the reference: [[{label}]]"


def make_items(n: int, true_win_rate: float, rng: random.Random) -> list[tuple[float, float]]:
    """(candidate quality, baseline quality) with a clear gap (1.5-3.5 points) in the true direction."""
    items = []
    for i in range(n):
        base = rng.uniform(3, 7)
        gap = rng.uniform(1.5, 3.5)
        better = i < round(true_win_rate * n)
        items.append((base + gap, base) if better else (base, base + gap))
    rng.shuffle(items)
    return items


def label(text: str) -> Optional[str]:
    v = parse_verdict(text)
    return None if v.status != "ok" else v.verdict  # type: ignore[union-attr]


def simulate(items: list[tuple[float, float]], judge: Judge, k: int) -> dict[str, float]:
    naive, swapped1, protocol, corrected, flips = [], [], [], [], []
    all_ab: list[float] = []
    all_ba: list[float] = []
    for cand, base in items:
        ab = [label(judge.verdict(cand, base)) for _ in range(k)]  # AB: candidate shown first
        ba = [label(judge.verdict(base, cand)) for _ in range(k)]  # BA: baseline shown first
        first = {"A": "win", "B": "loss", "tie": "tie"}[ab[0]]  # type: ignore[index]
        naive.append(POINTS[first])
        one = combine_pair_samples(ab[:1], ba[:1])
        swapped1.append(POINTS[one.outcome])  # type: ignore[index]
        res = combine_pair_samples(ab, ba)
        protocol.append(POINTS[res.outcome])  # type: ignore[index]
        flips.append(float(res.flipped))
        ab_points, ba_points = candidate_points(ab, "AB"), candidate_points(ba, "BA")
        corrected.append(POINTS[balanced_outcome(ab_points, ba_points)])  # type: ignore[index]
        all_ab += ab_points
        all_ba += ba_points
    mean = lambda v: sum(v) / len(v)  # noqa: E731
    truth = mean([1.0 if c > b else 0.0 for c, b in items])
    debiased = debiased_mean(all_ab, all_ba)
    return {"truth": truth, "naive": mean(naive), "swapped_k1": mean(swapped1), "protocol": mean(protocol),
            "corrected": mean(corrected), "debiased_mean": float("nan") if debiased is None else debiased,
            "flip_rate": mean(flips), "advantage": mean(all_ab) - mean(all_ba)}


def single_grading_spread(n: int, noise: float, k: int, rng: random.Random) -> tuple[float, float]:
    """Mean |score - truth| of one judge sample vs the median of k (repeated sampling, rounded 1-10 scores)."""
    import statistics

    one, med = [], []
    for _ in range(n):
        truth = rng.uniform(3, 8)
        draws = [min(10, max(1, round(truth + rng.gauss(0, noise)))) for _ in range(k)]
        one.append(abs(draws[0] - truth))
        med.append(abs(statistics.median(draws) - truth))
    return sum(one) / n, sum(med) / n


def simulation_parser(description: str) -> argparse.ArgumentParser:
    """The items and the simulated judge, as options (bench/judge_cost.py simulates the same ones)."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--items", type=int, default=3000)
    p.add_argument("--true-win-rate", type=float, default=0.35)
    p.add_argument("--bias", type=float, default=0.25, help="P(judge answers the first position regardless)")
    p.add_argument("--noise", type=float, default=1.0, help="σ of the judge's quality noise (1-10 scale)")
    p.add_argument("--tie-band", type=float, default=0.5)
    return p


def main(argv: Optional[list[str]] = None) -> int:
    p = simulation_parser(__doc__.splitlines()[0])
    p.add_argument("--config", default="default-en", help="judge config whose sampling.k is the default --k")
    p.add_argument("--k", type=int, default=None, help="judge samples per order (default: the config's sampling.k)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--tolerance", type=float, default=2.0, help="points the headline estimate may miss the truth by")
    args = p.parse_args(argv)
    k = args.k or load_judge_config(args.config).sampling.k
    rng = random.Random(args.seed)
    items = make_items(args.items, args.true_win_rate, rng)
    r = simulate(items, Judge(args.bias, args.noise, args.tie_band, rng), k)
    names = ("naive", "swapped_k1", "protocol", "corrected", "debiased_mean")
    err = {name: 100 * (r[name] - r["truth"]) for name in names}
    print(f"{args.items} items, true win rate {100 * r['truth']:.1f}%; judge: position bias p={args.bias}, "
          f"noise σ={args.noise}, k={k} samples per order" + ("" if args.k else f" ({args.config} sampling.k)"))
    print(f"  {'estimate':40} {'win rate':>9} {'error':>8}")
    rows = [("naive (AB only, 1 sample)", "naive"), ("swapped (AB+BA, 1 sample)", "swapped_k1"),
            (f"swapped + repeated, ties (k={k})", "protocol"), (f"corrected, headline (k={k})", "corrected"),
            ("debiased mean (d-based, not a headline)", "debiased_mean")]
    for text, name in rows:
        print(f"  {text:40} {100 * r[name]:8.1f}% {err[name]:+7.1f}")
    print(f"  swap flip rate (ties): {100 * r['flip_rate']:.1f}%; first-position advantage d: "
          f"{100 * r['advantage']:+.1f} points")
    one, med = single_grading_spread(args.items, args.noise * 1.5, 5, rng)
    print(f"single grading, noise σ={args.noise * 1.5}: mean |error| of 1 sample {one:.2f}, "
          f"of the median of 5 {med:.2f}")
    ok = abs(err["corrected"]) <= args.tolerance
    print(f"headline (corrected) within {args.tolerance:g} points of the truth: {'yes' if ok else 'NO'} "
          f"(naive off by {abs(err['naive']):.1f})")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
