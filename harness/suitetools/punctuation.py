"""Punctuation consistency: half-width ,.?!:; in Chinese prose, full-width marks in English prose, and
both widths of the same mark within one text.

Why: a model fine-tuned on references copies their punctuation exactly (PRACTICE 14), and an exact or
normalised match scorer is only as clean as the reference. Code, inline code, URLs, numbers (3.14,
10:30) and JSON-like spans keep ASCII punctuation by nature and are masked before checking.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sfteval.judges.rules import detect_language

CJK = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_BRACKET = re.compile(r"[\[\]{}]")
_CODE = re.compile(r"```.*?```|`[^`\n]*`", re.S)
_LIST_MARK = re.compile(r"(?m)^[ \t]*(?:\d+|[A-Za-z])[.)](?=\s)")
_CALL = re.compile(r"[A-Za-z_][A-Za-z0-9_.]*\([^()\n]*\)")  # f(a, b): an argument list, not prose
_URL = re.compile(r"(?:https?://|www\.)\S+|\b[\w.+-]+@[\w-]+\.[\w.]+")
_HALF_IN_ZH = re.compile(
    rf"(?<=[{CJK}])[,.;:?!]|[,;:?!](?=[{CJK}])"  # touching a Chinese character
    rf"|(?<=[0-9A-Za-z%])[,.;:?!](?=[{CJK}])|(?<=[0-9%])[,.;:?!]\s*$"  # "用 Python,然后" / "所以答案是 42."
)
_FULL = "，。？！：；（）"
_ANY_CJK = re.compile(f"[{CJK}]")
_ANY_FULL = re.compile(f"[{_FULL}]")
_FULL_IN_EN = re.compile(rf"(?<![{CJK}])[{_FULL}](?![{CJK}])")
_PAIRS_FULL = re.compile("[，。？！：；]")
# Half-width marks between Latin words ("Python, Java"): Chinese typesetting still wants the full-width form.
_HALF_BETWEEN_LATIN = re.compile(r"(?<=[A-Za-z])[,;:?!](?=\s[A-Za-z])")


@dataclass
class PunctuationIssue:
    code: str  # half-width-in-zh | full-width-in-en | mixed-width
    excerpt: str
    message: str


def prose(text: str) -> str:
    """``text`` with code, URLs and JSON-like bracketed spans blanked out (same length, so offsets hold)."""
    text = _CODE.sub(lambda m: " " * len(m.group(0)), text)
    for rx in (_URL, _LIST_MARK, _CALL):
        text = rx.sub(lambda m: " " * len(m.group(0)), text)
    if '"' not in text or not ("[" in text or "{" in text):
        return text
    out, stack = list(text), []
    for m in _BRACKET.finditer(text):  # blank outermost bracketed spans that quote strings: JSON, dicts
        if m.group(0) in "[{":
            stack.append(m.start())
        elif stack:
            start = stack.pop()
            if not stack and '"' in text[start:m.end()]:
                out[start:m.end()] = " " * (m.end() - start)
    return "".join(out)


def _excerpt(text: str, start: int, end: int) -> str:
    return text[max(0, start - 8): end + 8].replace("\n", " ")


def check_text(text: str) -> list[PunctuationIssue]:
    """Issues in one text, judged by the language of its prose."""
    if not _ANY_CJK.search(text) and not _ANY_FULL.search(text):
        return []  # English without full-width marks: nothing to find (the common case, kept fast)
    p = prose(text)
    lang = detect_language(p)
    issues: list[PunctuationIssue] = []
    if lang == "zh":
        hits = list(_HALF_IN_ZH.finditer(p))
        if hits:
            m = hits[0]
            issues.append(PunctuationIssue("half-width-in-zh", _excerpt(text, m.start(), m.end()),
                                           f"half-width {m.group(0)!r} in Chinese text ({len(hits)}x)"))
    elif lang == "en":
        hits = list(_FULL_IN_EN.finditer(p))
        if hits:
            m = hits[0]
            issues.append(PunctuationIssue("full-width-in-en", _excerpt(text, m.start(), m.end()),
                                           f"full-width {m.group(0)!r} in English text ({len(hits)}x)"))
    if lang == "zh" and not issues:  # (full-width marks beside quoted Chinese in English text are correct)
        m = _HALF_BETWEEN_LATIN.search(p)
        if m and _PAIRS_FULL.search(p):
            issues.append(PunctuationIssue("mixed-width", _excerpt(text, m.start(), m.end()),
                                           f"half-width {m.group(0)!r} beside full-width punctuation in one text"))
    return issues
