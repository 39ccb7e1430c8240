"""What the viewer keeps in memory, per run and per compared pair, rebuilt when a run's files change.

Per run: the differ's loaded run (its item frame and facts, differ.load.load_run: built a chunk of items at a
time, so a 100k-item run fits) and, on first search, the casefolded texts of every item (prompt, reference,
final answer). Per pair: the diff itself (differ.diff_loaded: the same cells as ``sfteval diff``) and the
per-item arrays the filters use (compare.py). Nothing holds a run's records: an item page reads the item's
records from the folder (RunFolder.item_records).
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np

from ..differ.load import LoadedRun, load_run
from ..models import Item, RunManifest
from ..recordindex import file_stamp, scan
from ..runfolder import RunFolder
from ..store import JUDGE_CONFIG, MANIFEST, PAIR_ITEMS, STREAMS, SUMMARY, iter_jsonl


class NotFound(LookupError):
    """A run or item the URL names does not exist (a 404 page)."""


def _stamps(folder: Path, names: list[str]) -> tuple[tuple[int, int], ...]:
    return tuple(file_stamp(folder / n) for n in names)


RUN_FILES = [MANIFEST, "items.jsonl", *(f"{s}.jsonl" for s in STREAMS), JUDGE_CONFIG, SUMMARY]


@dataclass
class RunRow:
    """One line of the runs page (from the manifest and the stored summary only)."""

    name: str
    manifest: Optional[RunManifest] = None
    summary: Optional[dict[str, Any]] = None
    error: Optional[str] = None

    @property
    def headline(self) -> Optional[float]:
        s = self.summary or {}
        return ((s.get("headline") or {}).get("overall") if s.get("headline")
                else None)


@dataclass
class SearchTexts:
    """Casefolded texts per item of one run, in the run's item order: prompt + reference, and the final answer."""

    item: list[str]
    answer: list[str]
    answer_key: list[int]  #: hash of the exact final answer (equal answers: nothing to compare in a pairwise review)

    def hits(self, query: str, positions: np.ndarray, fields: tuple[str, ...] = ("item", "answer")) -> np.ndarray:
        q = query.casefold()
        out = np.zeros(len(positions), dtype=bool)
        for name in fields:
            texts = getattr(self, name)
            out |= np.fromiter((p >= 0 and q in texts[p] for p in positions), dtype=bool, count=len(positions))
        return out


def build_search(folder: RunFolder) -> SearchTexts:
    """One streaming pass over items.jsonl and generations.jsonl (plain JSON, no typed records)."""
    index = folder.record_index()
    n = len(index.item_ids)
    item_text, last_turn = [""] * n, [0] * n
    for pos, raw in enumerate(iter_jsonl(folder.path / "items.jsonl")):
        item = Item.model_validate(raw)
        parts = [m.content for m in item.conversation]
        ref = item.reference
        parts += [r for r in (ref if isinstance(ref, list) else [ref]) if r]
        item_text[pos] = "\n".join(parts).casefold()
        last_turn[pos] = item.n_answer_turns - 1
    final: dict[str, tuple[int, int, str]] = {}  # generation key -> (item position, sample, answer) of final turns
    for rec in iter_jsonl(folder.path / "generations.jsonl"):
        pos = index.positions.get(rec.get("item_id"))
        if pos is None:
            continue
        if rec.get("turn", 0) == last_turn[pos] and rec.get("status", "ok") == "ok":
            final[rec["key"]] = (pos, int(rec.get("sample", 0)), str(rec.get("answer", "")))
        else:
            final.pop(rec["key"], None)
    answer, key, best = [""] * n, [0] * n, [1 << 30] * n
    for pos, sample, text in final.values():
        if sample < best[pos]:
            best[pos], answer[pos], key[pos] = sample, text.casefold(), hash(text)
    return SearchTexts(item_text, answer, key)


@dataclass
class RunState:
    """A loaded run and what pages derive from it; valid while its files' stamps are unchanged."""

    folder: RunFolder
    stamps: tuple[tuple[int, int], ...]
    loaded: LoadedRun
    _search: Optional[SearchTexts] = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def frame(self) -> Any:
        return self.loaded.frame

    def search(self) -> SearchTexts:
        with self._lock:
            if self._search is None:
                self._search = build_search(self.folder)
            return self._search


