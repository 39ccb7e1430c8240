"""The tiny demo checkpoints and the demo suite (harness/demo.py): format, determinism, caching, behaviour."""

from __future__ import annotations

import json
import threading
from collections import Counter, defaultdict
from pathlib import Path

import pytest
import yaml

from sfteval.harness import demo
from sfteval.harness.models import Item, SuiteConfig

# ---------------------------------------------------------------------------------------------------------
# Suite data (fast)
# ---------------------------------------------------------------------------------------------------------


def test_demo_items_are_valid_items_with_distinct_counts_per_task_type():
    items = [Item(**d) for d in demo.demo_items()]
    assert 60 <= len(items) <= 100
    assert len({it.id for it in items}) == len(items)
    counts = Counter(it.task_type for it in items)
    assert set(counts) == {"knowledge/likes", "math/addition", "classification/sentiment", "text/uppercase"}
    assert len(set(counts.values())) == len(counts), counts
    assert any(it.messages and it.messages[0].role == "system" for it in items)
    for it in items:
        assert it.reference and it.reference == it.reference.strip()
        if it.task_type == "classification/sentiment":
            assert it.choices == ["positive", "negative"] and it.label == it.reference
    assert demo.demo_items() == demo.demo_items()  # deterministic


def test_shipped_demo_suite_equals_generated(tmp_path):
    generated = demo.write_demo_suite(tmp_path / "demo")
    shipped = demo.SHIPPED_SUITE_DIR
    names = sorted(p.name for p in generated.iterdir())
    assert sorted(p.name for p in shipped.iterdir()) == names, "regenerate: python -m sfteval.harness.demo write-suite"
    for name in names:
        assert (shipped / name).read_text(encoding="utf-8") == (generated / name).read_text(encoding="utf-8"), (
            f"suites/demo/{name} is stale; regenerate: python -m sfteval.harness.demo write-suite"
        )
    config = SuiteConfig(**yaml.safe_load((shipped / "suite.yaml").read_text(encoding="utf-8")))
    assert config.name == "demo" and config.defaults.temperature == 0.0 and config.defaults.max_new_tokens == 16
    lines = (shipped / "items.jsonl").read_text(encoding="utf-8").splitlines()
    assert [json.loads(line) for line in lines] == demo.demo_items()


# ---------------------------------------------------------------------------------------------------------
# Building and caching
# ---------------------------------------------------------------------------------------------------------


def test_build_is_deterministic(tmp_path):
    a = demo.build_checkpoint("v2", tmp_path / "a", steps=3)
    b = demo.build_checkpoint("v2", tmp_path / "b", steps=3)
    names = sorted(p.name for p in a.iterdir())
    assert names == sorted(p.name for p in b.iterdir()) and "model.safetensors" in names
    for name in names:  # weights, tokenizer, configs and the build marker
        assert (a / name).read_bytes() == (b / name).read_bytes(), name


def test_recipe_key_differs_per_version():
    keys = {v: demo.recipe_key(v) for v in demo.DEMO_VERSIONS}
    assert len(set(keys.values())) == len(keys)
    assert demo.recipe_key("v1") == demo.recipe_key("v1")
    with pytest.raises(ValueError, match="unknown demo version"):
        demo.ensure_checkpoint("v9")


def _fake_build(calls: list, fail: bool = False):
    def build(version, out_dir, *, steps=None):
        calls.append(version)
        (Path(out_dir) / "model.safetensors").write_bytes(b"partial")
        if fail:
            raise KeyboardInterrupt  # like a user's Ctrl-C in the middle of training
        threading.Event().wait(0.3)  # let the other thread reach the lock
        (Path(out_dir) / demo._MARKER).write_text("{}")
        return Path(out_dir)

    return build


