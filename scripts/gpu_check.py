"""Throughput of sfteval's vllm backend vs plain ``vllm.LLM.generate`` on the same prompts (run by gpu_check.sh).

With ``--ray``: sfteval's ``--ray`` path (Ray Data LLM, a local Ray instance, ``--replicas`` engines) vs plain
``vllm.LLM.generate`` on the same prompts, one pass each with the engine start-up included on both sides (Ray Data
LLM starts its engines for every pipeline, so that is what a user waits for); the plain engine is shut down
before Ray's starts, so both get the whole GPU.

Both paths share one engine (one start-up, identical memory and scheduler settings); the only difference
is the harness: per-request SamplingParams with every field explicit, the result conversion and the
timing read-out. Rounds alternate plain/harness/harness/plain so drift cancels; the best round of each
is compared. Without a checkpoint argument a small random-weight Llama is built (random weights rarely
emit EOS, so every prompt decodes its full budget: a fixed, comparable amount of work).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
T0 = time.perf_counter()


def log(msg: str) -> None:
    print(f"[gpu_check {time.perf_counter() - T0:6.1f}s] {msg}", flush=True)


def build_checkpoint(dest: Path, tiny: bool) -> Path:
    """A random-weight Llama (~110M parameters; ``tiny``: 0.4M for a CPU dry run) with the demo tokenizer."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from sfteval.harness.demo import _build_tokenizer

    if (dest / "config.json").exists():
        log(f"reusing checkpoint {dest}")
        return dest
    tok = _build_tokenizer("v1")
    size: dict[str, Any] = dict(hidden_size=128, intermediate_size=256, num_hidden_layers=2, num_attention_heads=4,
                num_key_value_heads=4) if tiny else dict(hidden_size=1024, intermediate_size=2816,
                                                         num_hidden_layers=8, num_attention_heads=16,
                                                         num_key_value_heads=8)
    cfg = LlamaConfig(vocab_size=len(tok), max_position_embeddings=2048, tie_word_embeddings=False,
                      eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id, bos_token_id=None, **size)
    torch.manual_seed(0)
    model = LlamaForCausalLM(cfg).to(torch.float32 if tiny else torch.bfloat16)  # type: ignore[arg-type]
    tmp = dest.with_name(dest.name + ".tmp")
    model.save_pretrained(tmp)
    tok.save_pretrained(tmp)
    tmp.rename(dest)
    log(f"built {sum(p.numel() for p in model.parameters()) / 1e6:.1f}M-parameter random Llama at {dest}")
    return dest


