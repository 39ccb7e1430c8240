"""The differ's statistics: its use of harness.stats against scipy, bootstrap reproducibility, directions,
minimum effects, Holm across cells, stratification, config precedence. Synthetic item frames, fast."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from sfteval.harness import stats
from sfteval.harness.differ import diff_frames
from sfteval.harness.differ.cells import build_strata, cell_seed, shared_bootstrap_sums
from sfteval.harness.gate import GateConfig, MetricRule, TaskTypeRule


def frames(spec: dict[str, int], metrics: dict[str, tuple], seed: int = 0, robust_every: int = 0):
    """spec: task_type -> n; metrics: name -> (maker(rng, n, active) -> (a, b), task_types where B changes)."""
    rng = np.random.default_rng(seed)
    parts_a, parts_b = [], []
    for tt, n in spec.items():
        ids = [f"{tt}-{i}" for i in range(n)]
        base = {"task_type": [tt] * n, "level1": [tt.split("/")[0]] * n,
                "robustness": [bool(robust_every) and i % robust_every == 0 for i in range(n)], "tags": [""] * n}
        fa, fb = pd.DataFrame(base, index=ids), pd.DataFrame(base, index=ids)
        for m, (maker, active) in metrics.items():
            fa[m], fb[m] = maker(rng, n, tt in active)
        parts_a.append(fa), parts_b.append(fb)
    a, b = pd.concat(parts_a), pd.concat(parts_b)
    a.index.name = b.index.name = "item_id"
    return a, b


def judge_scores(drop: float):
    def make(rng, n, active):
        a = rng.integers(3, 10, n).astype(float)
        shift = rng.choice([-1, 0, 0, 1], n) - (rng.random(n) < drop) * 3 * active
        return a, np.clip(a + shift, 1, 10)
    return make


def binary(p_a: float, p_b: float):
    def make(rng, n, active):
        a = (rng.random(n) < p_a).astype(float)
        b = np.where(rng.random(n) < 0.9, a, (rng.random(n) < (p_b if active else p_a)).astype(float))
        if active:
            flip = rng.random(n) < abs(p_a - p_b)
            b = np.where(flip, float(p_b > p_a), b)
        return a, b
    return make


def latency(factor: float):
    def make(rng, n, active):
        a = rng.lognormal(-3, 0.3, n)
        return a, a * (factor if active else 1.0) * rng.lognormal(0, 0.05, n)
    return make


def cell(diff, group: str, metric: str) -> dict:
    c = diff.cell(group, metric)
    assert c is not None, (group, metric)
    return c


# ---------------------------------------------------------------------------------------------------------------

def test_cell_p_values_equal_scipy_on_the_same_paired_vectors():
    a, b = frames({"math/add": 120, "math/sub": 90, "chat": 60},
                  {"judge:overall": (judge_scores(0.3), ["math/add"]), "usable": (binary(0.8, 0.5), ["math/add"])})
    d = diff_frames(a, b)
    for group, rows in (("math/add", a["task_type"] == "math/add"), ("math", a["level1"] == "math"),
                        ("overall", slice(None))):
        xa, xb = a.loc[rows, "judge:overall"].to_numpy(), b.loc[rows, "judge:overall"].to_numpy()
        assert cell(d, group, "judge:overall")["p_value"] == pytest.approx(sps.wilcoxon(xa, xb).pvalue, rel=1e-12)
        assert cell(d, group, "judge:overall")["test"] == "wilcoxon"
        ua, ub = a.loc[rows, "usable"].to_numpy(), b.loc[rows, "usable"].to_numpy()
        up, down = int(((ua == 0) & (ub == 1)).sum()), int(((ua == 1) & (ub == 0)).sum())
        expected = sps.binomtest(up, up + down, 0.5).pvalue if up + down else 1.0
        assert cell(d, group, "usable")["p_value"] == pytest.approx(expected, rel=1e-12)
        assert cell(d, group, "usable")["test"] == "mcnemar"
        assert cell(d, group, "usable")["delta"] == pytest.approx(ub.mean() - ua.mean())


def test_discrete_cell_interval_is_harness_stats_bootstrap_with_the_cell_seed():
    a, b = frames({"math/add": 400, "chat": 300}, {"judge:overall": (judge_scores(0.2), ["math/add"])})
    config = GateConfig(seed=7)
    d = diff_frames(a, b, config)
    rows = (a["task_type"] == "math/add").to_numpy()
    expected = stats.paired_bootstrap_ci(a.loc[rows, "judge:overall"], b.loc[rows, "judge:overall"],
                                         seed=cell_seed(7, "math/add", "judge:overall"))
    got = cell(d, "math/add", "judge:overall")
    assert (got["ci_low"], got["ci_high"]) == expected
    # a first level made of one stratum has the very same interval
    assert (cell(d, "math", "judge:overall")["ci_low"], cell(d, "math", "judge:overall")["ci_high"]) == expected


def test_bootstrap_is_reproducible_and_independent_of_other_cells():
    spec = {"math/add": 300, "math/sub": 200, "chat": 250}
    metrics = {"judge:overall": (judge_scores(0.2), ["math/add"]), "gen:ttft_s": (latency(1.3), ["chat"])}
    a, b = frames(spec, metrics)
    one, two = diff_frames(a, b), diff_frames(a, b)
    pd.testing.assert_frame_equal(one.cells, two.cells)
    other_seed = diff_frames(a, b, GateConfig(seed=1))
    assert not np.allclose(one.cells["ci_low"], other_seed.cells["ci_low"])
    # dropping a metric or a task_type leaves every other cell's numbers untouched
    fewer = diff_frames(a.drop(columns="gen:ttft_s"), b.drop(columns="gen:ttft_s"))
    keep = one.cells[one.cells["metric"] == "judge:overall"].reset_index(drop=True)
    cols = ["group", "metric", "n", "mean_a", "mean_b", "ci_low", "ci_high", "p_value"]
    pd.testing.assert_frame_equal(keep[cols], fewer.cells[cols].reset_index(drop=True))
    sub = a["task_type"] != "math/sub"
    no_sub = diff_frames(a[sub], b[sub])
    for group in ("math/add", "chat"):
        for m in ("judge:overall", "gen:ttft_s"):
            x, y = cell(one, group, m), cell(no_sub, group, m)
            assert (x["ci_low"], x["ci_high"]) == (y["ci_low"], y["ci_high"])


def test_shared_resamples_for_continuous_metrics_agree_with_per_cell_bootstrap():
    rng = np.random.default_rng(3)
    n = 3000
    da = rng.normal(0.2, 1.0, n)
    d = np.column_stack([da, 2 * da + rng.normal(0, 0.1, n), rng.exponential(1.0, n)])
    d[rng.random(n) < 0.1, 2] = np.nan  # a metric with missing items
    total, count = shared_bootstrap_sums(d, n_resamples=2000, seed=5)
    again = shared_bootstrap_sums(d, n_resamples=2000, seed=5)
    assert np.array_equal(total, again[0]) and np.array_equal(count, again[1])
    assert (count[:, :2] == n).all() and (count[:, 2] < n).all()
    for j in range(3):
        col = d[:, j]
        lo, hi = np.quantile(total[:, j] / count[:, j], [0.025, 0.975])
        ref = stats.paired_bootstrap_ci(np.zeros(n), col, seed=11)
        width = ref[1] - ref[0]
        assert abs(lo - ref[0]) < 0.1 * width and abs(hi - ref[1]) < 0.1 * width


def test_continuous_cells_in_a_diff():
    a, b = frames({"chat/a": 900, "chat/b": 700}, {"gen:ttft_s": (latency(1.5), ["chat/a"]),
                                                 "probe:ref_sum": (lambda r, n, act: (r.normal(-20, 5, n),) * 2, [])})
    d = diff_frames(a, b)
    c = cell(d, "chat/a", "gen:ttft_s")
    rows = (a["task_type"] == "chat/a").to_numpy()
    assert c["ci_low"] < c["delta"] < c["ci_high"]
    assert c["p_value"] == pytest.approx(sps.wilcoxon(a.loc[rows, "gen:ttft_s"], b.loc[rows, "gen:ttft_s"]).pvalue)
    assert c["status"] == "worse"  # latency: lower is better, watched (not gated) by default
    unchanged = cell(d, "chat/b", "gen:ttft_s")
    assert unchanged["status"] == ""
    assert cell(d, "overall", "probe:ref_sum")["ci_low"] == cell(d, "overall", "probe:ref_sum")["ci_high"] == 0.0


def test_direction_handling():
    def up(rng, n, active):  # every metric rises by a clear margin on the active task_type
        a = rng.integers(0, 2, n).astype(float)
        return a, np.where(active & (rng.random(n) < 0.5), 1.0, a)

    def more(rng, n, active):
        a = rng.normal(100, 5, n)
        return a, a * (1.6 if active else 1.0)

    a, b = frames({"x/y": 200, "z": 200}, {"rule:exact_match": (up, ["x/y"]), "gen:error": (up, ["x/y"]),
                                           "judge:unparsed": (up, ["x/y"]), "gen:answer_chars": (more, ["x/y"]),
                                           "gen:ttft_s": (more, ["x/y"])})
    d = diff_frames(a, b)
    assert cell(d, "x/y", "rule:exact_match")["status"] == "improvement"  # higher is better
    assert cell(d, "x/y", "gen:error")["status"] == "regression"  # lower is better, gated
    assert cell(d, "x/y", "judge:unparsed")["status"] == "worse"  # lower is better, guarded by the gate instead
    assert cell(d, "x/y", "gen:answer_chars")["status"] == "changed"  # no direction
    assert cell(d, "x/y", "gen:ttft_s")["status"] == "worse"
    for m in ("rule:exact_match", "gen:error", "gen:ttft_s"):
        assert cell(d, "z", m)["status"] == ""
    gated = diff_frames(a, b, GateConfig(metrics={"gen:ttft_s": MetricRule(gate=True)}))
    assert cell(gated, "x/y", "gen:ttft_s")["status"] == "regression"
    flipped = diff_frames(a, b, GateConfig(metrics={"rule:*": MetricRule(direction="lower")}))
    assert cell(flipped, "x/y", "rule:exact_match")["status"] == "regression"


def test_minimum_effect_absolute_and_relative():
    a, b = frames({"t/a": 3000}, {"judge:overall": (judge_scores(0.08), ["t/a"]),
                                  "gen:ttft_s": (latency(1.1), ["t/a"])})
    d = diff_frames(a, b)
    c = cell(d, "t/a", "judge:overall")
    assert c["p_holm"] < 1e-6 and -0.5 < c["delta"] < 0  # significant, but smaller than 0.5 points
    assert c["status"] == "" and cell(d, "t/a", "gen:ttft_s")["status"] == ""  # +10% latency < 20% default
    strict = diff_frames(a, b, GateConfig(metrics={"judge:*": MetricRule(min_effect=0.1),
                                                   "gen:ttft_s": MetricRule(min_effect=0.05, relative=True)}))
    assert cell(strict, "t/a", "judge:overall")["status"] == "regression"
    lat = cell(strict, "t/a", "gen:ttft_s")
    assert lat["status"] == "worse" and lat["threshold"] == pytest.approx(0.05 * lat["mean_a"])


def test_holm_is_applied_across_all_cells():
    a, b = frames({f"g/t{i}": 60 for i in range(12)},
                  {"usable": (binary(0.9, 0.6), ["g/t0"]), "judge:overall": (judge_scores(0.25), ["g/t1"])}, seed=2)
    d = diff_frames(a, b)
    p = d.cells["p_value"].to_numpy()
    assert np.array_equal(d.cells["p_holm"].to_numpy(), stats.holm(p), equal_nan=True)
    assert d.settings["cells_tested"] == int(np.isfinite(p).sum()) == len(d.cells)
    # a cell significant on its own but not after correcting for all cells is not flagged
    lone = d.cells[(d.cells["p_value"] < 0.05) & (d.cells["p_holm"] > 0.05)]
    assert len(lone) and (lone["status"] == "").all()
    assert (d.cells.loc[d.cells["status"] == "regression", "p_holm"] <= 0.05).all()


def _holm(p: np.ndarray) -> np.ndarray:
    """Holm's step-down adjustment, written out: the i-th smallest p times (m - i), running maximum, at most 1."""
    order, m = np.argsort(p, kind="stable"), len(p)
    out, running = np.empty(m), 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[i]))
        out[i] = running
    return out


