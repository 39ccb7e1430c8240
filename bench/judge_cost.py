"""Judge calls and headline error of fixed repeats (k = 3) vs adaptive repeats (sampling.adaptive), on the
simulated position-biased, noisy judge of bench/judge_bias.py (same items, same judge, same verdict parser).

Pairwise: every item is judged in both orders; fixed repeats draw k samples per order, adaptive repeats draw one
per order and stop when both orders give the candidate the same outcome (judges.adaptive.pair_agrees), else one
more per order up to k. The headline is the position-bias-corrected score (judges.aggregate.balanced_outcome over
the samples that exist). Both protocols see the same draws (adaptive uses a prefix of them), so the difference
is the protocol's alone.

Single grading, for comparison: a noisy 1-10 judge (rounded scores) of answers with known true quality; the
headline is the usable rate (median overall score >= --threshold); the truth is a noise-free judge's verdict. Fixed: the median of k; adaptive: stop once an
overall score holds a majority of k (judges.adaptive.single_agrees), else draw on up to k.

Exit status 1 unless adaptive pairwise repeats make at least --min-saving fewer calls and keep the headline
within --tolerance points of the truth.

    python bench/judge_cost.py                 # 3000 items, bias 0.25, noise 1, k 3
"""

from __future__ import annotations

import random
import statistics
import sys
from pathlib import Path
from typing import Optional

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from judge_bias import Judge, label, make_items, simulation_parser  # noqa: E402

from sfteval.judges.adaptive import majority, pair_agrees, single_agrees  # noqa: E402
from sfteval.judges.aggregate import OUTCOME_POINTS as POINTS  # noqa: E402
from sfteval.judges.aggregate import balanced_outcome, candidate_points  # noqa: E402


def pairwise(items: list[tuple[float, float]], judge: Judge, k: int) -> dict[str, float]:
    fixed, adaptive, calls_fixed, calls_adaptive = [], [], 0, 0
    for cand, base in items:
        ab = [label(judge.verdict(cand, base)) for _ in range(k)]  # AB: candidate shown first
        ba = [label(judge.verdict(base, cand)) for _ in range(k)]
        fixed.append(POINTS[balanced_outcome(candidate_points(ab, "AB"), candidate_points(ba, "BA")) or "tie"])
        calls_fixed += 2 * k
        n = 1
        while n < k and not pair_agrees(ab[:n], ba[:n]):
            n += 1
        outcome = balanced_outcome(candidate_points(ab[:n], "AB"), candidate_points(ba[:n], "BA"))
        adaptive.append(POINTS[outcome or "tie"])
        calls_adaptive += 2 * n
    truth = statistics.mean(1.0 if c > b else 0.0 for c, b in items)
    return {"truth": truth, "fixed": statistics.mean(fixed), "adaptive": statistics.mean(adaptive),
            "calls_fixed": calls_fixed, "calls_adaptive": calls_adaptive}


class Sample:
    """A parsed single-grading judge sample (what judges.adaptive reads)."""

    status = "ok"

    def __init__(self, overall: float):
        self.overall = overall


def single(n: int, noise: float, k: int, threshold: float, rng: random.Random) -> dict[str, float]:
    fixed, adaptive, truth, calls_adaptive = [], [], [], 0
    for _ in range(n):
        quality = rng.uniform(3, 9)
        draws = [float(min(10, max(1, round(quality + rng.gauss(0, noise))))) for _ in range(k)]
        truth.append(round(quality) >= threshold)  # a noise-free judge on the same 1-10 scale
        fixed.append(statistics.median(draws) >= threshold)
        m = majority(k)
        while m < k and not single_agrees([Sample(d) for d in draws[:m]], k):
            m += 1
        adaptive.append(statistics.median(draws[:m]) >= threshold)
        calls_adaptive += m
    mean = lambda v: sum(v) / len(v)  # noqa: E731
    return {"truth": mean(truth), "fixed": mean(fixed), "adaptive": mean(adaptive), "calls_fixed": n * k,
            "calls_adaptive": calls_adaptive}


def main(argv: Optional[list[str]] = None) -> int:
    p = simulation_parser(__doc__.splitlines()[0])
    p.add_argument("--k", type=int, default=3)
    p.add_argument("--threshold", type=float, default=6.0, help="single grading: usable at this median score")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--tolerance", type=float, default=2.0, help="points the adaptive headline may miss the truth by")
    p.add_argument("--min-saving", type=float, default=0.30, help="share of pairwise calls adaptive must save")
    args = p.parse_args(argv)
    rng = random.Random(args.seed)
    items = make_items(args.items, args.true_win_rate, rng)
    pw = pairwise(items, Judge(args.bias, args.noise, args.tie_band, rng), args.k)
    sg = single(args.items, args.noise * 1.5, args.k, args.threshold, rng)
    print(f"{args.items} items; judge: position bias p={args.bias}, noise σ={args.noise}, k={args.k}")
    print(f"  {'protocol':38} {'calls':>7} {'saved':>7} {'headline':>9} {'error':>7}")
    for title, r, what in (("pairwise (corrected score)", pw, "pts"), ("single (usable rate)", sg, "pts")):
        for name in ("fixed", "adaptive"):
            saved = 1 - r[f"calls_{name}"] / r["calls_fixed"]
            err = 100 * (r[name] - r["truth"])
            print(f"  {title + ', ' + name:38} {r[f'calls_{name}']:7d} {100 * saved:6.1f}% "
                  f"{100 * r[name]:8.1f}% {err:+6.1f} {what}")
        print(f"  {title + ', truth':38} {'':7} {'':7} {100 * r['truth']:8.1f}%")
    saving = 1 - pw["calls_adaptive"] / pw["calls_fixed"]
    error = abs(100 * (pw["adaptive"] - pw["truth"]))
    ok = saving >= args.min_saving and error <= args.tolerance
    print(f"adaptive pairwise: {100 * saving:.1f}% fewer judge calls (target >= {100 * args.min_saving:.0f}%), "
          f"headline off the truth by {error:.1f} points (target <= {args.tolerance:g}): {'yes' if ok else 'NO'}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
