"""Benchmark the differ: diff + markdown + JSON on a large synthetic pair of runs.

    python bench/diff.py [--items 100000] [--task-types 20] [--dims 6] [--full] [--repeat 1]

Every cell also gets its minimum detectable effect and items needed (harness/differ/power.py), and with
``--full`` (answer lengths present) every judge cell its length-adjusted delta.

Default shape: 100k paired items x 6 judge dimensions (1-10) + judge:overall + usable, over 20
two-level task_types (5 first levels) with 5% robustness items, 2000 resamples, Holm over all cells, and
the top-10 flipped items with their texts. ``--full`` adds what a real judged + probed run also has:
usable_score, judge unparsed/error shares, a rule score, latency b and k, answer length, log P(ref) sums
(continuous metrics: the shared-resample path). Prints wall and CPU time per stage and the peak memory
(ru_maxrss; includes the interpreter and the libraries). Target: < 5 s and < 1 GB on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def synthetic_frames(n: int, n_task_types: int, dims: int, full: bool,
                     seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Two item frames shaped like harness.scoring.item_frame's; B is worse on two task_types."""
    rng = np.random.default_rng(seed)
    n_level1 = max(1, n_task_types // 4)
    tt_names = np.array([f"cat{i % n_level1}/sub{i}" for i in range(n_task_types)])
    tt = tt_names[rng.integers(0, n_task_types, n)]
    base = pd.DataFrame({"task_type": tt, "level1": [t.split("/")[0] for t in tt],
                         "robustness": rng.random(n) < 0.05, "tags": ""},
                        index=pd.Index([f"item-{i:06d}" for i in range(n)], name="item_id"))
    worse = np.isin(tt, tt_names[:2])
    a, b = base.copy(), base.copy()
    quality = rng.normal(6.5, 1.5, n)
    for d in range(dims):
        sa = np.clip(np.rint(quality + rng.normal(0, 1.2, n)), 1, 10)
        shift = rng.choice([-1, 0, 0, 0, 1], n) - worse * rng.choice([0, 1, 2], n)
        a[f"judge:dim{d}"], b[f"judge:dim{d}"] = sa, np.clip(sa + shift, 1, 10)
    a["judge:overall"] = np.clip(np.rint(a[[f"judge:dim{d}" for d in range(dims)]].mean(axis=1)), 1, 10)
    b["judge:overall"] = np.clip(np.rint(b[[f"judge:dim{d}" for d in range(dims)]].mean(axis=1)), 1, 10)
    a["usable"] = (a["judge:overall"] >= 6).astype(float)
    b["usable"] = (b["judge:overall"] >= 6).astype(float)
    if full:
        for side in (a, b):
            side["usable_score"] = side[[f"judge:dim{d}" for d in range(dims)]].to_numpy() @ np.arange(1, dims + 1) / (
                dims * (dims + 1) / 2)
            side["judge:unparsed"] = (rng.random(n) < 0.02).astype(float)
            side["judge:error"] = 0.0
            side["rule:exact_match"] = (rng.random(n) < 0.6).astype(float)
            side["gen:ttft_s"] = rng.lognormal(-3, 0.3, n)
            side["gen:per_token_s"] = rng.lognormal(-5, 0.2, n)
            side["gen:answer_chars"] = rng.integers(20, 2000, n).astype(float)
            side["probe:ref_sum"] = -rng.gamma(2.0, 10.0, n)
    for side in (a, b):  # ~1% unparsed judgments: missing, never 0
        miss = rng.random(n) < 0.01
        side.loc[miss, [c for c in side.columns if c.startswith("judge:dim")]] = np.nan
    return a, b


class SyntheticTexts:
    """Texts for the flipped items only (a real run reads them from its records)."""

    def __init__(self, side: str):
        self.side = side

    def detail(self, item_id: str) -> dict[str, Any]:
        return {"prompt": f"Question {item_id}? " * 20, "reference": "The reference answer. " * 10,
                "answer": f"Answer of run {self.side}. " * 30,
                "judge": {"rationale": f"Judge reasoning for {self.side}. " * 40, "scores": {}, "overall": 5.0},
                "rules": []}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--items", type=int, default=100_000)
    p.add_argument("--task-types", type=int, default=20)
    p.add_argument("--dims", type=int, default=6)
    p.add_argument("--full", action="store_true", help="also usable_score, rates, latency, lengths, probe sums")
    p.add_argument("--repeat", type=int, default=1)
    p.add_argument("--workers", type=int, default=None)
    args = p.parse_args()

    from sfteval.harness.differ import diff_frames
    from sfteval.harness.differ.result import RunInfo
    from sfteval.harness.gate import GateConfig, evaluate
    from sfteval.harness.reporting.markdown import diff_markdown

    t0 = time.perf_counter()
    a, b = synthetic_frames(args.items, args.task_types, args.dims, args.full)
    print(f"frames: {args.items} items x {len(a.columns) - 4} metrics, {args.task_types} task_types "
          f"(built in {time.perf_counter() - t0:.1f} s, not timed below)")
    config = GateConfig()
    for rep in range(args.repeat):
        wall0, cpu0 = time.perf_counter(), time.process_time()
        diff = diff_frames(a, b, config, run_a=RunInfo("baseline", suite_hash="x"),
                           run_b=RunInfo("candidate", suite_hash="x"),
                           texts_a=SyntheticTexts("A"), texts_b=SyntheticTexts("B"), workers=args.workers)
        wall1, cpu1 = time.perf_counter(), time.process_time()
        verdict = evaluate(diff, config)
        md = diff_markdown(diff, verdict)
        wall2, cpu2 = time.perf_counter(), time.process_time()
        js = json.dumps(diff.as_dict(verdict.as_dict()), ensure_ascii=False)
        wall3, cpu3 = time.perf_counter(), time.process_time()
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"run {rep + 1}: diff {wall1 - wall0:.2f} s (cpu {cpu1 - cpu0:.2f}), markdown {wall2 - wall1:.2f} s "
              f"(cpu {cpu2 - cpu1:.2f}), json {wall3 - wall2:.2f} s (cpu {cpu3 - cpu2:.2f}); "
              f"total {wall3 - wall0:.2f} s wall, {cpu3 - cpu0:.2f} s cpu; peak rss {peak_mb:.0f} MiB")
    cells = diff.cells
    print(f"{len(cells)} cells, "
          f"{len(diff.regressions())} regressions, {len(diff.improvements())} improvements, "
          f"markdown {len(md)} chars, json {len(js) / 1e6:.1f} MB, verdict {'pass' if verdict.passed else 'fail'}")


if __name__ == "__main__":
    main()
