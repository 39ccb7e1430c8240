"""JSON Schemas of the public records, so pandas / DuckDB users and the viewer rely on a contract.

docs/schema/<name>.schema.json holds them (`sfteval schema --out docs/schema` writes them; a test keeps the
files equal to the models).
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel

from .models import SCHEMA_VERSION, Generation, Item, Judgment, ProbeResult, RunManifest
from .summary import RunSummary

#: file stem -> (model, what it is)
PUBLIC: dict[str, tuple[type[BaseModel], str]] = {
    "item": (Item, "one line of a suite file, and of a run's items.jsonl"),
    "generation": (Generation, "one line of generations.jsonl: an answer to one turn of one item"),
    "judgment": (Judgment, "one line of judgments.jsonl: a rule's, an LLM judge's or a person's verdict"),
    "probe": (ProbeResult, "one line of probes.jsonl: a reference, choice or continuation probe"),
    "manifest": (RunManifest, "manifest.json: what was run, with which model, suite, backend and settings"),
    "summary": (RunSummary, "summary.json: per-task_type metrics and the stages' blocks"),
}


def schema_of(name: str) -> dict[str, Any]:
    model, what = PUBLIC[name]
    schema = model.model_json_schema(mode="serialization")
    schema["$id"] = f"sfteval/schema/v{SCHEMA_VERSION}/{name}.schema.json"
    schema["description"] = f"sfteval {what} (schema version {SCHEMA_VERSION})."
    return schema


def schema_text(name: str) -> str:
    return json.dumps(schema_of(name), indent=2, ensure_ascii=False, sort_keys=True) + "\n"
