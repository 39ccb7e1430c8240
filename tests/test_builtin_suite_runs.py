"""The built-in suites, run by name through the real CLI on a real instruct model (SmolLM2-135M-Instruct).

`sfteval run --suite general-zh|general-en --limit 1` takes the first item of every task_type, so one short
run touches every kind of item the suites hold (multi-turn, system prompts, tools, choices, checks): each must
be generated, rule-scored where it has something to score against, and aggregated. Answers are cut at 8
tokens to keep this to a few minutes on 2 CPU cores; their quality is not what is tested.
`sfteval probe --base` on general-en checks that the continuation probe finds the suite's knowledge items
and compares their short answers.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sfteval.harness.models import Item
from sfteval.harness.suite import load_suite
from clikit import cli

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[1]


sfteval = cli(check=True)


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def first_per_task_type(items: list[Item]) -> dict[str, Item]:
    firsts: dict[str, Item] = {}
    for it in items:
        firsts.setdefault(it.task_type, it)
    return firsts


def expected_rules(item: Item, configured: list[str]) -> set[str]:
    """Rules that must have judged the item: those its task_type lists that it has something for."""
    ref = isinstance(item.final_reference, str)
    has = {"choice": bool(item.choices), "checks": bool(item.checks and item.checks.active()), "exact_match": ref,
           "normalized_match": ref}
    return {f"rule:{r}" for r in configured if has[r]}


@pytest.mark.parametrize("name", ["general-zh", "general-en"])
def test_run_builtin_suite_by_name(name: str, smollm2_dir: Path, tmp_path: Path) -> None:
    sfteval("run", "--model", str(smollm2_dir), "--suite", name, "--limit", "1", "--max-new-tokens", "8",
            "--no-probes", "--out", str(tmp_path), "--run-name", name, "-q")
    run = tmp_path / name
    suite = load_suite(name)
    firsts = first_per_task_type(suite.items)
    assert len(firsts) >= 30

    gens = _jsonl(run / "generations.jsonl")
    assert {g["item_id"] for g in gens} == {it.id for it in firsts.values()}  # --limit 1: one item per task_type
    for tt, it in firsts.items():
        turns = sorted((g["turn"], g["status"]) for g in gens if g["item_id"] == it.id)
        assert turns == [(t, "ok") for t in range(it.n_answer_turns)], (tt, it.id, turns)

    judgments = _jsonl(run / "judgments.jsonl")
    assert all(j["status"] in ("ok", "unparsed") for j in judgments)  # an 8-token answer may be unparsed, not 0
    scored = 0
    for tt, it in firsts.items():
        configured = suite.settings_for(tt).rules
        assert configured is not None, tt  # the built-in suites list every task_type's rules
        want = expected_rules(it, configured)
        got = {j["scorer"] for j in judgments if j["item_id"] == it.id}
        assert want == got, (tt, it.id, want, got)
        scored += bool(want)
    assert scored >= len(firsts) // 2  # choice or checks on most task_types

    summary = json.loads((run / "summary.json").read_text(encoding="utf-8"))
    levels = {lvl for it in suite.items for lvl in it.task_type_levels}
    assert set(summary["task_types"]) == levels
    assert all(summary["task_types"][tt]["n"] == 1 for tt in firsts)
    assert summary["counts"]["generation_errors"] == 0 and summary["counts"]["items"] == len(firsts)
    assert json.loads((run / "manifest.json").read_text())["status"] == "complete"


def test_probe_builtin_suite_with_a_base_model(smollm2_dir: Path, tmp_path: Path) -> None:
    """The same model serves as "base" (plain-text continuation) and as SFT model (chat template)."""
    proc = sfteval("probe", "--model", str(smollm2_dir), "--base", str(smollm2_dir), "--suite", "general-en",
                   "--limit", "1", "--continuation-tokens", "8", "--out", str(tmp_path), "--run-name", "p")
    knowledge = [it for it in first_per_task_type(load_suite("general-en").items).values()
                 if it.task_type.startswith("knowledge/")]
    records = {r["item_id"]: r for r in _jsonl(tmp_path / "p" / "probes.jsonl") if r["kind"] == "continuation"}
    assert set(records) == {it.id for it in knowledge} and len(records) == 3
    for it in knowledge:
        rec = records[it.id]
        assert rec["status"] == "ok", rec
        d = rec["details"]
        assert d["prefix"] == it.meta["continuation_prefix"] and d["answer"] == it.meta["short_answer"]
        first_line = d["base_continuation"].strip().split("\n")[0].lower()
        assert d["base_knows"] == (it.meta["short_answer"].lower() in first_line)
        assert isinstance(d["base_logprob"], float) and isinstance(d["sft_logprob"], float)
    # a short answer is what a base model's continuation states: "The Berlin Wall fell in" -> " 1989, ..."
    assert any(r["details"]["base_knows"] for r in records.values())
    summary = json.loads((tmp_path / "p" / "summary.json").read_text())
    assert summary["probes"]["counts"]["continuation"] == {"ok": 3, "error": 0}
    lost = {r["item_id"] for r in summary["probes"]["lost_knowledge"]}
    assert lost == {i for i, r in records.items() if r["details"]["lost"]}
    assert f"knowledge the base model had and the SFT model lost: {len(lost)} items" in proc.stdout