def prompts(ckpt: Path, n: int, max_new_tokens: int) -> list[Any]:
    """N chat prompts of varied length, rendered by the harness (token ids), greedy."""
    from transformers import AutoTokenizer

    from sfteval.harness.backends.base import GenRequest
    from sfteval.harness.models import Message, SamplingParams
    from sfteval.harness.render import Renderer

    renderer = Renderer(AutoTokenizer.from_pretrained(ckpt))
    sampling = SamplingParams(temperature=0.0, max_new_tokens=max_new_tokens)
    words = "the cat sat on a mat and then it likes to add seven plus three in upper case".split()
    reqs = []
    for i in range(n):
        text = " ".join(words[(i + j) % len(words)] for j in range(8 + (i * 7) % 56)) + f" #{i}?"
        r = renderer.render([Message(role="user", content=text)])
        reqs.append(GenRequest(key=str(i), sampling=sampling, prompt=r.text, prompt_ids=r.token_ids))
    return reqs


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model", nargs="?", help="checkpoint folder (default: build a random-weight Llama)")
    ap.add_argument("-n", type=int, default=2000, help="prompts (default 2000)")
    ap.add_argument("--max-tokens", type=int, default=128)
    ap.add_argument("--rounds", type=int, default=2, help="timed rounds per path, alternating (default 2)")
    ap.add_argument("--target", type=float, default=0.95)
    ap.add_argument("--dtype", default=None, help="default: bfloat16 on GPU, float32 on the CPU dry run")
    ap.add_argument("--max-model-len", type=int, default=1024)
    ap.add_argument("--gpu-memory-utilization", type=float, default=0.6)
    ap.add_argument("--enforce-eager", action="store_true", help="no CUDA graphs (faster start, slower decode)")
    ap.add_argument("--workdir", type=Path, default=Path(os.environ.get("TMPDIR", "/tmp")) / "sfteval-gpu-check")
    ap.add_argument("--json", type=Path, help="also write the numbers here")
    ap.add_argument("--cpu-dry-run", action="store_true", help="tiny model, no GPU needed (checks the script only)")
    ap.add_argument("--ray", action="store_true",
                    help="compare sfteval --ray (Ray Data LLM) with plain vLLM instead (start-up included on both sides)")
    ap.add_argument("--replicas", type=int, default=1, help="--ray: engine replicas (default 1: the same GPU as plain)")
    ap.add_argument("--ray-batch-size", type=int, default=64, help="--ray: rows per Ray Data batch (default 64)")
    a = ap.parse_args()

    import torch
    import vllm

    gpu = torch.cuda.is_available()
    if not gpu and not a.cpu_dry_run:
        log("no CUDA device visible to torch: this check needs a GPU (or --cpu-dry-run to test the script)")
        return 2
    log(f"vllm {vllm.__version__}, torch {torch.__version__}, "
        f"device {torch.cuda.get_device_name(0) if gpu else 'cpu (dry run)'}")
    a.workdir.mkdir(parents=True, exist_ok=True)
    ckpt = Path(a.model) if a.model else build_checkpoint(a.workdir / ("tiny" if a.cpu_dry_run else "llama110m"),
                                                         tiny=a.cpu_dry_run)
    reqs = prompts(ckpt, a.n, a.max_tokens)
    log(f"{len(reqs)} prompts rendered, {sum(len(r.prompt_ids) for r in reqs) / len(reqs):.0f} tokens on average, "
        f"max_tokens {a.max_tokens}")

    from sfteval.harness.backends import create_backend

    opts: dict[str, Any] = dict(dtype=a.dtype or ("bfloat16" if gpu else "float32"), max_model_len=a.max_model_len,
                                enforce_eager=a.enforce_eager or a.cpu_dry_run)
    if gpu:
        opts["gpu_memory_utilization"] = a.gpu_memory_utilization
    if a.ray:
        return ray_check(a, ckpt, reqs, opts, gpu)
    t = time.perf_counter()
    backend = create_backend("vllm", model=str(ckpt), seed=0, **opts)
    log(f"engine ready in {time.perf_counter() - t:.1f}s ({opts})")
    llm = backend.llm  # type: ignore[attr-defined]
    plain_prompts = [{"prompt_token_ids": r.prompt_ids} for r in reqs]
    plain_params = vllm.SamplingParams(temperature=0.0, max_tokens=a.max_tokens)

    def plain() -> tuple[float, int, list[str]]:
        t0 = time.perf_counter()
        outs = llm.generate(plain_prompts, plain_params, use_tqdm=False)
        dt = time.perf_counter() - t0
        return dt, sum(len(o.outputs[0].token_ids) for o in outs), [o.outputs[0].text for o in outs]

    def harness() -> tuple[float, int, list[str]]:
        t0 = time.perf_counter()
        res = list(backend.generate(reqs))
        dt = time.perf_counter() - t0
        failed = [r for r in res if not r.ok]
        if failed:
            raise SystemExit(f"{len(failed)} harness requests failed, first: {failed[0].error}")
        by_key = {r.key: r for r in res}
        return dt, sum(r.completion_tokens or 0 for r in res), [by_key[r.key].text for r in reqs]

    llm.generate(plain_prompts[: min(64, len(reqs))], plain_params, use_tqdm=False)  # warm-up
    log("warm-up done; timing rounds (plain, harness, harness, plain, ...)")
    times: dict[str, list[float]] = {"plain": [], "harness": []}
    tokens: dict[str, int] = {}
    texts: dict[str, list[str]] = {}
    order = [("plain", plain), ("harness", harness), ("harness", harness), ("plain", plain)] * a.rounds
    for name, fn in order[: 2 * a.rounds]:
        dt, n_tok, txt = fn()
        times[name].append(dt)
        tokens[name], texts[name] = n_tok, txt
        log(f"  {name:8} {dt:7.2f}s  {n_tok / dt:10.0f} generated tokens/s  ({n_tok} tokens)")
    backend.close()

    tps = {k: tokens[k] / min(v) for k, v in times.items()}
    ratio = tps["harness"] / tps["plain"]
    same = sum(x == y for x, y in zip(texts["plain"], texts["harness"]))
    ok = ratio >= a.target and same == len(reqs)
    print(f"\nplain vllm.LLM.generate: best {min(times['plain']):.2f}s, median {statistics.median(times['plain']):.2f}s,"
          f" {tps['plain']:.0f} tok/s")
    print(f"sfteval vllm backend:    best {min(times['harness']):.2f}s, median "
          f"{statistics.median(times['harness']):.2f}s, {tps['harness']:.0f} tok/s")
    print(f"identical greedy outputs: {same}/{len(reqs)}")
    print(f"RESULT ratio harness/plain = {ratio:.3f} (target >= {a.target}) -> {'PASS' if ok else 'FAIL'}")
    if a.json:
        a.json.write_text(json.dumps({"ratio": ratio, "target": a.target, "tokens_per_s": tps, "times_s": times,
                                      "identical": same, "n": len(reqs), "max_tokens": a.max_tokens,
                                      "model": str(ckpt), "vllm": vllm.__version__, "gpu": gpu}, indent=1))
    return 0 if ok else 1


