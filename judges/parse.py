"""Parse judge outputs: the final score dict of single grading, the [[label]] pairwise verdict.

Why strict about the result but lenient about the form: judges write full-width braces, JSON or
Python quoting, code fences, display names or ASCII keys, '8/10'. All of that is fine. But a missing
dimension, a score outside the scale or a truncated dict is *unparsed* with a reason -- never a 0 --
so a broken judge shows up as an unparsed rate instead of dragging scores down.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Literal, Optional, Union

from sfteval.judges.config import JudgeConfig, ParserOptions
from sfteval.judges.text import fold_width, norm_key


@dataclass(frozen=True)
class ParsedScores:
    """Scores of one judge output, keyed by the config's ASCII dimension keys."""

    scores: dict[str, float]
    overall: float
    answer_type: str
    ignored_keys: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    status: Literal["ok"] = "ok"


@dataclass(frozen=True)
class ParsedVerdict:
    """A pairwise verdict by position: 'A' (shown first), 'B' (shown second) or 'tie'.

    ``label`` is the judge's own label ('A>>B'); ``strength`` is 'strong' for '>>' labels and 'weak' for
    '>' labels (Arena-Hard style), None for labels without one ('A', 'C', 'A=B').
    """

    verdict: Literal["A", "B", "tie"]
    notes: list[str] = field(default_factory=list)
    label: Optional[str] = None
    strength: Optional[Literal["strong", "weak"]] = None
    status: Literal["ok"] = "ok"


@dataclass(frozen=True)
class Unparsed:
    """A judge output that yields no usable result; ``reason`` says exactly why."""

    reason: str
    status: Literal["unparsed"] = "unparsed"


ScoreResult = Union[ParsedScores, Unparsed]
VerdictResult = Union[ParsedVerdict, Unparsed]

_FLAT_DICT = re.compile(r"\{[^{}]*\}")
_PAIR = re.compile(
    r"""(?P<q>["'`]?)(?P<key>[^"'`{}\[\]:,\n]+?)(?P=q)\s*:\s*(?P<val>"[^"\n]*"|'[^'\n]*'|[^,\n]*)"""
)
_VALUE = re.compile(
    r"^(?P<num>[-+]?\d+(?:\.\d+)?)\s*(?:/\s*(?P<den>\d+(?:\.\d+)?))?\s*(?:分|points?|pts?)?\s*(?:[(\[][^)\]]*[)\]])?$",
    re.I,
)
_BARE_RATING = re.compile(r"\[\[\s*(?P<num>[-+]?\d+(?:\.\d+)?)\s*(?:/\s*(?P<den>\d+(?:\.\d+)?))?\s*\]\]")
_ENUM = re.compile(r"^\s*(?:\d+\s*[.)、]|[-•])\s*")


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


def _outermost(t: str, s: int, e: int) -> tuple[int, int]:
    """Grow the flat dict t[s:e] to the outermost balanced {...} around it (nested JSON); stray braces stop it."""
    while True:
        depth, left = 0, -1
        for i in range(s - 1, -1, -1):
            if t[i] == "}":
                depth += 1
            elif t[i] == "{":
                if depth == 0:
                    left = i
                    break
                depth -= 1
        if left < 0:
            return s, e
        depth, right = 0, -1
        for i in range(e, len(t)):
            if t[i] == "{":
                depth += 1
            elif t[i] == "}":
                if depth == 0:
                    right = i + 1
                    break
                depth -= 1
        if right < 0:
            return s, e
        s, e = left, right


#: Keys of a nested per-dimension object that hold its score: {"Clarity": {"score": 8, "reason": "..."}}
_SCORE_KEYS = {norm_key(k) for k in ("score", "rating", "value", "分数", "得分", "评分", "打分")}
_NESTED = re.compile(r":\s*\{([^{}]*)\}")


