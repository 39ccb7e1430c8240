"""`sfteval suites lint`: find what makes a suite measure the wrong thing before any GPU time is spent.

- near-duplicate prompts (whole suite) and near-duplicate answers (within a task_type): generated data
  is homogeneous, and ten copies of one question weigh ten times in a per-task_type mean (PRACTICE 14);
- empty or suspicious references (placeholder, copy of the prompt, cut off mid-sentence);
- punctuation of the wrong width, which an exact-match scorer and a fine-tuned model both copy;
- checks that the item's own reference fails: the item can never be passed by a perfect answer.

Levels: ``error`` (the item is broken; exit status 1), ``warning`` (very likely a defect), ``info``
(worth a look, often intended). Robustness items are badly written on purpose (PRACTICE 12), so their
prompts are not punctuation-checked, and pairs linked by ``meta.variant_of`` are never duplicates.
"""

from __future__ import annotations

import json
import re
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Literal, Optional

from sfteval.judges.rules import evaluate_checks

from ..models import Item
from ..suite import Suite
from .punctuation import check_text
from .textsim import near_duplicates, norm

Level = Literal["error", "warning", "info"]
LEVELS: tuple[Level, ...] = ("error", "warning", "info")
SHORT_ANSWER = 20  # normalised chars: identical short answers ("The passage does not say.") are often by design

_PLACEHOLDER_ERROR = re.compile(r"^\W*(todo|tbd|fixme|xxx+|placeholder|lorem ipsum.*|待补充|待定|待填写|此处填写.*)\W*$", re.I | re.S)
_PLACEHOLDER_WARN = re.compile(r"^\W*(n/?a|none|null|nil|\?+|…+|\.\.\.+|略|无|空)\W*$", re.I)
_TODO_INSIDE = re.compile(r"\b(TODO|FIXME|TBD)\b")
_CUT_PUNCT = tuple(",，、:：;；([{（【《-–—")
_CUT_WORDS = re.compile(r"(?:\b(?:and|or|but|the|because|although|whereas)|因为|所以|但是|并且|以及|如果|而且|或者)$", re.I)
_END_OK = re.compile(r"""[.!?。！？…)）\]】」』》"'”’`*~|>\d%°]$|[\u2600-\u27bf\U0001F000-\U0001FAFF]$""")


@dataclass
class Finding:
    level: Level
    code: str
    item_id: str
    message: str
    file: Optional[str] = None
    line: Optional[int] = None
    related: list[str] = field(default_factory=list)

    @property
    def location(self) -> str:
        if self.file is None:
            return "-"
        return f"{self.file}:{self.line}" if self.line else self.file


@dataclass
class LintReport:
    suite: str
    n_items: int
    findings: list[Finding]
    elapsed_s: float = 0.0

    def counts(self) -> dict[str, int]:
        c = Counter(f.level for f in self.findings)
        return {lvl: c.get(lvl, 0) for lvl in LEVELS}

    @property
    def has_errors(self) -> bool:
        return any(f.level == "error" for f in self.findings)

    def to_json(self) -> str:
        return json.dumps({"suite": self.suite, "items": self.n_items, "counts": self.counts(),
                           "by_code": dict(Counter(f.code for f in self.findings)),
                           "elapsed_s": round(self.elapsed_s, 3),
                           "findings": [asdict(f) for f in self.findings]}, ensure_ascii=False, indent=1)

    def to_text(self, min_level: Level = "info") -> str:
        shown = LEVELS[: LEVELS.index(min_level) + 1]
        lines = [f"{f.location}: {f.level}: {f.code}: {f.item_id}: {f.message}" for f in self.findings if f.level in shown]
        c = self.counts()
        lines.append(f"{self.suite}: {self.n_items} items: {c['error']} errors, {c['warning']} warnings, "
                     f"{c['info']} infos ({self.elapsed_s:.2f} s)")
        return "\n".join(lines)


def lint_suite(suite: Suite, threshold: float = 0.9) -> LintReport:
    t0 = time.perf_counter()
    findings: list[Finding] = []
    for item in suite.items:
        findings += _reference_findings(item)
        findings += _punctuation_findings(item)
        findings += _checks_findings(item)
    findings += _duplicate_findings(suite.items, threshold)
    for f in findings:
        f.file, f.line = suite.sources.get(f.item_id, (None, None))
    pos = {it.id: i for i, it in enumerate(suite.items)}
    findings.sort(key=lambda f: (pos.get(f.item_id, 0), LEVELS.index(f.level), f.code))
    return LintReport(suite.name, len(suite.items), findings, time.perf_counter() - t0)


# -- references ------------------------------------------------------------------------------------------
def _references(item: Item) -> list[str]:
    refs = item.reference if isinstance(item.reference, list) else [item.reference]
    return [r for r in refs if r is not None]


