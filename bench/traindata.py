"""Benchmark the training-data index: load + index a synthetic 1M-row training set, query 1,000 eval prompts.

    python bench/traindata.py [--rows 1000000] [--queries 1000] [--format parquet|jsonl] [--keep DIR]

The rows look like generated SFT data: 20 two-level task_types of different sizes, prompts of 8-60 words
drawn from a Zipf vocabulary of 50k words plus task-specific templates (homogeneous, as generated data is),
answers of 20-200 words, and 3% exact duplicates. The eval prompts are half training prompts (exact
members), a quarter lightly edited training prompts (near-duplicates) and a quarter new text. The set is
written to a Parquet (or JSONL) file first (not timed), then timed: ``load_training`` (reading, mapping,
validating), ``TrainingIndex`` (keys, TF-IDF, inverted index), the per-task_type mix, and each query
(neighbours + membership). Prints wall and CPU time and the peak RSS (ru_maxrss, the whole process).
Targets on 2 cores: index build <= 60 s, <= 2 GB; <= 50 ms per query.
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def synthetic(rows: int, seed: int = 0) -> tuple[list[str], list[str], list[str]]:
    rng = np.random.default_rng(seed)
    vocab = np.array([f"w{i}" for i in range(50_000)], dtype=object)
    sizes = rng.dirichlet(np.ones(20) * 2)
    tt_names = [f"area{i % 5}/task{i}" for i in range(20)]
    tts = np.array(tt_names, dtype=object)[rng.choice(20, size=rows, p=sizes)]
    templates = [f"Please help with task {i}: write about" for i in range(20)]
    ranks = rng.zipf(1.3, size=rows * 70) % vocab.size
    p_len = rng.integers(8, 60, rows)
    a_len = rng.integers(20, 200, rows)
    prompts, answers = [], []
    pos = 0
    for i in range(rows):
        words = vocab[ranks[pos:pos + p_len[i]]]
        pos += p_len[i]
        prompts.append(templates[int(tts[i][-1]) % 20] + " " + " ".join(words))
        answers.append(" ".join(vocab[rng.integers(0, vocab.size, a_len[i] // 4)]) * 4)
    dup = rng.random(rows) < 0.03
    src = rng.integers(0, rows, rows)
    for i in np.flatnonzero(dup):
        prompts[i], answers[i], tts[i] = prompts[src[i]], answers[src[i]], tts[src[i]]
    return list(tts), prompts, answers


def write(path: Path, tts: list[str], prompts: list[str], answers: list[str], fmt: str) -> Path:
    if fmt == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        out = path / "train.parquet"
        pq.write_table(pa.table({"category": tts, "instruction": prompts, "response": answers}), out,
                       row_group_size=100_000)
    else:
        import json

        out = path / "train.jsonl"
        with out.open("w", encoding="utf-8") as f:
            for t, p, a in zip(tts, prompts, answers):
                f.write(json.dumps({"category": t, "messages": [{"role": "user", "content": p},
                                                                {"role": "assistant", "content": a}]}) + "\n")
    return out


def prepare(rows: int, n_queries: int, fmt: str, folder: Path) -> None:
    """Write the training file and the eval prompts (run in a child process: its memory is not measured)."""
    import json

    tts, prompts, answers = synthetic(rows)
    rng = np.random.default_rng(1)
    queries = []
    for j, i in enumerate(rng.integers(0, rows, n_queries)):
        kind = j % 4
        if kind < 2:
            queries.append(prompts[i])
        elif kind == 2:
            words = prompts[i].split()
            words[len(words) // 2] = "edited"
            queries.append(" ".join(words))
        else:
            queries.append(f"A new question number {j} about " + " ".join(f"zz{j}_{k}" for k in range(12)))
    write(folder, tts, prompts, answers, fmt)
    (folder / "queries.json").write_text(json.dumps(queries))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--format", choices=["parquet", "jsonl"], default="parquet")
    ap.add_argument("--keep", type=Path, help="write the training file here (default: a temporary folder)")
    args = ap.parse_args()

    from sfteval.harness.traindata import TrainingIndex, load_training, mix

    import json
    import multiprocessing

    t0 = time.perf_counter()
    folder = args.keep or Path(tempfile.mkdtemp(prefix="sfteval-bench-"))
    folder.mkdir(parents=True, exist_ok=True)
    child = multiprocessing.get_context("spawn").Process(target=prepare,
                                                         args=(args.rows, args.queries, args.format, folder))
    child.start()
    child.join()
    if child.exitcode:
        sys.exit(f"writing the synthetic training set failed ({child.exitcode})")
    path = folder / f"train.{args.format}"
    queries = json.loads((folder / "queries.json").read_text())
    print(f"synthetic {args.rows} rows -> {path} ({path.stat().st_size / 1e6:.0f} MB; built in "
          f"{time.perf_counter() - t0:.1f} s in a child process, not timed below)")

    field_map = {"task_type": "category"}
    w0, c0 = time.perf_counter(), time.process_time()
    ts = load_training(path, field_map)
    w1, c1 = time.perf_counter(), time.process_time()
    rss_load = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    index = TrainingIndex(ts)
    w2, c2 = time.perf_counter(), time.process_time()
    table = mix(ts)
    w3, c3 = time.perf_counter(), time.process_time()
    rss_build = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"load {w1 - w0:.1f} s (cpu {c1 - c0:.1f}); index {w2 - w1:.1f} s (cpu {c2 - c1:.1f}); "
          f"mix {w3 - w2:.1f} s (cpu {c3 - c2:.1f}); load + index {w2 - w0:.1f} s wall; peak rss after load "
          f"{rss_load:.0f} MiB, after index {rss_build:.0f} MiB; "
          f"{len(table)} task_type rows")
    times = []
    found = {"exact": 0, "near-duplicate": 0, None: 0}
    for q in queries:
        t = time.perf_counter()
        nb = index.query(q, 3)
        found[index.membership(q, nb)] += 1
        times.append(time.perf_counter() - t)
    ms = np.array(times) * 1000
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{len(queries)} queries: mean {ms.mean():.1f} ms, median {np.median(ms):.1f} ms, p95 "
          f"{np.percentile(ms, 95):.1f} ms, max {ms.max():.1f} ms; membership exact {found['exact']}, "
          f"near-duplicate {found['near-duplicate']}, none {found[None]}; peak rss {rss:.0f} MiB")


if __name__ == "__main__":
    main()
