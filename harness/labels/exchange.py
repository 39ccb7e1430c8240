"""The labels JSONL format of ``sfteval labels export`` and ``import``: labels made in a spreadsheet or any tool.

One JSON object per line (the README documents it; ``LabelLine`` is the contract)::

    {"item_id": "likes-003", "reviewer": "alice", "mode": "single", "scores": {"factuality": 8}, "overall": 7,
     "usable": true, "comment": "right fact, terse"}
    {"item_id": "likes-003", "reviewer": "bob", "mode": "pair", "baseline": "v1", "preferred": "baseline"}

Import checks every line before writing anything: unknown fields, missing or ill-typed values, scores outside
the judge's scale, dimensions the item's answer type does not have, unknown items, and -- when a line carries
``answer_sha256`` -- an answer that has changed since the label was made. Each problem is reported as
``FILE:LINE: field 'name': message``; with any problem nothing is written.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ..runfolder import RunFolder
from ..score import score_targets
from .folders import pair_folder
from .records import (PREFERRED, LabelFile, answer_hash, check_reviewer, pair_label, reviewer_of, single_label,
                      target_answers)

MAX_ERRORS = 20


class LabelLine(BaseModel):
    """One exported / importable label."""

    model_config = ConfigDict(extra="forbid")

    item_id: str = Field(min_length=1)
    reviewer: str
    mode: Literal["single", "pair"]
    run: Optional[str] = None  #: the graded run (single) or the candidate (pair); informative on import
    baseline: Optional[str] = None  #: pair: the baseline run (A)
    sample: int = Field(default=0, ge=0)
    scores: dict[str, int] = Field(default_factory=dict)
    overall: Optional[int] = None
    usable: Optional[bool] = None
    preferred: Optional[Literal["candidate", "baseline", "tie", "both_bad"]] = None
    seat: Optional[Literal["AB", "BA"]] = None  #: pair: AB = the candidate was shown in seat A (first, left)
    comment: Optional[str] = None
    time: Optional[str] = None
    answer_sha256: Optional[str] = None
    baseline_answer_sha256: Optional[str] = None

    @field_validator("reviewer")
    @classmethod
    def _reviewer(cls, v: str) -> str:
        return check_reviewer(v)

    @field_validator("time")
    @classmethod
    def _time(cls, v: Optional[str]) -> Optional[str]:
        if v is not None:
            from datetime import datetime

            try:
                datetime.fromisoformat(v.replace("Z", "+00:00"))
            except ValueError:
                raise ValueError(f"{v!r} is not an ISO 8601 time (e.g. 2026-01-31T09:30:00+00:00)") from None
        return v


class LabelImportError(ValueError):
    """Problems found in an import file (all of them, up to MAX_ERRORS), each ``FILE:LINE: field 'x': ...``."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        more = "" if len(problems) < MAX_ERRORS else f"\n(stopped after {MAX_ERRORS} problems)"
        super().__init__(f"{len(problems)} problem(s); nothing was imported:\n" + "\n".join(problems) + more)


def export_lines(folder: RunFolder, baseline: Optional[RunFolder] = None, history: bool = False) -> list[dict[str, Any]]:
    """The run's single-grading labels, or with ``baseline`` the pair's pairwise labels, as LabelLine objects."""
    where = pair_folder(baseline, folder) if baseline is not None else folder.path
    f = LabelFile.of(where)
    labels = f.history() if history else list(f.latest().values())
    out = []
    for j in labels:
        line: dict[str, Any] = {"item_id": j.item_id, "reviewer": reviewer_of(j), "mode": j.mode, "run": folder.run_id,
                                "sample": j.sample, "comment": j.rationale, "time": j.details.get("time"),
                                "answer_sha256": j.details.get("answer_hash")}
        if j.mode == "single":
            line.update(scores={k: int(v) for k, v in j.scores.items()},
                        overall=None if j.overall is None else int(j.overall), usable=j.details.get("usable"))
        else:
            line.update(baseline=baseline.run_id if baseline is not None else None,
                        preferred=j.details.get("preferred"), seat=j.order,
                        baseline_answer_sha256=j.details.get("baseline_answer_hash"))
        out.append({k: v for k, v in line.items() if v is not None})
    return out


