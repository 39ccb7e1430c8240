"""Suites: load item files (JSONL, YAML, Parquet), validate them, and hash their content.

A suite is a single file or a folder of item files with an optional ``suite.yaml``.
Every user mistake becomes one :class:`SuiteError` naming file, line and field, raised
before any model is loaded.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Optional

import yaml
from pydantic import ValidationError

from .models import DEFAULT_SETTINGS, FieldError, Item, SuiteConfig, TaskTypeSettings

ITEM_SUFFIXES = (".jsonl", ".yaml", ".yml", ".parquet", ".json")
SUITE_CONFIG = "suite.yaml"


class SuiteError(ValueError):
    """A problem in a suite file, located as precisely as the format allows."""

    def __init__(self, file: Path | str, message: str, *, line: Optional[int] = None, field: Optional[str] = None):
        self.file, self.line, self.field, self.message = str(file), line, field, message
        where = self.file + (f":{line}" if line is not None else "")
        what = f"field '{field}': " if field else ""
        super().__init__(f"{where}: {what}{message}")


@dataclass
class Suite:
    name: str
    version: str
    path: Path
    items: list[Item]
    config: SuiteConfig = field(default_factory=SuiteConfig)
    sources: dict[str, tuple[str, int]] = field(default_factory=dict)  # item id -> (file, line)

    @property
    def content_hash(self) -> str:
        """sha256 over the canonical item content and the settings: changes whenever what is evaluated changes."""
        h = hashlib.sha256()
        settings = self.config.model_dump(mode="json", exclude={"description", "files"})
        h.update(json.dumps(settings, sort_keys=True, ensure_ascii=False).encode())
        for item in sorted(self.items, key=lambda i: i.id):
            h.update(b"\n")
            h.update(canonical_item_json(item).encode())
        return h.hexdigest()

    def settings_for(self, task_type: str) -> TaskTypeSettings:
        """Merge settings: built-in defaults < suite defaults < first level < full two-level task_type."""
        merged = DEFAULT_SETTINGS.model_dump()
        layers = [self.config.defaults] + [
            self.config.task_types[lvl] for lvl in _levels(task_type) if lvl in self.config.task_types
        ]
        for layer in layers:
            merged.update({k: v for k, v in layer.model_dump().items() if v is not None})
        return TaskTypeSettings(**merged)

    def task_type_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for item in self.items:
            counts[item.task_type] = counts.get(item.task_type, 0) + 1
        return dict(sorted(counts.items()))


def canonical_item_json(item: Item) -> str:
    return json.dumps(item.model_dump(mode="json", exclude_none=True), sort_keys=True, ensure_ascii=False)


def item_hash(item: Item) -> str:
    return hashlib.sha256(canonical_item_json(item).encode()).hexdigest()


def _levels(task_type: str) -> list[str]:
    parts = task_type.split("/")
    return ["/".join(parts[: i + 1]) for i in range(len(parts))]


# ---------------------------------------------------------------------------------------
# Resolution: a path, or the name of a built-in suite
# ---------------------------------------------------------------------------------------


def builtin_suites_dir() -> Path:
    import sfteval.suites as suites

    return Path(suites.__file__).resolve().parent


def list_builtin_suites() -> list[str]:
    root = builtin_suites_dir()
    return sorted(p.name for p in root.iterdir() if p.is_dir() and (p / SUITE_CONFIG).exists())


def resolve_suite_path(spec: str | Path) -> Path:
    path = Path(spec)
    if path.exists():
        return path
    candidate = builtin_suites_dir() / str(spec)
    if "/" not in str(spec) and candidate.is_dir():
        return candidate
    names = ", ".join(list_builtin_suites()) or "none"
    raise SuiteError(spec, f"no such file or folder, and not a built-in suite (built-in: {names})")


# ---------------------------------------------------------------------------------------
# Readers: each yields (line_number_or_None, raw_record) or raises SuiteError
# ---------------------------------------------------------------------------------------


def _read_text(path: Path) -> str:
    data = path.read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise SuiteError(path, f"not valid UTF-8 (byte 0x{data[e.start]:02x} at offset {e.start})", line=line) from None
    return text.removeprefix("\ufeff").replace("\r\n", "\n")


def _read_jsonl(path: Path) -> Iterator[tuple[Optional[int], Any]]:
    for n, line in enumerate(_read_text(path).split("\n"), start=1):
        if not line.strip():
            continue
        try:
            yield n, json.loads(line)
        except json.JSONDecodeError as e:
            raise SuiteError(path, f"invalid JSON: {e.msg} (column {e.colno})", line=n) from None


def _read_json(path: Path) -> Iterator[tuple[Optional[int], Any]]:
    text = _read_text(path)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise SuiteError(path, f"invalid JSON: {e.msg}", line=e.lineno) from None
    if isinstance(data, dict) and "items" in data:
        data = data["items"]
    if not isinstance(data, list):
        raise SuiteError(path, "expected a list of items (or an object with an 'items' list)")
    yield from zip(_json_element_lines(text), data)


_JSON_WS = " \t\n\r"


def _json_element_lines(text: str) -> list[int]:
    """Line on which each element of the item array starts (the text is already known to be valid JSON).

    ``json`` keeps no positions, so this walks the top level with ``raw_decode``: the array itself, or the
    value of the last ``"items"`` key of a top-level object, the one ``json.loads`` keeps.
    """
    decoder = json.JSONDecoder()

    def skip(i: int) -> int:
        while i < len(text) and text[i] in _JSON_WS:
            i += 1
        return i

    pos = skip(0)
    if text[pos] == "{":
        items_at, pos = None, skip(pos + 1)
        while text[pos] != "}":
            key, pos = decoder.raw_decode(text, pos)
            pos = skip(skip(pos) + 1)  # past ':'
            if key == "items":
                items_at = pos
            _, pos = decoder.raw_decode(text, pos)
            pos = skip(pos)
            if text[pos] == ",":
                pos = skip(pos + 1)
        pos = items_at if items_at is not None else pos
    starts: list[int] = []
    pos = skip(pos + 1)  # past '['
    while text[pos] != "]":
        starts.append(pos)
        _, pos = decoder.raw_decode(text, pos)
        pos = skip(pos)
        if text[pos] == ",":
            pos = skip(pos + 1)
    lines, line, last = [], 1, 0
    for start in starts:
        line += text.count("\n", last, start)
        lines.append(line)
        last = start
    return lines


def _read_yaml(path: Path) -> Iterator[tuple[Optional[int], Any]]:
    text = _read_text(path)
    try:
        node = yaml.compose(text)
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        raise SuiteError(path, f"invalid YAML: {getattr(e, 'problem', e)}", line=mark.line + 1 if mark else None) from None
    if isinstance(data, dict) and "items" in data:
        data = data["items"]
        node = next((v for k, v in node.value if k.value == "items"), None) if node else None
    if not isinstance(data, list):
        raise SuiteError(path, "expected a list of items (or a mapping with an 'items' list)")
    lines = [child.start_mark.line + 1 for child in node.value] if node is not None else [None] * len(data)
    yield from zip(lines, data)


def _read_parquet(path: Path) -> Iterator[tuple[Optional[int], Any]]:
    import pandas as pd

    try:
        frame = pd.read_parquet(path)
    except Exception as e:  # pyarrow raises many types for a corrupt file
        raise SuiteError(path, f"cannot read Parquet: {e}") from None
    for i, rec in enumerate(frame.to_dict(orient="records"), start=1):
        yield i, {k: _plain(v) for k, v in rec.items() if not _is_missing(v)}


def _plain(v: Any) -> Any:
    """Turn numpy containers from Parquet into plain Python values."""
    if hasattr(v, "tolist"):
        v = v.tolist()
    if isinstance(v, list):
        return [_plain(x) for x in v]
    if isinstance(v, dict):
        return {k: _plain(x) for k, x in v.items() if not _is_missing(x)}
    return v


def _is_missing(v: Any) -> bool:
    return v is None or (isinstance(v, float) and v != v)


READERS = {".jsonl": _read_jsonl, ".json": _read_json, ".yaml": _read_yaml, ".yml": _read_yaml, ".parquet": _read_parquet}


# ---------------------------------------------------------------------------------------
# Loading and validation
# ---------------------------------------------------------------------------------------


def _describe(err: ValidationError) -> tuple[list[str], str]:
    """Field path and message of the first problem pydantic found."""
    first = err.errors()[0]
    parts = [str(p) for p in first["loc"]]
    msg = first["msg"].removeprefix("Value error, ")
    cause = (first.get("ctx") or {}).get("error")
    if isinstance(cause, FieldError):  # a cross-field check: pydantic leaves loc empty, the error knows its field
        parts.append(cause.field)
        msg = cause.message
    elif first["type"] == "missing":
        msg = "is required"
    elif first["type"] == "extra_forbidden":
        msg = "is not a known field"
    return parts, msg


def _validation_error(path: Path, line: Optional[int], err: ValidationError, record: Any) -> SuiteError:
    parts, msg = _describe(err)
    if line is None and isinstance(record, dict) and "id" in record:
        msg = f"{msg} (item {record.get('id')!r})"
    return SuiteError(path, msg, line=line, field=".".join(parts) or None)


def load_items_file(path: Path) -> list[tuple[Item, int | None]]:
    reader = READERS.get(path.suffix.lower())
    if reader is None:
        raise SuiteError(path, f"unsupported file type '{path.suffix}' (use one of {', '.join(ITEM_SUFFIXES)})")
    out: list[tuple[Item, int | None]] = []
    for line, record in reader(path):
        if not isinstance(record, dict):
            raise SuiteError(path, f"each item must be an object, got {type(record).__name__}", line=line)
        try:
            out.append((Item.model_validate(record), line))
        except ValidationError as e:
            raise _validation_error(path, line, e, record) from None
    return out


def load_suite_config(path: Path) -> SuiteConfig:
    text = _read_text(path)
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        raise SuiteError(path, f"invalid YAML: {getattr(e, 'problem', e)}", line=mark.line + 1 if mark else None) from None
    if not isinstance(data, dict):
        raise SuiteError(path, "expected a mapping")
    try:
        config = SuiteConfig.model_validate(data)
    except ValidationError as e:
        parts, msg = _describe(e)
        raise _config_error(path, msg, parts) from None
    _check_rules(path, config)
    return config


def _check_rules(path: Path, config: SuiteConfig) -> None:
    """Reject unknown rule names now, not after every answer has been generated."""
    from sfteval.judges.rules import rule_names  # entry points only: no rule, model or backend is imported

    known = rule_names()
    layers = [(["defaults"], config.defaults)] + [(["task_types", tt], s) for tt, s in config.task_types.items()]
    for where, settings in layers:
        for i, name in enumerate(settings.rules or []):
            if name not in known:
                raise _config_error(
                    path, f"unknown rule {name!r} (known: {', '.join(known)})", [*where, "rules"], index=i
                )


def _config_error(path: Path, message: str, parts: list[str], index: Optional[int] = None) -> SuiteError:
    """A suite.yaml error at the line of ``parts`` (or of its ``index``-th entry), as far as that line exists."""
    return SuiteError(path, message, line=_yaml_line(path, [*parts, *([] if index is None else [str(index)])]),
                      field=".".join(parts) or None)


def _yaml_line(path: Path, parts: list[str]) -> Optional[int]:
    """Line of the deepest node along a field path in a YAML mapping (errors only, so reading again is fine)."""
    try:
        node = yaml.compose(_read_text(path))
    except (yaml.YAMLError, SuiteError):
        return None
    line = None
    for part in parts:
        if isinstance(node, yaml.MappingNode):
            hit = next(((k, v) for k, v in reversed(node.value) if str(k.value) == part), None)
            if hit is None:
                break
            line, node = hit[0].start_mark.line + 1, hit[1]
        elif isinstance(node, yaml.SequenceNode) and part.isdigit() and int(part) < len(node.value):
            node = node.value[int(part)]
            line = node.start_mark.line + 1
        else:
            break
    return line


def load_suite(spec: str | Path) -> Suite:
    """Load and validate a suite from a file, a folder, or a built-in suite name."""
    path = resolve_suite_path(spec)
    config = SuiteConfig()
    if path.is_dir():
        cfg_path = path / SUITE_CONFIG
        if cfg_path.exists():
            config = load_suite_config(cfg_path)
        if config.files:
            files = [path / f for f in config.files]
            for f in files:
                if not f.exists():
                    raise _config_error(cfg_path, f"lists '{f.name}', which does not exist", ["files"], index=files.index(f))
        else:
            files = sorted(
                p for p in path.iterdir()
                if p.is_file() and p.suffix.lower() in ITEM_SUFFIXES and p.name != SUITE_CONFIG
            )
        if not files:
            raise SuiteError(path, f"folder holds no item files ({', '.join(ITEM_SUFFIXES)})")
    else:
        files = [path]

    items: list[Item] = []
    sources: dict[str, tuple[str, int]] = {}
    for f in files:
        for item, line in load_items_file(f):
            if item.id in sources:
                first_file, first_line = sources[item.id]
                raise SuiteError(
                    f, f"duplicate id {item.id!r} (first defined at {first_file}:{first_line})", line=line, field="id"
                )
            sources[item.id] = (str(f), line or 0)
            items.append(item)
    if not items:
        raise SuiteError(path, "suite has no items")
    known = {lvl for it in items for lvl in it.task_type_levels}
    for tt in config.task_types:
        if tt not in known:
            raise _config_error(path / SUITE_CONFIG, f"settings for unknown task_type {tt!r}", ["task_types", tt])
    name = config.name or (path.name if path.is_dir() else path.stem)
    return Suite(name=name, version=config.version, path=path, items=items, config=config, sources=sources)
