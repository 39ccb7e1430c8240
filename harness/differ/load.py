"""Reading a run folder for the differ: the per-item frame, run facts, judge reliability, item texts.

Why separate from the statistics: the statistics work on two item frames (so the benchmark and unit tests
can feed frames directly); everything that touches records and files lives here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

import pandas as pd

from ..models import Generation, Judgment, RunManifest
from ..runfolder import RunFolder
from ..scoring import item_frame
from ..stages.base import RunRecords
from ..store import PAIR_ITEMS, RunStore
from .result import RunInfo


@dataclass
class LoadedRun:
    store: RunFolder
    manifest: RunManifest
    records: RunRecords
    frame: pd.DataFrame
    info: RunInfo


def load_run(store: RunStore) -> LoadedRun:
    folder = store if isinstance(store, RunFolder) else RunFolder(store.path)
    manifest = folder.manifest()
    records = folder.records(manifest)
    frame = item_frame(records)
    return LoadedRun(folder, manifest, records, frame, run_info(folder, manifest, records))


def run_info(store: RunFolder, manifest: RunManifest, records: RunRecords) -> RunInfo:
    from .. import reliability as rel

    gens = list(records.generations.values())
    info = RunInfo(run_id=manifest.run_id, model=manifest.model.name, suite_name=manifest.suite_name,
                   suite_version=manifest.suite_version, suite_hash=manifest.suite_hash, status=manifest.status,
                   items=len(records.items), generations=len(gens),
                   generation_error_rate=(sum(g.status != "ok" for g in gens) / len(gens)) if gens else None)
    if records.judge is not None:
        from ..judging.metrics import answer_judgments

        samples = [j for a in answer_judgments(records) for j in a.samples]
        rates = rel.status_rates(j.status for j in samples)
        info.judge = f"{records.judge.model} ({records.judge.config.name})"
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


def changed_items(a: RunRecords, b: RunRecords) -> list[str]:
    """Shared ids whose item content differs between the runs (edited prompt or reference)."""
    items_a = {it.id: it for it in a.items}
    return sorted(it.id for it in b.items if it.id in items_a and items_a[it.id] != it)


def find_pairs(a: RunStore, b: RunStore) -> Optional[tuple[Any, bool]]:
    """The pair folder of B (candidate) vs A (baseline): B/pairs/A, else A/pairs/B (outcomes inverted)."""
    for folder, inverted in ((b.pair_dir(a.run_id), False), (a.pair_dir(b.run_id), True)):
        if (folder / PAIR_ITEMS).exists():
            return folder, inverted
    return None