@dataclass
class Plan:
    """What an import will append, per file, after every line passed."""

    writes: dict[Path, list[Any]] = field(default_factory=dict)
    skipped: int = 0  #: lines identical to a label already stored


def plan_import(folder: RunFolder, path: Path, results: Path) -> Plan:
    problems: list[str] = []
    parsed: list[tuple[int, LabelLine]] = []
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as e:
        raise LabelImportError([f"{path}: cannot read ({e.strerror})"]) from None
    except UnicodeDecodeError as e:
        raise LabelImportError([f"{path}: not UTF-8 ({e.reason} at byte {e.start})"]) from None
    for n, raw in enumerate(text.splitlines(), 1):
        if not raw.strip():
            continue
        try:
            data = json.loads(raw)
        except json.JSONDecodeError as e:
            problems.append(f"{path}:{n}: not valid JSON ({e.msg} at column {e.colno})")
        else:
            if not isinstance(data, dict):
                problems.append(f"{path}:{n}: expected a JSON object, got {type(data).__name__}")
            else:
                try:
                    parsed.append((n, LabelLine.model_validate(data)))
                except ValidationError as e:
                    err = e.errors()[0]
                    where = ".".join(str(p) for p in err["loc"]) or "(line)"
                    msg = err["msg"].removeprefix("Value error, ")
                    problems.append(f"{path}:{n}: field '{where}': {msg}")
        if len(problems) >= MAX_ERRORS:
            raise LabelImportError(problems)
    plan = Plan()
    if not parsed and not problems:
        raise LabelImportError([f"{path}: no labels in the file"])
    checker = _Checker(folder, results)
    for n, line in parsed:
        try:
            target, label = checker.build(line)
        except _LineError as e:
            problems.append(f"{path}:{n}: field '{e.field}': {e}")
            if len(problems) >= MAX_ERRORS:
                break
            continue
        if checker.already_stored(target, label):
            plan.skipped += 1
        else:
            plan.writes.setdefault(target, []).append(label)
    if problems:
        raise LabelImportError(problems)
    return plan


def apply(plan: Plan) -> int:
    for target, labels in plan.writes.items():
        LabelFile(target / "labels.jsonl").append(labels)
    return sum(len(v) for v in plan.writes.values())


class _LineError(ValueError):
    def __init__(self, fieldname: str, message: str):
        self.field = fieldname
        super().__init__(message)


