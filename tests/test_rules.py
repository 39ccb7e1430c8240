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


MATCH = ["exact_match", "normalized_match"]
LETTER = "Dear Ann,\nthank you for the flowers; they brightened the whole week.\nBest, Bo"


def test_default_rules_follow_item_content() -> None:
    assert default_rules(item(reference="a")) == MATCH
    assert default_rules(item(choices=["a", "b"], label="a")) == ["choice"]
    assert default_rules(item(checks={"max_chars": 5})) == ["checks"]
    assert default_rules(item()) == []


@pytest.mark.parametrize("reference, matched", [
    ("Canberra.", True), ("H2O", True), ("1989", True), ("公元前221年", True),  # 3 + 1 + 1 words
    ("one two three four five", True),  # five words: the longest short reference
    ("one two three four five six", False),
    ("The capital of Australia is Canberra, not Sydney.", False),
    ("北京是中国的首都。", False),  # 8 characters, each a word
    ("Canberra.\nIt replaced Melbourne.", False),  # two lines
    (LETTER, False),
])
def test_match_rules_only_where_a_match_can_decide(reference: str, matched: bool) -> None:
    """Exact and normalised match apply by default to a short single-line reference (at most 5 words)."""
    assert default_rules(item(reference=reference)) == (MATCH if matched else [])
    assert default_rules(item(reference=reference, answer_type="generation")) == (MATCH if matched else [])


def test_fact_answers_are_matched_whatever_the_reference_length() -> None:
    long_fact = "The capital of Australia is Canberra, not Sydney."
    assert default_rules(item(reference=long_fact, answer_type="fact")) == MATCH
    assert default_rules(item(reference=long_fact, answer_type="classification")) == MATCH
    assert default_rules(item(reference=long_fact), "fact") == MATCH  # the suite's answer_type for the task_type
    assert default_rules(item(reference=long_fact, answer_type="advice"), "fact") == []  # the item's own wins
    assert default_rules(item(reference=LETTER, answer_type="generation", checks={"min_words": 5})) == ["checks"]


def test_listed_rules_apply_where_the_item_has_what_they_need(tmp_path) -> None:
    """suite.yaml `rules` name the rules of a task_type; an item without a reference, choices or checks is not
    scored by the rule that needs them (no record rather than an 'unparsed' one)."""
    from sfteval.harness.score import RuleScorer
    from sfteval.harness.suite import load_suite

    (tmp_path / "suite.yaml").write_text("task_types:\n  w:\n    rules: [exact_match, choice, checks]\n")
    rows = [{"id": "long", "task_type": "w/x", "prompt": "q", "reference": LETTER},
            {"id": "checked", "task_type": "w/y", "prompt": "q", "checks": {"max_words": 9}},
            {"id": "picked", "task_type": "w", "prompt": "q", "choices": ["a", "b"], "reference": "a"},
            {"id": "free", "task_type": "other", "prompt": "q", "reference": LETTER}]
    import json

    (tmp_path / "items.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    scorer = RuleScorer(load_suite(tmp_path))
    got = {it.id: scorer.rules_for(it) for it in scorer.suite.items}
    assert got == {"long": ["exact_match"], "checked": ["checks"], "picked": ["exact_match", "choice"], "free": []}


def test_demo_suite_keeps_its_rules() -> None:
    """The demo's references are short: exact and normalised match, and choice for the classification items."""
    from sfteval.harness.score import RuleScorer
    from sfteval.harness.suite import load_suite

    scorer = RuleScorer(load_suite("demo"))
    by_type = {}
    for it in scorer.suite.items:
        by_type.setdefault(it.task_type, set()).add(tuple(scorer.rules_for(it)))
    assert by_type == {"knowledge/likes": {tuple(MATCH)}, "math/addition": {tuple(MATCH)},
                       "text/uppercase": {tuple(MATCH)}, "classification/sentiment": {("choice",)}}
