"""The training mix per task_type, and what changed in it between two training sets.

Why: when v2 is worse on a task_type, the first question is what happened to that task_type's training
data -- how much of it there is, how long its answers are, how much of it is duplicated, and whether the
same prompts now teach different answers (a relabelling, the commonest data bug). Every number is given
for both task_type levels, like the diff's cells.

Per task_type and training set: ``count``, ``share`` (of all rows), ``mean_answer_chars``,
``duplicate_rate`` (rows whose normalised prompt already occurred earlier in the set: the copies beyond
the first). Between a baseline set A and a candidate set B, per task_type of B's rows: ``changed_answers``
(rows of B whose prompt is also in A but whose answer matches none of A's answers to it, up to
surrounding whitespace), ``new_prompts``
(rows of B whose prompt A does not have), and for A's rows ``dropped_prompts`` (prompts B no longer has).
Prompts are compared as token sequences (:mod:`.textkeys`).
"""

from __future__ import annotations

from typing import Any, Optional

import numpy as np
import pandas as pd

from .load import TrainingSet
from .textkeys import chunked_keys, prompt_keys


class Keys:
    """Prompt keys and (lazily) (prompt, answer) keys of a training set, computed once and cached on it."""

    def __init__(self, ts: TrainingSet, prompt: Optional[np.ndarray] = None):
        self.ts = ts
        self.prompt = chunked_keys(ts.chunks(), prompt_keys) if prompt is None else prompt
        self._pair: Optional[np.ndarray] = None

    @property
    def pair(self) -> np.ndarray:
        if self._pair is None:
            self._pair = self.prompt * np.int64(1_000_003) ^ self.ts.answer_keys
        return self._pair


def keys_of(ts: TrainingSet, prompt: Optional[np.ndarray] = None) -> Keys:
    """The set's keys (``prompt``: keys already computed by the caller, e.g. the index build)."""
    from .load import no_gc

    cached = getattr(ts, "_keys", None)
    if cached is None:
        with no_gc():
            cached = Keys(ts, prompt)
        ts._keys = cached  # type: ignore[attr-defined]
    return cached


def _levels(task_types: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    full = np.asarray(task_types, dtype=object).astype(str)
    first = np.array([t.split("/", 1)[0] for t in full], dtype=object) if full.size else full
    return full, first


def _per_group(values: pd.DataFrame, task_types: np.ndarray) -> pd.DataFrame:
    """Sums per task_type at both levels (a one-level name is counted once)."""
    full, first = _levels(task_types)
    by_full = values.groupby(full).sum()
    by_first = values.groupby(first).sum()
    by_first = by_first.loc[[k for k in by_first.index if k not in by_full.index]]
    return pd.concat([by_full, by_first]).sort_index()


def mix(ts: TrainingSet) -> pd.DataFrame:
    """count, share, mean_answer_chars, duplicate_rate per task_type (both levels), plus an ``overall`` row."""
    keys = keys_of(ts)
    dup = pd.Series(keys.prompt).duplicated().to_numpy()
    chars = ts.answer_chars
    values = pd.DataFrame({"count": 1.0, "chars": chars, "dup": dup.astype(np.float64)})
    grouped = _per_group(values, ts.task_types)
    grouped.loc["overall"] = values.sum()
    out = pd.DataFrame({"count": grouped["count"].astype(int), "share": grouped["count"] / len(ts),
                        "mean_answer_chars": grouped["chars"] / grouped["count"],
                        "duplicate_rate": grouped["dup"] / grouped["count"]})
    return out


def changes(a: TrainingSet, b: TrainingSet) -> pd.DataFrame:
    """changed_answers, new_prompts (B's rows) and dropped_prompts (A's rows) per task_type, both levels."""
    ka, kb = keys_of(a), keys_of(b)
    in_a = np.isin(kb.prompt, ka.prompt)
    same_pair = np.isin(kb.pair, ka.pair)
    b_values = pd.DataFrame({"changed_answers": (in_a & ~same_pair).astype(np.float64),
                             "new_prompts": (~in_a).astype(np.float64), "rows_b": 1.0})
    a_values = pd.DataFrame({"dropped_prompts": (~np.isin(ka.prompt, kb.prompt)).astype(np.float64)})
    gb = _per_group(b_values, b.task_types)
    ga = _per_group(a_values, a.task_types)
    gb.loc["overall"] = b_values.sum()
    ga.loc["overall"] = a_values.sum()
    out = gb.join(ga, how="outer").fillna(0.0)
    return out.drop(columns=["rows_b"]).astype(int)


def compare(a: Optional[TrainingSet], b: Optional[TrainingSet]) -> list[dict[str, Any]]:
    """One row per task_type seen in either set: both sides' mix, the deltas, and the content changes."""
    ma = mix(a) if a is not None else None
    mb = mix(b) if b is not None else None
    ch = changes(a, b) if a is not None and b is not None else None
    names = sorted(set(ma.index if ma is not None else []) | set(mb.index if mb is not None else []),
                   key=lambda n: (n != "overall", n.split("/")[0], "/" in n, n))
    rows = []
    for name in names:
        row: dict[str, Any] = {"task_type": name}
        for side, m in (("a", ma), ("b", mb)):
            has = m is not None and name in m.index
            for col in ("count", "share", "mean_answer_chars", "duplicate_rate"):
                if m is None:
                    row[f"{col}_{side}"] = None
                else:
                    row[f"{col}_{side}"] = (float(m.at[name, col]) if col != "count" else int(m.at[name, col])) \
                        if has else (0 if col == "count" else None if col != "share" else 0.0)
        if ma is not None and mb is not None:
            row["count_delta"] = row["count_b"] - row["count_a"]
            row["share_delta"] = row["share_b"] - row["share_a"]
            for col in ("mean_answer_chars", "duplicate_rate"):
                va, vb = row[f"{col}_a"], row[f"{col}_b"]
                row[f"{col}_delta"] = None if va is None or vb is None else vb - va
        if ch is not None:
            for col in ("changed_answers", "new_prompts", "dropped_prompts"):
                row[col] = int(ch.at[name, col]) if name in ch.index else 0
        rows.append(row)
    return rows


def changed(row: dict[str, Any], share_points: float = 0.01, length_rel: float = 0.1) -> list[str]:
    """What moved for one task_type, in words (empty when nothing did): counts, share, length, duplicates,
    relabelled answers. ``share_points``: a change of the share below this is not mentioned unless the
    count changed; ``length_rel``: nor a mean answer length moving by less than this fraction."""
    out = []
    if row.get("count_delta"):
        out.append(f"count {row['count_a']} → {row['count_b']} ({row['count_delta']:+d})")
    elif row.get("share_delta") is not None and abs(row["share_delta"]) >= share_points:
        out.append(f"share {100 * row['share_a']:.1f}% → {100 * row['share_b']:.1f}%")
    la, lb = row.get("mean_answer_chars_a"), row.get("mean_answer_chars_b")
    if la and lb is not None and abs(lb - la) > length_rel * la:
        out.append(f"answer length {la:.0f} → {lb:.0f} chars")
    da, db = row.get("duplicate_rate_a"), row.get("duplicate_rate_b")
    if da is not None and db is not None and abs(db - da) >= 0.01:
        out.append(f"duplicates {100 * da:.1f}% → {100 * db:.1f}%")
    if row.get("changed_answers"):
        out.append(f"{row['changed_answers']} prompts now trained with a different answer")
    return out
