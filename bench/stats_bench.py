"""Benchmark harness.stats the way the differ uses it.

    python bench/stats_bench.py [--items 100000] [--task-types 20] [--levels 2] [--resamples 2000]
                                [--workers N] [--baseline-n 1000]

One diff = task_types x levels x 15 metrics cells (600 by default), each over items / task_types
paired items (5000 by default), through compare_paired with the default 2000 resamples, plus one Holm
correction across all cells. The metric mix follows DESIGN.md: judge dimensions (1-10), overall
(mean of 3 judge samples), usable and rule accuracy (0/1), probe sum log P, latency and output
tokens, with ~2% missing (unparsed) values. Also timed: the same 600 cells on 20 items each, single
cells of 100k items, and a naive per-resample Python loop against the vectorised bootstrap.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Literal

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sfteval.harness.stats import compare_paired, holm, paired_bootstrap_ci

Maker = Callable[[np.random.Generator, int], "tuple[np.ndarray, np.ndarray]"]


def _judge_dim(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    a = rng.integers(1, 11, n).astype(float)
    return a, np.clip(a + rng.choice([-2, -1, 0, 0, 0, 1, 1, 2], n), 1, 10)


def _overall(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    a = rng.integers(1, 11, (n, 3)).mean(axis=1)
    return a, np.clip(a + rng.integers(-3, 4, n) / 3, 1, 10)


def _binary(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    a = (rng.random(n) < 0.7).astype(float)
    flip = rng.random(n) < 0.1
    return a, np.where(flip, 1 - a, a)


def _probe_sum(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    a = -np.abs(rng.normal(60, 20, n))
    return a, a + rng.normal(0.5, 3, n)


def _latency(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    a = rng.lognormal(0.5, 0.6, n)
    return a, a * np.exp(rng.normal(-0.02, 0.1, n))


def _tokens(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    a = rng.integers(20, 1500, n).astype(float)
    return a, np.maximum(1, a + np.round(rng.normal(0, 40, n)))


# 15 metrics per cell: (name, kind, maker, data shape for the report)
METRICS: list[tuple[str, str, Maker, str]] = [(f"dim{i}", "score", _judge_dim, "judge 1-10") for i in range(1, 10)] + [
    ("overall", "score", _overall, "judge mean of 3"),
    ("usable", "binary", _binary, "0/1"),
    ("rule_acc", "binary", _binary, "0/1"),
    ("probe_sum", "score", _probe_sum, "continuous"),
    ("latency", "score", _latency, "continuous"),
    ("out_tokens", "score", _tokens, "integer, wide"),
]


def make_cells(n_cells_per_metric: int, n_items: int, seed: int) -> list[tuple[str, str, str, np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(seed)
    cells = []
    for _ in range(n_cells_per_metric):
        for name, kind, maker, shape in METRICS:
            a, b = maker(rng, n_items)
            if kind == "score" and shape.startswith("judge"):  # ~2% unparsed judgments
                a[rng.random(n_items) < 0.02] = np.nan
                b[rng.random(n_items) < 0.02] = np.nan
            cells.append((name, kind, shape, a, b))
    return cells


def run_diff(cells, resamples: int, workers: int | None) -> tuple[float, float, dict[str, float]]:
    """Wall and CPU seconds for the whole diff, and wall seconds per data shape."""
    per_shape: dict[str, float] = defaultdict(float)
    pvals = []
    cpu = time.process_time()
    start = time.perf_counter()
    for i, (_, kind, shape, a, b) in enumerate(cells):
        t = time.perf_counter()
        res = compare_paired(a, b, kind=kind, seed=i, n_resamples=resamples, workers=workers)
        per_shape[shape] += time.perf_counter() - t
        pvals.append(res.p_value)
    holm(pvals)
    return time.perf_counter() - start, time.process_time() - cpu, per_shape


def naive_bootstrap_ci(a: np.ndarray, b: np.ndarray, n_resamples: int, seed: int) -> tuple[float, float]:
    """The obvious implementation: one Python iteration per resample."""
    rng = np.random.default_rng(seed)
    n = a.size
    deltas = []
    for _ in range(n_resamples):
        idx = rng.integers(0, n, n)
        deltas.append(b[idx].mean() - a[idx].mean())
    low, high = np.quantile(deltas, [0.025, 0.975])
    return float(low), float(high)


def best_of(fn: Callable[[], object], repeat: int = 3) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--items", type=int, default=100_000)
    ap.add_argument("--task-types", type=int, default=20)
    ap.add_argument("--levels", type=int, default=2)
    ap.add_argument("--resamples", type=int, default=2000)
    ap.add_argument("--workers", type=int, default=None, help="bootstrap threads (default: usable CPUs)")
    ap.add_argument("--baseline-n", type=int, default=1000)
    args = ap.parse_args()

    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"numpy {np.__version__}; {cpus} usable CPUs; load average {load:.2f}; workers={args.workers or 'auto'}")
    n_cells_per_metric = args.task_types * args.levels
    per_cell = args.items // args.task_types
    compare_paired(*_judge_dim(np.random.default_rng(0), 100), kind="score")  # warm-up

    for n_items in (per_cell, 20):
        cells = make_cells(n_cells_per_metric, n_items, seed=1)
        total, cpu, per_shape = run_diff(cells, args.resamples, args.workers)
        print(
            f"\n{len(cells)} cells x {n_items} items ({args.task_types} task_types x {args.levels} levels x "
            f"{len(METRICS)} metrics, {args.resamples} resamples): {total:.2f} s wall, {cpu:.2f} s CPU"
        )
        counts: dict[str, int] = defaultdict(int)
        for _, _, shape, _, _ in cells:
            counts[shape] += 1
        for shape, secs in per_shape.items():
            print(f"  {shape:<16} {counts[shape]:4d} cells  {secs:6.2f} s  {1e3 * secs / counts[shape]:7.2f} ms/cell")

    print(f"\nsingle cells of {args.items} items:")
    rng = np.random.default_rng(2)
    single: list[tuple[str, Literal["score", "binary"], Maker]] = [
        ("judge 1-10", "score", _judge_dim),
        ("0/1", "binary", _binary),
        ("continuous", "score", _probe_sum),
    ]
    for label, kind, maker in single:
        a, b = maker(rng, args.items)
        secs = best_of(partial(compare_paired, a, b, kind=kind, n_resamples=args.resamples, workers=args.workers), 2)
        print(f"  {label:<16} {1e3 * secs:8.1f} ms")

    n = args.baseline_n
    print(f"\nbootstrap only, {n} items, {args.resamples} resamples: naive per-resample loop vs vectorised")
    for label, maker in (("judge 1-10", _judge_dim), ("continuous", _probe_sum)):
        a, b = maker(rng, n)
        naive = best_of(partial(naive_bootstrap_ci, a, b, args.resamples, 0))
        fast = best_of(partial(paired_bootstrap_ci, a, b, n_resamples=args.resamples, workers=args.workers))
        lo_n, hi_n = naive_bootstrap_ci(a, b, args.resamples, 0)
        lo_f, hi_f = paired_bootstrap_ci(a, b, n_resamples=args.resamples)
        print(
            f"  {label:<16} naive {1e3 * naive:8.1f} ms   vectorised {1e3 * fast:7.2f} ms   "
            f"ratio {naive / fast:6.1f}x   CI naive [{lo_n:.3f}, {hi_n:.3f}] vectorised [{lo_f:.3f}, {hi_f:.3f}]"
        )


if __name__ == "__main__":
    main()