def test_ensure_checkpoint_builds_once_under_concurrency(tmp_path, monkeypatch):
    calls: list = []
    monkeypatch.setattr(demo, "build_checkpoint", _fake_build(calls))
    results: list = []
    threads = [threading.Thread(target=lambda: results.append(demo.ensure_checkpoint("v1", tmp_path))) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert calls == ["v1"]
    assert len(set(results)) == 1 and results[0].name == f"demo-v1-{demo.recipe_key('v1')}"
    assert demo.ensure_checkpoint("v1", tmp_path) == results[0] and calls == ["v1"]  # cached
    assert not list(tmp_path.glob(".tmp-*"))


def test_interrupted_build_leaves_no_checkpoint(tmp_path, monkeypatch):
    calls: list = []
    monkeypatch.setattr(demo, "build_checkpoint", _fake_build(calls, fail=True))
    with pytest.raises(KeyboardInterrupt):
        demo.ensure_checkpoint("v2", tmp_path)
    assert not [p for p in tmp_path.iterdir() if not p.name.endswith(".lock")]
    # A temp folder left by a killed process (no chance to clean up) is removed by the next build.
    stale = tmp_path / f".tmp-demo-v2-{demo.recipe_key('v2')}-killed"
    stale.mkdir()
    monkeypatch.setattr(demo, "build_checkpoint", _fake_build(calls))
    path = demo.ensure_checkpoint("v2", tmp_path)
    assert (path / demo._MARKER).is_file() and not stale.exists()


def test_default_cache_dir_honours_env(monkeypatch, tmp_path):
    monkeypatch.setenv("SFTEVAL_CACHE", str(tmp_path))
    assert demo.default_cache_dir() == tmp_path
    monkeypatch.delenv("SFTEVAL_CACHE")
    assert demo.default_cache_dir() == Path.home() / ".cache" / "sfteval" / "checkpoints"


# ---------------------------------------------------------------------------------------------------------
# The real checkpoints (built once per cache, ~1 min each)
# ---------------------------------------------------------------------------------------------------------


def _greedy(path: Path, prompts: list[str], max_new_tokens: int = 16) -> list[str]:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(path)
    tok.padding_side = "left"
    model = AutoModelForCausalLM.from_pretrained(path).eval()
    enc = tok(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
    with torch.no_grad():
        out = model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False)
    return tok.batch_decode(out[:, enc["input_ids"].shape[1] :], skip_special_tokens=True)


def _exact_match_by_task_type(path: Path) -> dict[str, float]:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(path)
    items = [Item(**d) for d in demo.demo_items()]
    prompts = [
        tok.apply_chat_template([m.model_dump() for m in it.conversation], add_generation_prompt=True, tokenize=False)
        for it in items
    ]
    hits: dict[str, list[bool]] = defaultdict(list)
    for it, answer in zip(items, _greedy(path, prompts)):
        hits[it.task_type].append(answer == it.reference)  # exact, to the character
    return {t: 100.0 * sum(h) / len(h) for t, h in hits.items()}


@pytest.fixture(scope="module")
def exact_match(demo_checkpoints) -> dict[str, dict[str, float]]:
    return {v: _exact_match_by_task_type(demo_checkpoints[v]) for v in ("v1", "v2")}


@pytest.mark.slow
def test_checkpoint_is_a_normal_hf_folder(demo_checkpoints):
    from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig

    path = demo_checkpoints["v1"]
    tok = AutoTokenizer.from_pretrained(path)
    assert 600 <= len(tok) <= 1000 and tok.eos_token == "<|im_end|>" and tok.pad_token == "<|endoftext|>"
    assert tok.bos_token is None
    rendered = tok.apply_chat_template(
        [{"role": "system", "content": "S"}, {"role": "user", "content": "hi"}], add_generation_prompt=True, tokenize=False
    )
    assert rendered == "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"
    ids = tok("<tok_3> likes?", add_special_tokens=False)["input_ids"]
    assert tok.convert_ids_to_tokens(ids)[0] == "<tok_3>"
    assert tok.decode(ids, skip_special_tokens=True) == "<tok_3> likes?"  # entity tokens are not "special"
    model = AutoModelForCausalLM.from_pretrained(path)
    assert 300_000 <= model.num_parameters() <= 500_000
    gen = GenerationConfig.from_pretrained(path)
    assert gen.eos_token_id == tok.eos_token_id and gen.pad_token_id == tok.pad_token_id
    assert (path / "model.safetensors").is_file()
    assert AutoTokenizer.from_pretrained(demo_checkpoints["base"]).eos_token == "<|endoftext|>"


@pytest.mark.slow
def test_v1_recalls_every_task_type(exact_match):
    assert all(score >= 95.0 for score in exact_match["v1"].values()), exact_match["v1"]


@pytest.mark.slow
def test_v2_is_worse_on_exactly_one_task_type(exact_match):
    v1, v2 = exact_match["v1"], exact_match["v2"]
    assert v1["knowledge/likes"] - v2["knowledge/likes"] >= 40.0, (v1, v2)
    for task_type in v1:
        if task_type != "knowledge/likes":
            assert abs(v1[task_type] - v2[task_type]) <= 10.0, (task_type, v1, v2)


@pytest.mark.slow
def test_base_continues_plain_text_facts(demo_checkpoints):
    items = [Item(**d) for d in demo.demo_items() if d["task_type"] in ("knowledge/likes", "math/addition")]
    answers = _greedy(demo_checkpoints["base"], [it.meta["continuation_prefix"] for it in items], max_new_tokens=4)
    correct = [a.startswith(it.reference) for it, a in zip(items, answers)]
    assert sum(correct) / len(correct) >= 0.95, list(zip(answers, [it.reference for it in items]))
