"""Benchmark `sfteval view` on a synthetic 100k-item pair of runs: server time per page and peak memory.

    python bench/view.py [--items 100000] [--requests 50] [--keep DIR]

Writes two judged runs (A, B) of ``--items`` items over 20 two-level task_types (B worse on two of them,
5% robustness items, one Chinese item in seven), each with one answer, one judge sample over the answer
type's dimensions, one rule and one reference probe per item -- the record files sfteval writes, in its
format -- then starts ``sfteval view`` as its own process, warms each page up once (the first compare
request loads both runs and computes the diff; the first search builds the text index) and requests
each page ``--requests`` times:

- the compare page (``/compare/A/B``: the heatmap of the diff's cells),
- a filtered items page (``/compare/A/B/items?tt=...&flip=worse&q=...``: task_type, flip and full-text search),
- a search of every item (``/compare/A/B/items?q=...``, Chinese, over prompts, references and both answers),
- an item page (``/compare/A/B/item/ID``, a different item each time: both runs' records read from disk).

It reports the server's own time per request (the Server-Timing header the viewer sets around each
request), p50 and p95, the client's round trip, and the server process's peak resident memory (VmHWM).
Target: p95 <= 300 ms and <= 1 GB on 2 cores.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import re
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import quote

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))


def write_runs(root: Path, n: int, seed: int = 0) -> None:
    """Two run folders in sfteval's format, written directly as JSON lines (seconds, not minutes)."""
    from sfteval.harness.models import ModelInfo, RunManifest
    from sfteval.judges.config import load_judge_config

    cfg = load_judge_config("default-en")
    cfg_hash = cfg.config_hash()
    tts = [f"cat{i % 5}/sub{i}" for i in range(20)]
    dims = [d.key for d in cfg.dimensions_for(cfg.answer_type_for(tts[0]))]
    rnd = random.Random(seed)
    items = []
    for i in range(n):
        tt = tts[rnd.randrange(20)]
        zh = "请问这个问题的答案是什么？小猫喜欢什么？" if i % 7 == 0 else ""
        item = {"id": f"item-{i:06d}", "task_type": tt,
                "prompt": f"Question {i} about {tt}: " + "lorem ipsum dolor sit amet " * 6 + zh,
                "reference": f"The reference answer {i} " + "consectetur adipiscing " * 4}
        if i % 20 == 0:
            item["tags"] = ["robustness"]
        items.append(item)
    enc = json.dumps
    for name, worse in (("A", False), ("B", True)):
        d = root / name
        d.mkdir(parents=True)
        (d / "items.jsonl").write_text("".join(enc(it, ensure_ascii=False) + "\n" for it in items), encoding="utf-8")
        (d / "judge_config.json").write_text(enc(cfg.model_dump(mode="json")), encoding="utf-8")
        m = RunManifest(run_id=name, sfteval_version="bench", model=ModelInfo(path=f"/models/{name}", name=f"model-{name}"),
                        backend="hf", suite_name="synthetic", suite_version="1", suite_hash="f" * 16, suite_path="/x",
                        started_at="2026-01-01T00:00:00+00:00", finished_at="2026-01-01T01:00:00+00:00",
                        status="complete", counts={"items": n})
        m.judge = {"config": cfg.name, "config_hash": cfg_hash, "model": "bench-judge", "backend": "openai",
                   "samples": 1}
        (d / "manifest.json").write_text(m.model_dump_json(indent=2), encoding="utf-8")
        r = random.Random(seed + worse)
        g_lines, j_lines, p_lines = [], [], []
        for it in items:
            iid, tt = enc(it["id"]), enc(it["task_type"])
            gk = hashlib.blake2b(f"{name}{it['id']}".encode(), digest_size=12).hexdigest()
            ans = enc(f"Answer of {name} to {it['id']}: " + "sed do eiusmod tempor " * r.randint(3, 12))
            prompt = enc("<|im_start|>user\n" + it["prompt"] + "<|im_end|>\n<|im_start|>assistant\n", ensure_ascii=False)
            g_lines.append(f'{{"schema_version":1,"key":"{gk}","item_id":{iid},"task_type":{tt},"sample":0,"turn":0,'
                           f'"prompt":{prompt},"prompt_tokens":60,"output":{ans},"answer":{ans},"completion_tokens":40,'
                           f'"finish_reason":"stop","timing":{{"ttft_s":{0.04 + r.random() / 50:.4f},"per_token_s":0.01,'
                           f'"total_s":0.45}},"status":"ok"}}\n')
            q = r.randint(3, 9)
            if worse and it["task_type"] in tts[:2] and r.random() < 0.4:
                q = max(1, q - 3)
            scores = ",".join(f'"{k}":{float(q)}' for k in dims)
            j_lines.append(f'{{"schema_version":1,"key":"{gk}j","item_id":{iid},"task_type":{tt},"generation_key":"{gk}",'
                           f'"scorer":"judge:{cfg.name}","judge_config_hash":"{cfg_hash}","judge_model":"bench-judge",'
                           f'"mode":"single","judge_sample":0,"scores":{{{scores}}},"overall":{float(q)},'
                           f'"rationale":"The answer is compared with the reference point by point. {q}/10.",'
                           f'"status":"ok","details":{{"answer_type":"fact"}}}}\n')
            ok = float(q > 6)
            j_lines.append(f'{{"schema_version":1,"key":"{gk}r","item_id":{iid},"task_type":{tt},"generation_key":"{gk}",'
                           f'"scorer":"rule:exact_match","mode":"rule","scores":{{"exact_match":{ok}}},"overall":{ok},'
                           f'"status":"ok"}}\n')
            lp = -r.random() * 20
            p_lines.append(f'{{"schema_version":1,"key":"{gk}p","item_id":{iid},"task_type":{tt},"kind":"reference",'
                           f'"sum_logprob":{lp:.4f},"n_tokens":8,"mean_logprob":{lp / 8:.4f},"greedy":false,"status":"ok"}}\n')
        for fname, lines in (("generations", g_lines), ("judgments", j_lines), ("probes", p_lines)):
            (d / f"{fname}.jsonl").write_text("".join(lines), encoding="utf-8")


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--items", type=int, default=100_000)
    p.add_argument("--requests", type=int, default=50)
    p.add_argument("--keep", type=Path, help="Write (or reuse) the runs here instead of a temporary folder.")
    args = p.parse_args()
    from viewkit import ViewServer

    tmp = None
    root = args.keep
    if root is None:
        tmp = Path(tempfile.mkdtemp(prefix="sfteval-bench-view-"))
        root = tmp
    try:
        if not (root / "B" / "probes.jsonl").exists():
            t0 = time.perf_counter()
            shutil.rmtree(root, ignore_errors=True)
            write_runs(root, args.items)
            print(f"wrote 2 runs x {args.items} items in {time.perf_counter() - t0:.1f} s ({root})")
        with ViewServer(root) as srv:
            pid = srv.proc.pid  # type: ignore[union-attr]
            ids = [f"item-{i:06d}" for i in random.Random(1).sample(range(args.items), args.requests + 1)]
            pages = {
                "compare page": lambda i: "/compare/A/B",
                "filtered items page": lambda i: "/compare/A/B/items?tt=cat0%2Fsub0&flip=worse&q=ipsum",
                "search, all items": lambda i: "/compare/A/B/items?q=" + quote("小猫") + f"&page={1 + i % 5}",
                "item page": lambda i: f"/compare/A/B/item/{quote(ids[i + 1])}",
            }
            print("load average before:", " ".join(f"{x:.1f}" for x in os.getloadavg()))
            for name, path in pages.items():
                t0 = time.perf_counter()
                r = srv.get(path(-1), timeout=3600)
                assert r.status == 200, (name, r.status, r.body[:300])
                print(f"warm-up {name}: {time.perf_counter() - t0:.1f} s")
            print(f"{'page':<22}{'server p50':>12}{'server p95':>12}{'client p50':>12}{'client p95':>12}")
            for name, path in pages.items():
                server_ms, client_ms = [], []
                for i in range(args.requests):
                    t0 = time.perf_counter()
                    r = srv.get(path(i))
                    client_ms.append(1000 * (time.perf_counter() - t0))
                    assert r.status == 200, (name, r.status)
                    server_ms.append(float(re.search(r"dur=([\d.]+)", r.headers["server-timing"]).group(1)))
                q = lambda v, x: statistics.quantiles(v, n=100, method="inclusive")[x - 1]  # noqa: E731
                print(f"{name:<22}{q(server_ms, 50):>10.1f}ms{q(server_ms, 95):>10.1f}ms"
                      f"{q(client_ms, 50):>10.1f}ms{q(client_ms, 95):>10.1f}ms")
            print(f"server peak memory (VmHWM): {peak_rss_mib(pid):.0f} MiB")
            print("load average after:", " ".join(f"{x:.1f}" for x in os.getloadavg()))
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