def _nested_score(m: "re.Match[str]") -> str:
    """': {"score": 9, "reason": "..."}' -> ': 9' (JSON-mode judges); other objects stay (their keys count)."""
    for key, val in _pairs(m.group(1)):
        if norm_key(key) in _SCORE_KEYS:
            return f": {val}"
    return m.group(0)


def _pairs(body: str) -> list[tuple[str, str]]:
    """(key, raw value) pairs of a dict body; a nested object stands for its score, other braces separate."""
    if "{" in body:
        body = _NESTED.sub(_nested_score, body)
    flat = re.sub(r"[{}]", ",", body)
    out = []
    for m in _PAIR.finditer(flat):
        key = m.group("key").strip()
        val = m.group("val").strip().strip("'\"`").strip()
        if key:
            out.append((key, val))
    return out


def _value(raw: str, hi: float) -> Union[float, str]:
    """A number, or a message saying why ``raw`` is not one."""
    m = _VALUE.match(raw)
    if not m:
        return f"non-numeric value {raw!r}"
    v = float(m.group("num"))
    den = m.group("den")
    if den is not None and float(den) != hi:
        return f"value {raw!r} is a fraction of {den}, expected /{_num(hi)}"
    return v


def _lookup(key: str, index: dict[str, str]) -> Optional[str]:
    key = _ENUM.sub("", key)
    cands = [key]
    m = re.match(r"^(.*?)\s*[(（](.*?)[)）]\s*$", key)
    if m:
        cands += [m.group(1), m.group(2)]
    for c in cands:
        hit = index.get(norm_key(c))
        if hit:
            return hit
    return None


def _dict_spans(t: str) -> list[tuple[int, int, list[tuple[str, str]]]]:
    out = []
    for m in _FLAT_DICT.finditer(t):
        s, e = _outermost(t, m.start(), m.end())
        pairs = _pairs(t[s + 1 : e - 1])
        if pairs and not (out and out[-1][0] == s):
            out.append((s, e, pairs))
    return out


def parse_scores(text: Optional[str], config: JudgeConfig, answer_type: str) -> ScoreResult:
    """Scores from the LAST dict in a judge's output, mapped to ``answer_type``'s dimensions.

    Unparsed (with a specific reason) when the output is empty, has no dict, ends in an unclosed dict,
    lacks a dimension or the overall score, has a non-numeric or out-of-range value, or gives one
    dimension two different values. Unknown keys are ignored and listed in ``ignored_keys``.
    A JSON-mode object per dimension (``{"Clarity": {"score": 8, "reason": "..."}}``) stands for its
    ``score`` (or rating/value/分数/得分/评分/打分) entry.
    For an answer type with no dimensions (overall only) a bare MT-Bench rating '[[8]]' is accepted
    when ``parser.accept_bare_rating`` is set; with dimensions it is not, since it scores none of them.
    """
    if text is None or not text.strip():
        return Unparsed("empty judge output")
    at = config.answer_type(answer_type)
    dims = config.dimensions_for(at.key)
    lo, hi = config.parser.score_min, config.parser.score_max
    t = fold_width(text)
    spans = _dict_spans(t)
    last_end = spans[-1][1] if spans else 0
    bare = list(_BARE_RATING.finditer(t))
    notes: list[str] = []
    if not dims and config.parser.accept_bare_rating and bare and bare[-1].start() >= last_end:
        v = _value(bare[-1].group(0).strip("[] "), hi)
        if isinstance(v, str):
            return Unparsed(f"bare rating: {v}")
        if not lo <= v <= hi:
            return Unparsed(f"score out of range {_num(lo)}-{_num(hi)}: {config.overall.name}={_num(v)}")
        return ParsedScores({}, v, at.key, notes=["bare rating [[n]] used as the overall score"])
    if t.rfind("{") > t.rfind("}") and t.rfind("{") >= last_end:
        return Unparsed("truncated output: the last score dict is not closed")
    if not spans:
        hint = " (a bare rating like [[8]] is only accepted for an overall-only answer type)" if bare else ""
        return Unparsed(f"no score dict found{hint}")
    if len(spans) > 1:
        notes.append(f"used the last of {len(spans)} dicts")
    wanted = {d.key for d in dims} | {config.overall.key}
    index = config.name_index()
    got: dict[str, float] = {}
    ignored: list[str] = []
    for key, raw in spans[-1][2]:
        dim = _lookup(key, index)
        if dim is None or dim not in wanted:
            if raw:
                ignored.append(key)
            continue
        name = config.display_name(dim)
        v = _value(raw, hi)
        if isinstance(v, str):
            return Unparsed(f"{name}: {v}")
        if not lo <= v <= hi:
            return Unparsed(f"score out of range {_num(lo)}-{_num(hi)}: {name}={_num(v)}")
        if dim in got and got[dim] != v:
            return Unparsed(f"conflicting values for {name}: {_num(got[dim])} and {_num(v)}")
        got[dim] = v
    missing = [f"{d.name} ({d.key})" for d in dims if d.key not in got]
    problems = []
    if missing:
        problems.append(f"missing dimension(s) for {at.name}: {', '.join(missing)}")
    if config.overall.key not in got:
        problems.append(f"missing overall score ({config.overall.name})")
    if problems:
        return Unparsed("; ".join(problems))
    if ignored:
        notes.append(f"ignored keys: {', '.join(ignored)}")
    overall = got.pop(config.overall.key)
    return ParsedScores(got, overall, at.key, ignored, notes)