def test_a_first_level_with_one_second_level_is_one_test():
    """`m` holds only `m/x`: the same items, so the same test -- its cells copy `m/x`'s, are marked `same_as`, and
    count once in the Holm correction; `k` has two second levels and is a test of its own."""
    a, b = frames({"k/likes": 60, "k/hates": 60, "m/x": 60},
                  {"usable": (binary(0.9, 0.6), ["m/x"]), "judge:overall": (judge_scores(0.25), ["k/likes"])}, seed=3)
    d = diff_frames(a, b)
    alias = d.cells[d.cells["same_as"].notna()]
    assert sorted(zip(alias["group"], alias["same_as"])) == [("m", "m/x"), ("m", "m/x")]
    for metric in ("usable", "judge:overall"):
        m, mx = cell(d, "m", metric), cell(d, "m/x", metric)
        assert m["kind"] == "level1" and mx["kind"] == "task_type"
        for k in ("n", "mean_a", "mean_b", "delta", "ci_low", "ci_high", "p_value", "p_holm", "status"):
            assert m[k] == mx[k], (metric, k)
    assert cell(d, "m/x", "usable")["status"] == "regression"
    assert cell(d, "k", "usable")["same_as"] is None
    primary = d.cells[d.cells["same_as"].isna()]
    assert d.settings["cells_tested"] == len(primary) == len(d.cells) - 2
    assert np.allclose(primary["p_holm"].to_numpy(), _holm(primary["p_value"].to_numpy()))
    assert [r["group"] for r in d.regressions()].count("m") == 0


