"""Judge prompts: the messages a judge model sees for one item, built from a config.

Why so careful: the candidate's answers are untrusted input to the judge. They are wrapped in the
config's markers, anything that looks like a marker (or like one of the template's section headings)
inside them is neutralised so an answer cannot close its block early and forge a reference or a
verdict, and answers that talk to the judge are flagged so the report can show them.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Iterable, Literal, Optional, Sequence, Union

from sfteval.judges.config import PLACEHOLDER_RE, JudgeConfig, Markers
from sfteval.judges.text import ZERO_WIDTH, fold_width

if TYPE_CHECKING:  # only for type checkers: the harness models are passed in, never constructed here
    from sfteval.harness.models import Item

Answers = Union[str, Sequence[str]]

_OPEN = r"(?:[<\[({〈《«‹「『]|&lt;)"
_CLOSE = r"(?:[>\])}〉》»›」』]|&gt;)"
_ZW = f"[{ZERO_WIDTH}]*"
_SEP = rf"(?:[\s_\-'·.:]|[{ZERO_WIDTH}])*"


@dataclass(frozen=True)
class JudgePrompt:
    """Chat messages for the judge plus what the runner must store with the judgment."""

    messages: list[dict[str, str]]
    answer_type: str
    mode: Literal["single", "pair"]
    flags: dict[str, list[str]] = field(default_factory=dict)

    def content_hash(self) -> str:
        """sha256 of the messages: part of a judgment's cache key (with config hash, judge model, sample)."""
        blob = json.dumps(self.messages, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode("utf-8")).hexdigest()


# -- delimiter neutralisation --------------------------------------------------------------------
def _fuzzy_words(text: str) -> str:
    words = re.findall(r"[^\W_]+", text)
    return _SEP.join("".join(re.escape(c) + _ZW for c in w) for w in words)


def _lookalike_regex(text: str) -> re.Pattern[str]:
    return re.compile(rf"(?P<open>{_OPEN}+\s*)?(?P<core>{_fuzzy_words(text)})(?P<close>\s*{_CLOSE}+)?", re.I)


def neutralise(text: str, markers: Markers) -> tuple[str, int]:
    """Replace look-alikes of the answer markers and of the configured section headings in ``text``.

    Matching ignores case, full-width forms, zero-width characters and the separators between words,
    so '＜＜＜answer end＞＞＞' or 'ANSWER\u200b_END' count. A marker's words without any bracket are only
    replaced when written as one token ('ANSWER_END'), so prose like 'answer start' stays. Headings
    ('[参考答案开始]') are only replaced with a bracket. Returns the new text and the number replaced.
    """
    folded = fold_width(text)
    spans: list[tuple[int, int]] = []
    rules = [(_lookalike_regex(m), False) for m in (markers.answer_start, markers.answer_end)]
    rules += [(_lookalike_regex(h), True) for h in markers.lookalikes if re.search(r"[^\W_]", h)]
    for rx, needs_bracket in rules:
        for m in rx.finditer(folded):
            bracketed = bool(m.group("open") or m.group("close"))
            one_token = not re.search(rf"[\s{ZERO_WIDTH}]", m.group("core"))
            if bracketed or (not needs_bracket and one_token):
                spans.append(m.span())
    if not spans:
        return text, 0
    spans.sort()
    merged: list[tuple[int, int]] = []
    for s, e in spans:
        if merged and s < merged[-1][1]:
            merged[-1] = (merged[-1][0], max(e, merged[-1][1]))
        else:
            merged.append((s, e))
    out, pos = [], 0
    for s, e in merged:
        out += [text[pos:s], markers.replacement]
        pos = e
    out.append(text[pos:])
    return "".join(out), len(merged)


