"""`sfteval gate`: config validation (one clear error naming file and field), guards, required metrics, exit
codes 0/1/2 through the real CLI on synthetic run folders."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from diffkit import Rec, items, write_pairs, write_run
from htmlkit import parse
from sfteval.harness.differ import diff_runs
from sfteval.harness.gate import GateConfig, GateConfigError, Guards, evaluate, load_config
from sfteval.harness.store import RunStore
from clikit import cli

REPO = Path(__file__).resolve().parents[1]


sfteval = cli()


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


def _guard_reasons(diff, **guards) -> list[str]:
    return [r for r in evaluate(diff, GateConfig(guards=Guards(**guards))).reasons if r.startswith("guard ")]


def test_judge_and_generation_error_rate_guards(tmp_path: Path) -> None:
    """Error rates are checked in both runs against their limit (a rate equal to the limit passes)."""
    its = items({"chat": 100})

    def run(name: str, n_bad: int, **bad: object) -> RunStore:
        recs = {it["id"]: Rec(exact=1.0, judge=8, **(bad if i < n_bad else {})) for i, it in enumerate(its)}
        return write_run(tmp_path, name, its, recs, judged=True)

    clean = run("clean", 0)
    gen5, gen6 = run("gen5", 5, gen_error=True), run("gen6", 6, gen_error=True)
    judge6 = run("judge6", 6, judge_status="error")
    diff = lambda a, b: diff_runs(a, b, log=lambda m: None)  # noqa: E731

    assert diff(clean, gen6).run_b.generation_error_rate == pytest.approx(0.06)
    assert _guard_reasons(diff(clean, gen5)) == []  # 5.0% is the default limit, and allowed
    for a, b, side in ((clean, gen6, "candidate gen6"), (gen6, clean, "baseline gen6")):
        reasons = _guard_reasons(diff(a, b))
        assert len(reasons) == 1 and f"max_generation_error_rate ({side})" in reasons[0], reasons
        assert "is 6.0% (> 5.0% allowed)" in reasons[0]
    assert _guard_reasons(diff(clean, gen6), max_generation_error_rate=0.06) == []
    assert _guard_reasons(diff(clean, gen6), max_generation_error_rate=None) == []

    judged = diff(clean, judge6)
    assert judged.run_b.judge_error_rate == pytest.approx(0.06) and judged.run_b.judge_unparsed_rate == 0
    reasons = _guard_reasons(judged)
    assert len(reasons) == 1 and "max_judge_error_rate (candidate judge6)" in reasons[0], reasons
    assert "judge's error rate in candidate judge6 is 6.0%" in reasons[0]
    assert _guard_reasons(diff(judge6, clean))[0].startswith("guard max_judge_error_rate (baseline judge6)")
    assert _guard_reasons(judged, max_judge_error_rate=0.1) == []
    assert _guard_reasons(judged, max_judge_error_rate=None) == []
    verdict = evaluate(judged, GateConfig())
    assert {g.name: g.passed for g in verdict.guards if "error" in g.name} == {
        "max_judge_error_rate (baseline clean)": True, "max_judge_error_rate (candidate judge6)": False,
        "max_generation_error_rate (baseline clean)": True, "max_generation_error_rate (candidate judge6)": True}


def test_example_config_reports_latency_without_gating_it(tmp_path: Path) -> None:
    """examples/gate.yaml follows the README: a slower candidate is marked worse, but the gate passes."""
    config = load_config(REPO / "examples" / "gate.yaml")
    its = items({"chat": 60, "safety/refusal": 20})  # the example requires usable in safety
    fast = {it["id"]: Rec(exact=1.0, judge=8, ttft=0.05 + 0.001 * (i % 7)) for i, it in enumerate(its)}
    slow = {k: Rec(exact=1.0, judge=8, ttft=r.ttft * 3) for k, r in fast.items()}
    a = write_run(tmp_path, "fast", its, fast, judged=True)
    b = write_run(tmp_path, "slow", its, slow, judged=True)
    diff = diff_runs(a, b, config, log=lambda m: None)
    assert diff.cell("overall", "gen:ttft_s")["status"] == "worse"
    assert evaluate(diff, config).passed


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


WORKFLOW = REPO / "examples" / "workflows" / "sfteval-pr.yml"


def sfteval_calls(script: str) -> list[list[str]]:
    """Each `sfteval ...` command line of a workflow step's script, split into words (continuations joined)."""
    import shlex

    calls = []
    for line in script.replace("\\\n", " ").splitlines():
        words = shlex.split(line, comments=True)
        if "sfteval" in words:
            calls.append(words[words.index("sfteval") + 1:])
    return calls


