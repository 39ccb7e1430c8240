"""Length and style control against planted confounds and independent fits (scikit-learn, statsmodels OLS).

A simulated judge prefers the longer (or the more formatted) answer and is indifferent to quality: the raw
win rate must be clearly above 1/2 and the controlled one near 1/2; a judge whose scores follow length only
must show a positive raw delta and a length-adjusted delta near 0.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sfteval.harness.differ import diff_frames
from sfteval.harness.differ.lengthctl import normalised_length
from sfteval.harness.differ.pairs import read_pairwise

N = 400


def _pair_folder(tmp_path: Path, rows: list[dict]) -> Path:
    folder = tmp_path / "pairs"
    folder.mkdir()
    (folder / "pair_items.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (folder / "pair_summary.json").write_text("{}")
    return folder


def _judged(rng: np.random.Generator, pref: np.ndarray) -> list[str]:
    """A noisy judge: P(candidate wins) = sigmoid(pref); a tie when the draw is near the middle."""
    u = rng.random(pref.size)
    p = 1 / (1 + np.exp(-pref))
    return ["win" if x < p - 0.05 else "loss" if x > p + 0.05 else "tie" for x, p in zip(u, p)]


def _rows(outcomes: list[str], cand: np.ndarray, base: np.ndarray) -> list[dict]:
    return [{"item_id": f"i{i}", "task_type": "writing/email", "sample": 0, "outcome": o, "corrected_outcome": o,
             "flipped": False, "candidate_chars": int(c), "baseline_chars": int(b), "candidate_generation_key": f"c{i}",
             "baseline_generation_key": f"b{i}"} for i, (o, c, b) in enumerate(zip(outcomes, cand, base))]


def _groups(n: int) -> dict:
    return {f"i{i}": [("overall", "overall"), ("level1", "writing"), ("task_type", "writing/email")] for i in range(n)}


def test_length_confound_raw_win_rate_high_length_controlled_near_half(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    base = rng.integers(200, 600, N)
    cand = base + rng.integers(-150, 500, N)  # the candidate was padded on most items, shortened on some
    x = normalised_length(cand - base)
    outcomes = _judged(rng, 2.0 * x)  # the judge only likes length
    answers = {f"c{i}": "a" * int(c) for i, c in enumerate(cand)} | {f"b{i}": "a" * int(b) for i, b in enumerate(base)}
    pw = read_pairwise(_pair_folder(tmp_path, _rows(outcomes, cand, base)), False, _groups(N), seed=0,
                       n_resamples=500, confidence=0.95, answers=answers)
    g = next(g for g in pw.groups if g["group"] == "overall")
    assert g["corrected_score"] > 0.6 and g["corrected_ci_low"] > 0.5
    assert abs(g["lc_win_rate"] - 0.5) < 0.07 and g["lc_ci_low"] < 0.5 < g["lc_ci_high"]
    # the same model fitted independently: scikit-learn's unpenalised logistic regression on soft labels
    from sklearn.linear_model import LogisticRegression

    y = np.array([{"win": 1.0, "tie": 0.5, "loss": 0.0}[o] for o in outcomes])
    X = np.concatenate([x, x])[:, None]
    fit = LogisticRegression(C=np.inf, max_iter=10000, tol=1e-12).fit(X, np.r_[np.ones(N), np.zeros(N)],
                                                        sample_weight=np.r_[y, 1 - y])
    assert g["lc_win_rate"] == pytest.approx(1 / (1 + np.exp(-fit.intercept_[0])), abs=1e-4)


def test_style_confound_is_removed_by_the_style_control_only(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    chars = rng.integers(300, 400, N)
    bold = rng.integers(0, 6, N)  # candidate answers carry 0-5 bold spans and headers, baseline answers none
    answers, cand, base = {}, [], []
    for i in range(N):
        body = "x" * int(chars[i])
        fmt_c = "".join(f"## H{j}\n**b{j}**\n" for j in range(bold[i]))
        answers[f"c{i}"] = fmt_c + body
        answers[f"b{i}"] = "y" * (len(fmt_c)) + body  # same length: only the markdown differs
        cand.append(len(answers[f"c{i}"]))
        base.append(len(answers[f"b{i}"]))
    outcomes = _judged(rng, 0.6 * bold.astype(float) - 0.2)
    pw = read_pairwise(_pair_folder(tmp_path, _rows(outcomes, np.array(cand), np.array(base))), False, _groups(N),
                       seed=0, n_resamples=500, confidence=0.95, answers=answers)
    g = next(g for g in pw.groups if g["group"] == "overall")
    assert g["corrected_score"] > 0.6 and g["lc_win_rate"] > 0.6  # equal lengths: length control cannot help
    assert abs(g["sc_win_rate"] - 0.45) < 0.1 and g["sc_ci_low"] < 0.5  # read at "no markdown difference"


def test_judge_score_deltas_adjusted_for_length_change() -> None:
    rng = np.random.default_rng(2)
    n = 600
    idx = pd.Index([f"i{i}" for i in range(n)], name="item_id")
    base = pd.DataFrame({"task_type": "writing/email", "level1": "writing", "robustness": False, "tags": ""}, index=idx)
    a, b = base.copy(), base.copy()
    la = rng.integers(200, 600, n).astype(float)
    lb = la + rng.integers(-100, 600, n)
    a["gen:answer_chars"], b["gen:answer_chars"] = la, lb
    q = np.clip(np.rint(rng.normal(6, 1.2, n)), 1, 10)
    a["judge:overall"] = q
    b["judge:overall"] = np.clip(np.rint(q + 2.0 * normalised_length(lb - la) + rng.normal(0, 0.7, n)), 1, 10)
    diff = diff_frames(a, b)
    cell = diff.cell("overall", "judge:overall")
    assert cell["delta"] > 0.5 and cell["ci_low"] > 0  # the raw change looks like an improvement
    assert abs(cell["length_adjusted_delta"]) < 0.2
    assert cell["length_adjusted_ci_low"] < 0 < cell["length_adjusted_ci_high"]
    import statsmodels.api as sm

    x = normalised_length(lb - la)
    ols = sm.OLS(b["judge:overall"].to_numpy() - q, sm.add_constant(x)).fit()
    assert cell["length_adjusted_delta"] == pytest.approx(ols.params[0], abs=1e-9)
    lo, hi = ols.conf_int(0.05)[0]
    assert (cell["length_adjusted_ci_low"], cell["length_adjusted_ci_high"]) == pytest.approx((lo, hi), abs=1e-9)
