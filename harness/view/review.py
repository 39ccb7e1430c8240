"""Review queues: which item a reviewer gets next, and turning a submitted form into a label record.

Order (pairwise queues leave out items whose two answers are identical: a tie, nothing to review): the items
that flipped between the runs first (most severe first), then those where the judge
disagrees with itself (repeat spread >= 1 point, or a pairwise verdict that flips with the order), then a
seeded random audit sample of the rest, so labels also measure the judge where nothing seems to happen. A
reviewer never gets an item they labelled; an item goes to ``overlap`` reviewers (the human-human agreement
needs overlap), counting items just handed out to others (a lease of LEASE_S seconds) so two reviewers
working at once get different items.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np

from ..labels.records import (LabelError, LabelFile, answer_hash, is_current, pair_label, reviewer_of,
                              single_label, target_answers)
from ..models import Judgment
from ..recordindex import file_stamp
from ..runfolder import RunFolder
from ..score import ScoreTarget, score_targets
from ..store import LABELS, content_key
from .compare import SPREAD_DISAGREES, Comparison

LEASE_S = 900
VERDICTS = {"A": "A better", "B": "B better", "tie": "tie", "both_bad": "both bad"}


@dataclass
class LabelIndex:
    """The current labels of one label file, by item and reviewer (stale labels counted apart)."""

    by_item: dict[str, dict[str, Judgment]] = field(default_factory=dict)
    stale: int = 0

    def reviewers(self, item_id: str) -> set[str]:
        return set(self.by_item.get(item_id, {}))

    def labelled_mask(self, ids: np.ndarray) -> np.ndarray:
        return np.fromiter((str(i) in self.by_item for i in ids), dtype=bool, count=len(ids))


def targets_of(folder: RunFolder, ids: Any) -> dict[str, ScoreTarget]:
    """Each item's first answer sample (the one reviewed), read from the folder."""
    records = folder.item_records(ids, judge=None)
    out: dict[str, ScoreTarget] = {}
    for t in score_targets(records.items, records.generations):
        if t.item.id not in out or t.generation.sample < out[t.item.id].generation.sample:
            out[t.item.id] = t
    return out


def label_index(labels: dict[str, Judgment], mode: str, cand: RunFolder,
                base: Optional[RunFolder] = None) -> LabelIndex:
    chosen = [j for j in labels.values() if j.mode == mode]
    ids = {j.item_id for j in chosen}
    tb = {t.generation.key: t for t in _all_targets(cand, ids)}
    ta = {t.generation.key: t for t in _all_targets(base, ids)} if base is not None else {}
    out = LabelIndex()
    for j in chosen:
        cur = is_current(j, tb.get(j.generation_key or ""), ta.get(str(j.details.get("baseline_generation_key"))))
        if cur:
            out.by_item.setdefault(j.item_id, {})[reviewer_of(j)] = j
        else:
            out.stale += 1
    return out


def _all_targets(folder: RunFolder, ids: set[str]) -> list[ScoreTarget]:
    records = folder.item_records(ids, judge=None)
    return score_targets(records.items, records.generations)


def labels_stamp(path: Any, *folders: RunFolder) -> tuple[Any, ...]:
    return (file_stamp(path / LABELS),) + tuple(file_stamp(f.path / "generations.jsonl") for f in folders)


@dataclass
class Queue:
    """The review order of one queue (mode, graded run, baseline) with the reason each item is in it."""

    order: list[str]
    reason: dict[str, str]


def build_queue(ids: np.ndarray, eligible: np.ndarray, spread: np.ndarray, seed: int,
                comparison: Optional[Comparison] = None) -> Queue:
    order: list[str] = []
    reason: dict[str, str] = {}
    taken = ~eligible.copy()

    def add(rows: np.ndarray, why: str) -> None:
        for k in rows:
            if not taken[k]:
                taken[k] = True
                order.append(str(ids[k]))
                reason[str(ids[k])] = why

    if comparison is not None:
        flipped = np.flatnonzero(comparison.flipped)
        add(flipped[np.argsort(-np.abs(comparison.severity[flipped]), kind="stable")], "flipped")
    with np.errstate(invalid="ignore"):
        disagree = np.flatnonzero(spread >= SPREAD_DISAGREES)
    add(disagree[np.argsort(-spread[disagree], kind="stable")], "judge disagrees with itself")
    if comparison is not None:
        add(np.flatnonzero(comparison.swap_flip), "judge's verdict flips with the order")
    rest = np.flatnonzero(~taken)
    add(rest[np.random.default_rng(seed).permutation(len(rest))], "audit sample")
    return Queue(order, reason)


