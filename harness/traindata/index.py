"""Nearest training examples of an eval prompt, over a million training rows.

Why: when an item flips, the reviewer's next question is which training examples taught it -- and whether
the eval prompt itself (or a near copy) is in the training data, which makes the item a recall test rather
than a generalisation test (PRACTICE 8).

How, so that it scales (bench/traindata.py: 1M rows in well under a minute and 2 GB, a query in
milliseconds on 2 cores):

1. exact membership: the 64-bit key of every training prompt's token sequence (:mod:`.textkeys`), sorted
   once; an eval prompt is looked up by binary search;
2. retrieval: TF-IDF over word tokens (scikit-learn's HashingVectorizer into 2^20 columns, so no
   vocabulary is held, then TfidfTransformer: sublinear tf, smoothed idf, l2 rows), stored term-major
   (the transpose in CSR is an inverted index): a query's score for every row is one sparse product over
   the postings of its terms only. In sets of ``COMMON_MIN_ROWS`` or more, terms in more than ``COMMON`` of
   the rows (the, what, is) are skipped at query time when the query has rarer ones: they barely move a cosine and their postings are most of
   the work. The best ``CANDIDATES`` rows by cosine go to step 3;
3. re-ranking by the exact Jaccard similarity of character shingles (harness.suitetools.textsim, the
   suite lint's near-duplicate measure), which also tells "4+3=" from "3+4=". A neighbour at
   Jaccard >= ``NEAR_DUPLICATE`` is a near-duplicate of the eval prompt.

The tokens are :func:`.textkeys.tokens` (words, meaningful symbols, CJK characters and character pairs).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

import numpy as np

from ..suitetools.textsim import jaccard, norm, shingle_hashes
from .composition import keys_of
from .load import TrainingSet, no_gc
from .textkeys import token_key, tokens

N_FEATURES = 1 << 20
CANDIDATES = 50
COMMON = 0.1
COMMON_MIN_ROWS = 10_000  # below this every query term is used: the postings are short anyway
NEAR_DUPLICATE = 0.8
_CHUNK = 50_000


@dataclass
class Neighbour:
    row: int
    similarity: float  # Jaccard of character shingles (1.0: the same text after normalisation)
    score: float  # TF-IDF cosine
    exact: bool  # the same prompt after normalisation

    def as_dict(self, ts: TrainingSet, answer: Optional[str] = None) -> dict[str, Any]:
        """For reports; ``answer``: the row's answer (TrainingSet.answers_of reads them, several at once)."""
        return {"row": self.row, "source": ts.where(self.row), "task_type": str(ts.task_types[self.row]),
                "similarity": round(self.similarity, 4), "score": round(self.score, 4), "exact": self.exact,
                "prompt": ts.prompt(self.row), "answer": answer}


def _same(toks: list[str]) -> list[str]:
    return toks


class TrainingIndex:
    """Exact and nearest-neighbour lookup of prompts in one training set (build once, query many)."""

    def __init__(self, ts: TrainingSet):
        with no_gc():
            self._build(ts)

    def _build(self, ts: TrainingSet) -> None:
        from sklearn.feature_extraction.text import HashingVectorizer, TfidfTransformer
        import scipy.sparse as sp

        self.ts = ts
        self._vectorizer = HashingVectorizer(analyzer=_same, n_features=N_FEATURES, alternate_sign=False,
                                             norm=None, dtype=np.float32)
        parts, keys = [], []
        for chunk in ts.chunks(_CHUNK):  # tokens once per prompt: the exact keys and the TF-IDF rows
            toks = [tokens(p) for p in chunk]
            keys.append(np.fromiter((token_key(t) for t in toks), dtype=np.int64, count=len(toks)))
            parts.append(self._vectorizer.transform(toks))
        key = keys_of(ts, np.concatenate(keys)).prompt
        self._order = np.argsort(key, kind="stable")
        self._sorted = key[self._order]
        X = sp.vstack(parts, format="csr") if len(parts) > 1 else parts[0]
        del parts
        self._tfidf = TfidfTransformer(sublinear_tf=True).fit(X)
        X = self._tfidf.transform(X, copy=False)
        self._df = np.bincount(X.indices, minlength=N_FEATURES)
        self._postings = X.T.tocsr()  # term-major: row t lists the training rows holding term t
        del X
        self._postings.sort_indices()
        self._shingles: dict[int, np.ndarray] = {}

    def exact_rows(self, prompt: str) -> np.ndarray:
        """Training rows whose prompt equals ``prompt`` after normalisation."""
        key = np.int64(token_key(tokens(prompt)))
        lo, hi = np.searchsorted(self._sorted, key, "left"), np.searchsorted(self._sorted, key, "right")
        return np.sort(self._order[lo:hi])

    def _shingle(self, row: int) -> np.ndarray:
        s = self._shingles.get(row)
        if s is None:
            s = np.unique(shingle_hashes(norm(self.ts.prompt(row)) or " "))
            if len(self._shingles) > 20_000:
                self._shingles.clear()
            self._shingles[row] = s
        return s

    def query(self, prompt: str, k: int = 3) -> list[Neighbour]:
        """The ``k`` training rows most similar to ``prompt``, most similar first."""
        q = self._tfidf.transform(self._vectorizer.transform([tokens(prompt)]))
        terms, weights = q.indices, q.data
        if terms.size and len(self.ts) >= COMMON_MIN_ROWS:
            rare = self._df[terms] <= COMMON * len(self.ts)
            if rare.any():
                terms, weights = terms[rare], weights[rare]
        exact = self.exact_rows(prompt)
        cand: np.ndarray = exact[:CANDIDATES]
        scores_of: dict[int, float] = {}
        if terms.size:
            sub = self._postings[terms]
            scores = sub.T @ weights  # cosine (up to the dropped common terms) for every training row
            top = np.flatnonzero(scores > 0)
            if top.size > CANDIDATES:
                top = top[np.argpartition(-scores[top], CANDIDATES)[:CANDIDATES]]
            scores_of = {int(r): float(scores[r]) for r in top}
            for r in cand:
                scores_of.setdefault(int(r), float(scores[r]))
            cand = np.union1d(cand, top)
        if not cand.size:
            return []
        qs = np.unique(shingle_hashes(norm(prompt) or " "))
        exact_set = set(exact.tolist())
        out = [Neighbour(int(r), 1.0 if int(r) in exact_set else jaccard(qs, self._shingle(int(r))),
                         scores_of.get(int(r), 0.0), int(r) in exact_set) for r in cand]
        out.sort(key=lambda n: (-n.exact, -n.similarity, -n.score, n.row))
        return out[:k]

    def membership(self, prompt: str, neighbours: Optional[list[Neighbour]] = None) -> Optional[str]:
        """'exact', 'near-duplicate' or None: is the eval prompt (or a near copy) in the training data?"""
        if self.exact_rows(prompt).size:
            return "exact"
        best = (neighbours if neighbours is not None else self.query(prompt, 1))[:1]
        return "near-duplicate" if best and best[0].similarity >= NEAR_DUPLICATE else None
