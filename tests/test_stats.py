"""Paired statistics: agree with scipy and textbook values, reproducible, and quiet on edge cases."""

from __future__ import annotations

import math
import tracemalloc
import warnings
import zlib

import numpy as np
import pytest
from scipy import stats as sps

from sfteval.harness import stats
from sfteval.harness.stats import (
    PairedResult,
    compare_paired,
    holm,
    mcnemar_exact,
    paired_bootstrap_ci,
    wilcoxon_signed_rank,
)

# Every edge case must be handled without a warning leaking out.
pytestmark = pytest.mark.filterwarnings("error")


def scipy_wilcoxon_p(a: np.ndarray, b: np.ndarray) -> float:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(sps.wilcoxon(a, b).pvalue)  # defaults: zero_method="wilcox", method="auto"


def _arrays(name: str) -> tuple[np.ndarray, np.ndarray, str]:
    """Named (a, b, expected scipy branch) cases covering every branch of method='auto'."""
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    if name == "continuous_n8":
        a, b = rng.normal(size=8), rng.normal(size=8)
        return a, b, "exact"
    if name == "continuous_n50":
        a, b = rng.normal(size=50), rng.normal(0.3, 1, size=50)
        return a, b, "exact"
    if name == "continuous_n51":
        a, b = rng.normal(size=51), rng.normal(0.3, 1, size=51)
        return a, b, "asymptotic"
    if name == "ties_n10":
        a = np.array([3, 5, 7, 2, 8, 6, 4, 9, 5, 1], float)
        b = np.array([4, 6, 9, 4, 7, 8, 5, 9.5, 7, 2], float)  # |d| has ties, no zeros
        return a, b, "permutation"
    if name == "zeros_n9":
        a = np.array([5, 6, 7, 3, 8, 2, 9, 4, 6], float)
        b = np.array([5, 8, 7, 6, 9, 2, 10, 4, 3.5], float)  # three zero differences
        return a, b, "permutation"
    if name == "ties_n13":  # largest n on the permutation branch
        a = rng.integers(1, 11, 13).astype(float)
        return a, np.clip(a + rng.integers(-3, 4, 13), 1, 10), "permutation"
    if name == "ties_n14":  # smallest n that falls back to the normal approximation
        a = rng.integers(1, 11, 14).astype(float)
        return a, np.clip(a + rng.integers(-3, 4, 14), 1, 10), "asymptotic"
    if name == "ties_n20":
        a = rng.integers(1, 11, 20).astype(float)
        return a, np.clip(a + rng.integers(-2, 4, 20), 1, 10), "asymptotic"
    if name == "judge_scores_n5000":
        a = rng.integers(1, 11, 5000).astype(float)
        return a, np.clip(a + rng.choice([-2, -1, 0, 0, 0, 1, 1, 2], 5000), 1, 10), "asymptotic"
    if name == "half_points_n300":  # medians of two judge samples
        return rng.integers(2, 21, 300) / 2, rng.integers(2, 21, 300) / 2, "asymptotic"
    if name == "mostly_zero_n1000":
        a = rng.normal(size=1000).round(1)
        return a, a + rng.normal(size=1000).round(1) * (rng.random(1000) < 0.1), "asymptotic"
    if name == "single_pair":
        return np.array([1.0]), np.array([3.0]), "exact"
    if name == "two_pairs":
        return np.array([1.0, 2.0]), np.array([3.0, 1.5]), "exact"
    raise KeyError(name)


WILCOXON_CASES = [
    "continuous_n8",
    "continuous_n50",
    "continuous_n51",
    "ties_n10",
    "zeros_n9",
    "ties_n14",
    "ties_n20",
    "judge_scores_n5000",
    "half_points_n300",
    "mostly_zero_n1000",
    "single_pair",
    "two_pairs",
]


# ------------------------------------------------------------------------------------- Wilcoxon


