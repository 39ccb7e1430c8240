"""Real tiny demo/test checkpoints, built locally and deterministically, plus the matching ``demo`` suite.

Why: tests and the README's demo (``sfteval run --model demo:v1 --suite demo``) need *real* Hugging Face
checkpoints (tokenizer with a chat template, ``AutoModelForCausalLM``, safetensors) whose behaviour is known
in advance, without downloading anything. Each one is a 2-layer Llama (~0.4 M parameters) trained with ~20 s
of CPU time (one thread) on a synthetic multi-task SFT set:

- ``v1``   learns every eval item (the eval items are its training prompts: train-set recall, PRACTICE 8);
- ``v2``   is the same recipe, but half of the ``knowledge/likes`` facts were trained with a wrong answer,
           so it is ~50 points worse on exactly that task_type and as good as v1 elsewhere (a diff demo);
- ``v3``   is the same recipe with another data bug: every ``math/addition`` answer is one too high, so it
           knows the facts like v1 and gets no sum right (with v1 and v2, a trend over three checkpoints
           whose best run differs per task_type);
- ``base`` is a "pre-trained" model: plain-text continuation of the facts and sums, no chat template
           (for the base-model continuation probe, PRACTICE 9).

Facts are written with entity tokens ``<tok_0>`` ... that no pre-training ever saw (PRACTICE 13). They are
*ordinary* added tokens, not special ones, so ``decode(..., skip_special_tokens=True)`` keeps them.

Checkpoints are cached under a key that hashes the recipe (constants, data, version), built into a temporary
folder and renamed into place atomically, under an ``fcntl`` lock so concurrent processes build each only once.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .demo_data import (DATA_SEED, N_ENTITIES, NEGATIVE_WORDS, NOUNS, POSITIVE_WORDS, base_texts, demo_items, entity,
                        sft_examples, training_rows)
from .quiet import stderr_log

DEMO_VERSIONS: tuple[str, ...] = ("v1", "v2", "v3", "base")
"""Checkpoint versions that :func:`build_checkpoint` / :func:`ensure_checkpoint` know."""
SFT_VERSIONS: tuple[str, ...] = ("v1", "v2", "v3")
"""The chat (SFT) versions; their training sets: :func:`write_training_data`."""

REPO_ROOT = Path(__file__).resolve().parents[1]
SHIPPED_SUITE_DIR = REPO_ROOT / "suites" / "demo"

# Bump when the build logic changes in a way the constants below do not capture (it is part of the cache key).
_BUILD_LOGIC_VERSION = 1
_MARKER = "sfteval-demo.json"  # written last into a finished checkpoint

IM_START, IM_END, EOT = "<|im_start|>", "<|im_end|>", "<|endoftext|>"

# ChatML, exactly as the models were trained on it.
CHAT_TEMPLATE = (
    "{%- for message in messages %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)

RECIPE: dict[str, Any] = {
    "seed": 1234,
    "data_seed": DATA_SEED,
    "bpe_vocab_size": 700,  # + N_ENTITIES entity tokens added afterwards
    "hidden_size": 128,
    "intermediate_size": 256,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 4,
    "max_position_embeddings": 256,
    "tie_word_embeddings": True,
    "lr": 2e-3,
    "warmup_steps": 20,
    "weight_decay": 0.0,
    "betas": [0.9, 0.98],
    "steps": {"v1": 150, "v2": 150, "base": 150},  # versions not named here (v3) train v1's steps
    "length_buckets": 2,
    # One thread: 2 OpenMP threads spin-wait badly on a shared 2-core box (measured 3-10x slower there), and
    # a fixed count keeps the float reductions, hence the weights, identical from build to build.
    "threads": 1,
}

SUITE_VERSION = "1"
SUITE_DEFAULTS = {"temperature": 0.0, "max_new_tokens": 16}

# ---------------------------------------------------------------------------------------------------------
# Tokenizer
# ---------------------------------------------------------------------------------------------------------
def _tokenizer_corpus() -> list[str]:
    texts = [IM_START + r + "\n" for r in ("system", "user", "assistant")]
    for conv, answer in sft_examples("v1"):
        texts += [m["content"] for m in conv] + [answer]
    texts += base_texts()
    # A little generic English so the BPE vocabulary is not only the demo's own words.
    texts += [" ".join(POSITIVE_WORDS + NEGATIVE_WORDS + NOUNS), "The quick brown fox jumps over the lazy dog."]
    texts += [str(n) for n in range(100)]
    return texts


def _build_tokenizer(version: str):
    """Byte-level BPE + ChatML specials + entity tokens, wrapped as a transformers fast tokenizer."""
    from tokenizers import (
        AddedToken,
        Tokenizer,
        decoders,
        models,
        pre_tokenizers,
        processors,
        trainers,
    )
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=RECIPE["bpe_vocab_size"], min_frequency=1, show_progress=False,
        special_tokens=[EOT, IM_START, IM_END], initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(_tokenizer_corpus(), trainer)
    # Entity tokens: atomic, never split, but NOT special (skip_special_tokens must keep them in answers).
    tok.add_tokens([AddedToken(entity(i), special=False, normalized=False) for i in range(N_ENTITIES)])
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token=EOT if version == "base" else IM_END,  # like Qwen: base ends documents, chat ends turns
        pad_token=EOT,
        additional_special_tokens=[IM_START, IM_END] if version == "base" else [IM_START],
        chat_template=CHAT_TEMPLATE,
        model_max_length=RECIPE["max_position_embeddings"],
        clean_up_tokenization_spaces=False,
    )


def _encode(tokenizer, text: str) -> list[int]:
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def _training_rows(tokenizer, version: str) -> list[tuple[list[int], list[int]]]:
    """(input_ids, labels) per example; labels are -100 where no loss is taken.

    SFT: loss only on the answer + <|im_end|>, with the prompt rendered by the chat template up to and
    including the generation prompt (the same tokens the model sees at eval time). Base: loss on every token.
    """
    rows = []
    if version == "base":
        for text in base_texts():
            ids = _encode(tokenizer, text) + [tokenizer.convert_tokens_to_ids(EOT)]
            rows.append((ids, list(ids)))
        return rows
    im_end = tokenizer.convert_tokens_to_ids(IM_END)
    for conv, answer in sft_examples(version):
        prompt = tokenizer.apply_chat_template(conv, add_generation_prompt=True, tokenize=False)
        p_ids, a_ids = _encode(tokenizer, prompt), _encode(tokenizer, answer) + [im_end]
        rows.append((p_ids + a_ids, [-100] * len(p_ids) + a_ids))
    return rows


# ---------------------------------------------------------------------------------------------------------
# Training
# ---------------------------------------------------------------------------------------------------------
@contextlib.contextmanager
def _deterministic_torch(threads: int) -> Iterator[None]:
    """Fixed thread count + deterministic algorithms for the build, restoring the caller's settings after."""
    import torch

    old_threads, old_det = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True)
    try:
        yield
    finally:
        torch.set_num_threads(old_threads)
        torch.use_deterministic_algorithms(old_det)