def test_strata_and_groups():
    a, b = frames({"k/likes": 50, "k/hates": 30, "m": 40}, {"usable": (binary(0.7, 0.7), [])}, robust_every=5)
    strata, _ = build_strata(b)
    assert sorted(s.name for s in strata) == ["k/hates", "k/hates [robustness]", "k/likes", "k/likes [robustness]",
                                              "m", "m [robustness]"]
    d = diff_frames(a, b)
    assert d.group_sizes == {"overall": 120, "k": 80, "m": 40, "k/hates": 30, "k/likes": 50, "robustness": 24}
    assert set(d.cells["kind"]) == {"overall", "level1", "task_type", "robustness"}


def test_config_precedence_ignores_and_per_task_type_rules():
    a, b = frames({"k/likes": 200, "k/hates": 200, "m/x": 200},
                  {"usable": (binary(0.9, 0.75), ["k/likes", "k/hates", "m/x"])})
    cfg = GateConfig(metrics={"usable": MetricRule(min_effect=0.5)},
                     task_types={"k": TaskTypeRule(metrics={"usable": MetricRule(min_effect=0.01)}),
                                 "k/hates": TaskTypeRule(metrics={"usable": MetricRule(min_effect=0.9)})},
                     ignore_task_types=["m/*"])
    d = diff_frames(a, b, cfg)
    assert cell(d, "k/likes", "usable")["min_effect"] == 0.01  # first level beats the global rule
    assert cell(d, "k/hates", "usable")["min_effect"] == 0.9  # the two-level key beats its first level
    assert cell(d, "overall", "usable")["min_effect"] == 0.5
    assert cell(d, "k/likes", "usable")["status"] == "regression" and cell(d, "k/hates", "usable")["status"] == ""
    assert "m/x" not in set(d.cells["group"]) and "m" in set(d.cells["group"])
    d2 = diff_frames(a, b, GateConfig(task_types={"k": TaskTypeRule(ignore_metrics=["usa*"])}))
    assert set(d2.cells.loc[d2.cells["metric"] == "usable", "group"]) == {"overall", "m", "m/x"}


def test_items_in_one_run_and_missing_values():
    a, b = frames({"t/a": 100}, {"judge:overall": (judge_scores(0.0), [])})
    a = a.iloc[5:]
    b = b.copy()
    b.iloc[:20, b.columns.get_loc("judge:overall")] = np.nan  # unparsed: missing, never 0
    d = diff_frames(a, b)
    assert d.paired == 95 and len(d.only_b) == 5 and d.only_a == []
    assert cell(d, "t/a", "judge:overall")["n"] == 80
