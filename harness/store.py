"""The run folder: a manifest plus append-only JSONL records, safe against a kill at any moment.

Records are appended one line at a time and flushed, so a SIGKILL loses at most the line
being written; on reopening, a torn last line is cut off. Each record has a content key;
readers keep the last record per key, so a retried error simply supersedes the failure.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any, Iterable, Iterator, Optional, TypeVar

from pydantic import BaseModel

from .models import Generation, Judgment, ProbeResult, RunManifest

T = TypeVar("T", bound=BaseModel)

STREAMS: dict[str, type[BaseModel]] = {
    "generations": Generation,
    "judgments": Judgment,
    "probes": ProbeResult,
}
# The folder layout (results/<run>/); sfteval.harness.runfolder is the typed API over it.
MANIFEST = "manifest.json"
ITEMS = "items.jsonl"
SUMMARY = "summary.json"
REPORT = "report.md"
LOCK = ".lock"
JUDGE_CONFIG = "judge_config.json"  #: the active judge's validated config (judging.spec)
PROBE_SETTINGS = "probe_settings.json"  #: what the probes were computed with (probes.stage)
PAIRS = "pairs"  #: pairs/<baseline run>/: pairwise judgments of this run (the candidate) against a baseline
PAIR_ITEMS = "pair_items.jsonl"
PAIR_SUMMARY = "pair_summary.json"
PAIR_REPORT = "pair_report.md"
LABELS = "labels.jsonl"  #: human labels: in a run folder (single grading) and in a pair folder (pairwise)


class StoreError(RuntimeError):
    pass


def content_key(*parts: Any) -> str:
    """A short stable key from JSON-serialisable parts (same inputs, same key, across machines)."""
    blob = json.dumps(parts, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:24]


def write_json_atomic(path: Path, data: Any) -> None:
    """Write via a temp file and rename, so readers never see half a file."""
    text = data.model_dump_json(indent=2) if isinstance(data, BaseModel) else json.dumps(data, indent=2, ensure_ascii=False)
    write_text_atomic(path, text + "\n")


def write_text_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def replace_dir(tmp: Path, dest: Path) -> None:
    """Move a finished folder into place. An existing ``dest`` is replaced only once the new one is there: if
    that rename fails, the old folder is put back, so readers see either the old folder or the new one."""
    import shutil

    if not dest.exists():
        os.rename(tmp, dest)
        return
    stale = dest.parent / f".{dest.name}.replaced-{os.getpid()}"
    os.rename(dest, stale)
    try:
        os.rename(tmp, dest)
    except OSError:
        os.rename(stale, dest)
        raise
    shutil.rmtree(stale, ignore_errors=True)


def _repair_tail(path: Path) -> None:
    """Drop a torn last line left by a kill mid-write."""
    if not path.exists() or path.stat().st_size == 0:
        return
    with open(path, "rb+") as f:
        f.seek(-1, os.SEEK_END)
        if f.read(1) == b"\n":
            return
        data = path.read_bytes()
        cut = data.rfind(b"\n") + 1
        f.truncate(cut)


def iter_lines(path: Path) -> Iterator[str]:
    """The complete, non-blank lines of a JSONL file (a torn last line was never a record)."""
    if not path.exists():
        return
    with open(path, encoding="utf-8") as f:
        for line in f:
            if not line.endswith("\n"):
                break  # a torn last line: the record was never completed
            if line.strip():
                yield line


def iter_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    for line in iter_lines(path):
        yield json.loads(line)


#: the key of a record as written by model_dump_json (schema_version first, then key: a hex content key)
_KEY = re.compile(r'"key":"([0-9A-Za-z_.:-]*)"')


def record_key(line: str) -> str:
    m = _KEY.search(line, 0, 120)
    return m.group(1) if m else json.loads(line)["key"]


#: the id of an item as write_items writes it (json.dumps of the item, id first)
_ITEM_ID = re.compile(r'^\{"id": "((?:[^"\\]|\\.)*)"')


def item_id(line: str) -> str:
    m = _ITEM_ID.match(line)
    if m is None:
        return str(json.loads(line)["id"])
    raw = m.group(1)
    return json.loads(f'"{raw}"') if "\\" in raw else raw


_FIELDS_SETS: dict[frozenset[str], set[str]] = {}
_LAST_SET: dict[type, set[str]] = {}
_NESTED: dict[type, tuple[str, ...]] = {}


def share_fields_set(record: BaseModel) -> None:
    """Let records read back share one ``__pydantic_fields_set__`` per set of field names (nested models too).

    Every stored record names all its fields, so each would otherwise carry its own ~2 KB set of the same names:
    half the memory of a 100k-item run's records (sfteval merge, summaries). Only ``exclude_unset`` dumps read
    these sets, and no record is dumped that way."""
    cls = type(record)
    names = record.__pydantic_fields_set__
    shared = _LAST_SET.get(cls)
    if shared is None or shared != names:
        shared = _LAST_SET[cls] = _FIELDS_SETS.setdefault(frozenset(names), set(names))
    object.__setattr__(record, "__pydantic_fields_set__", shared)
    nested = _NESTED.get(cls)
    if nested is None:
        nested = _NESTED[cls] = tuple(n for n, f in cls.model_fields.items()
                                      if isinstance(f.annotation, type) and issubclass(f.annotation, BaseModel))
    for name in nested:
        value = getattr(record, name)
        if isinstance(value, BaseModel):
            share_fields_set(value)


class RunStore:
    """One run folder (``results/<run-id>/``)."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._handles: dict[str, Any] = {}
        self._lock_fd: Optional[int] = None

    @property
    def run_id(self) -> str:
        return self.path.name

    def pair_dir(self, baseline_id: str) -> Path:
        """Where this run's pairwise judgments against ``baseline_id`` live."""
        return self.path / PAIRS / baseline_id

    def exists(self) -> bool:
        return (self.path / MANIFEST).exists()

    def is_unstarted(self) -> bool:
        """A folder this store began (it holds the lock file) but left before writing a manifest.

        That is a run killed while loading the model: nothing in it is a result, so it can start afresh.
        """
        if not (self.path / LOCK).is_file() or self.exists():
            return False
        return all(p.name.startswith(".") or p.name == ITEMS for p in self.path.iterdir())

    # -- locking: one writer per run ---------------------------------------------------
    def lock(self) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path / LOCK, os.O_CREAT | os.O_RDWR)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise StoreError(f"run {self.path} is being written by another sfteval process") from None
        self._lock_fd = fd

    def close(self) -> None:
        for h in self._handles.values():
            h.close()
        self._handles.clear()
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def __enter__(self) -> "RunStore":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # -- manifest and snapshots --------------------------------------------------------
    def read_manifest(self) -> RunManifest:
        path = self.path / MANIFEST
        if not path.exists():
            raise StoreError(f"{self.path} is not a run folder (no {MANIFEST})")
        return RunManifest.model_validate_json(path.read_text(encoding="utf-8"))

    def write_manifest(self, manifest: RunManifest) -> None:
        write_json_atomic(self.path / MANIFEST, manifest)

    def write_items(self, records: Iterable[dict[str, Any]]) -> None:
        text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
        write_text_atomic(self.path / ITEMS, text)

    def read_items(self) -> list[dict[str, Any]]:
        return list(iter_jsonl(self.path / ITEMS))

    def item_lines(self) -> list[str]:
        """items.jsonl's lines as written (merge copies them unparsed); :func:`item_id` reads an id from one."""
        return list(iter_lines(self.path / ITEMS))

    def write_item_lines(self, lines: Iterable[str]) -> None:
        write_text_atomic(self.path / ITEMS, "".join(lines))

    def write_json(self, name: str, data: Any) -> None:
        write_json_atomic(self.path / name, data)

    def read_json(self, name: str) -> Any:
        return json.loads((self.path / name).read_text(encoding="utf-8"))

    def write_text(self, name: str, text: str) -> None:
        write_text_atomic(self.path / name, text)

    # -- append-only record streams ----------------------------------------------------
    def append(self, stream: str, record: BaseModel) -> None:
        handle = self._handles.get(stream)
        if handle is None:
            path = self.path / f"{stream}.jsonl"
            _repair_tail(path)
            handle = self._handles[stream] = open(path, "a", encoding="utf-8")
        handle.write(record.model_dump_json() + "\n")
        handle.flush()

    def has(self, name: str) -> bool:
        """Whether the folder holds ``name`` (one of the layout's file names above)."""
        return (self.path / name).exists()

    def raw(self, stream: str) -> dict[str, str]:
        """A stream's lines by key, the last per key, otherwise unparsed: for copying records as they are (merge)."""
        return {record_key(line): line for line in iter_lines(self.path / f"{stream}.jsonl")}

    def write_stream(self, stream: str, lines: Iterable[str]) -> None:
        """Write a whole stream at once (a new folder being assembled, e.g. by merge); lines end with a newline."""
        write_text_atomic(self.path / f"{stream}.jsonl", "".join(lines))

    def read(self, stream: str, model: Optional[type[T]] = None) -> dict[str, T]:
        """Records by key; a later record with the same key supersedes an earlier one."""
        cls = model or STREAMS[stream]
        out: dict[str, Any] = {}
        for line in iter_lines(self.path / f"{stream}.jsonl"):
            rec = cls.model_validate_json(line)  # parsed and validated in one pass (pydantic-core)
            share_fields_set(rec)
            out[rec.key] = rec  # type: ignore[attr-defined]
        return out
