"""sfteval trend end to end over three REAL tiny checkpoints, through the real CLI.

The demo's v1 (learns every item), v2 (half of the knowledge/likes facts trained wrong) and v3, built here
(harness/demo.py: every math/addition answer trained one too high), each run on the demo suite with probes.
Named by steps with ``--label``, in two orders, the trend must name the best run per task_type and exactly
the significant regressions against the best earlier run. The truth is computed here from the runs' own
generations and the suite's references (exact match counted by hand, best = most correct, ties to the
earliest; p-values from scipy's exact binomial test on the discordant pairs), and for the probe metrics
from the token log-probs stored in probes.jsonl (scipy's Wilcoxon signed-rank test).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from scipy import stats as sps

from clikit import cli
from test_report import gfm_tables

REPO = Path(__file__).resolve().parents[1]
DEMO_SUITE = REPO / "suites" / "demo"
EXACT = "rule:exact_match"

pytestmark = pytest.mark.slow

sfteval = cli(check=True)


@pytest.fixture(scope="module")
def results(demo_checkpoints: dict[str, Path], checkpoint_cache: Path,
            tmp_path_factory: pytest.TempPathFactory) -> Path:
    """results/ with real runs v1, v2, v3 of the demo suite (probes on)."""
    from sfteval.harness.demo import ensure_checkpoint

    models = {"v1": demo_checkpoints["v1"], "v2": demo_checkpoints["v2"],
              "v3": ensure_checkpoint("v3", checkpoint_cache)}  # built here once, then cached with the others
    out = tmp_path_factory.mktemp("trend-e2e")
    for name, path in models.items():
        sfteval("run", "--model", str(path), "--suite", str(DEMO_SUITE), "--out", str(out), "--run-name", name,
                "--batch-size", "16", "--quiet")
    return out


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def exact_by_item(run: Path) -> dict[str, tuple[str, int]]:
    """item id -> (task_type, 1 if the answer is the reference exactly) for the items without choices."""
    items = {it["id"]: it for it in read_jsonl(run / "items.jsonl")}
    out = {}
    for g in read_jsonl(run / "generations.jsonl"):
        it = items[g["item_id"]]
        if not it.get("choices"):
            out[it["id"]] = (it["task_type"], int(g["answer"].strip() == it["reference"].strip()))
    return out


def ref_mean_by_item(run: Path) -> dict[str, tuple[str, float]]:
    """item id -> (task_type, mean log P per reference token) from the stored token log-probs."""
    return {p["item_id"]: (p["task_type"], float(np.mean(p["details"]["token_logprobs"])))
            for p in read_jsonl(run / "probes.jsonl") if p["kind"] == "reference"}


def groups_of(values: dict[str, tuple[str, Any]]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {"overall": sorted(values)}
    for item_id, (tt, _) in values.items():
        out.setdefault(tt, []).append(item_id)
    return {g: sorted(ids) for g, ids in out.items()}


def expected(results: Path, order: list[str], alpha: float, tests: int) -> tuple[dict[str, str], set]:
    """Best run per group on exact match (most items right, ties to the earliest) and the regressions:
    run j against the best of runs before it, worse by more than 5 points with p * tests <= alpha (then
    significant after Holm, whatever the other p-values); a p between alpha / tests and alpha would leave
    the answer to Holm's other tests, and these checkpoints must not produce one."""
    right = {r: exact_by_item(results / r) for r in order}
    best, regressions = {}, set()
    for group, ids in groups_of(right[order[0]]).items():
        counts = [sum(right[r][i][1] for i in ids) for r in order]
        best[group] = order[counts.index(max(counts))]  # index(): the earliest of equals
        for j in range(1, len(order)):
            k = counts.index(max(counts[:j]))
            lost = sum(right[order[k]][i][1] and not right[order[j]][i][1] for i in ids)
            gained = sum(right[order[j]][i][1] and not right[order[k]][i][1] for i in ids)
            p = sps.binomtest(gained, lost + gained, 0.5).pvalue if lost + gained else 1.0
            worse = (counts[j] - counts[k]) / len(ids) < -0.05
            assert not (worse and alpha / tests < p <= alpha), (group, order[j], p)
            if worse and p * tests <= alpha:
                regressions.add((order[j], order[k], group, p))
    return best, regressions


def trend_json(results: Path, labels: dict[str, int]) -> dict[str, Any]:
    args = [a for run, step in labels.items() for a in ("--label", f"{run}={step}")]
    return json.loads(sfteval("trend", "v1", "v2", "v3", "--results", str(results), "--format", "json",
                              *args).stdout)


@pytest.mark.parametrize("steps", [{"v1": 1000, "v2": 2000, "v3": 3000}, {"v2": 1000, "v3": 2000, "v1": 3000}],
                         ids=["v1-v2-v3", "v2-v3-v1"])
