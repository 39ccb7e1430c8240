"""Agreement from run folders: reads only the labelled items' records, so it is cheap on a run of any size.

Used by ``sfteval agreement``, ``sfteval labels import``, the diff (and so the gate) and the viewer.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

from ..runfolder import RunFolder
from ..store import PAIR_ITEMS, SUMMARY, iter_jsonl, write_json_atomic
from .collect import pair_block, settings, single_block
from .records import LabelFile

_INVERT = {"win": "loss", "loss": "win", "tie": "tie", None: None}


def pair_folder(baseline: RunFolder, candidate: RunFolder) -> Path:
    """Where pairwise labels of candidate B against baseline A live: ``<B>/pairs/<A>/`` (as the pair judge's)."""
    return candidate.pair_dir(baseline.run_id)


def pair_rows(baseline: RunFolder, candidate: RunFolder) -> list[dict[str, Any]]:
    """The pair judge's rows from the candidate's side (read from A/pairs/B, mapped, when only that exists)."""
    own = candidate.pair_dir(baseline.run_id) / PAIR_ITEMS
    if own.exists():
        return list(iter_jsonl(own))
    other = baseline.pair_dir(candidate.run_id) / PAIR_ITEMS
    rows = []
    for r in iter_jsonl(other):
        rows.append({**r, "candidate_generation_key": r.get("baseline_generation_key"),
                     "baseline_generation_key": r.get("candidate_generation_key"),
                     "outcome": _INVERT[r.get("outcome")],
                     "corrected_outcome": _INVERT[r.get("corrected_outcome", r.get("outcome"))]})
    return rows


def run_block(folder: RunFolder, opts: Optional[dict[str, Any]] = None) -> Optional[dict[str, Any]]:
    """Single-grading agreement of one run (None: no labels)."""
    labels = folder.labels()
    if not labels:
        return None
    records = folder.item_records({j.item_id for j in labels.values()})
    records.labels = labels
    return single_block(records, opts or settings())


def pair_block_of(baseline: RunFolder, candidate: RunFolder,
                  opts: Optional[dict[str, Any]] = None) -> Optional[dict[str, Any]]:
    """Pairwise agreement of candidate B against baseline A (None: no pairwise labels)."""
    labels = LabelFile.of(pair_folder(baseline, candidate)).latest()
    if not labels:
        return None
    ids = {j.item_id for j in labels.values()}
    rows = pair_rows(baseline, candidate)
    judge = None
    summary = pair_folder(baseline, candidate) / "pair_summary.json"
    if summary.exists():
        import json

        entry = json.loads(summary.read_text(encoding="utf-8")).get("judge") or {}
        judge = f"{entry.get('model')} ({entry.get('config')})" if entry else None
    return pair_block(candidate.item_records(ids), baseline.item_records(ids), rows, labels.values(),
                      opts or settings(), judge=judge)


def diff_block(baseline: RunFolder, candidate: RunFolder,
               opts: Optional[dict[str, Any]] = None) -> Optional[dict[str, Any]]:
    """What a diff reports: each run's single-grading agreement and the pair's pairwise agreement."""
    opts = opts or settings()
    out = {"baseline": run_block(baseline, opts), "candidate": run_block(candidate, opts),
           "pair": pair_block_of(baseline, candidate, opts)}
    if not any(out.values()):
        return None
    return {**opts, **out}


def refresh_summary(folder: RunFolder, block: Optional[dict[str, Any]]) -> bool:
    """Store the run's current agreement block in its summary.json (False when it has no summary yet)."""
    path = folder.path / SUMMARY
    if not path.exists():
        return False
    import json

    data = json.loads(path.read_text(encoding="utf-8"))
    if block:
        data["agreement"] = block
    else:
        data.pop("agreement", None)
    write_json_atomic(path, data)
    return True
