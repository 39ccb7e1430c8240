"""`sfteval suites sample`: a smaller suite for a quick run, deterministic for a given seed.

Why per task_type: a quick run must still cover every task_type, or the comparison that follows
(PRACTICE 3) has holes. Why keep originals: a robustness variant is read against its original
(PRACTICE 12); a variant sampled without it measures nothing, so the original comes along even when
that takes its task_type over N. Variants whose originals were already drawn are preferred.
"""

from __future__ import annotations

import random
from pathlib import Path

from ..models import Item
from ..suite import Suite
from .writer import write_suite


def _variant_of(item: Item, ids: set[str]) -> str | None:
    v = item.meta.get("variant_of")
    return v if isinstance(v, str) and v in ids else None


def sample_items(suite: Suite, per_task_type: int, seed: int = 0) -> list[Item]:
    """Up to ``per_task_type`` items of every task_type, in suite order."""
    if per_task_type < 1:
        raise ValueError("per_task_type must be at least 1")
    ids = {it.id for it in suite.items}
    groups: dict[str, list[Item]] = {}
    for it in suite.items:
        groups.setdefault(it.task_type, []).append(it)
    chosen: set[str] = set()
    variant_types = [tt for tt, its in groups.items() if any(_variant_of(it, ids) for it in its)]
    for tt, its in groups.items():  # originals first, so variants can prefer what is already drawn
        if tt not in variant_types:
            rng = random.Random(f"{seed}:{tt}")
            chosen.update(it.id for it in rng.sample(its, min(per_task_type, len(its))))
    for tt in variant_types:
        rng = random.Random(f"{seed}:{tt}")
        its = list(groups[tt])
        rng.shuffle(its)
        its.sort(key=lambda it: _variant_of(it, ids) not in chosen)  # stable: drawn originals first
        for it in its[:per_task_type]:
            chosen.add(it.id)
            if _variant_of(it, ids):
                chosen.add(_variant_of(it, ids))  # type: ignore[arg-type]
    return [it for it in suite.items if it.id in chosen]


def sample_suite(suite: Suite, dest: Path | str, per_task_type: int, seed: int = 0, *, force: bool = False) -> Suite:
    """Write the sample as a suite folder: same file names and settings, only the sampled items."""
    items = sample_items(suite, per_task_type, seed)
    files: dict[str, list[Item]] = {}
    for it in items:
        fname = Path(suite.sources.get(it.id, ("items.jsonl", 0))[0]).name
        if not fname.endswith(".jsonl"):
            fname = Path(fname).stem + ".jsonl"
        files.setdefault(fname, []).append(it)
    used = {lvl for it in items for lvl in it.task_type_levels}
    config = suite.config.model_copy(update={
        "name": None, "files": None,
        "task_types": {k: v for k, v in suite.config.task_types.items() if k in used},
        "description": f"Sample of {suite.name} v{suite.version} ({per_task_type} per task_type, seed {seed}). "
                       + suite.config.description,
    })
    intro = (f"A sample of `{suite.name}` v{suite.version} ({len(suite.items)} items, hash {suite.content_hash[:12]}): "
             f"up to {per_task_type} items per task_type, seed {seed}, made by `sfteval suites sample`. Robustness "
             "variants keep their originals. Settings are those of the full suite.")
    return write_suite(dest, files, config, intro, force=force)