class _Checker:
    """Binds lines to the runs' current answers (reading only the items named)."""

    def __init__(self, folder: RunFolder, results: Path):
        self.folder, self.results = folder, results
        self.manifest = folder.manifest()
        self.baselines: dict[str, Any] = {}
        self.targets: dict[tuple[str, str], dict[tuple[str, int], Any]] = {}
        self.stored: dict[Path, dict[str, Any]] = {}
        from ..judging.spec import load_active

        judge = load_active(folder.path, self.manifest.judge)
        self.config = judge.config if judge is not None else None

    def _targets(self, run: RunFolder, item_id: str) -> dict[tuple[str, int], Any]:
        cache = self.targets.setdefault((str(run.path), item_id), {})
        if not cache:
            records = run.item_records([item_id], judge=None)
            for t in score_targets(records.items, records.generations):
                cache[(t.item.id, t.generation.sample)] = t
        return cache

    def _target(self, run: RunFolder, line: LabelLine, which: str) -> Any:
        if line.item_id not in run.record_index().positions:
            raise _LineError("item_id", f"no item {line.item_id!r} in run {run.run_id}")
        t = self._targets(run, line.item_id).get((line.item_id, line.sample))
        if t is None:
            raise _LineError("sample", f"run {run.run_id} has no answer (sample {line.sample}) for item "
                                       f"{line.item_id!r}")
        want = line.answer_sha256 if which == "candidate" else line.baseline_answer_sha256
        if want is not None and want != answer_hash(target_answers(t)):
            name = "answer_sha256" if which == "candidate" else "baseline_answer_sha256"
            raise _LineError(name, f"the label was made on a different answer than run {run.run_id} holds now "
                                   "(the answer has changed since): not imported")
        return t

    def _baseline(self, name: str) -> RunFolder:
        if name not in self.baselines:
            try:
                self.baselines[name] = RunFolder.open(name, self.results)
            except Exception as e:  # StoreError: a missing run
                raise _LineError("baseline", str(e)) from None
        return self.baselines[name]

    def build(self, line: LabelLine) -> tuple[Path, Any]:
        if line.run is not None and line.run != self.folder.run_id:
            raise _LineError("run", f"the line is for run {line.run!r}, not {self.folder.run_id!r}")
        if line.mode == "single":
            for name in ("preferred", "seat", "baseline", "baseline_answer_sha256"):
                if getattr(line, name) is not None:
                    raise _LineError(name, "only for mode 'pair'")
            if not line.scores and line.overall is None and line.usable is None:
                raise _LineError("scores", "a single-grading label needs scores, overall or usable")
            target = self._target(self.folder, line, "candidate")
            scores = self._scores(line, target)
            at = self._answer_type(target)
            return self.folder.path, single_label(
                line.reviewer, target, scores=scores, overall=line.overall, usable=line.usable,
                comment=line.comment or "", config_hash=self.config.config_hash() if self.config else None,
                answer_type=at, source="import", time=line.time)
        for name in ("scores", "overall", "usable"):
            if getattr(line, name) not in (None, {}):
                raise _LineError(name, "only for mode 'single'")
        if line.baseline is None:
            raise _LineError("baseline", "a pairwise label names its baseline run")
        if line.preferred is None:
            raise _LineError("preferred", f"a pairwise label needs a verdict: {', '.join(PREFERRED)}")
        base = self._baseline(line.baseline)
        cand_t = self._target(self.folder, line, "candidate")
        base_t = self._target(base, line, "baseline")
        return pair_folder(base, self.folder), pair_label(
            line.reviewer, cand_t, base_t, preferred=line.preferred, seat=line.seat or "AB",
            comment=line.comment or "", source="import", time=line.time)

    def _answer_type(self, target: Any) -> Optional[str]:
        if self.config is None:
            return None
        return self.config.answer_type_for(target.item.task_type, target.item.answer_type)

    def _scores(self, line: LabelLine, target: Any) -> dict[str, float]:
        lo, hi = (self.config.parser.score_min, self.config.parser.score_max) if self.config else (1, 10)
        lo, hi = int(lo), int(hi)
        for name, v in [*line.scores.items(), *([("overall", line.overall)] if line.overall is not None else [])]:
            if not lo <= v <= hi:
                raise _LineError("overall" if name == "overall" else f"scores.{name}", f"{v} is outside {lo}-{hi}")
        if self.config is None:
            return {k: float(v) for k, v in line.scores.items()}
        at = self._answer_type(target)
        allowed = [d.key for d in self.config.dimensions_for(at)]  # type: ignore[arg-type]
        index = self.config.name_index()
        out: dict[str, float] = {}
        from sfteval.judges.text import norm_key

        for name, v in line.scores.items():
            key = index.get(norm_key(name))
            if key not in allowed:
                raise _LineError(f"scores.{name}", f"not a dimension of answer type {at!r} "
                                                   f"(its dimensions: {', '.join(allowed)})")
            out[key] = float(v)
        return out

    def already_stored(self, target: Path, label: Any) -> bool:
        stored = self.stored.setdefault(target, LabelFile(target / "labels.jsonl").latest())
        old = stored.get(label.key)
        same = old is not None and all(getattr(old, f) == getattr(label, f) for f in
                                       ("scores", "overall", "verdict", "rationale", "order"))
        return same and old.details.get("usable") == label.details.get("usable") and \
            old.details.get("time") == label.details.get("time")
