"""Reading a run folder for the differ: the per-item frame, run facts, judge reliability, item texts.

Why separate from the statistics: the statistics work on two item frames (so the benchmark and unit tests
can feed frames directly); everything that touches records and files lives here.

A run is read :data:`CHUNK_ITEMS` items at a time (the frame's rows are per item, so building it chunk by
chunk gives the same rows), and only the frame, the run's facts and a hash per item stay in memory; the
texts of the flipped items are read back from the record files when a report asks for them. A 100k-item
run therefore costs the memory of one chunk's records, not of all of them.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any, Optional

import pandas as pd

from ..judging.spec import ActiveJudge
from ..models import Generation, Judgment, RunManifest
from ..runfolder import RunFolder, bulk
from ..scoring import BASE_COLUMNS, LEAD_METRICS, item_frame
from ..stages.base import RunRecords
from ..stages.registry import stages as registered_stages
from ..store import PAIR_ITEMS, RunStore, content_key, iter_jsonl
from .result import RunInfo

#: items whose records are held in memory at once while a run's frame is built
CHUNK_ITEMS = 10_000


@dataclass
class LoadedRun:
    store: RunFolder
    manifest: RunManifest
    frame: pd.DataFrame
    info: RunInfo
    judge: Optional[ActiveJudge]
    item_hashes: dict[str, str]  #: item id -> hash of the item's content (an edited item changes it)

    @property
    def texts(self) -> "FolderTexts":
        return FolderTexts(self.store, self.manifest, self.judge)


def load_run(store: RunStore, chunk_items: int = CHUNK_ITEMS) -> LoadedRun:
    folder = store if isinstance(store, RunFolder) else RunFolder(store.path)
    manifest = folder.manifest()
    stages = registered_stages()
    frames: list[pd.DataFrame] = []
    hashes: dict[str, str] = {}
    tally = _Tally()
    judge: Optional[ActiveJudge] = None
    with bulk():  # records by the hundred thousand, no cycles among them: the collector only slows this down
        for records in folder.record_chunks(chunk_items, manifest):
            judge = records.judge
            frames.append(item_frame(records, stages))
            hashes.update((it.id, item_hash(it)) for it in records.items)
            tally.add(records)
    frame = _concat(frames) if frames else item_frame(RunRecords(items=[]), stages)
    if judge is None:
        from ..judging.spec import load_active

        judge = load_active(folder.path, manifest.judge)
    return LoadedRun(folder, manifest, frame, tally.info(folder, manifest, judge), judge, hashes)


def pair_answers(pair_folder: Any, runs: tuple[LoadedRun, ...]) -> dict[str, str]:
    """Answers by generation key of the items a pair folder judged (for the style covariates), read from the
    runs' folders for those items only."""
    ids = sorted({str(row["item_id"]) for row in iter_jsonl(pair_folder / PAIR_ITEMS)})
    return {g.key: g.answer for run in runs
            for g in run.store.item_records(ids, run.manifest, run.judge).generations.values()}


def item_hash(item: Any) -> str:
    """A short hash of an item's validated content (two runs' items are the same item iff equal)."""
    return content_key("item", item.model_dump(mode="json"))


def _concat(frames: list[pd.DataFrame]) -> pd.DataFrame:
    if len(frames) == 1:
        return frames[0]
    frame = pd.concat(frames, axis=0, sort=False)
    lead = [c for c in LEAD_METRICS if c in frame.columns]
    rest = [c for c in frame.columns if c not in BASE_COLUMNS and c not in lead]
    return frame[list(BASE_COLUMNS) + lead + rest]


class _Tally:
    """Counts over a run's chunks: items, generations and their failures, the active judge's sample statuses."""

    def __init__(self) -> None:
        self.items = 0
        self.generations = 0
        self.generation_errors = 0
        self.judge_statuses: Counter[str] = Counter()

    def add(self, records: RunRecords) -> None:
        self.items += len(records.items)
        gens = records.generations.values()
        self.generations += len(gens)
        self.generation_errors += sum(g.status != "ok" for g in gens)
        judge = records.judge
        if judge is not None:  # the active judge's samples of stored answers (judging.metrics.answer_judgments')
            self.judge_statuses.update(j.status for j in records.judgments.values() if j.mode == "single"
                                       and judge.selects(j) and j.generation_key in records.generations)

    def info(self, store: RunFolder, manifest: RunManifest, judge: Optional[ActiveJudge]) -> RunInfo:
        from .. import reliability as rel

        info = RunInfo(run_id=manifest.run_id, model=manifest.model.name, suite_name=manifest.suite_name,
                       suite_version=manifest.suite_version, suite_hash=manifest.suite_hash, status=manifest.status,
                       items=self.items, generations=self.generations,
                       generation_error_rate=(self.generation_errors / self.generations) if self.generations else None)
        if judge is not None:
            rates = rel.status_rates(self.judge_statuses.elements())
            info.judge = f"{judge.model} ({judge.config.name})"
            info.judge_samples = rates["samples"]
            info.judge_unparsed_rate, info.judge_error_rate = rates["unparsed_rate"], rates["error_rate"]
            info.judge_not_judged_rate = rates["not_judged_rate"]
            stored = _stored_reliability(store)
            info.judge_warnings = list(stored.get("warnings") or [])
            info.judge_reliability = {k: stored.get(k) for k in ("length_correlation", "mean_repeat_std")
                                      if stored.get(k) is not None}
        return info