def _is_json(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


def _loose(text: str) -> str:
    return " ".join(text.casefold().split())


def _reference_findings(item: Item) -> list[Finding]:
    out: list[Finding] = []

    def add(level: Level, code: str, msg: str) -> None:
        out.append(Finding(level, code, item.id, msg))

    if isinstance(item.reference, list) and any(r is not None and not r.strip() for r in item.reference):
        add("error", "empty-reference", "a per-turn reference is empty (use null for 'no reference')")
    last_user = next((m.content for m in reversed(item.conversation) if m.role == "user"), "")
    for ref in _references(item):
        text = ref.strip()
        if not text:
            continue
        if _PLACEHOLDER_ERROR.match(text):
            add("error", "placeholder-reference", f"reference is a placeholder: {text[:40]!r}")
            continue
        if _PLACEHOLDER_WARN.match(text) and not item.choices:
            add("warning", "suspicious-reference", f"reference says only {text!r}")
        elif _TODO_INSIDE.search(re.sub(r"```.*?```", "", text, flags=re.S)):
            add("warning", "suspicious-reference", "reference contains a TODO/FIXME/TBD marker")
        if _loose(text) == _loose(last_user) and not item.choices:
            add("warning", "reference-copies-prompt", "reference is identical to the prompt")
        if not item.choices and len(text) <= 1 and item.answer_type in ("generation", "advice"):
            add("warning", "short-reference", f"{item.answer_type} reference of {len(text)} character(s)")
        if _is_json(text) or text.endswith("```"):
            continue
        tail = text[-40:].rstrip("*_ ")
        if tail.endswith(_CUT_PUNCT) or _CUT_WORDS.search(tail[-12:]):
            add("warning", "unfinished-reference", f"reference ends mid-sentence: ...{text[-30:]!r}")
        elif len(text) >= 80 and len(text.splitlines()[-1]) >= 30 and not _END_OK.search(tail):
            add("info", "unfinished-reference", f"reference has no final punctuation: ...{text[-30:]!r}")
    return out


# -- punctuation -----------------------------------------------------------------------------------------
def _punctuation_findings(item: Item) -> list[Finding]:
    texts: list[tuple[str, str, Level]] = [("reference", r, "warning") for r in _references(item) if not _is_json(r)]
    for m in item.conversation:
        if m.role == "assistant":
            texts.append(("fixed assistant turn", m.content, "warning"))
        elif not (m.role == "user" and item.is_robustness):
            texts.append((f"{m.role} prompt", m.content, "info"))
    out = []
    for where, text, level in texts:
        for issue in check_text(text):
            out.append(Finding(level, f"punctuation-{issue.code}", item.id, f"{where}: {issue.message}: {issue.excerpt!r}"))
    return out


# -- checks ----------------------------------------------------------------------------------------------
def _checks_findings(item: Item) -> list[Finding]:
    ref = item.final_reference
    if item.checks is None or not item.checks.active() or not isinstance(ref, str):
        return []
    failed = [k for k, ok in evaluate_checks(item.checks, ref).items() if not ok]
    if not failed:
        return []
    return [Finding("error", "checks-contradict-reference", item.id,
                    f"the item's own reference fails its checks: {', '.join(failed)}")]


# -- duplicates ------------------------------------------------------------------------------------------
def _linked(a: Item, b: Item) -> bool:
    va, vb = a.meta.get("variant_of"), b.meta.get("variant_of")
    return va == b.id or vb == a.id or (va is not None and va == vb)


def _user_text(item: Item) -> str:
    """The last user turn; all user turns for a multi-turn item (its last turn alone is often 'Are you sure?')."""
    users = [m.content for m in item.conversation if m.role == "user"]
    return "\n".join(users) if len(users) > 1 else users[-1]


def _system(item: Item) -> str:
    conv = item.conversation
    return conv[0].content if conv[0].role == "system" else ""


def _duplicate_findings(items: list[Item], threshold: float) -> list[Finding]:
    by_id = {it.id: it for it in items}
    out: list[Finding] = []
    seen_conv: dict[str, str] = {}
    for it in items:
        key = json.dumps([[m.role, _loose(m.content)] for m in it.conversation], ensure_ascii=False)
        if key in seen_conv and not _linked(it, by_id[seen_conv[key]]):
            out.append(Finding("error", "duplicate-item", it.id, f"same conversation as {seen_conv[key]}",
                               related=[seen_conv[key]]))
        seen_conv.setdefault(key, it.id)
    dup_items = {f.item_id for f in out}
    def linked(a: str, b: str) -> bool:
        return _linked(by_id[a], by_id[b])

    prompts = [(it.id, _user_text(it)) for it in items]
    for b, (a, sim, n) in near_duplicates(prompts, threshold, linked).items():
        if b in dup_items:
            continue
        same_system = _system(by_id[a]) == _system(by_id[b])
        level: Level = "warning" if same_system else "info"
        extra = "" if same_system else " (different system prompts)"
        out.append(Finding(level, "near-duplicate-prompt", b, f"prompt near-duplicate of {a} "
                           f"(similarity {sim:.2f}{'' if n == 1 else f', {n} earlier matches'}){extra}", related=[a]))
    groups: dict[str, list[tuple[str, str]]] = {}
    for it in items:
        if it.choices is None and _references(it):
            groups.setdefault(it.task_type, []).append((it.id, "\n".join(_references(it))))
    for texts in groups.values():
        text_of = dict(texts)
        for b, (a, sim, n) in near_duplicates(texts, threshold, linked).items():
            if b in dup_items:
                continue
            short = max(len(norm(text_of[a])), len(norm(text_of[b]))) <= SHORT_ANSWER
            level = "info" if short else "warning"
            out.append(Finding(level, "near-duplicate-answer", b, f"reference near-duplicate of {a} in "
                               f"{by_id[b].task_type} (similarity {sim:.2f}{'' if n == 1 else f', {n} earlier matches'})"
                               + (" (short fixed answer)" if short else ""), related=[a]))
    return out