class PairRecords:
    """A pair folder's judgments and rows (``<B>/pairs/<A>/``), by item, read on demand."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.stamp = _stamps(folder, ["judgments.jsonl", PAIR_ITEMS])
        ids, offsets = scan(folder / "judgments.jsonl")
        self.offsets: dict[str, list[int]] = {}
        for i, off in zip(ids, offsets.tolist()):
            self.offsets.setdefault(i, []).append(off)
        self.rows: dict[str, list[dict[str, Any]]] = {}
        for r in iter_jsonl(folder / PAIR_ITEMS):
            self.rows.setdefault(str(r.get("item_id")), []).append(r)

    def judgments(self, item_id: str) -> list[dict[str, Any]]:
        from ..recordindex import read_lines

        latest: dict[str, dict[str, Any]] = {}
        for rec in read_lines(self.folder / "judgments.jsonl", self.offsets.get(item_id, [])):
            latest[rec["key"]] = rec
        return list(latest.values())


class ViewData:
    """The results folder as the viewer sees it: run rows, loaded runs, comparisons; all cached and thread-safe."""

    def __init__(self, results: Path):
        self.results = Path(results)
        self._runs: dict[str, RunState] = {}
        self._folders: dict[str, RunFolder] = {}  #: one instance per run: it keeps the run's record index
        self._rows: dict[str, tuple[Any, RunRow]] = {}
        self._pairs: dict[tuple[str, str], PairRecords] = {}
        self._locks: dict[Any, threading.Lock] = {}
        self._guard = threading.Lock()
        self.cache: dict[Any, tuple[Any, Any]] = {}  #: other derived values: key -> (stamp, value)

    def lock(self, key: Any) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(key, threading.Lock())

    # -- runs ----------------------------------------------------------------------------------------------
    def folder(self, name: str) -> RunFolder:
        """A run folder directly under the results root (names from URLs never leave it)."""
        if not name or "/" in name or "\\" in name or name.startswith(".") or "\x00" in name:
            raise NotFound(f"no run named {name!r}")
        path = self.results / name
        if path.resolve().parent != self.results.resolve() or not (path / MANIFEST).is_file():
            raise NotFound(f"no run named {name!r} in {self.results}")
        with self._guard:
            return self._folders.setdefault(name, RunFolder(path))

    def run_names(self) -> list[str]:
        if not self.results.is_dir():
            return []
        return sorted(p.name for p in self.results.iterdir() if (p / MANIFEST).is_file() and not p.name.startswith("."))

    def row(self, name: str) -> RunRow:
        path = self.results / name
        stamp = _stamps(path, [MANIFEST, SUMMARY])
        known = self._rows.get(name)
        if known is not None and known[0] == stamp:
            return known[1]
        row = RunRow(name)
        try:
            row.manifest = RunFolder(path).manifest()
            if (path / SUMMARY).exists():
                row.summary = json.loads((path / SUMMARY).read_text(encoding="utf-8"))
        except Exception as e:  # shown on the page: a broken run folder needs a look, not a crash
            row.error = f"{type(e).__name__}: {str(e).splitlines()[0][:200]}"
        self._rows[name] = (stamp, row)
        return row

    def run(self, name: str) -> RunState:
        folder = self.folder(name)
        with self.lock(("run", name)):
            stamps = _stamps(folder.path, RUN_FILES)
            known = self._runs.get(name)
            if known is None or known.stamps != stamps:
                known = self._runs[name] = RunState(folder, stamps, load_run(folder))  # builds the folder's index
            return known

    def pair_records(self, a: str, b: str) -> Optional[PairRecords]:
        folder = self.folder(b).pair_dir(a)
        if not (folder / "judgments.jsonl").exists() and not (folder / PAIR_ITEMS).exists():
            return None
        with self.lock(("pair", a, b)):
            known = self._pairs.get((a, b))
            if known is None or known.stamp != _stamps(folder, ["judgments.jsonl", PAIR_ITEMS]):
                known = self._pairs[(a, b)] = PairRecords(folder)
            return known

    def cached(self, key: Any, stamp: Any, build: Callable[[], Any]) -> Any:
        """A derived value, rebuilt when ``stamp`` changes (one builder at a time per key)."""
        with self.lock(("cache", key)):
            known = self.cache.get(key)
            if known is not None and known[0] == stamp:
                return known[1]
            value = build()
            self.cache[key] = (stamp, value)
            return value