@pytest.mark.parametrize("suffix", [".json", ".html"])
def test_gate_report_by_extension_states_the_same_verdict(runs: Path, tmp_path: Path, suffix: str) -> None:
    out = tmp_path / f"report{suffix}"
    proc = sfteval("gate", "--baseline", "v1", "--candidate", "v2", "--results", str(runs), "--report", str(out))
    assert proc.returncode == 1, proc.stderr
    printed = [line[4:] for line in proc.stdout.splitlines() if line.startswith("  - ")]
    assert printed and any(r.startswith("regression: knowledge/likes usable") for r in printed)
    text = out.read_text(encoding="utf-8")
    if suffix == ".json":
        data = json.loads(text)
        assert data["verdict"]["passed"] is False and data["verdict"]["reasons"] == printed
        assert data["candidate"]["run_id"] == "v2" and data["counts"]["regression"] > 0
    else:
        check_html_verdict(text, printed, passed=False)


def check_html_verdict(page: str, printed: list[str], passed: bool) -> None:
    """The HTML report's verdict table says what the gate printed: PASS/FAIL, one row per regression line (same
    task_type and metric, same order), and every other failure reason listed under it."""
    assert page.startswith("<!DOCTYPE html>")
    table = parse(page).find("table", id="verdict")
    assert table.find("caption").text().startswith("PASS" if passed else "FAIL")
    regressions = [r.removeprefix("regression: ") for r in printed if r.startswith("regression: ")]
    expected = [(r.split(" ", 1)[0], r.split(" ", 1)[1].split(": ", 1)[0]) for r in regressions]
    rows = table.rows()[1:]
    assert [(row[0], row[1]) for row in rows if len(row) > 1] == expected
    others = [r for r in printed if not r.startswith("regression: ")]
    listed = [li.text() for ul in parse(page).find_all("ul", id="other-reasons") for li in ul.find_all("li")]
    assert listed == others


def test_html_report_lists_guard_failures_under_the_verdict_table(runs: Path, tmp_path: Path) -> None:
    out = tmp_path / "report.html"
    proc = sfteval("gate", "--baseline", "v1", "--candidate", "flaky-judge", "--results", str(runs),
                   "--report", str(out))
    printed = [line[4:] for line in proc.stdout.splitlines() if line.startswith("  - ")]
    assert proc.returncode == 1 and any(r.startswith("guard ") for r in printed), proc.stdout
    check_html_verdict(out.read_text(encoding="utf-8"), printed, passed=False)
    same = tmp_path / "same.html"
    assert sfteval("gate", "--baseline", "v1", "--candidate", "v1", "--results", str(runs), "--report",
                   str(same)).returncode == 0
    check_html_verdict(same.read_text(encoding="utf-8"), [], passed=True)
    assert parse(same.read_text(encoding="utf-8")).find("table", id="verdict").rows()[1:] == [["no regressions"]]


def test_example_workflow_posts_one_comment_and_fails_through_the_gate() -> None:
    import yaml

    flow = yaml.safe_load(WORKFLOW.read_text())
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
    from sfteval.harness.reporting.markdown import COMMENT_MARKER

    assert COMMENT_MARKER == "<!-- sfteval-report -->"


