"""Arena-Hard-Auto questions (lmarena/arena-hard-auto ``data/*/question.jsonl``).

Three layouts exist in the wild and all are read: v0.1 (``question_id``, ``category`` = the benchmark
name, ``cluster``, ``turns: [{"content": ...}]``), arena-bench-v1 (``turns: ["..."]``), and v2.0
(``uid``, ``category``, ``subcategory``, ``prompt``). A category that only names the benchmark
("arena-hard-v0.1") becomes the first level ``arena-hard``; the cluster or subcategory is the second.
Arena-Hard judges pairwise without references, so the answer type is inferred from the labels
(creative writing -> generation, math and code -> reasoning, everything else -> fact) and can be
overridden with --task-type-map.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Optional

from ..models import SuiteConfig, TaskTypeSettings
from ..suite import SuiteError
from .base import (
    Draft,
    Importer,
    ImportOptions,
    get,
    label_part,
    make_id,
    read_jsonl,
    src_field,
)

_BENCH_NAME = re.compile(r"^arena[-_ ]?(hard|bench)", re.I)
_ANSWER_TYPES = [  # first match wins, on "category subcategory" lower-cased
    (re.compile(r"creative|writing|story|poem|poetry|fiction|lyrics"), "generation"),
    (re.compile(r"math|algebra|calculus|geometry|probability|statistic|number theory|equation"), "reasoning"),
    (re.compile(r"cod(e|ing)|program|python|javascript|typescript|java\b|rust|sql|script|algorithm|debug|software"
                r"|api\b|regex|excel|vba|bash|shell"), "reasoning"),
]


def _first(rec: dict[str, Any], names: tuple[str, ...], opts: ImportOptions) -> tuple[Optional[str], Any]:
    """(source column, value) of the first of ``names`` the record has."""
    for name in names:
        value = get(rec, name, opts)
        if value is not None:
            return src_field(name, opts), value
    return None, None


def _prompts(rec: dict[str, Any], opts: ImportOptions, path: Path, line: int) -> list[str]:
    col, value = _first(rec, ("turns", "prompt"), opts)
    if col is None:
        raise SuiteError(path, "is required (or 'prompt')", line=line, field=src_field("turns", opts))
    turns = [value] if isinstance(value, str) else value
    if not isinstance(turns, list) or not turns:
        raise SuiteError(path, "must be a string or a non-empty list of turns", line=line, field=col)
    out = []
    for i, t in enumerate(turns):
        text = t.get("content") if isinstance(t, dict) else t
        fld = f"{col}.{i}.content" if isinstance(t, dict) else f"{col}.{i}"
        if not isinstance(text, str) or not text.strip():
            raise SuiteError(path, "must be a non-empty string", line=line, field=fld if col == "turns" else col)
        out.append(text)
    return out


def answer_type_for(label: str) -> str:
    low = label.lower()
    return next((kind for rx, kind in _ANSWER_TYPES if rx.search(low)), "fact")


def read(src: Path, opts: ImportOptions) -> list[Draft]:
    path = src / "question.jsonl" if src.is_dir() else src
    prefix = "arena-hard" if opts.id_prefix is None else opts.id_prefix
    drafts = []
    for line, rec in read_jsonl(path):
        id_col, qid = _first(rec, ("question_id", "uid"), opts)
        if id_col is None or not str(qid).strip():
            raise SuiteError(path, "is required (or 'uid')", line=line, field=src_field("question_id", opts))
        _, category = _first(rec, ("category",), opts)
        _, sub = _first(rec, ("subcategory", "cluster"), opts)
        first = "arena-hard" if not category or _BENCH_NAME.match(str(category)) else label_part(category)
        task_type = f"{first}/{label_part(sub)}" if sub and str(sub).strip() else first
        turns = _prompts(rec, opts, path, line)
        meta = {"source": "arena-hard", "question_id": qid}
        meta.update({k: rec[k] for k in ("category", "subcategory", "cluster") if rec.get(k) is not None})
        data = {
            "id": make_id(prefix, qid),
            "task_type": task_type,
            "prompt": turns[0] if len(turns) == 1 else None,
            "messages": [{"role": "user", "content": t} for t in turns] if len(turns) > 1 else None,
            "answer_type": answer_type_for(f"{category or ''} {sub or ''}"),
            "meta": meta,
        }
        drafts.append(Draft(path, line, {k: v for k, v in data.items() if v is not None}, source_label=task_type))
    return drafts


def config() -> SuiteConfig:
    """Greedy decoding; Arena-Hard answers are long (its own default budget is 4096 tokens)."""
    return SuiteConfig(
        description="Arena-Hard-Auto questions (hard real-world prompts, no references: for pairwise judging), imported.",
        defaults=TaskTypeSettings(temperature=0.0, max_new_tokens=4096),
    )


IMPORTER = Importer(
    name="arena-hard",
    description="Arena-Hard questions JSONL (question_id or uid; category with cluster or subcategory; "
                "turns [{content}] or prompt); no references.",
    read=read, fields=("question_id", "uid", "category", "subcategory", "cluster", "turns", "prompt"), config=config,
)
