"""Rows of the tabular files users point sfteval at (suite sources, training sets): JSON Lines, JSON, CSV.

One reader per format, shared by the importers and the training-data loader, so a broken file gives the
same one-line error (file, line) wherever it is read. ``error`` is the caller's error class (a SuiteError).
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any, Iterator

from .suite import SuiteError, _read_text

Row = dict[str, Any]
#: keys under which a JSON object holds its list of rows (Hugging Face and hand-written exports)
ROW_LIST_KEYS = ("data", "rows", "items", "train", "test")


def jsonl_rows(path: Path, error: type[SuiteError] = SuiteError) -> Iterator[tuple[int, Row]]:
    """(line, object) for every non-blank line; a broken line is an ``error`` naming it."""
    if not path.is_file():
        raise error(path, "no such file")
    for n, line in enumerate(_read_text(path).split("\n"), start=1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as e:
            raise error(path, f"invalid JSON: {e.msg} (column {e.colno})", line=n) from None
        if not isinstance(rec, dict):
            raise error(path, f"each line must be a JSON object, got {type(rec).__name__}", line=n)
        yield n, rec


def json_rows(path: Path, error: type[SuiteError] = SuiteError) -> Iterator[tuple[int, Row]]:
    """(row number, object) of a JSON array (or an object holding one); JSON Lines in a .json file work too."""
    text = _read_text(path)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        if e.msg == "Extra data":  # `datasets` writes JSON Lines into .json files
            yield from jsonl_rows(path, error)
            return
        raise error(path, f"invalid JSON: {e.msg}", line=e.lineno) from None
    if isinstance(data, dict):
        data = next((data[k] for k in ROW_LIST_KEYS if isinstance(data.get(k), list)), data)
    if not isinstance(data, list):
        raise error(path, f"expected a list of rows (or an object with a list under one of {', '.join(ROW_LIST_KEYS)})")
    for i, rec in enumerate(data, start=1):
        if not isinstance(rec, dict):
            raise error(path, f"row {i} is not an object")
        yield i, rec


def csv_rows(path: Path) -> Iterator[tuple[int, Row]]:
    """(line, row) with empty cells as None."""
    reader = csv.DictReader(io.StringIO(_read_text(path), newline=""))
    for rec in reader:
        yield reader.line_num, {k: (v if v != "" else None) for k, v in rec.items() if k is not None}