def test_example_workflow_works_when_copied_into_a_training_repository() -> None:
    """It installs sfteval (pinned) rather than the checked-out repository, names nothing that exists only in
    the sfteval source tree, skips itself unless configured (and for forks), and calls only real options."""
    import yaml

    import sfteval.harness as harness
    from sfteval.harness.cli import main
    from sfteval.harness.suite import list_builtin_suites

    flow = yaml.safe_load(WORKFLOW.read_text())
    job = flow["jobs"]["evaluate"]
    assert "vars.SFTEVAL_BASELINE != ''" in job["if"]
    assert "github.event.pull_request.head.repo.full_name == github.repository" in job["if"]
    env = job["env"]
    pinned = f"sfteval[vllm]=={harness.__version__}"
    assert "vars.SFTEVAL_PIP_SPEC" in env["PIP_SPEC"] and f"'{pinned}'" in env["PIP_SPEC"]
    assert f"`{pinned}`" in (REPO / "README.md").read_text(encoding="utf-8")  # the documented default
    assert env["SUITE"] == "${{ vars.SFTEVAL_SUITE || 'general-zh' }}" and "general-zh" in list_builtin_suites()
    assert env["GATE_CONFIG"] == "${{ vars.SFTEVAL_GATE_CONFIG }}"
    scripts = [s["run"] for s in job["steps"] if "run" in s]
    install = next(s for s in scripts if "pip" in s)
    assert 'install -q "$PIP_SPEC"' in install and "-e" not in install.split()
    for script in scripts:
        assert "examples/" not in script and "suites/" not in script, script
    calls = [c for s in scripts for c in sfteval_calls(s)]
    assert {c[0] for c in calls} == {"run", "judge", "gate", "diff"}
    for words in calls:
        command = main.commands[words[0]]
        known = {o for p in command.params for o in p.opts}
        used = {w for w in words[1:] if w.startswith("--")}
        assert used <= known, f"sfteval {words[0]}: unknown options {used - known}"
        if words[0] in ("gate", "diff"):
            assert "${config[@]}" in words  # the optional SFTEVAL_GATE_CONFIG reaches both
    # A copied workflow must never queue for a self-hosted GPU runner before it is configured, nor run a fork's
    # code there: every self-hosted job of every example is guarded by the baseline variable and the fork check.
    examples = sorted((REPO / "examples" / "workflows").glob("*.y*ml"))
    assert WORKFLOW in examples
    for path in examples:
        for name, each in yaml.safe_load(path.read_text())["jobs"].items():
            runs_on = each["runs-on"]
            if "self-hosted" in ([runs_on] if isinstance(runs_on, str) else runs_on):
                guard = each.get("if", "")
                assert "vars.SFTEVAL_BASELINE != ''" in guard, f"{path.name}: job {name} runs unconfigured"
                assert "head.repo.full_name == github.repository" in guard, f"{path.name}: job {name} runs forks"
    # sfteval's own pull requests must never queue for a self-hosted GPU runner
    for own in (REPO / ".github" / "workflows").glob("*.y*ml"):
        assert "self-hosted" not in own.read_text(), own


def test_missing_and_unpaired_items_fail_the_gate(tmp_path: Path) -> None:
    a = write_run(tmp_path, "a", ITEMS, recs(), judged=True)
    b = write_run(tmp_path, "b", ITEMS[:-5], recs(), judged=True)
    partial = evaluate(diff_runs(a, b, log=lambda m: None), GateConfig())
    assert not partial.passed and any("missing_items" in r and "5 baseline items" in r for r in partial.reasons)
    assert evaluate(diff_runs(a, b, log=lambda m: None), GateConfig(guards=Guards(missing_items="warn"))).passed
    c = write_run(tmp_path, "c", items({"other/kind": 4}), {})
    disjoint = evaluate(diff_runs(a, c, log=lambda m: None), GateConfig(guards=Guards(missing_items="warn")))
    assert not disjoint.passed and any("no_paired_items" in r for r in disjoint.reasons)