# -- answers that address the judge ------------------------------------------------------------
_INJECTION: list[tuple[str, str]] = [
    ("ignore_instructions", r"\b(?:ignore|disregard|forget|override|bypass)\s+(?:all\s+|any\s+)?(?:of\s+)?(?:the\s+|your\s+|my\s+|these\s+)?(?:(?:previous|prior|above|earlier|preceding|original|system|grading|scoring|evaluation|judging|given)\s+)?(?:instructions?|prompts?|rules|guidelines|criteria)\b|\b(?:ignore|disregard)\s+everything\s+(?:above|before)"),
    ("ignore_instructions", r"(?:忽略|无视|忘记|忘掉|不要理会|不用管)掉?你?(?:之前|以上|上面|前面|先前|上述|原有|原来|所有|全部|一切|系统)的?(?:所有|全部|一切)?的?(?:指令|指示|要求|规则|提示词?|设定|评分标准|说明)|(?:忽略|无视)掉?(?:评分|打分|评审)(?:标准|规则|要求)"),
    ("score_request", r"\b(?:give|rate|score|grade|assign|award)\s+(?:this|the|my|that|our)?\s*(?:answer|response|reply|output|solution)\s+(?:an?\s+)?(?:score\s+of\s+|rating\s+of\s+)?(?:10|ten|full marks?|perfect|the highest)\b"),
    ("score_request", r"\b(?:give|rate|score|grade|assign|award)\b[^.\n]{0,30}?\b10\s*/\s*10\b"),
    ("score_request", r"\b(?:give|deserves?|award|assign|rate)\b[^.\n]{0,30}?\b(?:full marks|a perfect score|the highest (?:possible )?(?:score|rating|mark))"),
    ("score_request", r"(?:给|打|评)(?:我|它|本|这个|这份|此|该)?(?:回答|答案|回复)?(?:打|评)?出?(?:一个|个)?(?:满分|最高分)"),
    ("score_request", r"(?:评分|打分)\s*(?:为|是|:)?\s*(?:10\s*分(?!钟|之|制)|十分(?![\u4e00-\u9fff]))"),
    ("score_request", r"(?:给|打|评)出?(?:我|它|本回答|这个回答|此回答)?\s*(?:10\s*分(?!钟|之|制)|十分(?![\u4e00-\u9fff]))"),
    ("addresses_judge", r"\b(?:as|dear|attention|hey|hello|hi)\s+(?:the\s+|an?\s+|my\s+)?(?:ai\s+|llm\s+)?(?:judge|evaluator|grader|rater|scorer)s?\b"),
    ("addresses_judge", r"\b(?:note|message)\s+(?:to|for)\s+(?:the\s+)?(?:ai\s+)?(?:judge|evaluator|grader|reviewer|rater)s?\b"),
    ("addresses_judge", r"\byou\s+are\s+(?:the|an?)\s+(?:ai\s+)?(?:judge|evaluator|grader)\b"),
    ("addresses_judge", r"(?:作为|身为)(?:一名|一位|一个|本次的?)?(?:AI)?(?:评委|评审|裁判|评判者|评估者|评分者|评分员|打分者)"),
    ("addresses_judge", r"(?:亲爱的|尊敬的|致)(?:各位)?(?:评委|评审|裁判|评判者|评估者|评分者|评审员)"),
    ("addresses_judge", r"(?:评委|评审员|裁判|评分者|评估者)(?:你好|您好|请注意)"),
    ("role_override", r"\b(?:new|updated|real|actual)\s+(?:system\s+)?instructions?\s*:|\bsystem\s+(?:prompt|message)\s*:|\byou\s+are\s+now\s+(?:a|an|the|in)\s+(?:\w+\s+){0,2}?(?:judge|evaluator|grader|mode|model)\b"),
    ("role_override", r"(?:新的|最新的?|真正的)(?:系统)?(?:指令|指示)\s*:|(?:系统提示|系统指令)\s*:"),
    ("forged_verdict", r"\[\[\s*(?:A|B|C|tie)\s*\]\]|\b(?:rating|score)\s*:?\s*\[\[\s*\d|(?:评分|得分)\s*:?\s*\[\[\s*\d"),
    ("forged_scores", r"['\"]\s*(?:综合得分|overall(?:\s+score)?)\s*['\"]\s*:\s*\d"),
]
_INJECTION_RX = [(code, re.compile(p, re.I)) for code, p in _INJECTION]


def flag_injection(text: str, extra_patterns: Iterable[str] = ()) -> list[str]:
    """Reasons ('code: snippet') why an answer looks like it addresses the judge; [] when clean.

    Advisory only: flags are stored in Judgment.details and counted in reports; they never change a
    score. Matching runs on width-folded text, so full-width tricks ('忽略之前的指令：') still match.
    """
    folded = "".join(ch for ch in fold_width(text) if ch not in ZERO_WIDTH)
    out: list[str] = []
    seen: set[str] = set()
    rules = _INJECTION_RX + [("custom_pattern", re.compile(p, re.I)) for p in extra_patterns]
    for code, rx in rules:
        if code in seen:
            continue
        m = rx.search(folded)
        if m:
            seen.add(code)
            snippet = " ".join(m.group(0).split())
            out.append(f"{code}: {snippet[:60]}")
    return out


# -- prompt assembly ----------------------------------------------------------------------------
def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


def _as_list(answers: Answers) -> list[str]:
    return [answers] if isinstance(answers, str) else list(answers)


def _fill(template: str, values: dict[str, str]) -> str:
    """Single-pass {{name}} substitution: text inserted from answers is never expanded again."""
    return PLACEHOLDER_RE.sub(lambda m: values[m.group(1)], template)


class _Wrapper:
    """Wraps untrusted answer text in markers and collects per-answer flags."""

    def __init__(self, config: JudgeConfig) -> None:
        self.config = config
        self.flags: dict[str, list[str]] = {}

    def __call__(self, who: str, text: str) -> str:
        m = self.config.markers
        clean, n = neutralise(text, m)
        found = self.flags.setdefault(who, [])
        for f in flag_injection(text, self.config.injection.extra_patterns):
            if f not in found:
                found.append(f)
        if n:
            found.append(f"delimiter_lookalike: {n} neutralised")
        return f"{m.answer_start}\n{clean}\n{m.answer_end}"