@pytest.mark.parametrize("name", WILCOXON_CASES)
def test_wilcoxon_matches_scipy_on_every_branch(name: str) -> None:
    a, b, branch = _arrays(name)
    res = wilcoxon_signed_rank(a, b)
    assert res.method == branch
    assert res.n == a.size
    assert res.p_value == pytest.approx(scipy_wilcoxon_p(a, b), rel=1e-12, abs=0)


def brute_force_signed_rank_p(d: np.ndarray) -> float:
    """Two-sided p over all 2**m sign flips of the nonzero differences (average ranks for ties)."""
    d = d[d != 0]
    m = d.size
    ranks = sps.rankdata(np.abs(d))
    observed = ranks[d > 0].sum()
    signs = (np.arange(2**m)[:, None] >> np.arange(m)) & 1
    null = signs @ ranks
    return min(1.0, 2 * min(np.mean(null <= observed + 1e-9), np.mean(null >= observed - 1e-9)))


@pytest.mark.parametrize("name", ["ties_n13", "ties_n10", "zeros_n9"])
def test_wilcoxon_small_tied_samples_enumerate_all_sign_flips(name: str) -> None:
    # scipy's own permutation branch takes seconds at n = 13, so check that boundary by brute force
    a, b, branch = _arrays(name)
    res = wilcoxon_signed_rank(a, b)
    assert res.method == branch == "permutation"
    assert res.p_value == pytest.approx(brute_force_signed_rank_p(b - a), rel=1e-12)


def test_wilcoxon_textbook_value() -> None:
    # scipy docs / Hollander & Wolfe style example: 15 differences, no ties; exact p = 0.041259765625
    d = np.array([6, 8, 14, 16, 23, 24, 28, 29, 41, -48, 49, 56, 60, -67, 75], float)
    res = wilcoxon_signed_rank(np.zeros(15), d)
    assert res == (0.041259765625, 15, "exact")


def test_wilcoxon_is_symmetric_in_its_arguments() -> None:
    for name in ("ties_n20", "continuous_n8", "judge_scores_n5000"):
        a, b, _ = _arrays(name)
        assert wilcoxon_signed_rank(a, b).p_value == wilcoxon_signed_rank(b, a).p_value


def test_wilcoxon_detects_a_clear_shift() -> None:
    rng = np.random.default_rng(1)
    a = rng.normal(size=400)
    assert wilcoxon_signed_rank(a, a + 0.5 + rng.normal(0, 0.5, 400)).p_value < 1e-10
    assert wilcoxon_signed_rank(a, a + rng.normal(0, 0.5, 400)).p_value > 1e-3


@pytest.mark.parametrize("n", [1, 5, 60, 5000])
def test_wilcoxon_all_zero_differences_is_p_one(n: int) -> None:
    a = np.arange(n, dtype=float) % 7
    assert wilcoxon_signed_rank(a, a.copy()) == (1.0, n, "all-zero")


def test_wilcoxon_no_pairs_is_nan() -> None:
    res = wilcoxon_signed_rank([], [])
    assert math.isnan(res.p_value) and res.n == 0
    res = wilcoxon_signed_rank([np.nan, 1.0], [2.0, None])
    assert math.isnan(res.p_value) and res.n == 0


def test_wilcoxon_drops_nan_pairs_and_reports_n() -> None:
    a, b, _ = _arrays("ties_n20")
    a_nan, b_nan = a.copy(), b.copy()
    a_nan[[0, 5]] = np.nan
    b_nan[[5, 11]] = np.nan  # pair 5 is missing on both sides
    keep = np.ones(a.size, bool)
    keep[[0, 5, 11]] = False
    res = wilcoxon_signed_rank(a_nan, b_nan)
    assert res.n == a.size - 3
    assert res.p_value == pytest.approx(scipy_wilcoxon_p(a[keep], b[keep]), rel=1e-12)


