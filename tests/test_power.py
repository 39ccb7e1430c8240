"""Minimum detectable effects against simulation of the diff's own tests (harness.stats), and the plan command.

The truth is the simulated power of exact McNemar / Wilcoxon on data with a known effect: the effect at which
80% of simulated diffs reject must lie within 10% of the MDE the differ reports from one sample.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from sfteval.harness import stats
from sfteval.harness.differ import power
from diffkit import Rec, items, write_run
from clikit import cli

sfteval = cli(check=False)


def _simulated_mde(power_at, effects: np.ndarray, target: float = 0.8) -> float:
    """The effect at which the simulated power crosses ``target`` (linear interpolation on a grid)."""
    pw = np.array([power_at(e) for e in effects])
    assert pw[0] < target < pw[-1], pw
    i = int(np.argmax(pw >= target))
    return float(effects[i - 1] + (target - pw[i - 1]) / (pw[i] - pw[i - 1]) * (effects[i] - effects[i - 1]))


def test_binary_mde_matches_simulated_mcnemar() -> None:
    rng = np.random.default_rng(3)
    n, p_disc, level, reps = 60, 0.2, 0.05, 1500

    def simulate(delta: float) -> float:
        pi = (p_disc + delta) / (2 * p_disc)
        hits = 0
        for _ in range(reps):
            disc = rng.random(n) < p_disc
            up = rng.random(n) < pi
            a, b = np.zeros(n), np.zeros(n)
            a[disc & ~up], b[disc & up] = 1, 1
            hits += stats.mcnemar_exact(a, b) <= level
        return hits / reps

    # the observed discordance of one sample of two runs that differ by chance only
    a = (rng.random(4000) < 0.5).astype(float)
    b = np.where(rng.random(4000) < p_disc, 1 - a, a)
    observed = power.spread(a, b, binary=True)
    mde = power.mcnemar_mde(n, observed, level)
    sim = _simulated_mde(simulate, np.linspace(0.08, 0.2, 7))
    assert abs(mde - sim) <= 0.1 * sim, (mde, sim)


def test_score_mde_matches_simulated_wilcoxon_on_a_1_to_10_scale() -> None:
    rng = np.random.default_rng(5)
    n, level, reps = 50, 0.05, 800

    def runs(shift: float, size: int) -> tuple[np.ndarray, np.ndarray]:
        a = np.clip(np.rint(rng.normal(6.5, 1.6, size)), 1, 10)
        return a, np.clip(np.rint(a + rng.normal(shift, 1.4, size)), 1, 10)

    a, b = runs(0.0, n)  # what the differ sees: one diff of two runs at this n
    mde = power.wilcoxon_mde(n, power.spread(a, b, binary=False), level)

    realised: dict[float, float] = {}

    def simulate(shift: float) -> float:
        hits, deltas = 0, []
        for _ in range(reps):
            x, y = runs(shift, n)
            deltas.append((y - x).mean())
            hits += stats.wilcoxon_signed_rank(x, y).p_value <= level
        realised[shift] = float(np.mean(deltas))
        return hits / reps

    shifts = np.linspace(0.2, 1.0, 9)
    sim_shift = _simulated_mde(simulate, shifts)
    # the simulated MDE in mean-difference units (clipping at 1 and 10 shrinks a shift a little)
    xs = np.array(sorted(realised))
    sim = float(np.interp(sim_shift, xs, [realised[x] for x in xs]))
    assert abs(mde - sim) <= 0.1 * sim + 0.05, (mde, sim)


def test_mcnemar_power_and_items_needed_are_consistent() -> None:
    needed = power.mcnemar_n(0.1, 0.05, 0.05)
    assert needed is not None
    assert power.mcnemar_power(needed, 0.1, 0.05, 0.05) >= 0.8 > power.mcnemar_power(needed // 2, 0.1, 0.05, 0.05)
    assert power.mcnemar_mde(3, 0.5, 0.05) == float("inf")  # 3 pairs can never reach p <= 0.05 (2 * 0.5**3)


def test_diff_marks_blind_cells_and_plan_asks_more_items_for_hard_task_types(tmp_path) -> None:
    """A 50%-accuracy task_type is harder to measure than a 95% one: more items needed, larger MDE."""
    its = items({"hard/a": 40, "easy/b": 40})
    rng = np.random.default_rng(0)
    ra = {}
    for it in its:
        p = 0.5 if it["task_type"] == "hard/a" else 0.95
        ra[it["id"]] = Rec(exact=float(rng.random() < p))
    write_run(tmp_path, "v1", its, ra)
    write_run(tmp_path, "v2", its, ra)
    suite = tmp_path / "suite.jsonl"
    suite.write_text("".join(json.dumps(it) + "\n" for it in its))
    res = sfteval("suites", "plan", str(suite), "--baseline", "v1", "--results", str(tmp_path), "--format", "json",
                  "--metric", "rule:exact_match")
    assert res.returncode == 0, res.stderr
    rows = {r["group"]: r for r in json.loads(res.stdout)["rows"]}
    assert rows["hard/a"]["items_needed"] > rows["easy/b"]["items_needed"]
    assert rows["hard/a"]["mde"] > rows["easy/b"]["mde"] and rows["hard/a"]["blind"]
    diff = json.loads(sfteval("diff", "v1", "v2", "--results", str(tmp_path), "--format", "json").stdout)
    cell = next(c for c in diff["cells"] if (c["group"], c["metric"]) == ("hard/a", "rule:exact_match"))
    assert cell["blind"] is True and cell["mde"] > cell["threshold"] and cell["n_needed"] > 40


def test_plan_counts_only_the_items_a_metric_applies_to_and_the_cells_a_diff_tests(tmp_path) -> None:
    """A task_type scored by another rule (choices) is not in the overall row of a reference-match metric:
    the plan's items, level and MDE are the diff's for the same pair of runs."""
    its = items({"qa/facts": 30, "cls/sent": 20, "qa/dates": 12})
    rng = np.random.default_rng(1)
    runs = {}
    for name in ("v1", "v2"):
        runs[name] = {it["id"]: Rec(exact=None if it["task_type"] == "cls/sent" else float(rng.random() < 0.7),
                                    probe=float(-rng.random())) for it in its}
        write_run(tmp_path, name, its, runs[name])
    suite = tmp_path / "suite.jsonl"
    suite.write_text("".join(json.dumps(it) + "\n" for it in its))
    res = sfteval("suites", "plan", str(suite), "--baseline", "v1", "--candidate", "v2", "--results", str(tmp_path),
                  "--format", "json", "--metric", "rule:exact_match")
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    rows = {r["group"]: r for r in out["rows"]}
    assert rows["overall"]["items"] == 30 + 12 and rows["qa"]["items"] == 42 and rows["qa/facts"]["items"] == 30
    assert "cls/sent" not in rows and "cls" not in rows
    diff = json.loads(sfteval("diff", "v1", "v2", "--results", str(tmp_path), "--format", "json").stdout)
    # cells with a value: exact match in overall, qa, qa/facts, qa/dates (cls is only cls/sent: one test, no
    # exact match there); probe:ref_sum etc. and the generation metrics in all 6 groups less the alias
    tested = [c for c in diff["cells"] if c["p_value"] is not None and c["same_as"] is None]
    assert out["tests"] == diff["settings"]["cells_tested"] == len(tested)
    assert all(c["metric"] != "rule:exact_match" for c in tested if c["group"].startswith("cls"))
    cell = next(c for c in diff["cells"] if (c["group"], c["metric"]) == ("overall", "rule:exact_match"))
    assert cell["n"] == 42 and rows["overall"]["mde"] == pytest.approx(cell["mde"], rel=1e-9)


@pytest.mark.parametrize("n", [5, 30])
def test_wilcoxon_items_needed_reaches_the_effect(n: int) -> None:
    need = power.wilcoxon_n(1.5, 0.5, 0.05)
    assert need is not None and power.wilcoxon_mde(need, 1.5, 0.05) <= 0.5 < power.wilcoxon_mde(need - 1, 1.5, 0.05)
