"""Label records: what a reviewer said about which content, appended safely and read back latest-first.

Why keyed by content: a label is about the answer the reviewer read. Its key is built from the reviewer, the
mode and the hashes of the item and of the answer(s), and it records those hashes; a label whose answer hash
no longer matches the run's answer is *stale* and counts nowhere. Re-labelling the same content appends a
record with the same key, so the latest one counts and the file keeps the history.

Why a lock and fsync: two reviewers may submit at the same moment and the server may be killed right after
answering; each append takes an exclusive ``fcntl`` lock on the file, writes whole lines, and is flushed and
fsynced before the caller answers, so no line interleaves and no acknowledged label is lost.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Literal, Optional

from ..models import Item, Judgment
from ..score import ScoreTarget
from ..store import LABELS, content_key, iter_jsonl

HUMAN = "human:"
#: a pairwise verdict from the runs' side: the candidate (B) or the baseline (A) is better, a tie, both bad
PREFERRED = ("candidate", "baseline", "tie", "both_bad")
Preferred = Literal["candidate", "baseline", "tie", "both_bad"]
#: the candidate's pairwise outcome for each verdict (both bad is a tie: neither answer wins)
OUTCOME = {"candidate": "win", "baseline": "loss", "tie": "tie", "both_bad": "tie"}
_REVIEWER = re.compile(r"^[\w.@+-](?:[\w .@+-]{0,62}[\w.@+-])?$")


class LabelError(ValueError):
    """A label that cannot be accepted (bad reviewer name, score out of range, unknown item, stale answer)."""


def check_reviewer(name: str) -> str:
    """Reviewer names: 1-64 letters, digits, spaces and ``. @ + - _`` (no leading/trailing space)."""
    if not isinstance(name, str) or not _REVIEWER.match(name):
        raise LabelError(f"reviewer name {name!r}: use 1-64 letters, digits, spaces or . @ + - _")
    return name


def reviewer_of(label: Judgment) -> str:
    return label.scorer[len(HUMAN):] if label.scorer.startswith(HUMAN) else label.scorer


def is_label(j: Judgment) -> bool:
    return j.scorer.startswith(HUMAN)


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def item_hash(item: Item) -> str:
    """A short hash of an item's validated content (the same item in two runs has the same hash)."""
    return content_key("item", item.model_dump(mode="json"))


def answer_hash(answers: Iterable[str]) -> str:
    """sha256 (hex) of the answers, one per answered turn, as JSON: what a label is bound to."""
    return hashlib.sha256(json.dumps(list(answers), ensure_ascii=False).encode("utf-8")).hexdigest()


def target_answers(target: ScoreTarget) -> list[str]:
    return [g.answer for g in sorted(target.history, key=lambda g: g.turn)]


def single_label(reviewer: str, target: ScoreTarget, *, scores: dict[str, float], overall: Optional[float],
                 usable: Optional[bool], comment: str = "", config_hash: Optional[str] = None,
                 answer_type: Optional[str] = None, source: str = "view", time: Optional[str] = None,
                 extra: Optional[dict[str, Any]] = None) -> Judgment:
    """A single-grading label on one answer (the target's final generation and the turns before it)."""
    scorer = HUMAN + check_reviewer(reviewer)
    ih, ah = item_hash(target.item), answer_hash(target_answers(target))
    return Judgment(
        key=content_key("label", scorer, "single", ih, ah), item_id=target.item.id,
        task_type=target.item.task_type, generation_key=target.generation.key, sample=target.generation.sample,
        scorer=scorer, judge_config_hash=config_hash, mode="single", scores=dict(scores), overall=overall,
        rationale=comment or None, status="ok",
        details={"reviewer": reviewer, "time": time or now(), "item_hash": ih, "answer_hash": ah, "usable": usable,
                 "answer_type": answer_type, "source": source, **(extra or {})})


def pair_label(reviewer: str, candidate: ScoreTarget, baseline: ScoreTarget, *, preferred: str,
               seat: Literal["AB", "BA"], comment: str = "", source: str = "view", time: Optional[str] = None,
               extra: Optional[dict[str, Any]] = None) -> Judgment:
    """A pairwise label: candidate (run B) vs baseline (run A) on one item.

    ``seat`` is the order the answers were shown in, as for the judge: ``AB`` = the candidate in seat A (left).
    ``verdict`` is stored by seat (``A``, ``B``, ``tie``, ``both_bad``) like the judge's; ``details.preferred``
    says the same from the runs' side.
    """
    if preferred not in PREFERRED:
        raise LabelError(f"verdict {preferred!r}: expected one of {', '.join(PREFERRED)}")
    scorer = HUMAN + check_reviewer(reviewer)
    ih = item_hash(candidate.item)
    ah, bh = answer_hash(target_answers(candidate)), answer_hash(target_answers(baseline))
    by_seat = {"candidate": "A" if seat == "AB" else "B", "baseline": "B" if seat == "AB" else "A"}
    return Judgment(
        key=content_key("label", scorer, "pair", ih, ah, bh), item_id=candidate.item.id,
        task_type=candidate.item.task_type, generation_key=candidate.generation.key,
        sample=candidate.generation.sample, scorer=scorer, mode="pair", order=seat,
        verdict=by_seat.get(preferred, preferred), rationale=comment or None, status="ok",
        details={"reviewer": reviewer, "time": time or now(), "item_hash": ih, "answer_hash": ah,
                 "baseline_generation_key": baseline.generation.key, "baseline_answer_hash": bh,
                 "preferred": preferred, "outcome": OUTCOME[preferred], "source": source, **(extra or {})})


def is_current(label: Judgment, target: Optional[ScoreTarget], baseline: Optional[ScoreTarget] = None) -> bool:
    """The label was made on exactly the answer(s) the run holds now (else it is stale)."""
    if target is None or label.details.get("answer_hash") != answer_hash(target_answers(target)):
        return False
    if label.details.get("item_hash") not in (None, item_hash(target.item)):
        return False
    if label.mode == "pair":
        return baseline is not None and label.details.get("baseline_answer_hash") == answer_hash(
            target_answers(baseline))
    return True


@dataclass
class LabelFile:
    """One ``labels.jsonl``: appended under an exclusive lock, flushed and fsynced; read latest per key."""

    path: Path

    @classmethod
    def of(cls, folder: Path) -> "LabelFile":
        return cls(Path(folder) / LABELS)

    def append(self, labels: list[Judgment]) -> None:
        if not labels:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        created = not self.path.exists()
        text = "".join(j.model_dump_json() + "\n" for j in labels).encode("utf-8")
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                _repair_tail(fd)
                view = memoryview(text)
                while view:
                    view = view[os.write(fd, view):]
                os.fsync(fd)
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)
        if created:  # the new file's name must survive a crash too
            dfd = os.open(self.path.parent, os.O_RDONLY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)

    def history(self) -> list[Judgment]:
        """Every label ever written, in order (edits included)."""
        return [Judgment.model_validate(r) for r in iter_jsonl(self.path)]

    def latest(self) -> dict[str, Judgment]:
        out: dict[str, Judgment] = {}
        for j in self.history():
            out[j.key] = j
        return out


def _repair_tail(fd: int) -> None:
    """Cut a torn last line (a writer killed mid-line before this lock was taken)."""
    size = os.fstat(fd).st_size
    if size == 0 or os.pread(fd, 1, size - 1) == b"\n":
        return
    data = os.pread(fd, size, 0)
    os.ftruncate(fd, data.rfind(b"\n") + 1)
