"""Rule scorers: decisions a rule can make without a judge model.

Each rule is registered by name (the ``sfteval.rules`` entry points, so a plugin adds rules the same way)
and writes the same Judgment records an LLM judge writes, so aggregation, diffing and gating treat both alike. A rule that cannot decide (no choice
recognisable in the answer) says ``unparsed``: it never guesses a 0.
"""

from __future__ import annotations

import json
import re
import unicodedata
from dataclasses import dataclass
from typing import Callable, Optional

from sfteval.harness.models import Checks, Item

_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_LATIN = re.compile(r"[A-Za-z]")
_WORD = re.compile(r"[A-Za-z0-9]+(?:['’\-][A-Za-z0-9]+)*|[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")


@dataclass
class RuleOutcome:
    """``score`` in [0, 1]; ``None`` with a reason when the rule cannot decide."""

    score: Optional[float]
    reason: Optional[str] = None
    details: Optional[dict] = None


RuleFn = Callable[[Item, str], RuleOutcome]
Needs = Callable[[Item], bool]

#: A reference a match rule can decide on: one line of at most this many words (``count_words``: a Latin
#: word or a number is one, so is each Chinese character) -- a name, a number, a label, a short phrase.
#: Longer references are answers in their own words, which only a judge can compare.
SHORT_REFERENCE_WORDS = 5
#: Answer types whose answers exact and normalised match decide whatever the reference's length.
MATCHED_ANSWER_TYPES = frozenset({"fact", "classification"})


def rule_names() -> list[str]:
    """Rules by name: the ``sfteval.rules`` entry points (the ones below are declared there too)."""
    from sfteval.harness import plugins

    return plugins.names("rules")


def rule_function(name: str) -> RuleFn:
    """The rule registered as ``name``; a plugin's rule is imported only when a suite names it."""
    from sfteval.harness import plugins

    return plugins.load("rules", name)


def needs(predicate: Needs) -> Callable[[RuleFn], RuleFn]:
    """Declare what a rule needs of an item (a reference, choices, checks): a listed rule skips items without it.

    A rule without a declaration (a plugin's, say) applies to every item.
    """
    def deco(fn: RuleFn) -> RuleFn:
        fn.needs = predicate  # type: ignore[attr-defined]
        return fn

    return deco


def applies(name: str, item: Item) -> bool:
    """Whether the item has what rule ``name`` needs (see :func:`needs`)."""
    return getattr(rule_function(name), "needs", lambda item: True)(item)


def _has_reference(item: Item) -> bool:
    return isinstance(item.final_reference, str)


def _has_choices(item: Item) -> bool:
    return bool(item.choices)


def _has_checks(item: Item) -> bool:
    return bool(item.checks and item.checks.active())


def is_short_reference(reference: str) -> bool:
    text = reference.strip()
    return "\n" not in text and count_words(text) <= SHORT_REFERENCE_WORDS


def default_rules(item: Item, answer_type: Optional[str] = None) -> list[str]:
    """Rules that apply to an item when its task_type settings name none.

    Exact and normalised match only where a match can decide: a short single-line reference, or a fact /
    classification answer (the item's own ``answer_type``, else ``answer_type``, the task_type's setting).
    Elsewhere they would be zeros for answers no rule can judge (writing, role-play, advice).
    """
    names = []
    if _has_reference(item) and not _has_choices(item) and (
            (item.answer_type or answer_type) in MATCHED_ANSWER_TYPES or is_short_reference(item.final_reference)):
        names += ["exact_match", "normalized_match"]
    if _has_choices(item):
        names.append("choice")
    if _has_checks(item):
        names.append("checks")
    return names


# -- text helpers ----------------------------------------------------------------------
def normalize(text: str) -> str:
    """Case, width, whitespace and punctuation-insensitive form for 'normalized' matching."""
    text = unicodedata.normalize("NFKC", text).casefold()
    text = "".join(ch for ch in text if not unicodedata.category(ch).startswith(("P", "S")) or ch in "+-*/=<>%$")
    return " ".join(text.split())


def count_words(text: str) -> int:
    """Latin words plus CJK characters (a Chinese character is the unit a length limit means)."""
    return len(_WORD.findall(text))


def detect_language(text: str) -> Optional[str]:
    cjk, latin = len(_CJK.findall(text)), len(_LATIN.findall(text))
    if cjk + latin == 0:
        return None
    # One Chinese character carries about a word, so 30% CJK already means Chinese prose with English terms.
    return "zh" if cjk / (cjk + latin) >= 0.3 else "en"


