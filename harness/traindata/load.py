"""Reading an SFT training set: JSON Lines, JSON, Parquet, CSV, or a Hugging Face dataset folder.

Why its own reader rather than the suite importers': a training set has a million rows and no eval fields
(no references, choices or checks), and it is read column-wise where the format allows (Parquet and Arrow
hand over columns, not row dicts). Field names follow the importers' ``--map FIELD=COLUMN`` convention:

    task_type   required; one or two levels ("math" or "math/addition"), as in suites
    messages    a list of {role, content}; the last assistant turn is the answer, everything before it the prompt
    prompt      otherwise: the user turn (aliases: instruction, question), with an optional ``system`` column
    answer      with ``prompt``: the trained answer (aliases: response, completion, output)

A folder is read as a dataset: every ``.parquet``, ``.arrow`` (``datasets.save_to_disk``), ``.jsonl``,
``.json`` and ``.csv`` file below it, in name order (``dataset_info.json`` / ``state.json`` are metadata).
Any problem is one :class:`TrainDataError` naming the file, the line (row) and the field; nothing is kept.
"""

from __future__ import annotations

import contextlib
import gc
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Optional, Sequence

import numpy as np

from ..suite import SuiteError
from ..tabular import csv_rows, json_rows, jsonl_rows

FIELDS = ("task_type", "messages", "prompt", "system", "answer")
ALIASES = {"prompt": ("prompt", "instruction", "question"), "answer": ("answer", "response", "completion", "output")}
SUFFIXES = (".parquet", ".arrow", ".jsonl", ".json", ".csv")
METADATA = {"dataset_info.json", "dataset_dict.json", "state.json"}


class TrainDataError(SuiteError):
    """A training-data file the user named cannot be read; the message names the file, line and field."""


@dataclass
class TrainingSet:
    """One run's training data: per row its task_type, prompt text, answer length and key, and its source.

    Prompts are held as an Arrow string array (one buffer, no per-row Python object). Answers are not held
    at all -- a million SFT answers are gigabytes -- only their length and a key (equal keys: equal answers
    up to surrounding whitespace); :meth:`answers_of` reads the few that a report shows back from the files."""

    path: Path
    task_types: np.ndarray  # object array of str (a few distinct objects shared by all rows)
    prompts: Any  # pyarrow ChunkedArray of strings
    answer_chars: np.ndarray  # float64 per row
    answer_keys: np.ndarray  # int64 per row
    files: list[str] = field(default_factory=list)  # distinct source files
    file_of: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int32))  # row -> index into files
    line_of: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))  # row -> line / row number
    field_map: dict[str, str] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.prompts)

    def where(self, row: int) -> str:
        return f"{self.files[int(self.file_of[row])]}:{int(self.line_of[row])}"

    def prompt(self, row: int) -> str:
        return self.prompts[row].as_py()

    def chunks(self, size: int = 50_000) -> Iterator[list[str]]:
        """The prompts as Python strings, ``size`` at a time."""
        for start in range(0, len(self.prompts), size):
            yield self.prompts.slice(start, size).to_pylist()

    def answers_of(self, rows: Sequence[int]) -> dict[int, str]:
        """The answers of ``rows``, read back from their files (one pass per file)."""
        out: dict[int, str] = {}
        by_file: dict[int, dict[int, int]] = {}
        for r in set(int(r) for r in rows):
            by_file.setdefault(int(self.file_of[r]), {})[int(self.line_of[r])] = r
        for f, lines in by_file.items():
            for line, (_, _, answer) in _reread(Path(self.files[f]), self.field_map, set(lines)):
                out[lines[line]] = answer
        return out


def prompt_text(messages: Sequence[Any]) -> str:
    """The text a prompt is compared by: every turn's content, in order, one per line (roles left out)."""
    return "\n".join(str(_get(m, "content") or "") for m in messages)


def _get(m: Any, key: str) -> Any:
    return m.get(key) if isinstance(m, dict) else getattr(m, key, None)


def parse_map(pairs: Sequence[str]) -> dict[str, str]:
    """``FIELD=COLUMN`` pairs (as the importers' --map) into a dict; unknown fields are an error."""
    out: dict[str, str] = {}
    for pair in pairs:
        name, sep, column = pair.partition("=")
        name, column = name.strip(), column.strip()
        if not sep or not name or not column:
            raise ValueError(f"expected FIELD=COLUMN, got {pair!r}")
        if name not in FIELDS:
            raise ValueError(f"unknown training-data field {name!r} in {pair!r} (fields: {', '.join(FIELDS)})")
        out[name] = column
    return out


