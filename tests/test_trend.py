"""sfteval trend over three runs with known per-item outcomes: the best run per task_type and the regressions
against the best earlier run, checked against counts by hand and scipy's exact binomial test."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from scipy import stats as sps

from diffkit import Rec, items, write_run
from clikit import cli

sfteval = cli(check=True)


def test_trend_best_runs_and_regressions(tmp_path: Path) -> None:
    its = items({"knowledge/likes": 40, "math/add": 30})
    outcome = {  # per run: how many of each task_type's items are right (the first k)
        "ckpt-step-100": {"knowledge/likes": 20, "math/add": 10},
        "ckpt-step-200": {"knowledge/likes": 38, "math/add": 20},
        "ckpt-step-300": {"knowledge/likes": 19, "math/add": 29},
    }
    for run, right in outcome.items():
        recs = {it["id"]: Rec(exact=float(int(it["id"][-3:]) < right[it["task_type"]])) for it in its}
        write_run(tmp_path, run, its, recs)
    runs = ["ckpt-step-300", "ckpt-step-100", "ckpt-step-200"]  # given out of order: sorted by the parsed step
    data = json.loads(sfteval("trend", *runs, "--results", str(tmp_path), "--format", "json").stdout)
    assert [r["run_id"] for r in data["runs"]] == ["ckpt-step-100", "ckpt-step-200", "ckpt-step-300"]
    best = {r["group"]: data["runs"][r["best"]]["run_id"] for r in data["table"] if r["metric"] == "rule:exact_match"}
    assert best["knowledge/likes"] == "ckpt-step-200" and best["math/add"] == "ckpt-step-300"
    regs = {(data["runs"][r["run"]]["run_id"], r["group"], r["metric"]) for r in data["regressions"]}
    assert ("ckpt-step-300", "knowledge/likes", "rule:exact_match") in regs
    assert {g for _, g, _ in regs} <= {"knowledge/likes", "knowledge", "overall"}
    assert all(run == "ckpt-step-300" for run, _, _ in regs)  # step 200 only improved on step 100
    likes = next(r for r in data["regressions"] if (r["group"], r["metric"]) == ("knowledge/likes", "rule:exact_match"))
    # 19 items right at step 300 that were right at step 200 too; 19 lost, 0 gained: exact binomial test
    assert likes["p_value"] == np.float64(sps.binomtest(0, 19, 0.5).pvalue).item() or \
        abs(likes["p_value"] - sps.binomtest(0, 19, 0.5).pvalue) < 1e-12
    assert likes["against"] == 1 and likes["mean_best"] == 38 / 40 and likes["mean_run"] == 19 / 40
    md = sfteval("trend", *runs, "--results", str(tmp_path)).stdout
    assert "★" in md and "🔴" in md and "#### Regressions" in md
    page = sfteval("trend", *runs, "--results", str(tmp_path), "--format", "html").stdout
    assert "<polyline" in page and "ckpt-step-200" in page
    labelled = json.loads(sfteval("trend", *runs, "--results", str(tmp_path), "--format", "json",
                                  "--label", "ckpt-step-300=50").stdout)
    assert [r["run_id"] for r in labelled["runs"]][0] == "ckpt-step-300"


def test_a_metric_that_matches_nothing_is_a_usage_error(tmp_path: Path) -> None:
    its = items({"knowledge/likes": 12})
    for run in ("step-1", "step-2"):
        write_run(tmp_path, run, its, {it["id"]: Rec(exact=1.0) for it in its})
    proc = sfteval("trend", "step-1", "step-2", "--results", str(tmp_path), "--metric", "rule:*",
                   "--metric", "rule:exact_mach", check=False)
    assert proc.returncode == 2 and proc.stdout == "" and "Traceback" not in proc.stderr
    assert "'rule:exact_mach' matches no metric" in proc.stderr and "rule:exact_match" in proc.stderr
    data = json.loads(sfteval("trend", "step-1", "step-2", "--results", str(tmp_path), "--metric", "rule:*",
                              "--format", "json").stdout)
    assert sorted(data["metrics"]) == ["rule:exact_match", "rule:exact_match:unparsed"]