@pytest.mark.parametrize(
    "a, b, match",
    [
        ([1.0, 2.0], [1.0], "differ in length"),
        ([1.0, np.inf], [1.0, 2.0], "inf"),
        ([[1.0, 2.0]], [[1.0, 2.0]], "1-D"),
        (["x", "y"], [1.0, 2.0], "numbers"),
    ],
)
def test_wilcoxon_rejects_bad_input(a, b, match) -> None:
    with pytest.raises(ValueError, match=match):
        wilcoxon_signed_rank(a, b)


# ------------------------------------------------------------------------------------- McNemar


def _pairs(b01: int, b10: int, both1: int = 0, both0: int = 0) -> tuple[np.ndarray, np.ndarray]:
    a = np.r_[np.zeros(b01), np.ones(b10), np.ones(both1), np.zeros(both0)].astype(bool)
    b = np.r_[np.ones(b01), np.zeros(b10), np.ones(both1), np.zeros(both0)].astype(bool)
    perm = np.random.default_rng(b01 * 1000 + b10).permutation(a.size)
    return a[perm], b[perm]


def test_mcnemar_hand_worked() -> None:
    # 1 improvement vs 9 regressions: p = 2 * P(Bin(10, 1/2) <= 1) = 2 * 11 / 1024
    a, b = _pairs(1, 9, both1=30, both0=12)
    assert mcnemar_exact(a, b) == pytest.approx(22 / 1024, rel=1e-14)


@pytest.mark.parametrize("b01, b10", [(0, 5), (5, 0), (3, 3), (2, 7), (10, 200), (480, 560), (1, 0), (25, 26), (0, 60)])
def test_mcnemar_matches_binomtest(b01: int, b10: int) -> None:
    a, b = _pairs(b01, b10, both1=17, both0=40)  # concordant pairs must not matter
    expected = sps.binomtest(b01, b01 + b10, 0.5).pvalue
    assert mcnemar_exact(a, b) == pytest.approx(expected, rel=1e-10, abs=0)
    assert mcnemar_exact(b, a) == mcnemar_exact(a, b)


def test_mcnemar_no_discordant_pairs_is_one_and_no_pairs_is_nan() -> None:
    a, b = _pairs(0, 0, both1=8, both0=3)
    assert mcnemar_exact(a, b) == 1.0
    assert math.isnan(mcnemar_exact([], []))
    assert math.isnan(mcnemar_exact([np.nan], [1]))


def test_mcnemar_accepts_numbers_and_drops_nan_pairs() -> None:
    a = [0, 0, 1, 1, np.nan, 0, 1.0]
    b = [1, 1, 1, 0, 0, np.nan, None]
    # complete pairs: (0,1) (0,1) (1,1) (1,0) -> b01=2, b10=1
    assert mcnemar_exact(a, b) == pytest.approx(sps.binomtest(1, 3, 0.5).pvalue, rel=1e-12)


def test_mcnemar_rejects_non_binary() -> None:
    with pytest.raises(ValueError, match="0/1"):
        mcnemar_exact([0, 1, 2], [0, 1, 1])
    with pytest.raises(ValueError, match="b_bool"):
        mcnemar_exact([0, 1, 1], [0, 0.5, 1])


# ------------------------------------------------------------------------------------- Holm


def naive_holm(p: list[float]) -> list[float]:
    """Textbook definition, written independently: loops, no numpy tricks."""
    idx = [i for i, x in enumerate(p) if not math.isnan(x)]
    m = len(idx)
    srt = sorted(idx, key=lambda i: p[i])
    out = list(p)
    running = 0.0
    for rank, i in enumerate(srt):
        running = max(running, min(1.0, (m - rank) * p[i]))
        out[i] = running
    return out


def test_holm_literature_example() -> None:
    adjusted = holm([0.01, 0.04, 0.03, 0.005])
    np.testing.assert_allclose(adjusted, [0.03, 0.06, 0.06, 0.02], rtol=1e-12)


