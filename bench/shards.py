"""Beyond one process: the same items in one process and with --ray on a 2-node local Ray cluster; and merging.

    python bench/shards.py                 # both parts
    python bench/shards.py --only ray      # one process vs --ray (hf backend, demo v1, ~1 min of items)
    python bench/shards.py --only merge    # sfteval merge of a synthetic 100k-item run in 8 shards

Part 1 runs `sfteval run` (hf backend, the demo v1 checkpoint, the demo suite's items repeated under new ids) once
as one process and once with `--ray ADDRESS --replicas 2` on a ray.cluster_utils.Cluster of two nodes with one CPU
each, started beforehand as a real cluster would be. It prints the wall times (command start to exit: model
loading and Ray's connection included), the ideal (one process / 2) and the ratio wall / ideal. Two nodes on a
2-core machine share the cores the one process had to itself, so this measures overhead, not a cluster's
speed-up. The one process is also timed with OMP_NUM_THREADS=1, the thread count Ray gives a 1-CPU worker: on a
busy 2-core machine torch's two threads in one process can be slower than two 1-thread processes.

Part 2 writes 8 shard folders of a 100k-item run (20 task_types; per item one generation, one rule judgment and one
probe record) and times `sfteval merge` on them as a separate process: wall time and peak RSS (target: <= 10 s,
<= 1 GB), then checks the merged run holds every item once.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def sfteval(*args: str, env: dict[str, str] | None = None) -> float:
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "sfteval.harness.cli", *args], cwd=REPO, capture_output=True,
                          text=True, env={**os.environ, "TQDM_DISABLE": "1", **(env or {})})
    dt = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"sfteval {' '.join(args)} exited {proc.returncode}:\n{proc.stderr[-3000:]}")
    return dt


def repeated_suite(dest: Path, copies: int) -> int:
    from sfteval.harness.suite import load_suite

    suite = load_suite("demo")
    n = 0
    with open(dest, "w", encoding="utf-8") as f:
        for c in range(copies):
            for it in suite.items:
                f.write(json.dumps({**it.model_dump(mode="json", exclude_none=True), "id": f"{it.id}-c{c}"}) + "\n")
                n += 1
    return n


def bench_ray(copies: int, work: Path) -> None:
    from ray.cluster_utils import Cluster

    from sfteval.harness.demo import ensure_checkpoint

    model = ensure_checkpoint("v1", Path(os.environ.get("SFTEVAL_TEST_CACHE") or REPO / ".cache" / "test-checkpoints"))
    suite = work / "items.jsonl"
    n = repeated_suite(suite, copies)
    common = ["run", "--model", str(model), "--suite", str(suite), "--out", str(work), "-q"]
    print(f"{n} items (demo suite x {copies}), hf backend, demo v1; load average {os.getloadavg()[0]:.1f}")
    one = sfteval(*common, "--run-name", "one")
    print(f"one process (torch's default threads): {one:7.1f} s")
    one_thread = sfteval(*common, "--run-name", "one-thread", env={"OMP_NUM_THREADS": "1"})
    print(f"one process, OMP_NUM_THREADS=1:        {one_thread:7.1f} s   (what each Ray worker with 1 CPU runs with)")
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    try:
        cluster.add_node(num_cpus=1)
        cluster.wait_for_nodes()
        ray = sfteval(*common, "--run-name", "ray", "--ray", cluster.address, "--replicas", "2",
                      "--ray-option", "num_cpus=1")
    finally:
        cluster.shutdown()
    ideal = one / 2
    print(f"--ray, 2 nodes x 1 CPU, 2 replicas:    {ray:7.1f} s   ideal (one process / 2) {ideal:.1f} s   "
          f"ratio wall/ideal {ray / ideal:.2f}; against the 1-thread process: ideal {one_thread / 2:.1f} s, "
          f"ratio {ray / (one_thread / 2):.2f}   (load average now {os.getloadavg()[0]:.1f})")
    a = {json.loads(x)["key"]: json.loads(x)["answer"] for x in (work / "one" / "generations.jsonl").open()}
    b = {json.loads(x)["key"]: json.loads(x)["answer"] for x in (work / "ray" / "generations.jsonl").open()}
    print(f"identical answers: {sum(a[k] == b.get(k) for k in a)}/{len(a)}")


def synthetic_shards(root: Path, n_items: int, n_shards: int) -> None:
    """Shard folders of one run, written as `sfteval run --shard I/N` writes them (typed records)."""
    from sfteval.harness.models import (Generation, Item, Judgment, ModelInfo, ProbeResult, RunManifest, RunSettings,
                                        SamplingParams, ShardInfo, Timing)
    from sfteval.harness.shard import ASSIGNMENT, ShardSpec, shard_positions, shard_run_name
    from sfteval.harness.store import content_key

    items = [Item(id=f"item-{i:06d}", task_type=f"type{i % 20}/sub{i % 3}", prompt=f"Question {i}: " + "word " * 30,
                  reference=f"answer {i % 97}") for i in range(n_items)]
    sampling = SamplingParams(max_new_tokens=64)
    for s in range(n_shards):
        spec = ShardSpec(s, n_shards)
        positions = shard_positions(items, spec)
        folder = root / shard_run_name("big", spec)
        folder.mkdir(parents=True)
        with open(folder / "items.jsonl", "w") as fi, open(folder / "generations.jsonl", "w") as fg, \
                open(folder / "judgments.jsonl", "w") as fj, open(folder / "probes.jsonl", "w") as fp:
            for p in positions:
                it = items[p]
                fi.write(json.dumps(it.model_dump(mode="json", exclude_none=True)) + "\n")
                gkey = content_key("gen", it.id, 0, 0)
                answer = f"answer {p % 89}"
                fg.write(Generation(key=gkey, item_id=it.id, task_type=it.task_type, prompt=f"<|user|>{it.prompt}",
                                    prompt_tokens=40, output=answer, answer=answer, completion_tokens=3,
                                    finish_reason="stop", timing=Timing(ttft_s=0.01, per_token_s=0.002, total_s=0.02),
                                    sampling=sampling).model_dump_json() + "\n")
                ok = float(answer == it.reference)
                fj.write(Judgment(key=content_key("rule", gkey), item_id=it.id, task_type=it.task_type,
                                  generation_key=gkey, scorer="rule:exact_match", mode="rule",
                                  scores={"exact_match": ok}, overall=ok).model_dump_json() + "\n")
                fp.write(ProbeResult(key=content_key("probe", it.id), item_id=it.id, task_type=it.task_type,
                                     kind="reference", sum_logprob=-1.5 - p % 7, n_tokens=3,
                                     mean_logprob=(-1.5 - p % 7) / 3, greedy=p % 2 == 0,
                                     details={"token_logprobs": [-0.5, -0.5, -0.5 - p % 7]}).model_dump_json() + "\n")
        manifest = RunManifest(
            run_id=folder.name, sfteval_version="bench", model=ModelInfo(path="/models/big", name="big",
                                                                           fingerprint="f" * 16),
            backend="hf", suite_name="big", suite_version="1", suite_hash="b" * 64, suite_path="/suites/big",
            started_at="2026-12-06T00:00:00+00:00", status="complete", settings=RunSettings(),
            shard=ShardInfo(index=s, count=n_shards, parent_run="big", assignment=ASSIGNMENT, items_total=n_items,
                            positions=positions))
        (folder / "manifest.json").write_text(manifest.model_dump_json(indent=2))


def bench_merge(n_items: int, n_shards: int, work: Path) -> None:
    t0 = time.perf_counter()
    synthetic_shards(work, n_items, n_shards)
    print(f"\nwrote {n_shards} shards of a {n_items}-item run in {time.perf_counter() - t0:.1f} s "
          f"(load average {os.getloadavg()[0]:.1f})")
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    wall = sfteval("merge", str(work / "big__shard-*"), "--into", "big", "--results", str(work), "-q")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    peak_mib = max(after.ru_maxrss, before.ru_maxrss) / 1024
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    merged = work / "big"
    lines = sum(1 for _ in (merged / "generations.jsonl").open())
    status = json.loads((merged / "manifest.json").read_text())["status"]
    print(f"sfteval merge: {wall:.2f} s wall, {cpu:.2f} s CPU (process start included; the CPU time is what a busy "
          f"machine cannot stretch), peak RSS {peak_mib:.0f} MiB "
          f"(target <= 10 s, <= 1024 MiB); merged: {lines} generations, status {status}")
    if lines != n_items:
        raise SystemExit(f"merged run holds {lines} generations, expected {n_items}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", choices=["ray", "merge"])
    ap.add_argument("--copies", type=int, default=8, help="ray part: demo suite copies (default 8: 688 items)")
    ap.add_argument("--items", type=int, default=100_000, help="merge part: items (default 100000)")
    ap.add_argument("--shards", type=int, default=8, help="merge part: shards (default 8)")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="sfteval-bench-shards-") as tmp:
        if a.only in (None, "ray"):
            (Path(tmp) / "ray").mkdir()
            bench_ray(a.copies, Path(tmp) / "ray")
        if a.only in (None, "merge"):
            (Path(tmp) / "merge").mkdir()
            bench_merge(a.items, a.shards, Path(tmp) / "merge")


if __name__ == "__main__":
    main()
