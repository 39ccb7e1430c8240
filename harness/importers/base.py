"""What every importer shares: reading source records with their line numbers, field access through
``--map``, task_type mapping (built-in table, then ``--task-type-map``), and turning drafts into
validated :class:`Item` objects whose errors name the *source* file, line and field.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

import yaml
from pydantic import ValidationError

from ..models import Item, SuiteConfig
from ..suite import SuiteError, _read_text
from ..tabular import jsonl_rows

Record = dict[str, Any]


@dataclass
class ImportOptions:
    """User choices common to all formats (CLI: --map, --task-type-map, --task-type, --references, --name)."""

    field_map: dict[str, str] = field(default_factory=dict)  # our field -> source column
    task_type_map: dict[str, dict[str, str]] = field(default_factory=dict)  # source label -> task_type/answer_type
    task_type: Optional[str] = None  # for records that carry no category at all
    references: Optional[Path] = None
    name: Optional[str] = None
    id_prefix: Optional[str] = None


@dataclass
class Draft:
    """One item before validation, with where it came from (for error messages)."""

    file: Path
    line: Optional[int]
    data: Record
    source_label: Optional[str] = None  # "category" or "category/subcategory" as the source spells it


@dataclass
class Importer:
    """A registered format: ``read`` turns SRC into drafts; ``config`` gives the suite.yaml settings."""

    name: str
    description: str
    read: Callable[[Path, ImportOptions], list[Draft]]
    config: Callable[[], SuiteConfig] = SuiteConfig
    takes_references: bool = False
    fields: tuple[str, ...] = ()  # the source fields --map may redirect ("meta.*" allowed where listed)


# -- reading -------------------------------------------------------------------------------------------
def read_jsonl(path: Path) -> Iterator[tuple[int, Record]]:
    """(line, object) for every non-blank line; a broken line is a SuiteError naming it."""
    return jsonl_rows(path)


def get(rec: Record, name: str, opts: ImportOptions) -> Any:
    """``rec[name]``, honouring ``--map name=column``."""
    return rec.get(opts.field_map.get(name, name))


def src_field(name: str, opts: ImportOptions) -> str:
    return opts.field_map.get(name, name)


def need_text(rec: Record, name: str, opts: ImportOptions, path: Path, line: Optional[int]) -> str:
    """A required non-empty string field, or a SuiteError naming the source column."""
    value = get(rec, name, opts)
    col = src_field(name, opts)
    if value is None:
        raise SuiteError(path, "is required", line=line, field=col)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        raise SuiteError(path, f"must be a string, got {type(value).__name__}", line=line, field=col)
    if not value.strip():
        raise SuiteError(path, "must not be empty", line=line, field=col)
    return value


def opt_text(rec: Record, name: str, opts: ImportOptions, path: Path, line: Optional[int]) -> Optional[str]:
    """An optional string field, stripped (AlignBench references end in '\\n'); empty means absent."""
    value = get(rec, name, opts)
    if value is None:
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        raise SuiteError(path, f"must be a string, got {type(value).__name__}", line=line, field=src_field(name, opts))
    return value.strip() or None


def label_part(text: str) -> str:
    """A source category as one task_type level: no '/', no surrounding spaces."""
    return re.sub(r"\s*/\s*", "-", str(text)).strip()


def make_id(prefix: str, raw: Any) -> str:
    raw = str(raw).strip()
    return raw if not prefix else f"{prefix}-{raw}"


# -- task_type mapping ---------------------------------------------------------------------------------
def load_task_type_map(path: Path) -> dict[str, dict[str, str]]:
    """YAML/JSON mapping ``source label -> task_type`` or ``-> {task_type: ..., answer_type: ...}``."""
    try:
        data = yaml.safe_load(_read_text(path))
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        raise SuiteError(path, f"invalid YAML: {getattr(e, 'problem', e)}", line=mark.line + 1 if mark else None) from None
    if not isinstance(data, dict):
        raise SuiteError(path, "expected a mapping from source category to task_type")
    out: dict[str, dict[str, str]] = {}
    for key, value in data.items():
        if isinstance(value, str):
            value = {"task_type": value}
        if not isinstance(value, dict) or not set(value) <= {"task_type", "answer_type"} or not value:
            raise SuiteError(path, "must be a task_type or a mapping with task_type and/or answer_type", field=str(key))
        out[str(key)] = {k: str(v) for k, v in value.items()}
    return out


def apply_task_type_map(draft: Draft, opts: ImportOptions) -> None:
    """Override the built-in mapping: the full 'category/subcategory' label first, then the category alone.

    A one-level target for a category keeps the item's second level ('专业能力' -> 'knowledge' turns
    '专业能力/音乐' into 'knowledge/音乐').
    """
    label = draft.source_label
    if not label or not opts.task_type_map:
        return
    hit = opts.task_type_map.get(label)
    keep_sub = False
    if hit is None and "/" in label:
        hit, keep_sub = opts.task_type_map.get(label.split("/", 1)[0]), True
    if hit is None:
        return
    if "task_type" in hit:
        tt = hit["task_type"]
        current = str(draft.data.get("task_type", ""))
        if keep_sub and "/" not in tt and "/" in current:
            tt = f"{tt}/{current.split('/', 1)[1]}"
        draft.data["task_type"] = tt
    if "answer_type" in hit:
        draft.data["answer_type"] = hit["answer_type"]


# -- validation ----------------------------------------------------------------------------------------
def to_items(drafts: list[Draft], opts: ImportOptions) -> list[Item]:
    """Validate every draft; the first problem becomes a SuiteError at its source file and line."""
    from ..suite import _validation_error

    items: list[Item] = []
    seen: dict[str, str] = {}
    for d in drafts:
        apply_task_type_map(d, opts)
        if not d.data.get("task_type"):
            if opts.task_type is None:
                raise SuiteError(d.file, "no task_type: map a column with --map task_type=COLUMN, "
                                 "or give --task-type NAME for all records", line=d.line, field="task_type")
            d.data["task_type"] = opts.task_type
        try:
            item = Item.model_validate(d.data)
        except ValidationError as e:
            raise _validation_error(d.file, d.line, e, d.data) from None
        where = f"{d.file}:{d.line}" if d.line else str(d.file)
        if item.id in seen:
            raise SuiteError(d.file, f"duplicate id {item.id!r} (first at {seen[item.id]})", line=d.line, field="id")
        seen[item.id] = where
        items.append(item)
    if not items:
        src = drafts[0].file if drafts else "source"
        raise SuiteError(src, "no records to import")
    return items


# -- registry ------------------------------------------------------------------------------------------
def importers() -> dict[str, Importer]:
    """Formats by name: the ``sfteval.importers`` entry points, built-ins included (the CLI's --format choices)."""
    from .. import plugins

    return plugins.load_all("importers")
