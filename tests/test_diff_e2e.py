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
from test_report import check_markdown, gfm_tables
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


def exact_match_rates(run: Path, suite: Path, task_type: str) -> tuple[float, int]:
    """Share of the task_type's answers equal to the reference (stripped), read straight from the run's
    generations and the suite file: the truth the reports' numbers must show."""
    refs = {it["id"]: it["reference"] for it in map(json.loads, (suite / "items.jsonl").read_text().splitlines())
            if it["task_type"] == task_type}
    answers = {g["item_id"]: g["answer"] for g in map(json.loads, (run / "generations.jsonl").read_text().splitlines())
               if g["item_id"] in refs}
    assert answers.keys() == refs.keys()
    return sum(answers[i].strip() == refs[i].strip() for i in refs) / len(refs), len(refs)


def test_diff_outputs_of_real_runs(demo_results: Path, demo_suite_dir: Path, tmp_path: Path) -> None:
    from htmlkit import parse

    (rate_a, n), (rate_b, _) = (exact_match_rates(demo_results / v, demo_suite_dir, LIKES) for v in ("v1", "v2"))
    assert rate_b < rate_a  # the planted regression, counted by hand
    numbers = [f"{100 * rate_a:.1f}%", f"{100 * rate_b:.1f}%", f"{100 * (rate_b - rate_a):+.1f} pp"]
    md = sfteval("diff", "v1", "v2", "--results", str(demo_results)).stdout
    tables = check_markdown(md)
    header = tables[0][0]
    assert header[:4] == ["task_type", "metric", "baseline", "candidate"]
    assert any(row[0] == LIKES for row in tables[0][1:])
    regressions_md = md[md.index("#### Regressions"):md.index("#### Improvements")]
    likes_rows = [row for t in gfm_tables(regressions_md) for row in t[1:]
                  if (row[0], row[1].strip("`")) == (LIKES, "rule:exact_match")]
    assert likes_rows and likes_rows[0][2:5] == numbers, likes_rows
    for fmt in ("json", "html"):
        out = tmp_path / f"d.{fmt}"
        sfteval("diff", "v1", "v2", "--results", str(demo_results), "--format", fmt, "--out", str(out))
    data = json.loads((tmp_path / "d.json").read_text())
    assert data["baseline"]["run_id"] == "v1" and data["candidate"]["run_id"] == "v2"
    assert {"cells", "regressions", "verdict", "flipped", "items", "settings"} <= data.keys()
    assert {r["group"] for r in data["regressions"]} <= CONTAINS_LIKES
    likes = next(r for r in data["regressions"] if (r["group"], r["metric"]) == (LIKES, "rule:exact_match"))
    assert likes["mean_a"] == pytest.approx(rate_a) and likes["mean_b"] == pytest.approx(rate_b) and likes["n"] == n
    assert data["verdict"]["passed"] is False and data["items"]["paired"] == 86
    doc = parse((tmp_path / "d.html").read_text())
    verdict = doc.find("table", id="verdict")
    assert verdict.find("caption").text().startswith("FAIL")
    rows = {(r[0], r[1]): r[2:] for r in verdict.rows()[1:]}
    assert len(rows) == len(data["regressions"]) and rows[(LIKES, "rule:exact_match")][:3] == numbers
    assert doc.find("div", id="heatmap").find("svg").attrs["width"] == "100%"
    shown = [c for c in data["cells"] if c.get("same_as") is None]  # a first level that is its only second level
    assert len(shown) < len(data["cells"])  # (the demo's task_types all are) is shown once, as the second level
    all_cells = next(t for t in doc.find_all("table") if t.rows()[0][:2] == ["task_type", "metric"]
                     and len(t.rows()) == len(shown) + 1)
    assert [r[:2] for r in all_cells.rows()[1:]].count([LIKES, "rule:exact_match"]) == 1
    assert [d.find("summary").text().split(" · ")[0] for d in doc.find_all("details")][:len(data["flipped"]["worse"])] \
        == [f["item_id"] for f in data["flipped"]["worse"]]

    # one run's report in each format: the same numbers, from the summary the run wrote
    report_md = sfteval("report", "v2", "--results", str(demo_results), "--format", "md").stdout
    assert report_md.startswith("# sfteval run `v2`")
    header, *body = gfm_tables(report_md)[0]  # per task_type: a first level, then its task_types as "└ likes"
    likes_row = body[[r[0] for r in body].index("knowledge") + 1]
    assert likes_row[0] == "└ likes" and likes_row[header.index("n")] == str(n)
    assert likes_row[header.index("rule:exact_match")] == f"{100 * rate_b:.1f}%"
    report = json.loads(sfteval("report", "v2", "--results", str(demo_results), "--format", "json").stdout)
    assert report["manifest"]["run_id"] == "v2" and report["manifest"]["status"] == "complete"
    assert report["summary"]["task_types"][LIKES]["metrics"]["rule:exact_match"] == pytest.approx(rate_b)
    assert report["summary"]["task_types"][LIKES]["n"] == n
    page = parse(sfteval("report", "v2", "--results", str(demo_results), "--format", "html").stdout)
    assert "v2" in page.find("h1").text() and page.find_all("svg")
    per_type = next(t for t in page.find_all("table") if t.rows()[0][:2] == ["task_type", "n"])
    header, *body = per_type.rows()
    [likes_row] = [r for r in body if r[0] == LIKES]
    assert likes_row[header.index("rule:exact_match")] == f"{100 * rate_b:.1f}%" and likes_row[1] == str(n)


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


def test_judged_run_report_marks_second_levels_in_every_table(judged_results: Path) -> None:
    """report.md's per-task_type, judge and judge-cost tables all show a second level as "└ likes" under its
    first level (a markdown table drops indentation: a bare "likes" reads as one more first-level row)."""
    report = (judged_results / "v2" / "report.md").read_text()
    tables = [t for t in gfm_tables(report) if t[0][0] == "task_type"]
    assert len(tables) >= 3  # per task_type, LLM judge, judge cost
    for header, *body in tables:
        names = [r[0] for r in body]
        assert names[names.index("knowledge") + 1] == "└ likes" and "likes" not in names, (header, names)
