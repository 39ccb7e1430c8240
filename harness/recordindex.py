"""Where each item's records sit in a run's JSONL streams: byte offsets grouped by item, read back on demand.

Why: a 100k-item run holds hundreds of thousands of records; as typed objects they take gigabytes. The
differ builds its per-item frame a chunk of items at a time, and the viewer shows one item's records,
so both read only the lines they need. One pass over a stream finds every line's ``item_id`` (the first
``"item_id"`` key of the line: sfteval writes it before any nested object) and its offset; reading an
item back is a seek per line. Lines are read in file order, so a later record with the same key still
supersedes an earlier one, exactly as :meth:`RunStore.read` does.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Optional, Sequence

import numpy as np

_ITEM_ID = re.compile(rb'"item_id"\s*:\s*"((?:[^"\\]|\\.)*)"')


def file_stamp(path: Path) -> tuple[int, int]:
    """(size, mtime_ns) of a file, (-1, -1) when absent: what a cache over the file is keyed by."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return (-1, -1)
    return (st.st_size, st.st_mtime_ns)


def _decode_id(raw: bytes) -> str:
    return raw.decode("utf-8") if b"\\" not in raw else json.loads(b'"' + raw + b'"')


def scan(path: Path) -> tuple[list[str], np.ndarray]:
    """The item id and byte offset of every complete record line (a torn last line is left out)."""
    ids: list[str] = []
    offsets: list[int] = []
    if not path.exists():
        return ids, np.zeros(0, dtype=np.int64)
    pos = 0
    with open(path, "rb") as f:
        for line in f:
            start, pos = pos, pos + len(line)
            if not line.endswith(b"\n"):
                break  # a torn last line: the record was never completed
            m = _ITEM_ID.search(line)
            if m is None:
                continue  # a blank line, or a record without an item (none of sfteval's streams has one)
            ids.append(_decode_id(m.group(1)))
            offsets.append(start)
    return ids, np.asarray(offsets, dtype=np.int64)


@dataclass
class StreamIndex:
    """Offsets of one stream's lines, grouped by item position (CSR: ``offsets[indptr[i]:indptr[i + 1]]``)."""

    path: Path
    stamp: tuple[int, int]
    indptr: np.ndarray
    offsets: np.ndarray

    @classmethod
    def build(cls, path: Path, positions: dict[str, int]) -> "StreamIndex":
        stamp = file_stamp(path)
        ids, offsets = scan(path)
        codes = np.fromiter((positions.get(i, -1) for i in ids), dtype=np.int64, count=len(ids))
        keep = codes >= 0  # records of items the run does not list are not read back
        codes, offsets = codes[keep], offsets[keep]
        order = np.argsort(codes, kind="stable")  # stable: file order within an item
        counts = np.bincount(codes, minlength=len(positions))
        indptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        return cls(path, stamp, indptr, offsets[order])

    def offsets_of(self, positions: Iterable[int]) -> np.ndarray:
        parts = [self.offsets[self.indptr[p]:self.indptr[p + 1]] for p in positions]
        return np.sort(np.concatenate(parts)) if parts else np.zeros(0, dtype=np.int64)

    def read_raw(self, positions: Iterable[int]) -> list[bytes]:
        """The record lines of these items, unparsed, in file order (for a typed model's own JSON parser)."""
        return read_raw_lines(self.path, self.offsets_of(positions))


def read_raw_lines(path: Path, offsets: Sequence[int]) -> list[bytes]:
    """The lines starting at these byte offsets."""
    out: list[bytes] = []
    if len(offsets) == 0:
        return out
    with open(path, "rb") as f:
        for off in offsets:
            f.seek(int(off))
            out.append(f.readline())
    return out


def read_lines(path: Path, offsets: Sequence[int]) -> list[dict[str, Any]]:
    return [json.loads(line) for line in read_raw_lines(path, offsets)]


def scan_items(path: Path) -> tuple[list[str], np.ndarray]:
    """The id and byte offset of every item line of items.jsonl (blank lines skipped, as its reader does)."""
    ids: list[str] = []
    offsets: list[int] = []
    pos = 0
    if path.exists():
        with open(path, "rb") as f:
            for line in f:
                start, pos = pos, pos + len(line)
                if not line.endswith(b"\n"):
                    break
                if line.strip():
                    ids.append(str(json.loads(line)["id"]))
                    offsets.append(start)
    return ids, np.asarray(offsets, dtype=np.int64)


class RecordIndex:
    """items.jsonl and every record stream of one run folder, indexed by item; a stream's index is rebuilt
    when its file changes (a new index is needed when items.jsonl changes: see :attr:`stamp`)."""

    def __init__(self, folder: Path, items_file: str):
        self.folder = Path(folder)
        self.items_path = self.folder / items_file
        self.stamp = file_stamp(self.items_path)
        self.item_ids, self.item_offsets = scan_items(self.items_path)
        self.positions = {item_id: i for i, item_id in enumerate(self.item_ids)}
        self.streams: dict[str, StreamIndex] = {}

    def items_raw(self, positions: Sequence[int]) -> list[bytes]:
        """The item lines at these positions, unparsed, in file order."""
        return read_raw_lines(self.items_path, self.item_offsets[np.sort(np.asarray(positions, dtype=np.int64))])

    def stream(self, name: str) -> StreamIndex:
        path = self.folder / f"{name}.jsonl"
        known: Optional[StreamIndex] = self.streams.get(name)
        if known is None or known.stamp != file_stamp(path):
            known = self.streams[name] = StreamIndex.build(path, self.positions)
        return known
