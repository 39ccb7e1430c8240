"""Rule scorers decide what a rule can decide, and say 'unparsed' instead of guessing."""

from __future__ import annotations

import pytest

from sfteval.harness.models import Checks, Item
from sfteval.judges.rules import (choice, count_words, default_rules, detect_language, evaluate_checks, exact_match,
                                  normalize, normalized_match)


def item(**kw) -> Item:
    base = {"id": "i", "task_type": "t", "prompt": "q"}
    base.update(kw)
    return Item.model_validate(base)


def test_exact_and_normalized_match() -> None:
    it = item(reference="The answer is 42.")
    assert exact_match(it, "  The answer is 42.\n").score == 1.0
    assert exact_match(it, "the answer is 42").score == 0.0
    assert normalized_match(it, "the answer is 42").score == 1.0
    assert normalized_match(it, "The answer is 43.").score == 0.0
    assert exact_match(item(), "x").score is None  # no reference: cannot decide


def test_normalize_handles_full_width_and_case() -> None:
    assert normalize("答案是：４２。") == normalize("答案是42")
    assert normalize("Hello,   WORLD!") == "hello world"
    assert normalize("3+4=7") == "3+4=7"  # arithmetic symbols are kept


@pytest.mark.parametrize("answer, score", [
    ("positive", 1.0), ("Positive.", 1.0), ("positive - the tone is warm", 1.0),
    ("negative", 0.0), ("The sentiment is negative.", 0.0),
])
def test_choice_recognised(answer: str, score: float) -> None:
    it = item(choices=["positive", "negative"], label="positive")
    assert choice(it, answer).score == score


@pytest.mark.parametrize("answer", ["", "neutral", "positive or negative"])
def test_choice_unrecognisable_is_unparsed_not_zero(answer: str) -> None:
    out = choice(item(choices=["positive", "negative"], label="positive"), answer)
    assert out.score is None and out.reason


def test_checks() -> None:
    c = Checks(max_chars=25, must_contain=["Paris"], must_not_contain=["London"], starts_with="The",
               regex=r"\bcapital\b", language="en", max_lines=1)
    assert all(evaluate_checks(c, "The capital is Paris.").values())
    failed = [k for k, ok in evaluate_checks(c, "London, not Paris, is the capital of nothing").items() if not ok]
    assert set(failed) == {"max_chars", "must_not_contain:London", "starts_with"}


def test_json_checks_accept_code_fences() -> None:
    c = Checks(json_valid=True, json_keys=["name", "arguments"])
    assert all(evaluate_checks(c, '```json\n{"name": "f", "arguments": {}}\n```').values())
    res = evaluate_checks(c, '{"name": "f"}')
    assert res["json_valid"] and not res["json_key:arguments"]
    assert not evaluate_checks(c, "{name: f}")["json_valid"]


def test_words_and_language() -> None:
    assert count_words("It's a well-known fact.") == 4
    assert count_words("北京是首都") == 5
    assert detect_language("北京是中国的首都，也叫 Beijing。") == "zh"
    assert detect_language("Beijing is the capital.") == "en"
    assert detect_language("123 !!") is None


def test_default_rules_follow_item_content() -> None:
    assert default_rules(item(reference="a")) == ["exact_match", "normalized_match"]
    assert default_rules(item(choices=["a", "b"], label="a")) == ["choice"]
    assert default_rules(item(checks={"max_chars": 5})) == ["checks"]
    assert default_rules(item()) == []