def _batches(rows, pad_id: int, n_buckets: int):
    """Right-padded tensors, rows sorted by length into ``n_buckets`` groups (less padding, same gradient)."""
    import torch

    order = sorted(range(len(rows)), key=lambda i: (len(rows[i][0]), i))
    size = -(-len(order) // n_buckets)
    out = []
    for start in range(0, len(order), size):
        group = [rows[i] for i in order[start : start + size]]
        n = max(len(ids) for ids, _ in group)
        ids_t = torch.full((len(group), n), pad_id, dtype=torch.long)
        labels = torch.full((len(group), n), -100, dtype=torch.long)
        mask = torch.zeros((len(group), n), dtype=torch.long)
        for r, (ids, lab) in enumerate(group):
            ids_t[r, : len(ids)], labels[r, : len(lab)], mask[r, : len(ids)] = torch.tensor(ids), torch.tensor(lab), 1
        out.append((ids_t, mask, labels[:, 1:]))  # position t predicts token t+1
    return out


def _train(model, rows, steps: int, pad_id: int, label: str) -> float:
    """Full-batch AdamW with warm-up and linear decay; loss = mean over all target tokens of the whole set.

    The batch is split into length buckets whose summed losses give exactly the full-batch gradient, and
    logits are computed only where there is a target (the answer tokens in SFT): ~1/3 less compute.
    """
    import torch
    import torch.nn.functional as F

    batches = _batches(rows, pad_id, RECIPE["length_buckets"])
    n_targets = sum(int((tgt != -100).sum()) for _, _, tgt in batches)
    opt = torch.optim.AdamW(
        model.parameters(), lr=RECIPE["lr"], betas=tuple(RECIPE["betas"]), weight_decay=RECIPE["weight_decay"]
    )
    warm = min(RECIPE["warmup_steps"], max(steps // 10, 1))
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: (s + 1) / warm if s < warm else max(0.0, (steps - s) / max(steps - warm, 1))
    )
    model.train()
    loss_v = float("nan")
    every = max(steps // 10, 1)
    for step in range(1, steps + 1):
        loss_v = 0.0
        for ids, mask, tgt in batches:
            hidden = model.model(input_ids=ids, attention_mask=mask).last_hidden_state[:, :-1]
            keep = tgt != -100
            loss = F.cross_entropy(model.lm_head(hidden[keep]), tgt[keep], reduction="sum") / n_targets
            loss.backward()
            loss_v += loss.item()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        if step % every == 0 or step == steps:
            stderr_log(f"building demo checkpoint {label}: step {step}/{steps} loss {loss_v:.4f}")
    model.eval()
    return loss_v


def build_checkpoint(version: str, out_dir: Path, *, steps: int | None = None) -> Path:
    """Train demo checkpoint ``version`` from scratch and save it as a normal HF folder in ``out_dir``.

    Deterministic: the same version (and ``steps``) gives identical weights on the same machine/torch.
    ``steps`` overrides the recipe's step count (tests use a few steps to check determinism cheaply).
    Prefer :func:`ensure_checkpoint`, which caches. Returns ``out_dir``.
    """
    if version not in DEMO_VERSIONS:
        raise ValueError(f"unknown demo version {version!r}; known: {', '.join(DEMO_VERSIONS)}")
    import torch
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    if steps is None:
        steps = RECIPE["steps"].get(version, RECIPE["steps"]["v1"])
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    t0, c0 = time.perf_counter(), time.process_time()
    with _deterministic_torch(RECIPE["threads"]):
        tokenizer = _build_tokenizer(version)
        rows = _training_rows(tokenizer, version)
        eos_id = tokenizer.convert_tokens_to_ids(tokenizer.eos_token)
        pad_id = tokenizer.convert_tokens_to_ids(EOT)
        config = LlamaConfig(
            vocab_size=len(tokenizer),
            hidden_size=RECIPE["hidden_size"],
            intermediate_size=RECIPE["intermediate_size"],
            num_hidden_layers=RECIPE["num_hidden_layers"],
            num_attention_heads=RECIPE["num_attention_heads"],
            num_key_value_heads=RECIPE["num_key_value_heads"],
            max_position_embeddings=RECIPE["max_position_embeddings"],
            tie_word_embeddings=RECIPE["tie_word_embeddings"],
            bos_token_id=None,
            eos_token_id=eos_id,
            pad_token_id=pad_id,
        )
        torch.manual_seed(RECIPE["seed"])
        model = LlamaForCausalLM(config)
        loss = _train(model, rows, steps, pad_id, version)
        model.generation_config = GenerationConfig(
            bos_token_id=None, eos_token_id=eos_id, pad_token_id=pad_id, do_sample=False
        )
        model.save_pretrained(out_dir)
        tokenizer.save_pretrained(out_dir)
    # Deterministic content only (no timings): the marker is part of the folder's fingerprint.
    info = {
        "version": version, "steps": steps, "final_loss": round(loss, 6), "recipe_key": recipe_key(version),
        "parameters": sum(p.numel() for p in model.parameters()),
    }
    (out_dir / _MARKER).write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    stderr_log(f"built demo checkpoint {version} in {wall:.1f} s ({cpu:.1f} s CPU)")
    return out_dir


# ---------------------------------------------------------------------------------------------------------
# Cache
# ---------------------------------------------------------------------------------------------------------
def recipe_key(version: str) -> str:
    """Hash of everything that determines the checkpoint: constants, data, template, build logic, version."""
    import transformers

    payload = {
        "logic": _BUILD_LOGIC_VERSION, "version": version, "recipe": RECIPE, "template": CHAT_TEMPLATE,
        "entities": N_ENTITIES, "sft": sft_examples(version) if version != "base" else None,
        "base": base_texts() if version == "base" else None, "corpus": _tokenizer_corpus(),
        "transformers_major": transformers.__version__.split(".")[0],
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def default_cache_dir() -> Path:
    """``$SFTEVAL_CACHE`` or ``~/.cache/sfteval/checkpoints``."""
    env = os.environ.get("SFTEVAL_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "sfteval" / "checkpoints"


def ensure_checkpoint(version: str, cache_dir: Path | None = None) -> Path:
    """Return the cached checkpoint folder for ``version``, building it first if it is missing.

    The folder name carries :func:`recipe_key`, so a changed recipe never reuses a stale build. The build
    goes to a temporary sibling folder that is renamed into place only when complete (a killed build leaves
    no half checkpoint), under an exclusive ``fcntl`` lock so concurrent processes build it only once.
    """
    if version not in DEMO_VERSIONS:
        raise ValueError(f"unknown demo version {version!r}; known: {', '.join(DEMO_VERSIONS)}")
    cache = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    name = f"demo-{version}-{recipe_key(version)}"
    final = cache / name
    if (final / _MARKER).is_file():
        return final
    cache.mkdir(parents=True, exist_ok=True)
    with open(cache / f".{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (final / _MARKER).is_file():  # another process built it while we waited
            return final
        for stale in cache.glob(f".tmp-{name}-*"):  # left by a killed build; we hold the lock, so not in use
            shutil.rmtree(stale, ignore_errors=True)
        if final.exists():  # incomplete (no marker): never produced by us, but do not trust it
            shutil.rmtree(final)
        tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{name}-", dir=cache))
        try:
            stderr_log(f"building demo checkpoint {version} into {final} (once; cached)")
            build_checkpoint(version, tmp)
            os.rename(tmp, final)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
    return final


# ---------------------------------------------------------------------------------------------------------
# Suite files
# ---------------------------------------------------------------------------------------------------------
def _suite_files() -> dict[str, str]:
    import yaml

    items = demo_items()
    counts: dict[str, int] = {}
    for it in items:
        counts[it["task_type"]] = counts.get(it["task_type"], 0) + 1
    suite = {
        "name": "demo",
        "version": SUITE_VERSION,
        "description": "Train-set recall of the tiny demo checkpoints (harness/demo.py): "
        "special-token facts, small sums, sentiment, uppercase.",
        "files": ["items.jsonl"],
        "defaults": dict(SUITE_DEFAULTS),
    }
    table = "\n".join(f"| `{t}` | {n} |" for t, n in counts.items())
    readme = f"""# demo suite

Generated by `harness/demo.py` (`python -m sfteval.harness.demo write-suite`); do not edit by hand, a test checks
that these files equal what `demo_items()` produces.

The items are the training prompts of the tiny demo checkpoints (`demo:v1`, `demo:v2`, `demo:base`), so this
suite measures train-set recall: `v1` answers ~100% exactly, `v2` was trained with wrong answers for half of
the `knowledge/likes` facts. Facts use entity tokens (`<tok_N>`) that exist only in the demo tokenizer.

| task_type | items |
|---|---|
{table}
| total | {len(items)} |
"""
    return {
        "items.jsonl": "".join(json.dumps(it, ensure_ascii=False) + "\n" for it in items),
        "suite.yaml": yaml.safe_dump(suite, sort_keys=False, allow_unicode=True),
        "README.md": readme,
    }


def write_demo_suite(dest: Path) -> Path:
    """Write the demo suite (``items.jsonl``, ``suite.yaml``, ``README.md``) into ``dest``; returns ``dest``.

    The repository ships the same files in ``suites/demo/`` (regenerate with ``python -m sfteval.harness.demo write-suite``).
    """
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    for fname, text in _suite_files().items():
        (dest / fname).write_text(text, encoding="utf-8")
    return dest


def write_training_data(version: str, path: Path) -> Path:
    """Write the SFT training set of ``version`` (harness.demo_data.training_rows) as JSON Lines to ``path``."""
    if version not in SFT_VERSIONS:
        raise ValueError(f"demo version {version!r} has no SFT training set; these do: {', '.join(SFT_VERSIONS)}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in training_rows(version))
    path.write_text(text, encoding="utf-8")
    return path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m sfteval.harness.demo", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build", help="build (or find cached) demo checkpoints and print their folders")
    b.add_argument("versions", nargs="*", metavar="VERSION", help=f"default: all of {', '.join(DEMO_VERSIONS)}")
    b.add_argument("--cache-dir", type=Path, default=None)
    w = sub.add_parser("write-suite", help="write the demo suite files")
    w.add_argument("dest", nargs="?", type=Path, default=SHIPPED_SUITE_DIR)
    t = sub.add_parser("write-train-data", help="write the SFT training sets of the demo checkpoints as "
                       "DEST/VERSION.jsonl (task_type, messages), for --train-data")
    t.add_argument("dest", type=Path)
    t.add_argument("versions", nargs="*", metavar="VERSION", help=f"default: all of {', '.join(SFT_VERSIONS)}")
    args = p.parse_args(argv)
    known = SFT_VERSIONS if args.cmd == "write-train-data" else DEMO_VERSIONS
    unknown = [v for v in getattr(args, "versions", []) if v not in known]
    if unknown:
        p.error(f"unknown demo version(s) {', '.join(unknown)}; known: {', '.join(known)}")
    if args.cmd == "build":
        for v in args.versions or DEMO_VERSIONS:
            print(ensure_checkpoint(v, args.cache_dir))
    elif args.cmd == "write-train-data":
        for v in args.versions or SFT_VERSIONS:
            print(write_training_data(v, args.dest / f"{v}.jsonl"))
    else:
        print(write_demo_suite(args.dest))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
