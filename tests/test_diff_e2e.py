"""diff / gate / report end to end on REAL runs of the demo checkpoints, through the real CLI.

v2 was trained with wrong answers for half of the knowledge/likes facts and is as good as v1 elsewhere, so
the diff must flag knowledge/likes (and the aggregates that contain it: its first level knowledge and the
overall row) and nothing else; the gate must fail naming it and pass a run compared with itself. A second
part judges both runs with the scripted judge behind a real OpenAI-compatible server (noise-free, known
truth) and pairwise, so judge dimensions, rationales and win/tie/loss go through the same path.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Iterator

import pytest

from sfteval.harness.differ import diff_runs
from sfteval.harness.gate import GateConfig, evaluate
from sfteval.harness.store import RunStore
from test_report import check_markdown
from clikit import cli

LIKES = "knowledge/likes"
CONTAINS_LIKES = {LIKES, "knowledge", "overall"}
LATENCY = ("gen:ttft_s", "gen:per_token_s")  # wall-clock on a shared CPU: moves with the machine's load

pytestmark = pytest.mark.slow


sfteval = cli(check=True, env={"OPENAI_API_KEY": "sk-test-diff-e2e"})


def flagged(diff, statuses: tuple[str, ...]) -> set[tuple[str, str]]:
    c = diff.cells
    return {(g, m) for g, m in c.loc[c["status"].isin(statuses), ["group", "metric"]].itertuples(index=False)}


def test_diff_flags_the_planted_regression_and_nothing_else(demo_results: Path) -> None:
    diff = diff_runs(RunStore(demo_results / "v1"), RunStore(demo_results / "v2"), log=print)
    assert diff.suite_match and diff.paired == 86 and not diff.only_a and not diff.only_b
    regressions = flagged(diff, ("regression",))
    assert (LIKES, "rule:exact_match") in regressions
    assert {g for g, _ in regressions} <= CONTAINS_LIKES, regressions
    knowledge = diff.cell("knowledge", "rule:exact_match")
    assert (("knowledge", "rule:exact_match") in regressions) == (knowledge["p_holm"] <= 0.05)
    likes = diff.cell(LIKES, "rule:exact_match")
    assert likes["delta"] < -0.3 and likes["ci_high"] < 0 and likes["test"] == "mcnemar"
    # nothing else: no improvement anywhere, and no other significant change outside knowledge/likes
    assert not flagged(diff, ("improvement",)), flagged(diff, ("improvement",))
    others = {(g, m) for g, m in flagged(diff, ("worse", "better", "changed")) if g not in CONTAINS_LIKES}
    assert {m for _, m in others} <= set(LATENCY), others
    # the flipped items are the likes facts v2 learned wrong, with what a reviewer needs to read them
    assert diff.worse and all(f.task_type == LIKES for f in diff.worse)
    first = diff.worse[0]
    assert first.detail["prompt"].endswith("likes?") and first.detail["reference"]
    assert first.detail["a"]["answer"] == first.detail["reference"] != first.detail["b"]["answer"]
    assert any("rule:exact_match 1 → 0" in r for r in first.reasons)


def test_gate_fails_naming_the_regression_and_passes_a_run_against_itself(demo_results: Path, tmp_path: Path) -> None:
    report = tmp_path / "comment.md"
    fail = sfteval("gate", "--baseline", "v1", "--candidate", "v2", "--results", str(demo_results),
                   "--report", str(report), check=False)
    assert fail.returncode == 1, fail.stdout + fail.stderr
    assert "FAIL" in fail.stdout and f"regression: {LIKES} rule:exact_match" in fail.stdout
    named = [line for line in fail.stdout.splitlines() if line.strip().startswith("- regression:")]
    assert named and all(line.split("regression: ")[1].split(" ")[0] in {LIKES, "knowledge", "[overall]"}
                         for line in named)
    md = report.read_text()
    check_markdown(md)
    assert "knowledge/likes" in md and "Items that got worse" in md
    same = sfteval("gate", "--baseline", "v2", "--candidate", "v2", "--results", str(demo_results), check=False)
    assert same.returncode == 0 and "PASS" in same.stdout


def test_diff_outputs_of_real_runs(demo_results: Path, tmp_path: Path) -> None:
    md = sfteval("diff", "v1", "v2", "--results", str(demo_results)).stdout
    tables = check_markdown(md)
    header = tables[0][0]
    assert header[:4] == ["task_type", "metric", "baseline", "candidate"]
    assert any(row[0] == LIKES for row in tables[0][1:])
    for fmt in ("json", "html"):
        out = tmp_path / f"d.{fmt}"
        sfteval("diff", "v1", "v2", "--results", str(demo_results), "--format", fmt, "--out", str(out))
    data = json.loads((tmp_path / "d.json").read_text())
    assert data["baseline"]["run_id"] == "v1" and data["candidate"]["run_id"] == "v2"
    assert {r["group"] for r in data["regressions"]} <= CONTAINS_LIKES
    assert "<svg" in (tmp_path / "d.html").read_text()
    for fmt in ("md", "json", "html"):
        sfteval("report", "v2", "--results", str(demo_results), "--format", fmt)


# -- judged by the scripted judge (real HTTP), single and pairwise ------------------------------------------------

@pytest.fixture(scope="module")
def judged_results(demo_results: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    from scripted_judge import ScriptedJudge
    from servers import OpenAIServer

    out = tmp_path_factory.mktemp("judged")
    for v in ("v1", "v2"):
        shutil.copytree(demo_results / v, out / v)
    with OpenAIServer(ScriptedJudge(), models=("scripted",)) as srv:
        judge = ["--judge", "default-en", "--judge-model", "scripted", "--judge-base-url", srv.base_url,
                 "--judge-samples", "1", "--quiet"]
        for v in ("v1", "v2"):
            sfteval("judge", str(out / v), *judge)
        sfteval("judge", "--pair", "v1", "v2", "--out", str(out), *judge)
        yield out


def test_judged_diff_regresses_on_likes_only_with_rationales_and_pairwise(judged_results: Path) -> None:
    diff = diff_runs(RunStore(judged_results / "v1"), RunStore(judged_results / "v2"), log=print)
    regressions = flagged(diff, ("regression",))
    assert (LIKES, "usable") in regressions or (LIKES, "judge:overall") in regressions, regressions
    assert {g for g, _ in regressions} <= CONTAINS_LIKES, regressions
    assert not flagged(diff, ("improvement",))
    assert diff.run_b.judge_unparsed_rate == 0 and diff.run_b.judge_samples == 86
    flip = diff.worse[0]
    assert flip.detail["a"]["judge"]["rationale"] and flip.detail["b"]["judge"]["rationale"]
    assert diff.pairwise is not None
    likes = next(g for g in diff.pairwise.groups if g["group"] == LIKES)
    assert likes["loss"] > 0.3 and likes["ci_high"] < 0.5
    assert likes["corrected_score"] < 0.5 and likes["corrected_ci_high"] < 0.5
    verdict = evaluate(diff, GateConfig())
    assert not verdict.passed and all("guard" not in r for r in verdict.reasons)
