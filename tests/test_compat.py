"""Run folders written by an earlier sfteval (tests/data/runs-0.1.0) still load, report and diff, also against a
run written now: the stored records and summary.json are a contract, not an implementation detail."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from clikit import cli

OLD = Path(__file__).resolve().parent / "data" / "runs-0.1.0"
sfteval = cli(check=True)


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the old runs (reports write nothing into run folders, but a copy keeps the fixture pristine)."""
    root = tmp_path_factory.mktemp("results")
    for run in ("old-v1", "old-v2"):
        shutil.copytree(OLD / run, root / run)
    return root


def test_old_summaries_load_typed_with_the_numbers_they_were_written_with(results: Path) -> None:
    from sfteval.harness.runfolder import RunFolder

    for run in ("old-v1", "old-v2"):
        raw = json.loads((results / run / "summary.json").read_text())
        summary = RunFolder.open(run, results).summary()
        assert summary.overall.metrics == raw["overall"]["metrics"]
        assert summary.judge is not None and summary.judge.reliability.samples == raw["judge"]["reliability"]["samples"]
        assert summary.headline is not None and summary.headline.overall == raw["headline"]["overall"]
        assert summary.probes is not None and summary.probes.counts == raw["probes"]["counts"]


def test_old_runs_report_and_diff(results: Path) -> None:
    report = json.loads(sfteval("report", "old-v2", "--results", str(results), "--format", "json").stdout)
    raw = json.loads((results / "old-v2" / "summary.json").read_text())
    assert report["summary"]["task_types"] == raw["task_types"]
    diff = json.loads(sfteval("diff", "old-v1", "old-v2", "--results", str(results), "--format", "json").stdout)
    cells = {(c["group"], c["metric"]): c for c in diff["cells"]}
    likes = cells[("knowledge/likes", "rule:exact_match")]
    old = {r: json.loads((results / r / "summary.json").read_text())["task_types"]["knowledge/likes"]["metrics"]
           for r in ("old-v1", "old-v2")}
    assert likes["mean_a"] == pytest.approx(old["old-v1"]["rule:exact_match"])
    assert likes["mean_b"] == pytest.approx(old["old-v2"]["rule:exact_match"])
    assert diff["pairwise"] is not None  # the pair folder the old `judge --pair` wrote


def test_a_new_run_diffs_against_an_old_one(results: Path, demo_checkpoints: dict[str, Path]) -> None:
    sfteval("run", "--model", str(demo_checkpoints["v1"]), "--suite", "demo", "--limit", "3", "--out", str(results),
            "--run-name", "new-v1", "--no-probes", "-q")
    proc = sfteval("diff", "old-v1", "new-v1", "--results", str(results), "--format", "json")
    diff = json.loads(proc.stdout)
    items = diff["items"]
    assert items["paired"] == 12 and not items["only_in_baseline"] and not items["only_in_candidate"]
    assert not items["changed_content"]  # the items written then are the items read now
    assert diff["suite_match"] and diff["baseline"]["suite_hash"] == diff["candidate"]["suite_hash"]
    assert "suite" not in proc.stderr.lower()
    cells = {(c["group"], c["metric"]): c for c in diff["cells"]}
    assert cells[("overall", "rule:exact_match")]["delta"] == 0.0  # the same checkpoint answers the same
