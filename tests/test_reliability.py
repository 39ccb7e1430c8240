"""Judge reliability numbers (harness/reliability.py): rank correlation against hand-computed values and scipy,
status and flip rates, model-family warnings, thresholds, and the bias benchmark's corrected score."""

from __future__ import annotations

from pathlib import Path

import pytest

from sfteval.harness import reliability as rel
from sfteval.judges.config import load_judge_config


def test_spearman_by_hand_and_with_ties() -> None:
    # no ties: 1 - 6 * sum(d^2) / (n (n^2 - 1)) with rank differences 0, 1, 1, 0 -> 1 - 12 / 60
    assert rel.spearman([1, 2, 3, 4], [10, 30, 20, 40]) == pytest.approx(0.8)
    assert rel.spearman([1, 2, float("nan"), 3, None, 4], [10, 30, 5, 20, 7, 40]) == pytest.approx(0.8)  # pairs dropped
    assert rel.spearman([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
    # ties share their average rank: x ranks 1, 2.5, 2.5, 4 against 1..4; the Pearson correlation of the ranks is
    # 4.5 / sqrt(4.5 * 5) = sqrt(0.9) (the d^2 formula, 1 - 6 * 0.5 / 60 = 0.95, is wrong with ties)
    assert rel.spearman([1, 2, 2, 3], [1, 2, 3, 4]) == pytest.approx(0.9 ** 0.5)
    x = [1, 2, 2, 3, 5, 5, 5, 9]
    y = [3, 1, 4, 1, 5, 9, 2, 6]
    from scipy.stats import spearmanr

    assert rel.spearman(x, y) == pytest.approx(spearmanr(x, y).statistic)


def test_spearman_is_none_where_undefined() -> None:
    assert rel.spearman([1, 2], [2, 1]) is None  # fewer than 3 pairs
    assert rel.spearman([1, 2, None, float("nan")], [2, 1, 3, 4]) is None  # 2 pairs left
    assert rel.spearman([1, 1, 1], [1, 2, 3]) is None and rel.spearman([1, 2, 3], [4, 4, 4]) is None  # constant
    assert rel.spearman([1, 1, 1, 2], [1, 2, 3, None]) is None  # constant once the incomplete pair is dropped


def test_rates() -> None:
    assert rel.status_rates(["ok", "unparsed", "error", "ok"])["unparsed_rate"] == 0.25
    assert rel.flip_rate([True, False, False, False]) == 0.25 and rel.flip_rate([]) is None
    assert rel.first_position_rate(["A", "A", "B", "tie", None]) == pytest.approx(2 / 3)
    rows = [("win", 10, 5), ("loss", 10, 5), ("win", 3, 9), ("tie", 10, 1), ("win", 4, 4), ("loss", 2, 8)]
    assert rel.longer_answer_win_rate(rows) == pytest.approx(2 / 4)


def test_family_warning(tmp_path: Path) -> None:
    qwen_judge = rel.identify_model("Qwen/Qwen2.5-72B-Instruct")
    assert "same model family (qwen)" in rel.family_warning(qwen_judge, rel.identify_model("my-qwen2-sft-step100"))
    assert rel.family_warning(qwen_judge, rel.identify_model("llama-3-8b-sft")) is None
    ckpt = tmp_path / "step-1200"
    ckpt.mkdir()
    (ckpt / "config.json").write_text('{"model_type": "mistral", "_name_or_path": "mistralai/Mistral-7B-v0.3"}')
    warning = rel.family_warning(rel.identify_model("mistral-large"), rel.identify_model("x", path=str(ckpt)))
    assert "(mistral)" in warning
    (ckpt / "config.json").write_text('{"model_type": "qwen2"}')  # only config.json names the family
    assert "same model family (qwen)" in rel.family_warning(qwen_judge, rel.identify_model("step-1200", path=str(ckpt)))
    other = tmp_path / "judge"
    other.mkdir()
    (other / "config.json").write_text('{"model_type": "acme_lm"}')  # an architecture no family pattern knows
    (ckpt / "config.json").write_text('{"model_type": "acme_lm"}')
    assert "architecture 'acme_lm'" in rel.family_warning(rel.identify_model("j", path=str(other)),
                                                          rel.identify_model("c", path=str(ckpt)))
    assert "itself" in rel.family_warning(rel.identify_model(str(ckpt)), rel.identify_model("c", path=str(ckpt)))


def test_threshold_warnings() -> None:
    numbers = {"unparsed_rate": 0.3, "error_rate": 0.0, "swap_flip_rate": 0.1, "length_correlation": 0.8}
    w = rel.threshold_warnings(numbers, n_items=20)
    assert len(w) == 2 and "unparsed" in w[0] and "length" in w[1]
    assert rel.threshold_warnings(numbers, n_items=3) == []  # too few items to tell


def test_bench_corrected_score_recovers_the_true_win_rate_at_the_shipped_k() -> None:
    import re
    import subprocess
    import sys

    bench = Path(__file__).resolve().parents[1] / "bench" / "judge_bias.py"

    def run(*args: str) -> tuple[int, str, dict[str, float]]:
        proc = subprocess.run([sys.executable, str(bench), "--items", "2000", *args], capture_output=True, text=True,
                              timeout=300)
        errors = {m.group(1): float(m.group(2)) for m in re.finditer(
            r"^\s+(naive|swapped \(|swapped \+ repeated|corrected).*?([+-]\d+\.\d)$", proc.stdout, re.M)}
        return proc.returncode, proc.stdout + proc.stderr, errors

    shipped_k = load_judge_config("default-en").sampling.k
    rc, out, errors = run()  # at the shipped config's k
    assert rc == 0, out
    assert f"k={shipped_k} samples per order" in out
    assert set(errors) == {"naive", "swapped (", "swapped + repeated", "corrected"}
    assert abs(errors["corrected"]) <= 2 and abs(errors["naive"]) >= 10
    assert abs(errors["swapped + repeated"]) > abs(errors["corrected"])  # ties for flips pull towards 50%
    rc, out, errors = run("--bias", "0.45", "--k", "1")  # too few samples for a strong bias: the gate trips
    assert rc == 1 and abs(errors["corrected"]) > 2, out
