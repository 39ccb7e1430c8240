"""The agreement statistics against scikit-learn, scipy and textbook examples."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import spearmanr
from sklearn.metrics import cohen_kappa_score

from sfteval.harness.labels import agreement as ag


def test_cohens_kappa_textbook_example() -> None:
    # Wikipedia's "Cohen's kappa" example: 50 proposals, yes/yes 20, yes/no 5, no/yes 10, no/no 15 -> kappa 0.4
    a = [1] * 20 + [1] * 5 + [0] * 10 + [0] * 15
    b = [1] * 20 + [0] * 5 + [1] * 10 + [0] * 15
    out = ag.binary_agreement(a, b, list(range(50)))
    assert out["kappa"]["value"] == pytest.approx(0.4)
    assert out["confusion"] == {"tp": 20, "fp": 5, "fn": 10, "tn": 15}
    assert out["precision"]["value"] == pytest.approx(20 / 25) and out["recall"]["value"] == pytest.approx(20 / 30)
    lo, hi = out["kappa"]["ci"]
    assert lo < 0.4 < hi


def test_quadratic_weighted_kappa_worked_example() -> None:
    # Fleiss' 3-category table on 100 subjects (rows rater 1, columns rater 2): [[53,5,2],[11,14,5],[1,6,3]].
    # Unweighted: p_o = .70, p_e = .6*.65 + .3*.25 + .1*.10 = .475, kappa = (.70-.475)/(1-.475) = 3/7.
    # Quadratic weights w = (i-j)^2: sum w*p_obs = (5+11+5+6)*1/100 + (2+1)*4/100 = .39,
    # sum w*p_exp = (.6*.25 + .3*.65 + .3*.10 + .1*.25)*1 + (.6*.10 + .1*.65)*4 = .90, kappa_w = 1 - .39/.90 = 17/30.
    table = np.array([[53, 5, 2], [11, 14, 5], [1, 6, 3]])
    x = [i for i in range(3) for j in range(3) for _ in range(table[i, j])]
    y = [j for i in range(3) for j in range(3) for _ in range(table[i, j])]
    out = ag.score_agreement([v + 1 for v in x], [v + 1 for v in y], list(range(100)), lo=1, hi=3)
    assert out["kappa_w"]["value"] == pytest.approx(17 / 30)
    assert ag.weighted_kappa(x, y, [0, 1, 2], None) == pytest.approx(3 / 7)


def test_vectorised_resample_statistics_equal_the_libraries() -> None:
    rng = np.random.default_rng(3)
    x = rng.integers(0, 10, size=(40, 25))
    y = np.clip(x + rng.integers(-2, 3, size=x.shape), 0, 9)
    for weights in ("quadratic", None):
        mine = ag.kappa_rows(x, y, 10, weights)
        ref = [cohen_kappa_score(a, b, labels=list(range(10)), weights=weights) for a, b in zip(x, y)]
        np.testing.assert_allclose(mine, ref, atol=1e-12)
    xf = x + rng.random(x.shape)  # continuous (a judge's median can be a half point)
    ref_rho = [spearmanr(a, b).statistic for a, b in zip(xf, y)]
    np.testing.assert_allclose(ag.spearman_rows(xf, y), ref_rho, atol=1e-12)


def test_score_agreement_against_the_libraries_and_rounding_of_half_points() -> None:
    judge = [7.5, 8, 3, 4, 9, 6.5, 2, 5, 8, 7, 6, 1]
    human = [8, 8, 2, 4, 10, 6, 3, 5, 7, 7, 7, 2]
    out = ag.score_agreement(judge, human, [f"i{k}" for k in range(12)])
    rounded = [int(np.floor(v + 0.5)) for v in judge]  # 7.5 -> 8, 6.5 -> 7: half up
    assert out["kappa_w"]["value"] == pytest.approx(
        cohen_kappa_score(rounded, human, labels=list(range(1, 11)), weights="quadratic"))
    assert out["spearman"]["value"] == pytest.approx(spearmanr(judge, human).statistic)
    assert out["mad"]["value"] == pytest.approx(np.mean(np.abs(np.array(judge) - np.array(human))))
    assert out["n"] == 12 and out["items"] == 12 and out["enough"]
    for name in ("kappa_w", "spearman", "mad"):
        lo, hi = out[name]["ci"]
        assert lo <= out[name]["value"] <= hi
    again = ag.score_agreement(judge, human, [f"i{k}" for k in range(12)])
    assert again == out  # seeded


def test_below_the_minimum_there_is_no_number() -> None:
    out = ag.score_agreement([1, 2, 3], [1, 2, 3], ["a", "b", "c"])
    assert out == {"n": 3, "items": 3, "enough": False, "min_n": ag.MIN_N}
    assert not ag.binary_agreement([True] * 9, [True] * 9, list(range(9)))["enough"]
    assert ag.score_agreement([1, 2, 3], [1, 2, 3], ["a", "b", "c"], min_n=3)["enough"]


def test_constant_ratings_give_an_undefined_kappa_not_a_number() -> None:
    out = ag.score_agreement([5] * 12, [5] * 12, list(range(12)))
    assert out["kappa_w"]["value"] is None and out["spearman"]["value"] is None
    assert out["mad"]["value"] == 0


def test_verdict_agreement_by_hand() -> None:
    judge = ["win"] * 6 + ["loss"] * 3 + ["tie"] * 3
    human = ["win"] * 4 + ["loss"] * 2 + ["loss"] * 3 + ["win", "tie", "tie"]
    out = ag.verdict_agreement(judge, human, list(range(12)))
    both = [(a, b) for a, b in zip(judge, human) if a != "tie" and b != "tie"]
    assert out["decisive_n"] == len(both) == 9
    assert out["decisive_agreement"]["value"] == pytest.approx(sum(a == b for a, b in both) / 9)
    assert out["kappa"]["value"] == pytest.approx(cohen_kappa_score(judge, human))
    points = {"win": 1, "tie": 0.5, "loss": 0}
    expected = 100 * (np.mean([points[v] for v in judge]) - np.mean([points[v] for v in human]))
    assert out["bias_points"]["value"] == pytest.approx(expected)


def test_clustered_resamples_draw_whole_items() -> None:
    clusters = ["a", "a", "b", "c", "c", "c"]
    for row in ag.resample_index(clusters, 20, 0):
        picked = [clusters[i] for i in row]
        for c in set(picked):  # an item drawn brings all its pairs, as many times as it was drawn
            assert picked.count(c) % clusters.count(c) == 0


def test_the_no_interval_footnote_shows_only_where_a_number_has_no_interval() -> None:
    from sfteval.harness.labels.report import fmt_stat, pair_markdown

    judge = ["win"] * 6 + ["loss"] * 3 + ["tie"] * 3
    human = ["win"] * 4 + ["loss"] * 2 + ["loss"] * 3 + ["win", "tie", "tie"]
    block = {"reviewers": ["alice"], "labels": 12, "items": 12, "stale": 0, "judged": True,
             "judge_vs_human": ag.verdict_agreement(judge, human, list(range(12))), "human_vs_human": {}}
    assert block["judge_vs_human"]["kappa"]["ci"]  # varied verdicts: every number has its interval
    assert "no interval" not in pair_markdown(block)
    block["judge_vs_human"]["kappa"]["ci"] = None  # what a resample without variation leaves
    text = pair_markdown(block)
    assert fmt_stat(block["judge_vs_human"]["kappa"]).endswith(" [–]") and "- [–]: no interval" in text
