"""Probes on real checkpoints: parity with lm-evaluation-harness, and what the demo checkpoints are known to do.

- lm-eval (``HFLM.loglikelihood``) is an independent implementation: same (context, continuation) pairs,
  its whitespace convention on both sides, sums within 1e-4 and identical greedy flags, on a tiny demo
  checkpoint and on SmolLM2-135M-Instruct.
- demo ``v2`` was trained with wrong answers for half of the ``knowledge/likes`` facts: the reference probe
  must rank v1 above v2 there; the continuation probe against ``demo:base`` must find exactly such items.
- sentiment choices are single tokens: the choice probe's prediction must be the greedy answer.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sfteval.harness.models import Item
from sfteval.harness.probes import plan_probes, score_texts
from sfteval.harness.render import Renderer
from sfteval.harness.suite import load_suite

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[1]
import lm_eval  # noqa: E402,F401  the independent oracle (dev extra): a missing install must fail, not skip
from clikit import cli


sfteval = cli(check=True)


@pytest.fixture(scope="module")
def demo_suite(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from sfteval.harness.demo import write_demo_suite

    return write_demo_suite(tmp_path_factory.mktemp("demo-suite"))


def assert_matches_lm_eval(model_dir: Path, items: list[Item]) -> int:
    from sfteval.harness.backends import create_backend
    from lm_eval_oracle import lm_eval_loglikelihood, lm_eval_model

    with create_backend("hf", model=str(model_dir), device="cpu", dtype="float32") as backend:
        renderer = Renderer(backend.tokenizer)
        pairs = [(p.context, c) for p in plan_probes(items, renderer) for c in p.continuations]
        ours = score_texts(backend, renderer, pairs, whitespace="lm-eval")
    theirs = lm_eval_loglikelihood(lm_eval_model(model_dir, batch_size=8), pairs)
    for (ctx, cont), mine, (value, greedy) in zip(pairs, ours, theirs):
        assert mine.ok, mine.error
        assert sum(mine.token_logprobs) == pytest.approx(value, abs=1e-4), (ctx[-40:], cont)
        assert all(mine.greedy) == greedy, (ctx[-40:], cont)
    return len(pairs)


def test_matches_lm_eval_on_a_tiny_demo_checkpoint(demo_checkpoints: dict[str, Path], demo_suite: Path) -> None:
    n = assert_matches_lm_eval(demo_checkpoints["v2"], load_suite(str(demo_suite)).items)
    assert n > 100  # every reference and every choice of the demo suite


def test_matches_lm_eval_on_smollm2(smollm2_dir: Path) -> None:
    items = load_suite("general-en").items
    refs = [it for it in items if it.final_reference and not it.choices][:16]
    choices = [it for it in items if it.choices][:4]
    assert len(choices) == 4
    assert assert_matches_lm_eval(smollm2_dir, refs + choices) >= 28


@pytest.fixture(scope="module")
def runs(demo_checkpoints: dict[str, Path], demo_suite: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`sfteval run` (probes on by default) and `sfteval probe --base demo:base` for v1 and v2."""
    out = tmp_path_factory.mktemp("runs")
    for v in ("v1", "v2"):
        ckpt = str(demo_checkpoints[v])
        sfteval("run", "--model", ckpt, "--suite", str(demo_suite), "--out", str(out), "--run-name", f"run-{v}", "-q",
                "--batch-size", "16")
        sfteval("probe", "--model", ckpt, "--base", str(demo_checkpoints["base"]), "--suite", str(demo_suite),
                "--out", str(out), "--run-name", f"probe-{v}", "-q")
    return out


def _summary(runs: Path, name: str) -> dict:
    return json.loads((runs / name / "summary.json").read_text())


def _records(runs: Path, name: str, kind: str) -> dict[str, dict]:
    recs = [json.loads(line) for line in (runs / name / "probes.jsonl").read_text().splitlines()]
    return {r["item_id"]: r for r in recs if r["kind"] == kind}


def test_reference_probe_ranks_v1_above_v2_where_v2_was_made_worse(runs: Path) -> None:
    v1, v2 = (_summary(runs, f"run-{v}")["task_types"] for v in ("v1", "v2"))
    drop = {tt: v1[tt]["metrics"]["probe:ref_token_mean"] - v2[tt]["metrics"]["probe:ref_token_mean"]
            for tt in v1 if "/" in tt}
    assert max(drop, key=drop.get) == "knowledge/likes" and drop["knowledge/likes"] > 1.0
    assert v1["knowledge/likes"]["metrics"]["probe:ref_mean"] > v2["knowledge/likes"]["metrics"]["probe:ref_mean"]
    r1, r2 = _records(runs, "run-v1", "reference"), _records(runs, "run-v2", "reference")
    odd = [i for i in r1 if i.startswith("likes-") and int(i.split("-")[1]) % 2]  # the facts v2 learned wrong
    assert all(r1[i]["sum_logprob"] > r2[i]["sum_logprob"] for i in odd)
    # the per-item and per-token aggregates are both reported, and the probe-only run has the same numbers
    p1 = _summary(runs, "probe-v1")["task_types"]["knowledge/likes"]["metrics"]
    assert p1["probe:ref_sum"] == pytest.approx(v1["knowledge/likes"]["metrics"]["probe:ref_sum"], abs=1e-4)
    assert {"probe:ref_sum_total", "probe:ref_tokens", "probe:ref_greedy"} <= set(p1)


def test_choice_probe_equals_greedy_generation_for_single_token_answers(runs: Path) -> None:
    for v in ("v1", "v2"):
        choice = _records(runs, f"run-{v}", "choice")
        gens = {json.loads(g)["item_id"]: json.loads(g) for g in
                (runs / f"run-{v}" / "generations.jsonl").read_text().splitlines()}
        assert len(choice) == 16
        for item_id, rec in choice.items():
            assert set(rec["details"]["n_tokens"].values()) == {1}  # single-token answers, scored exactly
            assert rec["predicted"] == gens[item_id]["answer"].strip(), item_id
        tt = _summary(runs, f"run-{v}")["task_types"]["classification/sentiment"]["metrics"]
        assert tt["probe:choice_acc"] == pytest.approx(tt["rule:choice"])  # the rule reads the greedy answer


def test_continuation_probe_finds_the_knowledge_v2_lost(runs: Path) -> None:
    lost = {v: {r["item_id"] for r in _summary(runs, f"probe-{v}")["probes"]["lost_knowledge"]} for v in ("v1", "v2")}
    cont = _records(runs, "probe-v2", "continuation")
    assert len(cont) == 36 + 24  # likes facts and sums carry meta.continuation_prefix
    base_knows = [r["details"]["base_knows"] for r in cont.values()]
    assert sum(base_knows) >= 0.9 * len(base_knows)  # the base model was trained on exactly these texts
    odd = {i for i in cont if i.startswith("likes-") and int(i.split("-")[1]) % 2}
    assert lost["v2"] and lost["v2"] <= odd and len(lost["v2"]) >= 0.8 * len(odd)
    assert not lost["v1"]
    worst = cont[sorted(lost["v2"])[0]]["details"]
    assert worst["logprob_gap"] < 0 and worst["weaker"]  # SFT gives the reference less probability than the base
    assert "lost" in (runs / "probe-v2" / "report.md").read_text()
