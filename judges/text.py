"""Small text helpers shared by the judge config, prompt builder and parser.

Why a module of its own: the parser, the key index of a config and the delimiter neutraliser must all
agree on what "the same key" or "the same character" means (full-width vs half-width, case, spacing),
or a judge's '事实 正确性' or a candidate's '＜＜＜ANSWER_END＞＞＞' would slip through one of them.
"""

from __future__ import annotations

import re
import unicodedata

# Full-width ASCII (U+FF01..U+FF5E) -> ASCII, ideographic space -> space, and the typographic quotes
# judges use in Chinese text. Every entry maps one character to one character, so positions found in the
# folded text are positions in the original text.
_WIDTH_TABLE: dict[int, int] = {c: c - 0xFEE0 for c in range(0xFF01, 0xFF5F)}
_WIDTH_TABLE.update(
    {
        0x3000: ord(" "),
        0x201C: ord('"'),  # “
        0x201D: ord('"'),  # ”
        0x2018: ord("'"),  # ‘
        0x2019: ord("'"),  # ’
        0x3010: ord("["),  # 【
        0x3011: ord("]"),  # 】
        0x3001: ord(","),  # 、 (judges sometimes separate dict entries with it)
    }
)

ZERO_WIDTH = "\u200b\u200c\u200d\u2060\ufeff\u00ad"


def fold_width(text: str) -> str:
    """Map full-width punctuation/digits/letters and curly quotes to ASCII, keeping the length."""
    return text.translate(_WIDTH_TABLE)


_KEY_DROP = re.compile(r"[\s_\-*`'\"·.:：]+")


def norm_key(name: str) -> str:
    """Canonical form of a dimension/answer-type name for matching: width, case and spacing ignored.

    'Factual Correctness', 'factual_correctness', '**事实 正确性**' all normalise to one form each.
    """
    s = unicodedata.normalize("NFKC", fold_width(name)).casefold()
    s = "".join(ch for ch in s if ch not in ZERO_WIDTH)
    return _KEY_DROP.sub("", s)
