"""Tables (Hugging Face datasets style): Parquet, JSON, JSON Lines or CSV, one item per row, columns
mapped onto item fields with ``--map FIELD=COLUMN`` (a field whose column has the same name needs no
mapping). SRC may be a file or a dataset folder (every supported file below it, in name order).

Fields: id, prompt, system, messages, reference, task_type, subcategory (second task_type level),
answer_type, choices, label, tags, and ``meta.NAME`` for any column worth keeping.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterator, Optional

from ..models import SuiteConfig, TaskTypeSettings
from ..suite import SuiteError, _read_parquet
from ..tabular import csv_rows, json_rows
from .base import (
    Draft,
    Importer,
    ImportOptions,
    Record,
    get,
    label_part,
    read_jsonl,
    src_field,
)
from .chat import parse_messages

FIELDS = ("id", "prompt", "system", "messages", "reference", "task_type", "subcategory", "answer_type",
          "choices", "label", "tags")
SUFFIXES = (".parquet", ".jsonl", ".json", ".csv")
METADATA = {"dataset_info.json", "dataset_dict.json", "state.json"}  # written by `datasets`, not rows


def _rows_json(path: Path) -> Iterator[tuple[Optional[int], Record]]:
    for _, rec in json_rows(path):  # a row of a JSON array has no line of its own
        yield None, rec


def _rows(path: Path) -> Iterator[tuple[Optional[int], Record]]:
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        yield from _read_parquet(path)
    elif suffix == ".jsonl":
        yield from read_jsonl(path)
    elif suffix == ".json":
        yield from _rows_json(path)
    elif suffix == ".csv":
        yield from csv_rows(path)
    else:
        raise SuiteError(path, f"unsupported table type '{path.suffix}' (use one of {', '.join(SUFFIXES)})")


def _list(value: Any, path: Path, line: Optional[int], col: str) -> list[Any]:
    """Lists arrive as lists (Parquet, JSON) or as JSON text / comma-separated text (CSV)."""
    if isinstance(value, str):
        s = value.strip()
        if s.startswith("["):
            try:
                value = json.loads(s)
            except json.JSONDecodeError:
                raise SuiteError(path, "is not a valid JSON list", line=line, field=col) from None
        else:
            value = [p.strip() for p in s.split(",") if p.strip()]
    if not isinstance(value, list):
        raise SuiteError(path, f"must be a list, got {type(value).__name__}", line=line, field=col)
    return value


def _text(value: Any, path: Path, line: Optional[int], col: str) -> Optional[str]:
    if value is None:
        return None
    if isinstance(value, list) and len(value) == 1:  # e.g. a one-answer list
        value = value[0]
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        raise SuiteError(path, f"must be text, got {type(value).__name__}", line=line, field=col)
    return value.strip() or None


def _row_item(rec: Record, opts: ImportOptions, path: Path, line: Optional[int], n: int) -> dict[str, Any]:
    def col(name: str) -> str:
        return src_field(name, opts)

    data: dict[str, Any] = {"id": _text(get(rec, "id", opts), path, line, col("id")) or f"{path.stem}-{n:05d}"}
    if get(rec, "messages", opts) is not None:
        data["messages"] = parse_messages(get(rec, "messages", opts), path, line, col("messages"))
    else:
        prompt = _text(get(rec, "prompt", opts), path, line, col("prompt"))
        if prompt is None:
            raise SuiteError(path, "is required (map it with --map prompt=COLUMN)", line=line, field=col("prompt"))
        system = _text(get(rec, "system", opts), path, line, col("system"))
        data["messages"] = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": prompt}]
    if len(data["messages"]) == 1:
        data["prompt"] = data.pop("messages")[0]["content"]
    tt = _text(get(rec, "task_type", opts), path, line, col("task_type"))
    sub = _text(get(rec, "subcategory", opts), path, line, col("subcategory"))
    if tt:
        tt = "/".join(label_part(p) for p in tt.split("/", 1))
        data["task_type"] = f"{tt}/{label_part(sub)}" if sub and "/" not in tt else tt
    for name in ("reference", "answer_type"):
        data[name] = _text(get(rec, name, opts), path, line, col(name))
    if get(rec, "choices", opts) is not None:
        data["choices"] = [str(c) for c in _list(get(rec, "choices", opts), path, line, col("choices"))]
        label = get(rec, "label", opts)
        if isinstance(label, str) and label.strip().isdigit() and label not in data["choices"]:
            label = int(label)  # CSV gives an index label as text
        data["label"] = label
    if get(rec, "tags", opts) is not None:
        data["tags"] = [str(t) for t in _list(get(rec, "tags", opts), path, line, col("tags"))]
    meta = {k[5:]: rec.get(c) for k, c in opts.field_map.items() if k.startswith("meta.") and rec.get(c) is not None}
    if meta:
        data["meta"] = meta
    return {k: v for k, v in data.items() if v is not None}


def _files(src: Path) -> list[Path]:
    if src.is_file():
        return [src]
    files = sorted(p for p in src.rglob("*") if p.is_file() and p.suffix.lower() in SUFFIXES
                   and not p.name.startswith(".") and p.name not in METADATA)
    if not files:
        raise SuiteError(src, f"folder holds no table files ({', '.join(SUFFIXES)})")
    return files


def read(src: Path, opts: ImportOptions) -> list[Draft]:
    drafts: list[Draft] = []
    for path in _files(src):
        rows = list(_rows(path))
        columns = {k for _, rec in rows for k in rec}
        missing = [c for c in opts.field_map.values() if c not in columns]
        if rows and missing:
            raise SuiteError(path, f"no column {missing[0]!r} (columns: {', '.join(sorted(columns))})", field=missing[0])
        for n, (line, rec) in enumerate(rows, start=1):
            data = _row_item(rec, opts, path, line or n, n)
            drafts.append(Draft(path, line or n, data, source_label=data.get("task_type")))
    return drafts


IMPORTER = Importer(
    name="table",
    description="A table (Parquet, JSON, JSONL or CSV; HF datasets style) with columns mapped by --map FIELD=COLUMN.",
    read=read, fields=FIELDS + ("meta.*",),
    config=lambda: SuiteConfig(description="Imported table.", defaults=TaskTypeSettings(temperature=0.0)),
)