def test_best_run_and_regressions_per_task_type(results: Path, steps: dict[str, int]) -> None:
    data = trend_json(results, steps)
    order = sorted(steps, key=steps.get)  # type: ignore[arg-type]
    assert [r["run_id"] for r in data["runs"]] == order and data["settings"]["order"] == "by step"
    assert [r["step"] for r in data["runs"]] == [steps[r] for r in order]
    assert data["paired_items"] == 86
    best, regs = expected(results, order, data["settings"]["alpha"], data["settings"]["tests"])
    rows = {r["group"]: r for r in data["table"] if r["metric"] == EXACT and not r["same_as"]}
    assert set(rows) == set(best)
    got_best = {g: data["runs"][r["best"]]["run_id"] for g, r in rows.items()}
    assert got_best == best
    got = {(data["runs"][r["run"]]["run_id"], data["runs"][r["against"]]["run_id"], r["group"]): r
           for r in data["regressions"] if r["metric"] == EXACT}
    assert set(got) == {(run, against, group) for run, against, group, _ in regs}
    for run, against, group, p in regs:
        assert got[(run, against, group)]["p_value"] == pytest.approx(p, rel=1e-9, abs=1e-15)
        assert got[(run, against, group)]["p_holm"] <= data["settings"]["alpha"]
    # what the truth says for these checkpoints, so the checks above cannot pass on an empty trend
    if order == ["v1", "v2", "v3"]:
        assert set(best.values()) == {"v1"}  # v1 knows everything; later runs only tie or lose
        assert {(r, g) for r, _, g, _ in regs} == {("v2", "knowledge/likes"), ("v2", "overall"),
                                                   ("v3", "math/addition"), ("v3", "overall")}
    else:
        assert best["knowledge/likes"] == "v3" and best["math/addition"] == "v2" and best["overall"] == "v1"
        assert {(r, a, g) for r, a, g, _ in regs} == {("v3", "v2", "math/addition")}  # v1 only ties or improves


def test_probe_metrics_follow_the_token_logprobs(results: Path) -> None:
    steps = {"v2": 1000, "v3": 2000, "v1": 3000}
    data = trend_json(results, steps)
    order = [r["run_id"] for r in data["runs"]]
    probe = {r: ref_mean_by_item(results / r) for r in order}
    groups = groups_of(probe[order[0]])
    rows = {r["group"]: r for r in data["table"] if r["metric"] == "probe:ref_mean" and not r["same_as"]}
    assert set(rows) == set(groups)
    for group, ids in groups.items():
        means = [float(np.mean([probe[r][i][1] for i in ids])) for r in order]
        assert rows[group]["means"] == pytest.approx(means, abs=1e-6)
        assert order[rows[group]["best"]] == order[int(np.argmax(means))]
    # v3 forgot every sum it was never taught: log P(reference) falls far on math/addition, which is not a gated
    # metric, so it is "worse" (against v2, the best earlier run there), not a regression
    worse = {(order[w["run"]], w["group"], w["metric"]): w for w in data["worse"]}
    w = worse[("v3", "math/addition", "probe:ref_mean")]
    ids = groups["math/addition"]
    a = [probe["v2"][i][1] for i in ids]
    b = [probe["v3"][i][1] for i in ids]
    assert order[w["against"]] == "v2" and w["p_value"] == pytest.approx(sps.wilcoxon(a, b).pvalue, rel=1e-9)
    assert w["delta"] == pytest.approx(np.mean(b) - np.mean(a), abs=1e-6) and w["delta"] < -1
    assert not any(r["metric"].startswith("probe:ref_mean") for r in data["regressions"])


def test_markdown_names_the_best_run_of_every_task_type(results: Path) -> None:
    md = sfteval("trend", "v1", "v2", "v3", "--results", str(results), "--label", "v2=1000", "--label", "v3=2000",
                 "--label", "v1=3000").stdout
    tables = gfm_tables(md)
    best = next(t for t in tables if t[0][:1] == ["task_type"] and "best run" in t[0])
    col, metric_col = best[0].index("best run"), best[0].index("metric")
    named = {row[0]: (row[metric_col], row[col]) for row in best[1:]}
    # every task_type of the suite has a best run, sentiment on its own rule (it has choices, not a reference match)
    assert set(named) == {"[overall]", "knowledge/likes", "math/addition", "classification/sentiment",
                          "text/uppercase"}
    assert named["knowledge/likes"][1] == "v3 (step 2000)" and named["math/addition"][1] == "v2 (step 1000)"
    assert named["classification/sentiment"][0] == "`rule:choice`"
    assert named["classification/sentiment"][1] == "v2 (step 1000)"  # 100% in all three: the earliest
    regressions = next(t for t in tables if t[0][:2] == ["run", "against"])
    assert {(r[0], r[1], r[2]) for r in regressions[1:]} == {("v3 (step 2000)", "v2 (step 1000)", "math/addition")}
    assert "probe:ref_mean" in md
