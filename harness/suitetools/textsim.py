"""Near-duplicate search: character shingles, MinHash LSH for candidates, exact Jaccard to confirm.

Why not compare every pair: a 10k-item suite has 50M pairs of long strings. MinHash signatures are
computed for all texts at once with numpy (shingles hashed by a rolling polynomial over code points,
so nothing loops per character in Python). Texts that agree on one whole band of their signature are
joined into a component (16 bands x 6 rows find a pair at Jaccard 0.9 with probability > 0.99999,
however frequent their shingles are: an inverted index degrades to O(n^2) on homogeneous generated
data, the very case this lint exists for). Within a component each text's earlier members are ranked
by signature agreement and only the best few are confirmed with the exact shingle Jaccard, so the
reported similarity is exact. Identical texts are grouped by hash first, so copies cost nothing.
"""

from __future__ import annotations

import re
import unicodedata
from collections import defaultdict
from typing import Callable, Hashable, Optional, Sequence, TypeVar

import numpy as np

BANDS, ROWS = 16, 6
VERIFY_MAX = 32  # exact checks per text at most, best estimates first
_KEEP = set("+-*/=<>%$")
_DROP: dict[int, None] = {}  # code point -> None for punctuation and symbols (filled lazily)
_KNOWN: set[str] = set()
_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_rng = np.random.default_rng(20240607)
_A = _rng.integers(0, 2**31, size=BANDS * ROWS, dtype=np.uint32) * np.uint32(2) + np.uint32(1)  # odd multipliers
_B = _rng.integers(0, 2**32, size=BANDS * ROWS, dtype=np.uint32)


def norm(text: str) -> str:
    """Case, width, punctuation and spacing-insensitive form (judges.rules.normalize, with a C-speed filter)."""
    text = unicodedata.normalize("NFKC", text).casefold()
    new = set(text) - _KNOWN
    for ch in new:
        if unicodedata.category(ch).startswith(("P", "S")) and ch not in _KEEP:
            _DROP[ord(ch)] = None
    _KNOWN.update(new)
    return " ".join(text.translate(_DROP).split())


def shingle_hashes(normed: str) -> np.ndarray:
    """64-bit hashes of the character n-grams (n = 3 for Chinese, 5 otherwise), with repeats."""
    n = 3 if len(_CJK.findall(normed)) * 3 >= len(normed) else 5
    cps = np.frombuffer(normed.encode("utf-32-le"), dtype=np.uint32).astype(np.uint64)
    n = min(n, len(cps))
    h = np.zeros(len(cps) - n + 1, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for k in range(n):
            h = h * np.uint64(1_000_003) + cps[k: len(cps) - n + 1 + k]
    return h


def jaccard(a: np.ndarray, b: np.ndarray) -> float:
    """Exact Jaccard of two sorted unique hash arrays."""
    inter = len(np.intersect1d(a, b, assume_unique=True))
    return inter / (len(a) + len(b) - inter)


def _signatures(sets: list[np.ndarray]) -> np.ndarray:
    """(len(sets), BANDS*ROWS) MinHash matrix, one numpy pass over all shingles per hash function."""
    flat = np.concatenate(sets)
    flat = ((flat >> np.uint64(32)) ^ flat).astype(np.uint32)  # 32-bit hashes: half the memory traffic
    starts = np.cumsum([0] + [len(s) for s in sets[:-1]])
    sig = np.empty((len(sets), BANDS * ROWS), dtype=np.uint32)
    buf = np.empty_like(flat)
    with np.errstate(over="ignore"):
        for i in range(BANDS * ROWS):  # h_i(x) = a_i * x + b_i mod 2^32, then the minimum per text
            np.multiply(flat, _A[i], out=buf)
            np.add(buf, _B[i], out=buf)
            sig[:, i] = np.minimum.reduceat(buf, starts)
    return sig


K = TypeVar("K", bound=Hashable)


def near_duplicates(texts: Sequence[tuple[K, str]], threshold: float,
                    exclude: Optional[Callable[[K, K], bool]] = None) -> dict[K, tuple[K, float, int]]:
    """For every text with an earlier near-duplicate (Jaccard >= threshold): its best earlier match.

    Only the best partner is verified exactly, so a cluster of a thousand templated prompts costs
    a thousand small signature comparisons per member, not half a million exact Jaccards.
    ``exclude(a, b)`` marks pairs that are never duplicates (robustness variants of one original).
    """
    if not 0 < threshold <= 1:
        raise ValueError("threshold must be in (0, 1]")
    skip = exclude or (lambda a, b: False)
    groups: dict[str, list[K]] = defaultdict(list)
    for key, text in texts:
        groups[norm(text)].append(key)
    found: dict[K, tuple[K, float, int]] = {}
    for n, keys in groups.items():  # identical texts: the first earlier copy that is not excluded
        for j, b in enumerate(keys[1:], start=1):
            partner = next((a for a in keys[:j] if not skip(a, b)), None)
            if n and partner is not None:
                found[b] = (partner, 1.0, j)
    reps = [(n, keys) for n, keys in groups.items() if n]
    if threshold >= 1 or len(reps) < 2:
        return found
    sets = [shingle_hashes(n) for n, _ in reps]
    sig = _signatures(sets)
    parent = list(range(len(reps)))

    def find(a: int) -> int:
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    for band in range(BANDS):  # texts sharing one whole band end up in one component
        first: dict[bytes, int] = {}
        for i, row in enumerate(sig[:, band * ROWS:(band + 1) * ROWS]):
            j = first.setdefault(row.tobytes(), i)
            if j != i:
                parent[find(i)] = find(j)
    components: dict[int, list[int]] = defaultdict(list)
    for i in range(len(reps)):
        components[find(i)].append(i)
    uniq: dict[int, np.ndarray] = {}

    def exact(i: int) -> np.ndarray:
        if i not in uniq:
            uniq[i] = np.unique(sets[i])
        return uniq[i]

    for comp in components.values():
        block = sig[comp]
        for pos in range(1, len(comp)):
            j = comp[pos]
            est = (block[:pos] == block[pos]).mean(axis=1)  # estimated Jaccard with every earlier member
            order = np.argsort(-est, kind="stable")
            best: Optional[tuple[K, float, int]] = None
            for tried, k in enumerate(order[:VERIFY_MAX]):
                if est[k] < threshold - 0.2 or (best is not None and tried >= 5):
                    break
                i = comp[int(k)]
                partner = next((a for a in reps[i][1] if not skip(a, reps[j][1][0])), None)
                if partner is None:
                    continue
                sim = jaccard(exact(i), exact(j))
                if sim >= threshold and (best is None or sim > best[1]):
                    best = (partner, sim, int((est >= threshold).sum()) or 1)
            if best is not None and reps[j][1][0] not in found:
                found[reps[j][1][0]] = best
    return found