def test_holm_nan_passes_through_and_is_not_counted() -> None:
    adjusted = holm([0.01, np.nan, 0.04, 0.03, 0.005, np.nan])
    np.testing.assert_allclose(adjusted, [0.03, np.nan, 0.06, 0.06, 0.02, np.nan], rtol=1e-12)


def test_holm_caps_at_one_and_is_monotone() -> None:
    rng = np.random.default_rng(3)
    p = rng.random(40) ** 3
    adjusted = holm(p)
    assert adjusted.max() <= 1.0 and (adjusted >= p).all()
    order = np.argsort(p)
    assert (np.diff(adjusted[order]) >= 0).all()
    np.testing.assert_allclose(adjusted, naive_holm(p.tolist()), rtol=1e-12)
    np.testing.assert_array_equal(holm([0.5, 0.6, 0.9]), [1.0, 1.0, 1.0])


def test_holm_small_inputs_and_no_mutation() -> None:
    assert holm([]).shape == (0,)
    np.testing.assert_array_equal(holm([0.2]), [0.2])
    np.testing.assert_array_equal(holm([np.nan, np.nan]), [np.nan, np.nan])
    p = np.array([0.02, 0.02, 0.5])
    before = p.copy()
    np.testing.assert_allclose(holm(p), [0.06, 0.06, 0.5])
    np.testing.assert_array_equal(p, before)
    assert holm(np.array([[0.01, 0.04], [0.03, 0.005]])).shape == (2, 2)


@pytest.mark.parametrize("bad", [[0.1, 1.2], [-0.01], [np.inf]])
def test_holm_rejects_impossible_p_values(bad) -> None:
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        holm(bad)


# ------------------------------------------------------------------------------------- bootstrap


