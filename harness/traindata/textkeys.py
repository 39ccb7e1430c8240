"""Tokens and keys of training and eval texts: one definition for exact membership, duplicates and retrieval.

Prompts are compared as token sequences: NFKC, case-folded, punctuation dropped except the symbols that carry
meaning in short prompts (``+ - * / = < > % $``, each its own token, so "3+4=" is neither "3-4=" nor
"4+3="); Chinese and other CJK text is split into characters plus each pair of adjacent characters (it has
no spaces). ``str.translate`` and ``str.split`` do the work at C speed: a million prompts tokenize in seconds.
"""

from __future__ import annotations

import re
import string
import unicodedata
from typing import Callable, Iterable

import numpy as np

KEEP = "+-*/=<>%$"
_TABLE = {ord(c): " " for c in string.punctuation if c not in KEEP and c != "_"}
_TABLE.update({ord(c): f" {c} " for c in KEEP})
_CJK = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_HAS_CJK = re.compile(f"[{_CJK}]")
_CJK_RUN = re.compile(f"[{_CJK}]+|[^{_CJK}]+")
_UNI_PUNCT: dict[int, str] = {}


def _punct_table(text: str) -> dict[int, str]:
    """The translation table, extended with the non-ASCII punctuation this text has (cached)."""
    for ch in set(text) - set(map(chr, _UNI_PUNCT)):
        if ord(ch) > 127 and unicodedata.category(ch).startswith(("P", "S")):
            _UNI_PUNCT[ord(ch)] = " "
    return _UNI_PUNCT


def tokens(text: str) -> list[str]:
    """The token sequence of a text (see the module docstring)."""
    t = text.casefold()
    if t.isascii():
        return t.translate(_TABLE).split()
    t = unicodedata.normalize("NFKC", t).translate(_TABLE)
    t = t.translate(_punct_table(t))
    if not _HAS_CJK.search(t):
        return t.split()
    out: list[str] = []
    for run in _CJK_RUN.findall(t):
        if _HAS_CJK.match(run):
            out.extend(run)
            out.extend(run[i:i + 2] for i in range(len(run) - 1))
        else:
            out.extend(run.split())
    return out


def token_key(toks: list[str]) -> int:
    return hash(" ".join(toks))


def prompt_keys(texts: list[str]) -> np.ndarray:
    """A 64-bit key per prompt: equal keys, equal token sequences."""
    return np.fromiter((hash(" ".join(tokens(t))) for t in texts), dtype=np.int64, count=len(texts))



def chunked_keys(chunks: Iterable[list[str]], fn: Callable[[list[str]], np.ndarray]) -> np.ndarray:
    parts = [fn(c) for c in chunks]
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)