def strip_code_fence(text: str) -> str:
    m = re.fullmatch(r"\s*```[\w-]*\s*\n(.*?)\n?```\s*", text, flags=re.S)
    return m.group(1) if m else text.strip()


# -- rules -------------------------------------------------------------------------------
def _reference(item: Item) -> Optional[str]:
    ref = item.final_reference
    return ref if isinstance(ref, str) else None


@needs(_has_reference)
def exact_match(item: Item, answer: str) -> RuleOutcome:
    ref = _reference(item)
    if ref is None:
        return RuleOutcome(None, "item has no reference")
    return RuleOutcome(float(answer.strip() == ref.strip()))


@needs(_has_reference)
def normalized_match(item: Item, answer: str) -> RuleOutcome:
    ref = _reference(item)
    if ref is None:
        return RuleOutcome(None, "item has no reference")
    return RuleOutcome(float(normalize(answer) == normalize(ref)))


@needs(_has_choices)
def choice(item: Item, answer: str) -> RuleOutcome:
    """Which choice did the answer pick? The exact choice, else the only choice it mentions."""
    if not item.choices:
        return RuleOutcome(None, "item has no choices")
    norm = normalize(answer)
    by_norm = {normalize(c): c for c in item.choices}
    picked = by_norm.get(norm)
    if picked is None:  # an answer naming two choices ("positive or negative") picked neither
        mentioned = [c for n, c in by_norm.items() if n and re.search(rf"(?<!\w){re.escape(n)}(?!\w)", norm)]
        picked = mentioned[0] if len(mentioned) == 1 else None
    if picked is None:
        return RuleOutcome(None, "no single choice recognisable in the answer", {"answer": answer[:200]})
    return RuleOutcome(float(picked == item.label), details={"picked": picked})


def json_valid(item: Item, answer: str) -> RuleOutcome:
    try:
        json.loads(strip_code_fence(answer))
    except ValueError as e:
        return RuleOutcome(0.0, details={"error": str(e)})
    return RuleOutcome(1.0)


def evaluate_checks(checks: Checks, answer: str) -> dict[str, bool]:
    """Every active check -> passed?  Shared by the scorer, suite lint and suite tests."""
    results: dict[str, bool] = {}
    text = answer.strip()
    active = checks.active()
    if "min_chars" in active:
        results["min_chars"] = len(text) >= checks.min_chars  # type: ignore[operator]
    if "max_chars" in active:
        results["max_chars"] = len(text) <= checks.max_chars  # type: ignore[operator]
    if "min_words" in active:
        results["min_words"] = count_words(text) >= checks.min_words  # type: ignore[operator]
    if "max_words" in active:
        results["max_words"] = count_words(text) <= checks.max_words  # type: ignore[operator]
    if "max_lines" in active:
        results["max_lines"] = len([ln for ln in text.splitlines() if ln.strip()]) <= checks.max_lines  # type: ignore[operator]
    for s in checks.must_contain:
        results[f"must_contain:{s}"] = s.casefold() in text.casefold()
    for s in checks.must_not_contain:
        results[f"must_not_contain:{s}"] = s.casefold() not in text.casefold()
    if checks.starts_with is not None:
        results["starts_with"] = text.startswith(checks.starts_with)
    if checks.ends_with is not None:
        results["ends_with"] = text.endswith(checks.ends_with)
    if checks.regex is not None:
        results["regex"] = re.search(checks.regex, text, flags=re.S) is not None
    parsed = None
    if checks.json_valid or checks.json_keys:
        try:
            parsed = json.loads(strip_code_fence(text))
            results["json_valid"] = True
        except ValueError:
            results["json_valid"] = False
    for k in checks.json_keys:
        results[f"json_key:{k}"] = isinstance(parsed, dict) and k in parsed
    if checks.language is not None:
        results["language"] = detect_language(text) == checks.language
    return results


@needs(_has_checks)
def checks_rule(item: Item, answer: str) -> RuleOutcome:
    if not item.checks or not item.checks.active():
        return RuleOutcome(None, "item has no checks")
    results = evaluate_checks(item.checks, answer)
    failed = [k for k, ok in results.items() if not ok]
    return RuleOutcome(float(not failed), details={"passed": sum(results.values()), "total": len(results), "failed": failed})
