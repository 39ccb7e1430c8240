"""hf backend: batched generation vs a one-prompt-at-a-time loop, same prompts, same loaded model.

    python bench/hf_batching.py                      # demo v1 checkpoint, demo suite, batch 16, best of 3
    python bench/hf_batching.py --model ./ckpt --suite suites/general-en --batch-size 32 --limit 5

Both paths go through ``HFBackend.generate`` on the harness-rendered token ids; the only difference is
how many prompts one ``generate`` call gets. Prints the wall times, the speed-up (loop / batched) and
whether every greedy answer is identical (left padding must not change a greedy answer). On a shared
machine other processes inflate both times; the load average is printed to read the numbers against.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="demo:v1", help="checkpoint folder or demo:v1/demo:v2 (default demo:v1)")
    ap.add_argument("--suite", default=str(REPO / "suites" / "demo"))
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--limit", type=int, help="first N items of every task_type")
    ap.add_argument("--max-new-tokens", type=int, help="override the suite's max_new_tokens")
    ap.add_argument("--repeats", type=int, default=3, help="timed rounds of each (best is reported)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (1: steady on a shared box)")
    args = ap.parse_args()

    import torch
    from transformers import AutoTokenizer

    from sfteval.harness.backends.base import GenRequest
    from sfteval.harness.backends.hf import HFBackend, HFOptions
    from sfteval.harness.generate import sampling_for
    from sfteval.harness.modelref import resolve_model
    from sfteval.harness.render import Renderer
    from sfteval.harness.runner import select_items
    from sfteval.harness.suite import load_suite

    torch.set_num_threads(args.threads)
    model = resolve_model(args.model, must_exist=True)
    suite = load_suite(args.suite)
    items = select_items(suite, args.limit)
    renderer = Renderer(AutoTokenizer.from_pretrained(model.path))
    overrides = {"max_new_tokens": args.max_new_tokens}
    reqs = []
    for it in items:
        r = renderer.render(it.conversation)
        reqs.append(GenRequest(key=it.id, sampling=sampling_for(suite, it, 0, 0, overrides), prompt=r.text,
                               prompt_ids=r.token_ids))
    backend = HFBackend(HFOptions(model=model.path, device="cpu" if not torch.cuda.is_available() else "auto",
                                  batch_size=args.batch_size))

    def batched() -> dict[str, str]:
        return {r.key: r.text for r in backend.generate(reqs)}

    def loop() -> dict[str, str]:
        return {res.key: res.text for r in reqs for res in backend.generate([r])}

    batched(), loop()  # warm up (first-call allocations, kernel selection)
    times: dict[str, list[float]] = {"batched": [], "loop": []}
    answers: dict[str, dict[str, str]] = {}
    for _ in range(args.repeats):
        for name, fn in (("batched", batched), ("loop", loop)):
            t0 = time.perf_counter()
            answers[name] = fn()
            times[name].append(time.perf_counter() - t0)
    same = sum(answers["batched"][k] == answers["loop"][k] for k in answers["loop"])
    best = {k: min(v) for k, v in times.items()}
    print(f"hf batching: {len(reqs)} prompts, {model.name}, device {backend.device}, batch {args.batch_size}, "
          f"{args.threads} thread(s), load average {os.getloadavg()[0]:.1f}")
    for name in ("batched", "loop"):
        print(f"  {name:8} best {best[name]:7.2f} s   median {statistics.median(times[name]):7.2f} s   "
              f"({len(reqs) / best[name]:.1f} prompts/s)")
    print(f"  speed-up loop/batched: {best['loop'] / best['batched']:.2f}x")
    print(f"  identical greedy answers: {same}/{len(reqs)}")
    if same != len(reqs):
        diff = [k for k in answers["loop"] if answers["batched"][k] != answers["loop"][k]][:5]
        print("  differ: " + ", ".join(f"{k}: {answers['batched'][k]!r} vs {answers['loop'][k]!r}" for k in diff))
        sys.exit(1)


if __name__ == "__main__":
    main()