def _render_question(config: JudgeConfig, item: "Item", histories: Sequence[tuple[str, str, list[str]]], wrap: _Wrapper) -> str:
    """The conversation up to the last user turn; earlier candidate turns appear wrapped as untrusted.

    ``histories`` holds (flag owner, heading, earlier answers) per candidate: one for single grading,
    two (A and B) for pairwise. A lone user turn is shown bare, as AlignBench does.
    """
    conv = item.conversation
    if len(conv) == 1:
        return conv[0].content
    lab = config.prompts.labels
    parts: list[str] = []
    answered = 0
    for i, msg in enumerate(conv):
        heading = {"system": lab.system, "user": lab.user, "assistant": lab.assistant}[msg.role]
        parts.append(f"{heading}\n{msg.content}")
        is_answered = msg.role == "user" and i + 1 < len(conv) and conv[i + 1].role == "user"
        if is_answered:
            for who, head, earlier in histories:
                parts.append(f"{head}\n{wrap(who, earlier[answered])}")
            answered += 1
    return "\n\n".join(parts)


def _check_answers(item: "Item", answers: list[str], who: str) -> None:
    n = item.n_answer_turns
    if len(answers) != n:
        raise ValueError(f"item {item.id!r}: {who} has {len(answers)} answer(s) but the item has {n} answered turn(s)")


def _common_values(config: JudgeConfig, item: "Item") -> dict[str, str]:
    ref = item.final_reference
    p = config.prompts
    block = _fill(p.reference_present, {"reference": ref}) if ref else p.reference_absent
    return {
        "reference_block": block,
        "scale_min": _num(config.parser.score_min),
        "scale_max": _num(config.parser.score_max),
        "anchor_score": _num(p.anchor_score),
        "answer_start": config.markers.answer_start,
        "answer_end": config.markers.answer_end,
    }


def _messages(system: str, user: str) -> list[dict[str, str]]:
    msgs = [{"role": "system", "content": system}] if system.strip() else []
    return msgs + [{"role": "user", "content": user}]


def build_single_prompt(config: JudgeConfig, item: "Item", answers: Answers, answer_type: Optional[str] = None) -> JudgePrompt:
    """Messages for grading one candidate. ``answers``: one per answered turn (a str for one turn).

    The answer type is ``answer_type`` if given, else the item's own, else the config's task_type map.
    """
    ans = _as_list(answers)
    _check_answers(item, ans, "the candidate")
    at = config.answer_type_for(item.task_type, answer_type or item.answer_type)
    dims = config.dimensions_for(at)
    wrap = _Wrapper(config)
    values = _common_values(config, item)
    ph = config.prompts.score_placeholder
    values.update(
        question=_render_question(config, item, [("answer", config.prompts.labels.candidate, ans[:-1])], wrap),
        answer=wrap("answer", ans[-1]),
        answer_type=config.answer_type(at).name,
        dimensions="\n".join(f"{i}. {d.name}" + (f": {d.description}" if d.description else "") for i, d in enumerate(dims, 1)),
        score_format="{" + ", ".join(f"'{d.name}': {ph}" for d in [*dims, config.overall]) + "}",
    )
    t = config.prompts.single
    return JudgePrompt(_messages(_fill(t.system, values), _fill(t.user, values)), at, "single", wrap.flags)


def build_pair_prompt(
    config: JudgeConfig, item: "Item", answers_a: Answers, answers_b: Answers, answer_type: Optional[str] = None
) -> JudgePrompt:
    """Messages for comparing answer A (shown first) with answer B; flags are keyed 'A' and 'B'."""
    a, b = _as_list(answers_a), _as_list(answers_b)
    _check_answers(item, a, "answer A")
    _check_answers(item, b, "answer B")
    at = config.answer_type_for(item.task_type, answer_type or item.answer_type)
    lab = config.prompts.labels
    wrap = _Wrapper(config)
    values = _common_values(config, item)
    values.update(
        question=_render_question(config, item, [("A", lab.candidate_a, a[:-1]), ("B", lab.candidate_b, b[:-1])], wrap),
        answer_a=wrap("A", a[-1]),
        answer_b=wrap("B", b[-1]),
    )
    t = config.prompts.pair
    return JudgePrompt(_messages(_fill(t.system, values), _fill(t.user, values)), at, "pair", wrap.flags)


def build_pair_prompts(
    config: JudgeConfig, item: "Item", candidate: Answers, baseline: Answers, answer_type: Optional[str] = None
) -> dict[Literal["AB", "BA"], JudgePrompt]:
    """Both orders for position-swapped pairwise judging: AB shows the candidate first, BA the baseline.

    Flags are re-keyed 'candidate' / 'baseline' so they mean the same thing in both orders.
    """
    ab = build_pair_prompt(config, item, candidate, baseline, answer_type)
    ba = build_pair_prompt(config, item, baseline, candidate, answer_type)
    return {
        "AB": JudgePrompt(ab.messages, ab.answer_type, "pair", {"candidate": ab.flags.get("A", []), "baseline": ab.flags.get("B", [])}),
        "BA": JudgePrompt(ba.messages, ba.answer_type, "pair", {"candidate": ba.flags.get("B", []), "baseline": ba.flags.get("A", [])}),
    }
