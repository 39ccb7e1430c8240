"""`sfteval gate`: config validation (one clear error naming file and field), guards, required metrics, exit
codes 0/1/2 through the real CLI on synthetic run folders."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from diffkit import Rec, items, write_pairs, write_run
from harness.differ import diff_runs
from harness.gate import GateConfig, GateConfigError, Guards, evaluate, load_config
from harness.store import RunStore

REPO = Path(__file__).resolve().parents[1]


def sfteval(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "harness.cli", *args], capture_output=True, text=True, cwd=REPO)


ITEMS = items({"knowledge/likes": 40, "math/addition": 30, "chat": 24}, robustness=2)


def recs(bad_likes: bool = False, judge_status: str = "ok") -> dict[str, Rec]:
    out = {}
    for i, it in enumerate(ITEMS):
        bad = bad_likes and it["task_type"] == "knowledge/likes" and i % 2 == 0
        out[it["id"]] = Rec(answer=f"{'wrong' if bad else 'right'} {i}", exact=0.0 if bad else 1.0,
                            judge=3 if bad else 8,
                            probe=-8.0 if bad else -1.0, judge_status=judge_status if i % 3 == 0 else "ok")
    return out


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("runs")
    write_run(root, "v1", ITEMS, recs(), judged=True)
    write_run(root, "v2", ITEMS, recs(bad_likes=True), judged=True)
    write_run(root, "other-suite", ITEMS, recs(), judged=True, suite_hash="anothersuite99")
    write_run(root, "flaky-judge", ITEMS, recs(judge_status="unparsed"), judged=True)
    return root


# -- config -------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("text, field", [
    ("alpha: 2\n", "field alpha"),
    ("metrics:\n  usable: {min_effect: -1}\n", "field metrics.usable.min_effect"),
    ("task_types:\n  safety:\n    metrics:\n      usable: {gate: maybe}\n",
     "field task_types.safety.metrics.usable.gate"),
    ("guards:\n  max_judge_unparsed: 0.1\n", "field guards.max_judge_unparsed: Extra inputs are not permitted"),
    ("guards: {suite_hash_mismatch: ignore}\n", "field guards.suite_hash_mismatch"),
    ("schema_version: 2\n", "field schema_version"),
])
def test_bad_config_names_file_and_field(tmp_path: Path, text: str, field: str) -> None:
    path = tmp_path / "gate.yaml"
    path.write_text(text)
    with pytest.raises(GateConfigError) as err:
        load_config(path)
    assert str(path) in str(err.value) and field in str(err.value)


def test_unreadable_configs(tmp_path: Path) -> None:
    bad = tmp_path / "gate.yaml"
    bad.write_text("alpha: [0.05\n")
    with pytest.raises(GateConfigError, match=r"gate.yaml: line \d+: not valid YAML"):
        load_config(bad)
    bad.write_text("- a list\n")
    with pytest.raises(GateConfigError, match="expected a mapping"):
        load_config(bad)
    with pytest.raises(GateConfigError, match="cannot read"):
        load_config(tmp_path / "missing.yaml")
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    assert load_config(empty) == GateConfig()
    assert load_config(REPO / "examples" / "gate.yaml").guards.max_judge_unparsed_rate is not None


# -- verdicts -----------------------------------------------------------------------------------------------------

def test_regressions_fail_and_identical_runs_pass(runs: Path) -> None:
    v1, v2 = RunStore(runs / "v1"), RunStore(runs / "v2")
    verdict = evaluate(diff_runs(v1, v2, log=lambda m: None), GateConfig())
    assert not verdict.passed and verdict.exit_code == 1
    assert any(r.startswith("regression: knowledge/likes usable") for r in verdict.reasons)
    same = evaluate(diff_runs(v1, v1, log=lambda m: None), GateConfig())
    assert same.passed and same.exit_code == 0 and same.reasons == []


def test_guards(runs: Path) -> None:
    v1 = RunStore(runs / "v1")
    flaky = diff_runs(v1, RunStore(runs / "flaky-judge"), log=lambda m: None)
    assert flaky.run_b.judge_unparsed_rate == pytest.approx(1 / 3, abs=0.02)
    verdict = evaluate(flaky, GateConfig())
    assert not verdict.passed
    assert any("max_judge_unparsed_rate" in r and "flaky-judge" in r for r in verdict.reasons)
    assert evaluate(flaky, GateConfig(guards=Guards(max_judge_unparsed_rate=0.5))).passed
    other = diff_runs(v1, RunStore(runs / "other-suite"), log=lambda m: None)
    assert any("suite" in w for w in other.warnings)
    assert any(r.startswith("guard suite_hash_mismatch") for r in evaluate(other, GateConfig()).reasons)
    assert evaluate(other, GateConfig(guards=Guards(suite_hash_mismatch="warn"))).passed


def test_swap_flip_rate_guard(tmp_path: Path) -> None:
    a = write_run(tmp_path, "a", ITEMS, recs(), judged=True)
    b = write_run(tmp_path, "b", ITEMS, recs(), judged=True)
    write_pairs(b, a, {it["id"]: (it["task_type"], "tie", None) for it in ITEMS}, flip_rate=0.45)
    diff = diff_runs(a, b, log=lambda m: None)
    assert diff.pairwise is not None and diff.pairwise.swap_flip_rate == 0.45
    verdict = evaluate(diff, GateConfig())
    assert not verdict.passed and any("swap_flip_rate" in r for r in verdict.reasons)


def test_required_metrics(runs: Path) -> None:
    v1 = RunStore(runs / "v1")
    diff = diff_runs(v1, v1, log=lambda m: None)
    assert evaluate(diff, GateConfig(required_metrics=["usable", "judge:*"])).passed
    verdict = evaluate(diff, GateConfig(required_metrics=["probe:choice_acc"]))
    assert not verdict.passed and "required metric 'probe:choice_acc'" in verdict.reasons[0]


# -- the command --------------------------------------------------------------------------------------------------

def test_gate_cli_exit_codes(runs: Path, tmp_path: Path) -> None:
    fail = sfteval("gate", "--baseline", "v1", "--candidate", "v2", "--results", str(runs),
                   "--report", str(tmp_path / "comment.md"))
    assert fail.returncode == 1, fail.stderr
    assert "FAIL" in fail.stdout and "regression: knowledge/likes usable: 100.0% → 50.0%" in fail.stdout
    assert "p=" in fail.stdout and "95% CI" in fail.stdout
    assert (tmp_path / "comment.md").read_text().startswith("<!-- sfteval-report -->")
    ok = sfteval("gate", "--baseline", "v1", "--candidate", "v1", "--results", str(runs))
    assert ok.returncode == 0 and "PASS" in ok.stdout
    missing = sfteval("gate", "--baseline", "v1", "--candidate", "nope", "--results", str(runs))
    assert missing.returncode == 2 and "nope" in missing.stderr and "Traceback" not in missing.stderr
    cfg = tmp_path / "gate.yaml"
    cfg.write_text("metrics:\n  usable: {min_effect: lots}\n")
    bad = sfteval("gate", "--baseline", "v1", "--candidate", "v2", "--results", str(runs), "--config", str(cfg))
    assert bad.returncode == 2 and "gate.yaml: field metrics.usable.min_effect" in bad.stderr
    assert "Traceback" not in bad.stderr
    usage = sfteval("gate", "--baseline", "v1")
    assert usage.returncode == 2
    lenient = sfteval("gate", "--baseline", "v1", "--candidate", "v2", "--results", str(runs),
                      "--min-effect", "usable=0.9", "--min-effect", "rule:*=0.9", "--min-effect", "judge:*=9",
                      "--min-effect", "usable_score=9")
    assert lenient.returncode == 0, lenient.stdout
    badopt = sfteval("gate", "--baseline", "v1", "--candidate", "v2", "--results", str(runs), "--min-effect", "usable")
    assert badopt.returncode == 2 and "--min-effect" in badopt.stderr


def test_example_workflow_posts_one_comment_and_fails_through_the_gate() -> None:
    import yaml

    path = REPO / ".github" / "workflows" / "sfteval-pr.yml"
    flow = yaml.safe_load(path.read_text())
    job = flow["jobs"]["evaluate"]
    assert "self-hosted" in job["runs-on"] and "gpu" in job["runs-on"]
    steps = {s.get("name", s.get("uses")): s for s in job["steps"]}
    gate = steps["Diff and gate"]["run"]
    assert "sfteval gate --baseline" in gate and "--report sfteval-report.md" in gate
    post = steps["Post or update the PR comment"]
    assert post["uses"].startswith("actions/github-script@")
    assert "<!-- sfteval-report -->" in post["with"]["script"] and "updateComment" in post["with"]["script"]
    assert "exit 1" in steps["Fail the job through the gate"]["run"]
    assert flow["permissions"]["pull-requests"] == "write"
    from harness.reporting.markdown import COMMENT_MARKER

    assert COMMENT_MARKER == "<!-- sfteval-report -->"


def test_missing_and_unpaired_items_fail_the_gate(tmp_path: Path) -> None:
    a = write_run(tmp_path, "a", ITEMS, recs(), judged=True)
    b = write_run(tmp_path, "b", ITEMS[:-5], recs(), judged=True)
    partial = evaluate(diff_runs(a, b, log=lambda m: None), GateConfig())
    assert not partial.passed and any("missing_items" in r and "5 baseline items" in r for r in partial.reasons)
    assert evaluate(diff_runs(a, b, log=lambda m: None), GateConfig(guards=Guards(missing_items="warn"))).passed
    c = write_run(tmp_path, "c", items({"other/kind": 4}), {})
    disjoint = evaluate(diff_runs(a, c, log=lambda m: None), GateConfig(guards=Guards(missing_items="warn")))
    assert not disjoint.passed and any("no_paired_items" in r for r in disjoint.reasons)