def _stored_reliability(store: RunFolder) -> dict[str, Any]:
    summary = store.stored_summary()
    if summary is None or summary.judge is None:
        return {}
    return summary.judge.reliability.model_dump()


class FolderTexts:
    """:class:`RecordTexts` of one item at a time, read from the run folder when asked (flipped items only)."""

    def __init__(self, store: RunFolder, manifest: RunManifest, judge: Optional[ActiveJudge]):
        self.store, self.manifest, self.judge = store, manifest, judge

    def detail(self, item_id: str) -> dict[str, Any]:
        return RecordTexts(self.store.item_records([item_id], self.manifest, self.judge)).detail(item_id)


class RecordTexts:
    """Texts of an item in one run: prompt, reference, final answer (sample 0), judge rationale, rules."""

    def __init__(self, records: RunRecords):
        self.records = records
        self.items = {it.id: it for it in records.items}
        self.final: dict[str, Generation] = {}
        last = {it.id: it.n_answer_turns - 1 for it in records.items}
        for g in records.generations.values():
            known = self.final.get(g.item_id)
            if g.turn == last.get(g.item_id) and (known is None or g.sample < known.sample):
                self.final[g.item_id] = g
        self.by_gen: dict[str, list[Judgment]] = {}
        for j in records.judgments.values():
            if j.generation_key is not None and j.mode in ("single", "rule"):
                self.by_gen.setdefault(j.generation_key, []).append(j)

    def detail(self, item_id: str) -> dict[str, Any]:
        item = self.items.get(item_id)
        out: dict[str, Any] = {}
        if item is not None:
            out["prompt"] = item.prompt if item.prompt is not None else _conversation_text(item)
            out["messages"] = [m.model_dump() for m in item.messages] if item.messages else None
            out["reference"] = item.final_reference
        g = self.final.get(item_id)
        if g is None:
            return out
        out.update(answer=g.answer, think=g.think, finish_reason=g.finish_reason, generation_status=g.status)
        if g.status != "ok":
            out["answer"] = f"[generation failed: {g.error}]"
        judged = self.by_gen.get(g.key, [])
        judge = self.records.judge
        singles = sorted((j for j in judged if j.mode == "single" and (judge is None or judge.selects(j))),
                         key=lambda j: (j.status != "ok", j.judge_sample))
        if singles:
            first = singles[0]
            out["judge"] = {"rationale": first.rationale or first.raw, "scores": first.scores, "overall": first.overall,
                            "status": first.status, "reason": first.reason, "samples": len(singles),
                            "all_rationales": [j.rationale or j.raw for j in singles]}
        out["rules"] = [{"scorer": j.scorer, "score": j.overall, "status": j.status, "reason": j.reason}
                        for j in sorted(judged, key=lambda j: j.scorer) if j.mode == "rule"]
        return out


def _conversation_text(item: Any) -> str:
    return "\n\n".join(f"[{m.role}] {m.content}" for m in item.conversation)


def changed_items(a: LoadedRun, b: LoadedRun) -> list[str]:
    """Shared ids whose item content differs between the runs (edited prompt or reference)."""
    return sorted(i for i, h in b.item_hashes.items() if i in a.item_hashes and a.item_hashes[i] != h)


def find_pairs(a: RunStore, b: RunStore) -> Optional[tuple[Any, bool]]:
    """The pair folder of B (candidate) vs A (baseline): B/pairs/A, else A/pairs/B (outcomes inverted)."""
    for folder, inverted in ((b.pair_dir(a.run_id), False), (a.pair_dir(b.run_id), True)):
        if (folder / PAIR_ITEMS).exists():
            return folder, inverted
    return None