class Leases:
    """Items handed to a reviewer recently: count towards the overlap so concurrent reviewers get others."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._held: dict[tuple[Any, str], dict[str, float]] = {}

    @property
    def choosing(self) -> threading.RLock:
        """Hold it while choosing an item and taking its lease: two reviewers never pick the same one."""
        return self._lock

    def take(self, queue: Any, item_id: str, reviewer: str) -> None:
        with self._lock:
            self._held.setdefault((queue, item_id), {})[reviewer] = time.monotonic() + LEASE_S

    def release(self, queue: Any, item_id: str, reviewer: str) -> None:
        with self._lock:
            self._held.get((queue, item_id), {}).pop(reviewer, None)

    def others(self, queue: Any, item_id: str, reviewer: str) -> set[str]:
        now = time.monotonic()
        with self._lock:
            held = self._held.get((queue, item_id), {})
            return {r for r, until in held.items() if until > now and r != reviewer}


def next_item(queue: Queue, index: LabelIndex, leases: Leases, key: Any, reviewer: str,
              overlap: int) -> tuple[Optional[str], int, int]:
    """(next item id or None, items this reviewer has labelled in the queue, items still open to them)."""
    chosen: Optional[str] = None
    done = open_ = 0
    for item_id in queue.order:
        who = index.reviewers(item_id)
        if reviewer in who:
            done += 1
            continue
        if len(who | leases.others(key, item_id, reviewer)) >= overlap:
            continue
        open_ += 1
        if chosen is None:
            chosen = item_id
    return chosen, done, open_


def seat_of(seed: int, baseline: str, candidate: str, item_id: str) -> str:
    """The seeded seat order of an item: ``AB`` = the candidate's answer shown as A (left)."""
    return "AB" if int(content_key("seat", seed, baseline, candidate, item_id), 16) % 2 == 0 else "BA"


class FormError(ValueError):
    """A submitted review form that cannot become a label (shown to the reviewer, nothing written)."""


def _int_field(form: dict[str, str], name: str, lo: int, hi: int, required: bool = True) -> Optional[int]:
    raw = (form.get(name) or "").strip()
    if not raw:
        if required:
            raise FormError(f"{name}: a score from {lo} to {hi} is required")
        return None
    try:
        value = int(raw)
    except ValueError:
        raise FormError(f"{name}: {raw!r} is not a whole number") from None
    if not lo <= value <= hi:
        raise FormError(f"{name}: {value} is outside {lo}-{hi}")
    return value


def submit_pair(form: dict[str, str], reviewer: str, base: RunFolder, cand: RunFolder, seed: int) -> Judgment:
    item_id = form.get("item", "")
    verdict = form.get("verdict", "")
    if verdict not in VERDICTS:
        raise FormError("choose a verdict: A better, B better, tie or both bad")
    tb, ta = targets_of(cand, [item_id]).get(item_id), targets_of(base, [item_id]).get(item_id)
    if tb is None or ta is None:
        raise FormError(f"item {item_id!r} has no answer in both runs")
    _same_answer(form.get("answer_hash"), tb)
    _same_answer(form.get("baseline_answer_hash"), ta)
    seat = seat_of(seed, base.run_id, cand.run_id, item_id)
    if form.get("seat") != seat:
        raise FormError("the seat order of this form does not match the item's: reload the page")
    if verdict in ("A", "B"):
        preferred = "candidate" if (verdict == "A") == (seat == "AB") else "baseline"
    else:
        preferred = verdict
    try:
        label = pair_label(reviewer, tb, ta, preferred=preferred, seat=seat,  # type: ignore[arg-type]
                           comment=form.get("comment", "")[:10_000], extra=_timing(form))
    except LabelError as e:
        raise FormError(str(e)) from None
    LabelFile.of(cand.pair_dir(base.run_id)).append([label])
    return label


def submit_single(form: dict[str, str], reviewer: str, run: RunFolder, dims: list[str], lo: int, hi: int,
                  config_hash: Optional[str], answer_type: Optional[str]) -> Judgment:
    item_id = form.get("item", "")
    target = targets_of(run, [item_id]).get(item_id)
    if target is None:
        raise FormError(f"item {item_id!r} has no answer in run {run.run_id}")
    _same_answer(form.get("answer_hash"), target)
    scores = {d: float(_int_field(form, f"dim_{d}", lo, hi)) for d in dims}  # type: ignore[arg-type]
    overall = _int_field(form, "overall", lo, hi)
    usable = {"yes": True, "no": False}.get(form.get("usable", ""))
    if usable is None:
        raise FormError("usable: answer yes or no")
    try:
        label = single_label(reviewer, target, scores=scores, overall=overall, usable=usable,
                             comment=form.get("comment", "")[:10_000], config_hash=config_hash,
                             answer_type=answer_type, extra=_timing(form))
    except LabelError as e:
        raise FormError(str(e)) from None
    LabelFile.of(run.path).append([label])
    return label


def _same_answer(submitted: Optional[str], target: ScoreTarget) -> None:
    if submitted != answer_hash(target_answers(target)):
        raise FormError("the answer changed while the form was open (the run was re-generated): reload the page")


def _timing(form: dict[str, str]) -> dict[str, Any]:
    try:
        shown = float(form.get("shown_at", ""))
        return {"seconds": round(max(0.0, time.time() - shown), 1)}
    except ValueError:
        return {}
