"""A readable diff of two answers: word by word for alphabetic text, character by character for CJK.

Tokens are CJK characters (one each), runs of letters/digits, runs of whitespace, and single other
characters, so a Chinese answer diffs per character and an English one per word, and mixed text works.
The result is a list of (operation, text) segments per side for the template to render (escaped).
"""

from __future__ import annotations

import difflib
import re
from typing import Literal

Op = Literal["same", "del", "ins"]
Segment = tuple[Op, str]

_CJK = ("\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af\u3000-\u303f\uff00-\uffef")
_TOKEN = re.compile(rf"[{_CJK}]|[^\W{_CJK}]+|\s+|.", re.S)
MAX_TOKENS = 6000  #: longer texts are shown without a diff (difflib is quadratic in the worst case)


def tokens(text: str) -> list[str]:
    return _TOKEN.findall(text)


def diff(a: str, b: str) -> tuple[list[Segment], list[Segment], bool]:
    """Segments of ``a`` (same/del) and of ``b`` (same/ins); the flag is False when the texts were too long."""
    ta, tb = tokens(a or ""), tokens(b or "")
    if len(ta) > MAX_TOKENS or len(tb) > MAX_TOKENS:
        return [("same", a or "")], [("same", b or "")], False
    left: list[Segment] = []
    right: list[Segment] = []
    matcher = difflib.SequenceMatcher(None, ta, tb, autojunk=False)
    for op, i1, i2, j1, j2 in matcher.get_opcodes():
        if op == "equal":
            _push(left, "same", "".join(ta[i1:i2]))
            _push(right, "same", "".join(tb[j1:j2]))
        else:
            _push(left, "del", "".join(ta[i1:i2]))
            _push(right, "ins", "".join(tb[j1:j2]))
    return left, right, True


def _push(out: list[Segment], op: Op, text: str) -> None:
    if not text:
        return
    if out and out[-1][0] == op:
        out[-1] = (op, out[-1][1] + text)
    else:
        out.append((op, text))