_VERDICT = re.compile(r"\[\[\s*([^\[\]\n]{1,16}?)\s*\]\]")


def _strength(label: str) -> Optional[Literal["strong", "weak"]]:
    if ">>" in label or "<<" in label:
        return "strong"
    return "weak" if ">" in label or "<" in label else None


def parse_verdict(text: Optional[str], config: Optional[JudgeConfig] = None) -> VerdictResult:
    """The LAST recognised [[label]] verdict in a pairwise judge output ('【【A】】', '[[Tie]]' too).

    Labels: A and B always; ``parser.tie_labels`` (default C, tie, 平局, 平手); ``parser.verdict_labels``
    (default Arena-Hard's A>>B, A>B -> A; A=B -> tie; B>A, B>>A -> B). Bracketed tokens that are
    not verdicts (e.g. '[[8]]') are skipped; none at all is unparsed.
    """
    if text is None or not text.strip():
        return Unparsed("empty judge output")
    table = (config.parser if config else ParserOptions()).verdict_table()
    found: Optional[tuple[str, str]] = None
    n = 0
    for m in _VERDICT.finditer(fold_width(text)):
        verdict = table.get(norm_key(m.group(1)))
        if verdict is not None:
            found, n = (verdict, m.group(1).strip()), n + 1
    if found is None:
        return Unparsed("no verdict [[A]] / [[B]] / [[C]] (or a configured verdict label) found")
    verdict, label = found
    notes = [f"used the last of {n} verdicts"] if n > 1 else []
    return ParsedVerdict(verdict, notes, label, _strength(label))  # type: ignore[arg-type]


def judgment_fields(result: Union[ScoreResult, VerdictResult]) -> dict[str, Any]:
    """The Judgment fields a parse result fills (status, scores, overall, verdict, reason, details)."""
    if isinstance(result, Unparsed):
        return {"status": "unparsed", "reason": result.reason, "scores": {}, "overall": None, "verdict": None}
    if isinstance(result, ParsedVerdict):
        details: dict[str, Any] = {"parse_notes": result.notes, "verdict_label": result.label}
        if result.strength:
            details["strength"] = result.strength
        return {"status": "ok", "reason": None, "verdict": result.verdict, "details": details}
    details = {"answer_type": result.answer_type, "parse_notes": result.notes}
    if result.ignored_keys:
        details["ignored_keys"] = result.ignored_keys
    return {"status": "ok", "reason": None, "scores": dict(result.scores), "overall": result.overall, "details": details}
