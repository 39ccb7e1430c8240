"""MT-Bench (FastChat ``llm_judge/data/mt_bench``): ``question.jsonl`` with two user ``turns`` per
question, plus an optional reference-answer file (``reference_answer/gpt-4.jsonl``: ``question_id``,
``choices[0].turns``).

The two turns become two consecutive user messages, so the model answers the first before it sees the
second (MT-Bench's protocol: turn 2 follows the model's *own* turn-1 answer). References become one entry
per turn. The reference file wins over the short ``reference`` some questions carry inline; the inline
one is kept in ``meta.inline_reference`` so a judge or a reader can still see it.
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
    get,
    label_part,
    make_id,
    need_text,
    read_jsonl,
    src_field,
)

# MT-Bench category -> (two-level task_type, answer type). The first level groups the eight categories
# by the ability they test, the second keeps MT-Bench's own name.
CATEGORIES: dict[str, tuple[str, str]] = {
    "writing": ("generation/writing", "generation"),
    "roleplay": ("generation/roleplay", "generation"),
    "reasoning": ("reasoning/logic", "reasoning"),
    "math": ("reasoning/math", "reasoning"),
    "coding": ("reasoning/coding", "reasoning"),
    "extraction": ("understanding/extraction", "fact"),
    "stem": ("knowledge/stem", "fact"),
    "humanities": ("knowledge/humanities", "fact"),
}
REFERENCE_CANDIDATES = ("reference_answer/gpt-4.jsonl", "reference_answer_gpt-4.jsonl")


def _locate(src: Path, opts: ImportOptions) -> tuple[Path, Optional[Path]]:
    """The question file, and the reference file: --references, else FastChat's layout beside the questions."""
    questions = src / "question.jsonl" if src.is_dir() else src
    refs = opts.references
    if refs is None:
        refs = next((questions.parent / c for c in REFERENCE_CANDIDATES if (questions.parent / c).is_file()), None)
        opts.references = refs  # reported in the suite README
    return questions, refs


def _turns(value: Any, path: Path, line: int, fld: str, *, allow_empty: bool) -> list[Optional[str]]:
    """A list of turn texts, or a SuiteError; references may have empty turns (no reference for that turn)."""
    if not isinstance(value, list) or not value:
        raise SuiteError(path, "must be a non-empty list of strings", line=line, field=fld)
    out: list[Optional[str]] = []
    for i, t in enumerate(value):
        if not isinstance(t, str):
            raise SuiteError(path, f"must be a string, got {type(t).__name__}", line=line, field=f"{fld}.{i}")
        if not t.strip() and not allow_empty:
            raise SuiteError(path, "must not be empty", line=line, field=f"{fld}.{i}")
        out.append((t.strip() or None) if allow_empty else t)
    return out


def read_references(path: Path) -> dict[str, tuple[int, list[Optional[str]]]]:
    """question_id -> (line, per-turn reference answers)."""
    refs: dict[str, tuple[int, list[Optional[str]]]] = {}
    for line, rec in read_jsonl(path):
        qid = rec.get("question_id")
        if qid is None:
            raise SuiteError(path, "is required", line=line, field="question_id")
        choices = rec.get("choices")
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
            raise SuiteError(path, "must be a list whose first entry has 'turns'", line=line, field="choices")
        if str(qid) in refs:
            raise SuiteError(path, f"second reference for question {qid} (first at line {refs[str(qid)][0]})",
                             line=line, field="question_id")
        refs[str(qid)] = (line, _turns(choices[0].get("turns"), path, line, "choices.0.turns", allow_empty=True))
    return refs


def read(src: Path, opts: ImportOptions) -> list[Draft]:
    questions, ref_path = _locate(src, opts)
    refs = read_references(ref_path) if ref_path else {}
    prefix = "mt-bench" if opts.id_prefix is None else opts.id_prefix
    drafts, used = [], set()
    for line, rec in read_jsonl(questions):
        qid = need_text(rec, "question_id", opts, questions, line)
        category = need_text(rec, "category", opts, questions, line).strip()
        turns = _turns(get(rec, "turns", opts), questions, line, src_field("turns", opts), allow_empty=False)
        inline = get(rec, "reference", opts)
        inline_refs = _turns(inline, questions, line, src_field("reference", opts), allow_empty=True) if inline else None
        reference = inline_refs
        meta: dict[str, Any] = {"source": "mt-bench", "question_id": get(rec, "question_id", opts), "category": category}
        if qid in refs and ref_path is not None:
            ref_line, reference = refs[qid]
            used.add(qid)
            if len(reference) != len(turns):
                raise SuiteError(ref_path, f"has {len(reference)} turns but question {qid} has {len(turns)}",
                                 line=ref_line, field="choices.0.turns")
            if inline_refs:
                meta["inline_reference"] = inline_refs
        if reference is not None and len(reference) != len(turns):
            raise SuiteError(questions, f"has {len(reference)} entries for {len(turns)} turns", line=line,
                             field=src_field("reference", opts))
        task_type, answer_type = CATEGORIES.get(category.lower(), (label_part(category), None))
        data = {
            "id": make_id(prefix, qid),
            "task_type": task_type,
            "messages": [{"role": "user", "content": t} for t in turns],
            "reference": reference if reference and any(reference) else None,
            "answer_type": answer_type,
            "meta": meta,
        }
        drafts.append(Draft(questions, line, data, source_label=category))
    unknown = sorted(set(refs) - used, key=lambda q: refs[q][0])
    if unknown:
        raise SuiteError(ref_path or questions, f"reference for question {unknown[0]}, which is not in {questions.name}",
                         line=refs[unknown[0]][0], field="question_id")
    return drafts


def config() -> SuiteConfig:
    """Greedy decoding, FastChat's 1024-token answer budget."""
    return SuiteConfig(
        description="MT-Bench (two-turn questions; turn 2 follows the model's own turn-1 answer), imported.",
        defaults=TaskTypeSettings(temperature=0.0, max_new_tokens=1024),
    )


IMPORTER = Importer(
    name="mt-bench",
    description="MT-Bench question.jsonl (two user turns, answered one after the other) with per-turn reference "
                "answers from a reference_answer file (choices[0].turns) merged by question_id.",
    read=read, fields=("question_id", "category", "turns", "reference"), config=config, takes_references=True,
)