def ray_check(a: argparse.Namespace, ckpt: Path, reqs: list[Any], opts: dict[str, Any], gpu: bool) -> int:
    """Plain vLLM (engine start + one generate) vs sfteval's --ray path (Ray start + Ray Data LLM pipeline)."""
    import vllm

    from sfteval.harness.backends import create_backend
    from sfteval.harness.backends.base import Dispatch

    t = time.perf_counter()
    backend = create_backend("vllm", model=str(ckpt), seed=0, **opts)
    outs = backend.llm.generate([{"prompt_token_ids": r.prompt_ids} for r in reqs],  # type: ignore[attr-defined]
                                vllm.SamplingParams(temperature=0.0, max_tokens=a.max_tokens), use_tqdm=False)
    plain_s = time.perf_counter() - t
    plain_texts = [o.outputs[0].text for o in outs]
    plain_tokens = sum(len(o.outputs[0].token_ids) for o in outs)
    backend.close()
    log(f"  plain    {plain_s:7.2f}s  {plain_tokens / plain_s:10.0f} generated tokens/s (engine start included)")

    dispatch = Dispatch("ray", {"address": "local", "replicas": a.replicas, "batch_size": a.ray_batch_size})
    t = time.perf_counter()
    ray_backend = create_backend("vllm", model=str(ckpt), seed=0, dispatch=dispatch, **opts)
    results = list(ray_backend.generate(reqs))
    ray_s = time.perf_counter() - t
    ray_backend.close()
    failed = [r for r in results if not r.ok]
    if failed:
        log(f"{len(failed)} requests failed on Ray Data LLM, first: {failed[0].error}")
        return 1
    by_key = {r.key: r for r in results}
    ray_texts = [by_key[r.key].text for r in reqs]
    ray_tokens = sum(r.completion_tokens or 0 for r in results)
    log(f"  ray      {ray_s:7.2f}s  {ray_tokens / ray_s:10.0f} generated tokens/s (Ray and engine start included)")
    ratio = (ray_tokens / ray_s) / (plain_tokens / plain_s)
    same = sum(x == y for x, y in zip(plain_texts, ray_texts))
    ok = ratio >= a.target and same == len(reqs)
    print(f"\nplain vllm.LLM.generate: {plain_s:.2f}s, {plain_tokens / plain_s:.0f} tok/s")
    print(f"sfteval --ray (Ray Data LLM, {a.replicas} replica(s)): {ray_s:.2f}s, {ray_tokens / ray_s:.0f} tok/s")
    print(f"identical greedy outputs: {same}/{len(reqs)}")
    print(f"RESULT ratio ray/plain = {ratio:.3f} (target >= {a.target}) -> {'PASS' if ok else 'FAIL'}")
    if a.json:
        a.json.write_text(json.dumps({"ratio": ratio, "target": a.target, "mode": "ray", "replicas": a.replicas,
                                      "tokens_per_s": {"plain": plain_tokens / plain_s, "ray": ray_tokens / ray_s},
                                      "times_s": {"plain": plain_s, "ray": ray_s}, "identical": same,
                                      "n": len(reqs), "max_tokens": a.max_tokens, "model": str(ckpt),
                                      "vllm": vllm.__version__, "gpu": gpu}, indent=1))
    return 0 if ok else 1


if __name__ == "__main__":  # required: vLLM's engine processes re-import this module when they spawn
    sys.exit(main())