class _Columns:
    """Which source column holds each field, decided once per file from its columns."""

    def __init__(self, path: Path, columns: Sequence[str], field_map: dict[str, str]):
        cols = set(columns)
        self.path = path
        for name, col in field_map.items():
            if col not in cols:
                raise TrainDataError(path, f"no column {col!r} (columns: {', '.join(sorted(cols))})", field=col)
        self.task_type = field_map.get("task_type", "task_type")
        if self.task_type not in cols:
            raise TrainDataError(path, "is required: the task_type of each training row (map it with "
                                 "--train-map task_type=COLUMN); columns: " + ", ".join(sorted(cols)),
                                 field=self.task_type)
        self.messages: Optional[str] = field_map.get("messages") or ("messages" if "messages" in cols and
                                                                      "prompt" not in field_map else None)
        self.prompt = self.answer = self.system = None
        if self.messages is None:
            self.prompt = field_map.get("prompt") or next((c for c in ALIASES["prompt"] if c in cols), None)
            self.answer = field_map.get("answer") or next((c for c in ALIASES["answer"] if c in cols), None)
            self.system = field_map.get("system") or ("system" if "system" in cols else None)
            if self.prompt is None or self.answer is None:
                missing = "prompt" if self.prompt is None else "answer"
                raise TrainDataError(path, f"a training row needs 'messages', or 'prompt' and 'answer' columns; no "
                                     f"{missing} column (map one with --train-map {missing}=COLUMN); columns: "
                                     + ", ".join(sorted(cols)), field=missing)

    def needed(self) -> list[str]:
        return [c for c in (self.task_type, self.messages, self.prompt, self.answer, self.system) if c]

    def row(self, rec: dict[str, Any], line: int) -> tuple[str, str, str]:
        """(task_type, prompt text, answer) of one row, or a TrainDataError naming its line and field."""
        tt = rec.get(self.task_type)
        if not isinstance(tt, str) or not tt.strip():
            raise TrainDataError(self.path, f"must be a non-empty text, got {tt!r}", line=line, field=self.task_type)
        if self.messages:
            msgs = rec.get(self.messages)
            if isinstance(msgs, str):
                try:
                    msgs = json.loads(msgs)
                except json.JSONDecodeError:
                    raise TrainDataError(self.path, "is not a JSON list of messages", line=line,
                                         field=self.messages) from None
            if not isinstance(msgs, (list, tuple)) or not msgs:
                raise TrainDataError(self.path, "must be a non-empty list of {role, content} messages", line=line,
                                     field=self.messages)
            for i, m in enumerate(msgs):
                if not isinstance(_get(m, "content"), str) or not isinstance(_get(m, "role"), str):
                    raise TrainDataError(self.path, f"message {i} needs a text 'role' and 'content'", line=line,
                                         field=self.messages)
            if _get(msgs[-1], "role") != "assistant":
                raise TrainDataError(self.path, "the last message must be the assistant's answer (role 'assistant'),"
                                     f" got role {_get(msgs[-1], 'role')!r}", line=line, field=self.messages)
            return tt.strip(), prompt_text(msgs[:-1]), str(_get(msgs[-1], "content"))
        prompt, answer = rec.get(self.prompt), rec.get(self.answer)  # type: ignore[arg-type]
        for value, name in ((prompt, self.prompt), (answer, self.answer)):
            if not isinstance(value, str):
                raise TrainDataError(self.path, f"must be text, got {type(value).__name__}", line=line, field=name)
        system = rec.get(self.system) if self.system else None
        if system is not None and not isinstance(system, str):
            raise TrainDataError(self.path, f"must be text, got {type(system).__name__}", line=line, field=self.system)
        return tt.strip(), prompt_text([{"content": system}, {"content": prompt}] if system else [{"content": prompt}]), \
            answer


