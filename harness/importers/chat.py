"""Generic chat JSONL: one conversation per line in ``messages`` (OpenAI style ``role``/``content``, or
ShareGPT style ``from``/``value`` with human/gpt roles, e.g. ``--map messages=conversations``).

A final assistant message is the gold answer, so it becomes the reference and is cut from the
prompt; earlier assistant messages stay as fixed history. ``task_type`` (or ``category`` with an
optional ``subcategory``), ``id``, ``answer_type``, ``tags``, ``meta``, ``checks``, ``choices`` and
``label`` are taken over when present. This is also the shape of most SFT training files, which makes
train-set recall suites (PRACTICE 8) one command away.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

from ..models import SuiteConfig, TaskTypeSettings
from ..suite import SuiteError
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

ROLES = {"system": "system", "user": "user", "human": "user", "assistant": "assistant", "gpt": "assistant",
         "bot": "assistant", "model": "assistant", "chatgpt": "assistant"}
PASS_THROUGH = ("answer_type", "tags", "meta", "checks", "choices", "label")


def parse_messages(value: Any, path: Path, line: Optional[int], col: str) -> list[dict[str, str]]:
    if not isinstance(value, list) or not value:
        raise SuiteError(path, "must be a non-empty list of messages", line=line, field=col)
    out = []
    for i, m in enumerate(value):
        if not isinstance(m, dict):
            raise SuiteError(path, "must be an object with role and content", line=line, field=f"{col}.{i}")
        role = m.get("role", m.get("from"))
        content = m.get("content", m.get("value"))
        if str(role).lower() not in ROLES:
            raise SuiteError(path, f"unknown role {role!r} (use one of {', '.join(sorted(ROLES))})",
                             line=line, field=f"{col}.{i}.role")
        if not isinstance(content, str) or not content.strip():
            raise SuiteError(path, "must be a non-empty string", line=line, field=f"{col}.{i}.content")
        out.append({"role": ROLES[str(role).lower()], "content": content})
    return out


def split_reference(messages: list[dict[str, str]]) -> tuple[list[dict[str, str]], Optional[str]]:
    """A trailing assistant message is the reference answer of the preceding user turn."""
    if messages and messages[-1]["role"] == "assistant":
        return messages[:-1], messages[-1]["content"].strip()
    return messages, None


def task_type_of(rec: Record, opts: ImportOptions) -> Optional[str]:
    tt = get(rec, "task_type", opts) or get(rec, "category", opts)
    if not tt:
        return None
    sub = get(rec, "subcategory", opts)
    tt = "/".join(label_part(p) for p in str(tt).split("/", 1))
    return f"{tt}/{label_part(sub)}" if sub and "/" not in tt else tt


def read(src: Path, opts: ImportOptions) -> list[Draft]:
    drafts = []
    prefix = src.stem if opts.id_prefix is None else opts.id_prefix
    for n, (line, rec) in enumerate(read_jsonl(src), start=1):
        col = src_field("messages", opts)
        messages, reference = split_reference(parse_messages(get(rec, "messages", opts), src, line, col))
        if not any(m["role"] == "user" for m in messages):
            raise SuiteError(src, "needs a user message before the final assistant answer", line=line, field=col)
        rid = get(rec, "id", opts)
        data: dict[str, Any] = {
            "id": str(rid) if rid is not None else (f"{prefix}-{n:05d}" if prefix else f"{n:05d}"),
            "task_type": task_type_of(rec, opts),
            "messages": messages,
            "reference": reference,
        }
        data.update({k: get(rec, k, opts) for k in PASS_THROUGH if get(rec, k, opts) is not None})
        if len(messages) == 1:
            data["prompt"] = data.pop("messages")[0]["content"]
        drafts.append(Draft(src, line, {k: v for k, v in data.items() if v is not None}, source_label=data["task_type"]))
    return drafts


IMPORTER = Importer(
    name="chat-jsonl",
    description="Chat JSONL (`messages`; a final assistant message becomes the reference).",
    read=read, fields=("messages", "id", "task_type", "category", "subcategory") + PASS_THROUGH,
    config=lambda: SuiteConfig(description="Imported chat conversations.",
                               defaults=TaskTypeSettings(temperature=0.0)),
)