def _scores(n: int, shift: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    a = rng.integers(1, 11, n).astype(float)
    b = np.clip(a + rng.choice([-1, 0, 0, 1, 1], n) + shift, 1, 10)
    return a, b


@pytest.mark.parametrize("data", ["continuous", "discrete"])
def test_bootstrap_is_reproducible_and_seed_dependent(data: str) -> None:
    if data == "continuous":
        rng = np.random.default_rng(0)
        a, b = rng.normal(size=3000), rng.normal(0.1, 1, size=3000)
    else:
        a, b = _scores(3000, 0, seed=0)
    first = paired_bootstrap_ci(a, b, seed=7)
    assert paired_bootstrap_ci(a, b, seed=7) == first
    assert paired_bootstrap_ci(a, b, seed=8) != first
    assert paired_bootstrap_ci(a, b, seed=np.random.SeedSequence(7)) == first


@pytest.mark.parametrize("data", ["continuous", "discrete"])
def test_bootstrap_result_does_not_depend_on_threads(data: str, monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(21)
    if data == "continuous":  # 2000 resamples x 4000 items: big enough to be split into seed streams
        a, b = rng.normal(size=4000), rng.normal(0.05, 1, size=4000)
        single_stream = None
    else:  # counts path: split it too by lowering the threshold
        a, b = _scores(2000, 0.0, seed=21)
        single_stream = paired_bootstrap_ci(a, b, seed=3, workers=1)
        monkeypatch.setattr(stats, "_PARALLEL_MIN_ELEMS", 1000)
    one = paired_bootstrap_ci(a, b, seed=3, workers=1)
    assert one != single_stream  # the streamed path really ran
    assert paired_bootstrap_ci(a, b, seed=3, workers=2) == one
    assert paired_bootstrap_ci(a, b, seed=3, workers=5) == one
    assert paired_bootstrap_ci(a, b, seed=3) == one
    assert paired_bootstrap_ci(a, b, seed=4, workers=2) != one


def test_bootstrap_seed_sequence_is_not_consumed() -> None:
    rng = np.random.default_rng(22)
    a, b = rng.normal(size=4000), rng.normal(size=4000)
    ss = np.random.SeedSequence(99)
    first = paired_bootstrap_ci(a, b, seed=ss)
    ss.spawn(3)  # a caller that spawned from it since must still get the same interval
    assert paired_bootstrap_ci(a, b, seed=ss) == first
    assert paired_bootstrap_ci(a, b, seed=np.random.SeedSequence(99)) == first


@pytest.mark.parametrize("data", ["continuous", "discrete"])
def test_bootstrap_ci_covers_true_shift_and_excludes_zero(data: str) -> None:
    rng = np.random.default_rng(11)
    if data == "continuous":
        a = rng.normal(5, 2, size=800)
        b = a + 0.4 + rng.normal(0, 1, size=800)
        true_delta = 0.4
    else:
        a = rng.integers(1, 11, 4000).astype(float)
        step = rng.choice([0.0, 1.0], size=4000, p=[0.7, 0.3])  # true mean shift 0.3
        b, true_delta = a + step, 0.3
    low, high = paired_bootstrap_ci(a, b, seed=1)
    assert low < true_delta < high
    assert low > 0
    assert high - low < 0.3  # a real interval, not a degenerate or a huge one


def test_bootstrap_coverage_is_near_nominal() -> None:
    rng = np.random.default_rng(2024)
    hits = 0
    trials = 200
    for i in range(trials):
        d = rng.exponential(1.0, size=80) - 1.0  # skewed differences, true mean 0
        low, high = paired_bootstrap_ci(np.zeros(80), d, seed=i, n_resamples=1000)
        hits += low <= 0.0 <= high
    assert 0.85 <= hits / trials <= 0.99


def test_bootstrap_both_resampling_paths_give_the_same_distribution() -> None:
    rng = np.random.default_rng(5)
    d = rng.choice([-2.0, -1.0, 0.0, 1.0, 2.0, 3.0], size=2000, p=[0.05, 0.15, 0.4, 0.25, 0.1, 0.05])
    vals, counts = np.unique(d, return_counts=True)
    b_resamples = 4000
    by_counts = stats._resample_by_counts(vals, counts, d.size, b_resamples, np.random.default_rng(1), "mean")
    by_index = stats._resample_by_index(d, b_resamples, np.random.default_rng(1), "mean")
    expected_sd = d.std() / math.sqrt(d.size)  # sd of the bootstrap mean, exactly
    for dist in (by_counts, by_index):
        assert abs(dist.mean() - d.mean()) < 5 * expected_sd / math.sqrt(b_resamples)
        assert dist.std() == pytest.approx(expected_sd, rel=0.06)
    q_counts = np.quantile(by_counts, [0.025, 0.975])
    q_index = np.quantile(by_index, [0.025, 0.975])
    np.testing.assert_allclose(q_counts, q_index, atol=0.25 * expected_sd)


@pytest.mark.parametrize("n", [10, 40])
def test_bootstrap_paths_pick_every_item_with_probability_one_over_n(n: int) -> None:
    # one item differs by 1, the rest by 0: n * (resampled mean) ~ Binomial(n, 1/n) exactly
    d = np.zeros(n)
    d[-1] = 1.0
    vals, counts = np.unique(d, return_counts=True)
    b_resamples = 20000
    expected = sps.binom.pmf(np.arange(n + 1), n, 1 / n)
    for dist in (
        stats._resample_by_index(d, b_resamples, np.random.default_rng(0), "mean"),
        stats._resample_by_counts(vals, counts, n, b_resamples, np.random.default_rng(0), "mean"),
    ):
        picks = np.rint(dist * n).astype(int)
        np.testing.assert_allclose(dist * n, picks, atol=1e-9)
        observed = np.bincount(picks, minlength=n + 1) / b_resamples
        np.testing.assert_allclose(observed[:4], expected[:4], atol=0.012)


def test_bootstrap_interval_matches_normal_theory_for_large_n() -> None:
    # mean of 4000 normal differences: the 95% percentile interval is mean +- 1.96 sd/sqrt(n)
    rng = np.random.default_rng(13)
    d = rng.normal(0.2, 1.0, size=4000)
    se = d.std() / math.sqrt(d.size)
    for seed in range(3):
        low, high = paired_bootstrap_ci(np.zeros(d.size), d, seed=seed)
        assert (high - low) / (2 * 1.959964 * se) == pytest.approx(1.0, abs=0.08)
        assert (low + high) / 2 == pytest.approx(d.mean(), abs=0.15 * se)
    lo90, hi90 = paired_bootstrap_ci(np.zeros(d.size), d, seed=0, confidence=0.90)
    assert (hi90 - lo90) / (2 * 1.644854 * se) == pytest.approx(1.0, abs=0.08)


@pytest.mark.parametrize("statistic", ["mean", "median"])
def test_counts_path_computes_the_statistic_of_the_drawn_resample(statistic: str) -> None:
    vals = np.array([-2.0, -0.5, 0.0, 1.0, 3.0])
    counts = np.array([3, 10, 40, 30, 18])
    n = int(counts.sum())
    got = stats._resample_by_counts(vals, counts, n, 300, np.random.default_rng(9), statistic)
    drawn = np.random.default_rng(9).multinomial(n, counts / n, size=300)
    fn = np.mean if statistic == "mean" else np.median
    expected = [fn(np.repeat(vals, c)) for c in drawn]
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)


def test_bootstrap_median_statistic() -> None:
    a, b = _scores(3000, 1.0, seed=4)
    low, high = paired_bootstrap_ci(a, b, statistic="median", seed=0)
    assert low <= np.median(b - a) <= high
    rng = np.random.default_rng(4)
    x = rng.normal(size=500)
    low, high = paired_bootstrap_ci(np.zeros(500), x + 1.0, statistic="median", seed=0)
    assert low < 1.0 < high and low > 0.5


def test_bootstrap_nested_confidence_levels() -> None:
    a, b = _scores(1000, 0, seed=6)
    lo90, hi90 = paired_bootstrap_ci(a, b, confidence=0.90, seed=3)
    lo99, hi99 = paired_bootstrap_ci(a, b, confidence=0.99, seed=3)
    assert lo99 <= lo90 < hi90 <= hi99


def test_bootstrap_edge_cases() -> None:
    low, high = paired_bootstrap_ci([], [])
    assert math.isnan(low) and math.isnan(high)
    assert paired_bootstrap_ci([1.0], [3.5]) == (2.5, 2.5)
    assert paired_bootstrap_ci([1, 2, 3], [2, 3, 4]) == (1.0, 1.0)
    low, high = paired_bootstrap_ci([1.0, 2.0], [1.0, 5.0], seed=0)
    assert 0.0 <= low <= high <= 3.0


def test_bootstrap_drops_nan_pairs() -> None:
    rng = np.random.default_rng(8)
    a, b = rng.normal(size=500), rng.normal(size=500)
    a_nan, b_nan = a.copy(), b.copy()
    a_nan[::7] = np.nan
    b_nan[3::11] = np.nan
    keep = ~(np.isnan(a_nan) | np.isnan(b_nan))
    assert paired_bootstrap_ci(a_nan, b_nan, seed=2) == paired_bootstrap_ci(a[keep], b[keep], seed=2)


def test_bootstrap_memory_stays_bounded_for_large_n() -> None:
    rng = np.random.default_rng(0)
    n, resamples = 200_000, 100
    a, b = rng.normal(size=n), rng.normal(size=n)  # continuous: the per-item index path
    tracemalloc.start()
    try:
        paired_bootstrap_ci(a, b, n_resamples=resamples, seed=0)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # one index matrix for all resamples would be 160 MB; inputs and copies are ~10 MB
    assert peak < 30e6


@pytest.mark.parametrize(
    "kwargs, exc",
    [
        ({"n_resamples": 0}, ValueError),
        ({"n_resamples": 2.5}, ValueError),
        ({"confidence": 1.0}, ValueError),
        ({"confidence": 0.0}, ValueError),
        ({"seed": None}, TypeError),
        ({"seed": np.random.default_rng(0)}, TypeError),
        ({"statistic": "mode"}, ValueError),
        ({"workers": 0}, ValueError),
    ],
)
def test_bootstrap_rejects_bad_arguments(kwargs, exc) -> None:
    with pytest.raises(exc):
        paired_bootstrap_ci([1.0, 2.0], [2.0, 2.0], **kwargs)


# ------------------------------------------------------------------------------------- compare_paired


def test_compare_scores_uses_wilcoxon_and_the_bootstrap() -> None:
    a, b = _scores(2000, 0.3, seed=12)
    res = compare_paired(a, b, kind="score", seed=5, n_resamples=1000)
    assert isinstance(res, PairedResult) and res.test == "wilcoxon"
    assert res.n == 2000
    assert res.mean_a == pytest.approx(a.mean()) and res.mean_b == pytest.approx(b.mean())
    assert res.delta == pytest.approx(b.mean() - a.mean())
    assert (res.ci_low, res.ci_high) == paired_bootstrap_ci(a, b, seed=5, n_resamples=1000)
    assert res.ci_low < res.delta < res.ci_high
    assert res.p_value == wilcoxon_signed_rank(a, b).p_value
    assert res.p_value < 1e-6
    assert compare_paired(a, b, kind="score", seed=5, n_resamples=1000) == res


def test_compare_binary_uses_mcnemar() -> None:
    a, b = _pairs(12, 30, both1=300, both0=58)
    res = compare_paired(a, b, kind="binary", seed=0)
    assert res.test == "mcnemar"
    assert res.n == 400
    assert res.delta == pytest.approx((12 - 30) / 400)
    assert res.p_value == mcnemar_exact(a, b)
    assert res.ci_low < res.delta < res.ci_high < 0
    assert set(res.as_dict()) == {"n", "mean_a", "mean_b", "delta", "ci_low", "ci_high", "p_value", "test"}


def test_compare_drops_nan_pairs_for_every_number() -> None:
    a = np.array([7, 8, np.nan, 6, 9, 5, 7, 8, 4, 6], float)
    b = np.array([8, 8, 9, np.nan, 9, 7, 8, 9, 6, 7], float)
    res = compare_paired(a, b, kind="score", seed=0)
    keep = ~(np.isnan(a) | np.isnan(b))
    assert res.n == 8
    assert res.mean_a == pytest.approx(a[keep].mean()) and res.mean_b == pytest.approx(b[keep].mean())
    assert res.p_value == pytest.approx(scipy_wilcoxon_p(a[keep], b[keep]), rel=1e-12)


def test_compare_edge_cases() -> None:
    empty = compare_paired([np.nan], [1.0], kind="score")
    assert empty.n == 0 and empty.test == "wilcoxon"
    assert all(math.isnan(getattr(empty, f)) for f in ("mean_a", "mean_b", "delta", "ci_low", "ci_high", "p_value"))
    same = compare_paired([1, 0, 1], [1, 0, 1], kind="binary")
    assert (same.delta, same.ci_low, same.ci_high, same.p_value) == (0.0, 0.0, 0.0, 1.0)
    with pytest.raises(ValueError, match="kind"):
        compare_paired([1.0], [1.0], kind="ordinal")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="0/1"):
        compare_paired([0.0, 0.5], [1.0, 1.0], kind="binary")


def test_compare_large_cell_is_fast_enough() -> None:
    # The differ's worst single cell: 100k items of judge scores. Must not take seconds.
    import time

    a, b = _scores(100_000, 0.0, seed=1)
    start = time.perf_counter()
    compare_paired(a, b, kind="score", seed=0)
    assert time.perf_counter() - start < 1.0
