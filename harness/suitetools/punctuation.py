"""Punctuation consistency: half-width ,.?!:; in Chinese sentences, full-width marks in English prose.

Why: a model fine-tuned on references copies their punctuation exactly (PRACTICE 14), and an exact or
normalised match scorer is only as clean as the reference. What keeps ASCII punctuation by nature is masked
before checking: code (inline and fenced), URLs, list markers (``1.`` ``2)`` ``（A）``, with or without a space
after them), numbers (3.14, 10:30) and JSON-like spans. A mark that follows Latin text (``Python:``,
``Cogito, ergo sum``, ``(x1,y1),``) belongs to that text and is not flagged either: Chinese writing quotes
English terms, formulas and citations with their own punctuation. A mark between Chinese characters, or
between a number of a Chinese sentence and the next Chinese word (``商是 66,余数``), is.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sfteval.judges.rules import detect_language

#: Chinese characters and Japanese kana: text whose marks are full-width
CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_BRACKET = re.compile(r"[\[\]{}]")
_CODE = re.compile(r"```.*?```|`[^`\n]*`", re.S)
# "1." "2)" "a." at a line start or after a space or colon, with text after it on the line (not "42." at the end
# of a sentence) and no digit (a decimal); "(1)" "（A）" anywhere
_LIST_MARK = re.compile(r"(?m)(?:^|(?<=[\s：:]))(?:\d{1,3}|[A-Za-z])[.)](?![\d.])(?=[ \t\u00a0]*\S)"
                        r"|[（(](?:\d{1,3}|[A-Za-z])[）)]")
_CALL = re.compile(r"[A-Za-z_][A-Za-z0-9_.]*\([^()\n]*\)")  # f(a, b): an argument list, not prose
_URL = re.compile(r"(?:https?://|www\.)[!-~]+|\b[\w.+-]+@[\w-]+\.[\w.]+")
_URL_TAIL = ",.;:!?)]}'\""  # punctuation after a URL belongs to the sentence
_HALF_IN_ZH = re.compile(
    rf"(?<=[{CJK}])[,.;:?!]|[,;:?!](?=[{CJK}])"  # touching a Chinese character
    rf"|(?<=[0-9%])[,.;:?!](?=[{CJK}])|(?<=[0-9%])[,.;:?!]\s*$"  # "商是 66,余数" / "所以答案是 42."
)
# the run of non-space, non-Chinese characters just before a mark, when it holds a Latin letter
_AFTER_LATIN = re.compile(rf"[^\s{CJK}]*[A-Za-z][^\s{CJK}]*$")
_FULL = "，。？！：；（）"
_ANY_CJK = re.compile(f"[{CJK}]")
_ANY_FULL = re.compile(f"[{_FULL}]")
_FULL_IN_EN = re.compile(rf"(?<![{CJK}])[{_FULL}](?![{CJK}])")


@dataclass
class PunctuationIssue:
    code: str  # half-width-in-zh | full-width-in-en
    excerpt: str
    message: str


def _blank(m: re.Match) -> str:
    return " " * len(m.group(0))


def _blank_url(m: re.Match) -> str:
    url = m.group(0)
    core = url.rstrip(_URL_TAIL)
    return " " * len(core) + url[len(core):]


def prose(text: str) -> str:
    """``text`` with code, URLs, list markers and JSON-like spans blanked out (same length, so offsets hold)."""
    text = _CODE.sub(_blank, text)
    text = _URL.sub(_blank_url, text)
    for rx in (_LIST_MARK, _CALL):
        text = rx.sub(_blank, text)
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


def _follows_latin(p: str, at: int) -> bool:
    return _AFTER_LATIN.search(p, max(0, at - 80), at) is not None


def _excerpt(text: str, start: int, end: int) -> str:
    return text[max(0, start - 8): end + 8].replace("\n", " ")


def check_text(text: str) -> list[PunctuationIssue]:
    """Issues in one text, judged by the language of its prose."""
    if not _ANY_CJK.search(text) and not _ANY_FULL.search(text):
        return []  # English without full-width marks: nothing to find (the common case, kept fast)
    p = prose(text)
    lang = detect_language(p)
    if lang == "zh":
        hits = [m for m in _HALF_IN_ZH.finditer(p) if not _follows_latin(p, m.start())]
        code, width = "half-width-in-zh", "half-width"
    elif lang == "en":
        hits = list(_FULL_IN_EN.finditer(p))
        code, width = "full-width-in-en", "full-width"
    else:
        return []
    if not hits:
        return []
    m = hits[0]
    where = "Chinese" if lang == "zh" else "English"
    return [PunctuationIssue(code, _excerpt(text, m.start(), m.end()),
                             f"{width} {m.group(0)!r} in {where} text ({len(hits)}x)")]