def _records_jsonl(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    return jsonl_rows(path, TrainDataError)


def _records_json(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    return json_rows(path, TrainDataError)  # the row number locates a row for answers_of


def _batches(path: Path, field_map: dict[str, str]) -> tuple["_Columns", Iterator[Any]]:
    """The columns a Parquet or Arrow file maps to, and its record batches of those columns only (a batch at a
    time: a training set larger than memory is never read whole)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    def guarded(it: Iterator[Any]) -> Iterator[Any]:
        try:
            yield from it
        except (OSError, pa.ArrowException) as e:
            raise TrainDataError(path, f"cannot read {path.suffix[1:]} table: {e}") from None

    try:
        if path.suffix.lower() == ".parquet":
            pf = pq.ParquetFile(path)
            cols = _Columns(path, pf.schema_arrow.names, field_map)
            return cols, guarded(pf.iter_batches(batch_size=_FLUSH, columns=cols.needed()))
        source = pa.memory_map(str(path))
        try:
            table = pa.ipc.open_stream(source).read_all()
        except pa.ArrowInvalid:
            table = pa.ipc.open_file(source).read_all()
    except TrainDataError:
        raise
    except Exception as e:  # pyarrow raises many types for a corrupt file
        raise TrainDataError(path, f"cannot read {path.suffix[1:]} table: {e}") from None
    cols = _Columns(path, table.column_names, field_map)
    return cols, guarded(iter(table.select(cols.needed()).to_batches(max_chunksize=_FLUSH)))


class _Sink:
    """Rows collected as Arrow prompts and numpy answer lengths and keys, ``_FLUSH`` rows at a time."""

    def __init__(self) -> None:
        self.tts: list[Any] = []
        self.prompts: list[Any] = []
        self.chars: list[np.ndarray] = []
        self.keys: list[np.ndarray] = []
        self.lines: list[np.ndarray] = []
        self._rows: tuple[list[str], list[str], list[str], list[int]] = ([], [], [], [])

    def add(self, tt: str, prompt: str, answer: str, line: int) -> None:
        for buf, v in zip(self._rows, (tt, prompt, answer, line)):
            buf.append(v)  # type: ignore[attr-defined]
        if len(self._rows[0]) >= _FLUSH:
            self.flush()

    def flush(self) -> None:
        import pyarrow as pa

        tts, prompts, answers, lines = self._rows
        if tts:
            self.extend(pa.array(tts, pa.large_string()), pa.array(prompts, pa.large_string()),
                        np.fromiter(map(len, answers), dtype=np.float64, count=len(answers)), answer_keys(answers),
                        np.array(lines, dtype=np.int64))
        self._rows = ([], [], [], [])

    def extend(self, tts: Any, prompts: Any, chars: np.ndarray, keys: np.ndarray, lines: np.ndarray) -> None:
        self.tts.append(tts)
        self.prompts.append(prompts)
        self.chars.append(chars)
        self.keys.append(keys)
        self.lines.append(lines)

    def count(self) -> int:
        return sum(len(x) for x in self.lines) + len(self._rows[0])


def answer_keys(answers: Sequence[str]) -> np.ndarray:
    """A 64-bit key per answer: equal keys, equal answers up to surrounding whitespace."""
    return np.fromiter((hash(a.strip()) for a in answers), dtype=np.int64, count=len(answers))


_FLUSH = 50_000


def _first_bad(mask: Any) -> Optional[int]:
    """Index of the first True in a boolean Arrow array (nulls count as False), or None."""
    import pyarrow.compute as pc

    if not pc.any(mask).as_py():
        return None
    return int(pc.index(mask, True).as_py())


def _columnar(path: Path, table: Any, cols: "_Columns", sink: _Sink, offset: int = 0) -> None:
    """Prompt/answer columns straight from Arrow: validated and combined with Arrow kernels, no Python rows."""
    import pyarrow as pa
    import pyarrow.compute as pc

    def text(name: str, required: bool = True) -> Any:
        col = table.column(name)
        if not (pa.types.is_string(col.type) or pa.types.is_large_string(col.type)):
            if col.null_count == len(col) and not required:
                return pa.chunked_array([pa.nulls(len(col), pa.large_string())])
            raise TrainDataError(path, f"must be text, got an Arrow column of {col.type}", line=offset + 1, field=name)
        if required:
            bad = _first_bad(pc.is_null(col))
            if bad is not None:
                raise TrainDataError(path, "must be text, got None", line=offset + bad + 1, field=name)
        return col

    tt = text(cols.task_type)
    bad = _first_bad(pc.equal(pc.utf8_trim_whitespace(tt), ""))
    if bad is not None:
        raise TrainDataError(path, "must be a non-empty text, got ''", line=offset + bad + 1, field=cols.task_type)
    prompt, answer = text(cols.prompt), text(cols.answer)  # type: ignore[arg-type]
    if cols.system:
        system = text(cols.system, required=False)
        has = pc.and_(pc.is_valid(system), pc.not_equal(system, ""))
        prompt = pc.if_else(has, pc.binary_join_element_wise(pc.fill_null(system, ""), prompt, "\n"), prompt)
    sink.flush()
    chars = pc.utf8_length(answer).to_numpy().astype(np.float64)
    keys = np.concatenate([answer_keys(c.to_pylist()) for c in answer.chunks]) if answer.num_chunks else \
        np.zeros(0, dtype=np.int64)
    sink.extend(pc.utf8_trim_whitespace(tt), prompt, chars, keys,
                np.arange(offset + 1, offset + table.num_rows + 1, dtype=np.int64))


def _read_file(path: Path, field_map: dict[str, str], sink: _Sink) -> None:
    suffix = path.suffix.lower()
    if suffix in (".parquet", ".arrow"):
        import pyarrow as pa

        cols, batches = _batches(path, field_map)
        line = 0
        for batch in batches:
            if not cols.messages:
                _columnar(path, pa.Table.from_batches([batch]), cols, sink, line)
                line += batch.num_rows
                continue
            data = batch.to_pydict()
            for i in range(batch.num_rows):
                line += 1
                sink.add(*cols.row({c: v[i] for c, v in data.items()}, line), line)
        return
    reader = {".jsonl": _records_jsonl, ".json": _records_json, ".csv": csv_rows}.get(suffix)
    if reader is None:
        raise TrainDataError(path, f"unsupported file type '{path.suffix}' (use one of {', '.join(SUFFIXES)})")
    cols_of: Optional[_Columns] = None
    for line, rec in reader(path):
        if cols_of is None:
            cols_of = _Columns(path, list(rec), field_map)
        sink.add(*cols_of.row(rec, line), line)


def _files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise TrainDataError(path, "no such file or folder")
    files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in SUFFIXES
                   and not p.name.startswith(".") and p.name not in METADATA)
    if not files:
        raise TrainDataError(path, f"folder holds no training-data files ({', '.join(SUFFIXES)})")
    return files


@contextlib.contextmanager
def no_gc() -> Iterator[None]:
    """Pause the cyclic garbage collector while millions of small acyclic objects (rows, tokens) are made:
    its repeated passes over them cost a third of the time and free nothing."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def load_training(path: Path | str, field_map: Optional[dict[str, str]] = None) -> TrainingSet:
    """Read a training set (a file or a dataset folder); see the module docstring for the fields."""
    with no_gc():
        return _load(Path(path), field_map)


def _load(path: Path, field_map: Optional[dict[str, str]]) -> TrainingSet:
    import pyarrow as pa
    import pyarrow.compute as pc

    field_map = dict(field_map or {})
    sink = _Sink()
    files: list[str] = []
    file_of: list[np.ndarray] = []
    for f in _files(path):
        before = sink.count()
        _read_file(f, field_map, sink)
        sink.flush()
        file_of.append(np.full(sink.count() - before, len(files), dtype=np.int32))
        files.append(str(f))
    if not sink.count():
        raise TrainDataError(path, "holds no training rows")
    def joined(parts: list[Any]) -> Any:
        chunks = [c for p in parts for c in (p.chunks if isinstance(p, pa.ChunkedArray) else [p])]
        if len({c.type for c in chunks}) > 1:  # string and large_string from different files
            chunks = [c.cast(pa.large_string()) for c in chunks]
        return pa.chunked_array(chunks)

    encoded = pc.dictionary_encode(joined(sink.tts)).combine_chunks()
    names = np.array(encoded.dictionary.to_pylist(), dtype=object)
    return TrainingSet(path=path, task_types=names[encoded.indices.to_numpy(zero_copy_only=False)],
                       prompts=joined(sink.prompts), answer_chars=np.concatenate(sink.chars),
                       answer_keys=np.concatenate(sink.keys), files=files, file_of=np.concatenate(file_of),
                       line_of=np.concatenate(sink.lines), field_map=field_map)


def _reread(path: Path, field_map: dict[str, str], lines: set[int]) -> Iterator[tuple[int, tuple[str, str, str]]]:
    """(line, (task_type, prompt, answer)) of the given lines / row numbers of one file, read again."""
    suffix = path.suffix.lower()
    if suffix in (".parquet", ".arrow"):
        cols, batches = _batches(path, field_map)
        start = 0
        for batch in batches:
            wanted = sorted(line for line in lines if start < line <= start + batch.num_rows)
            if wanted:
                data = batch.take([line - start - 1 for line in wanted]).to_pydict()
                for i, line in enumerate(wanted):
                    yield line, cols.row({c: v[i] for c, v in data.items()}, line)
            start += batch.num_rows
        return
    reader = {".jsonl": _records_jsonl, ".json": _records_json, ".csv": csv_rows}[suffix]
    cols_of: Optional[_Columns] = None
    for line, rec in reader(path):
        if cols_of is None:
            cols_of = _Columns(path, list(rec), field_map)
        if line in lines:
            yield line, cols_of.row(rec, line)
