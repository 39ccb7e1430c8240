"""Probe throughput: sfteval's hf backend vs lm-evaluation-harness's HFLM, same pairs, same model, one process.

    python bench/probes.py                       # both cases below
    python bench/probes.py --case tiny           # demo v1 checkpoint on the demo suite (all probe pairs)
    python bench/probes.py --case smollm2 --items 96 --lm-eval-batch 1,8,64
    python bench/probes.py --model DIR --suite SUITE

Both sides start from the same (context, continuation) text pairs (every reference and choice probe of the
suite, under lm-eval's whitespace convention, so the token sequences are identical) and return
(sum log-prob, greedy) per pair; tokenization is timed on both sides. Each side gets one untimed warm-up
call, then ``--repeats`` timed calls, alternating; the best call counts (wall clock; CPU seconds of the
process are printed too, they are steadier on a shared machine). The ratio is lm-eval's time over ours
at each lm-eval batch size (its default is 1). Values must agree: the max |difference| of the sums is
printed, next to lm-eval's own difference between two batch sizes (fp32 GEMMs of other shapes round
differently; over a 150-token answer that reaches ~1e-4 in either implementation).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from functools import partial
from pathlib import Path
from typing import Any, Callable

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests")]
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def _best(fn: Callable[[], Any], repeats: int) -> tuple[float, float, Any]:
    """(best wall seconds, CPU seconds of that call, result) over ``repeats`` calls."""
    best = (float("inf"), 0.0, None)
    for _ in range(repeats):
        w, c = time.perf_counter(), time.process_time()
        out = fn()
        w, c = time.perf_counter() - w, time.process_time() - c
        if w < best[0]:
            best = (w, c, out)
    return best


def run_case(label: str, model_dir: Path, suite: str, items: int | None, lm_batches: list[int], repeats: int,
             score_batch_tokens: int) -> list[float]:
    import torch

    from sfteval.harness.backends import create_backend
    from sfteval.harness.probes import score_texts
    from sfteval.harness.render import Renderer
    from lm_eval_oracle import lm_eval_loglikelihood, lm_eval_model, probe_pairs

    ours = create_backend("hf", model=str(model_dir), device="cpu", dtype="float32",
                          score_batch_tokens=score_batch_tokens)
    renderer = Renderer(ours.tokenizer)  # type: ignore[attr-defined]
    pairs = probe_pairs(suite, renderer, items)
    n_tok = sum(len(renderer.tokenizer(c + x)["input_ids"]) for c, x in pairs)

    def mine() -> list[tuple[float, bool]]:
        res = score_texts(ours, renderer, pairs, whitespace="lm-eval")
        return [(sum(r.token_logprobs), all(r.greedy)) for r in res]

    print(f"\n== {label}: {model_dir.name}, suite {suite}: {len(pairs)} pairs, {n_tok} tokens, "
          f"torch threads {torch.get_num_threads()}")
    mine()  # warm-up (and the backend's one-time self-checks)
    lms = {b: lm_eval_model(model_dir, batch_size=b) for b in lm_batches}
    for lm in lms.values():
        lm_eval_loglikelihood(lm, pairs[: min(8, len(pairs))])  # warm-up
    times: dict[str, tuple[float, float]] = {}
    results: dict[str, list[tuple[float, bool]]] = {}
    for _ in range(repeats):  # alternate so both sides see the same machine load
        w, c, out = _best(mine, 1)
        if w < times.get("ours", (float("inf"), 0))[0]:
            times["ours"], results["ours"] = (w, c), out
        for b, lm in lms.items():
            w, c, out = _best(partial(lm_eval_loglikelihood, lm, pairs), 1)
            if w < times.get(f"lm-eval b={b}", (float("inf"), 0))[0]:
                times[f"lm-eval b={b}"], results[f"lm-eval b={b}"] = (w, c), out
    ratios = []
    w0, c0 = times["ours"]
    print(f"  {'sfteval hf':<16} {len(pairs) / w0:8.1f} pairs/s  ({w0:.3f} s wall, {c0:.3f} s CPU)")
    for b in lm_batches:
        name = f"lm-eval b={b}"
        w, c = times[name]
        diff = max(abs(a[0] - r[0]) for a, r in zip(results["ours"], results[name]))
        agree = sum(a[1] == r[1] for a, r in zip(results["ours"], results[name]))
        ratios.append(w / w0)
        print(f"  {name:<16} {len(pairs) / w:8.1f} pairs/s  ({w:.3f} s wall, {c:.3f} s CPU)  ratio {w / w0:.2f}x "
              f"wall, {c / c0:.2f}x CPU;  max |diff| {diff:.2e};  greedy agree {agree}/{len(pairs)}")
    if len(lm_batches) > 1:  # the floor for "identical": lm-eval against itself at another batch size
        one, two = (results[f"lm-eval b={x}"] for x in lm_batches[:2])
        print(f"  lm-eval b={lm_batches[0]} vs b={lm_batches[1]}: max |diff| "
              f"{max(abs(x[0] - y[0]) for x, y in zip(one, two)):.2e} (fp32 batching noise)")
    ours.close()
    return ratios


def _verdict(ratios: list[float], batches: list[int], target: float) -> None:
    for b, r in zip(batches, ratios):
        print(f"  target >= {target}x vs lm-eval b={b}{' (HFLM default)' if b == 1 else ''}: "
              f"{'met' if r >= target else 'NOT met'} ({r:.2f}x)")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--case", choices=["tiny", "smollm2", "both"], default="both")
    p.add_argument("--model", type=Path, help="any HF checkpoint folder instead of the built-in cases")
    p.add_argument("--suite", help="suite for --model (default: general-en)")
    p.add_argument("--items", type=int,
                   help="items spread evenly over the suite (default: all for tiny, 48 for smollm2)")
    p.add_argument("--lm-eval-batch", default="1,8", help="lm-eval batch sizes to compare with (HFLM's default is 1)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, help="torch threads for both sides (default: torch's)")
    p.add_argument("--score-batch-tokens", type=int, default=8192, help="sfteval hf option of the same name")
    args = p.parse_args()
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    batches = [int(b) for b in args.lm_eval_batch.split(",")]
    common = dict(lm_batches=batches, repeats=args.repeats, score_batch_tokens=args.score_batch_tokens)
    if args.model:
        run_case("custom", args.model, args.suite or "general-en", args.items, **common)
        return 0
    if args.case in ("tiny", "both"):
        import tempfile

        from sfteval.harness.demo import ensure_checkpoint, write_demo_suite
        from smollm import default_cache_dir

        suite = write_demo_suite(Path(tempfile.mkdtemp(prefix="sfteval-demo-suite-")))
        r = run_case("tiny", ensure_checkpoint("v1", default_cache_dir()), str(suite), args.items, **common)
        _verdict(r, batches, 3.0)
    if args.case in ("smollm2", "both"):
        from smollm import ensure_smollm2

        r = run_case("smollm2", ensure_smollm2(), "general-en", args.items or 48, **common)
        _verdict(r, batches, 1.5)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
