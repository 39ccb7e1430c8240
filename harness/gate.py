"""The CI gate: validated rules (gate.yaml) and the verdict that turns a diff into an exit code with reasons.

Why one config for diff and gate: the markdown a PR comment shows and the exit code that fails the job must
agree, so `sfteval diff --config gate.yaml` and `sfteval gate --config gate.yaml` apply the same rules, and
the diff report already states the gate's verdict.

Rules are data, validated with pydantic (unknown keys are errors, so a typo never silently disables a rule).
Patterns are globs over metric names (``judge:*``) and task_type names; a first-level task_type key also
applies to its second-level task_types (as in suite.yaml), a more specific key overrides a less specific one.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, ValidationError

if TYPE_CHECKING:
    from .differ.result import DiffResult

from . import reliability as rel

EXIT_PASS, EXIT_FAIL, EXIT_USAGE = 0, 1, 2


class GateConfigError(ValueError):
    """A gate.yaml the user wrote is unreadable or invalid; the message names the file and the field."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class MetricRule(_Strict):
    """Overrides for one metric (pattern); unset fields keep the built-in default (harness/differ/rules.py)."""

    direction: Optional[Literal["higher", "lower", "none"]] = None
    min_effect: Optional[float] = Field(default=None, ge=0)
    relative: Optional[bool] = None
    alpha: Optional[float] = Field(default=None, gt=0, lt=1)
    gate: Optional[bool] = None


class TaskTypeRule(_Strict):
    """Rules for one task_type (or pattern; 'overall' and 'robustness' name those groups)."""

    ignore: bool = False
    alpha: Optional[float] = Field(default=None, gt=0, lt=1)
    metrics: dict[str, MetricRule] = Field(default_factory=dict)
    ignore_metrics: list[str] = Field(default_factory=list)
    required_metrics: list[str] = Field(default_factory=list)


class JudgeCalibration(_Strict):
    """Require the LLM judge to agree with people on this suite: judge-human kappa from labels (sfteval view).

    Measured on each run's single-grading labels (quadratic-weighted kappa of the overall score) and on the
    pair's blind pairwise labels (kappa over win/tie/loss), wherever at least ``min_labels`` labels meet a
    judge verdict; every measured kappa must reach ``min_kappa``. With none measured, ``on_missing`` decides.
    """

    min_labels: int = Field(default=50, ge=1)
    min_kappa: float = Field(default=0.6, ge=-1, le=1)
    on_missing: Literal["warn", "fail"] = "warn"


class Guards(_Strict):
    """Conditions under which the comparison itself cannot be trusted; each fails the gate (null disables).

    Rates are checked in both runs: an untrustworthy judge of either side makes the comparison meaningless.
    """

    max_judge_unparsed_rate: Optional[float] = Field(default=rel.WARN_UNPARSED, ge=0, le=1)
    max_judge_error_rate: Optional[float] = Field(default=rel.WARN_ERROR, ge=0, le=1)
    #: judge samples a budget kept back (not_judged): guarded like failed requests, in the runs and the pairwise
    max_judge_not_judged_rate: Optional[float] = Field(default=rel.WARN_ERROR, ge=0, le=1)
    max_generation_error_rate: Optional[float] = Field(default=0.05, ge=0, le=1)
    max_swap_flip_rate: Optional[float] = Field(default=rel.WARN_FLIP, ge=0, le=1)
    suite_hash_mismatch: Literal["fail", "warn"] = "fail"
    missing_items: Literal["fail", "warn"] = "fail"  # a regression could hide in the items not compared
    judge_calibration: Optional[JudgeCalibration] = None  # off unless configured (needs human labels)


class GateConfig(_Strict):
    """gate.yaml. Everything has a default, so an empty file (or none) is a valid config."""

    schema_version: Literal[1] = 1
    alpha: float = Field(default=0.05, gt=0, lt=1)
    confidence: float = Field(default=0.95, gt=0, lt=1)
    resamples: int = Field(default=2000, ge=100)
    seed: int = 0
    metrics: dict[str, MetricRule] = Field(default_factory=dict)
    task_types: dict[str, TaskTypeRule] = Field(default_factory=dict)
    ignore_metrics: list[str] = Field(default_factory=list)
    ignore_task_types: list[str] = Field(default_factory=list)
    required_metrics: list[str] = Field(default_factory=list)
    guards: Guards = Field(default_factory=lambda: Guards())

    # -- pattern helpers -----------------------------------------------------------------------
    def task_type_rules(self, group: str) -> list[TaskTypeRule]:
        """Rules whose key matches the group, least specific first (so later ones override)."""
        hits = [(_specificity(key, group), i, r) for i, (key, r) in enumerate(self.task_types.items())
                if group_matches(key, group)]
        return [r for _, _, r in sorted(hits, key=lambda t: (t[0], t[1]))]

    def group_ignored(self, group: str) -> bool:
        return any(group_matches(p, group) for p in self.ignore_task_types) or any(
            r.ignore for r in self.task_type_rules(group))

    def metric_ignored(self, group: str, metric: str) -> bool:
        if any(fnmatch.fnmatchcase(metric, p) for p in self.ignore_metrics):
            return True
        return any(fnmatch.fnmatchcase(metric, p) for r in self.task_type_rules(group) for p in r.ignore_metrics)


def group_matches(pattern: str, group: str) -> bool:
    """'knowledge' matches 'knowledge' and 'knowledge/likes'; globs match as globs."""
    return pattern == group or group.startswith(pattern + "/") or fnmatch.fnmatchcase(group, pattern)


def _specificity(pattern: str, group: str) -> int:
    if pattern == group:
        return 3
    if group.startswith(pattern + "/"):
        return 1
    return 0 if any(ch in pattern for ch in "*?[") else 2


def load_config(path: Optional[Path]) -> GateConfig:
    """Read and validate a gate.yaml; any problem is one GateConfigError naming the file and field."""
    if path is None:
        return GateConfig()
    import yaml

    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise GateConfigError(f"{path}: cannot read the gate config ({e.strerror})") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        raise GateConfigError(f"{path}:{where}: not valid YAML ({getattr(e, 'problem', e)})") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise GateConfigError(f"{path}: expected a mapping of settings at the top level, got {type(data).__name__}")
    try:
        return GateConfig.model_validate(data)
    except ValidationError as e:
        err = e.errors()[0]
        where = ".".join(str(p) for p in err["loc"]) or "(top level)"
        more = f" (and {e.error_count() - 1} more problems)" if e.error_count() > 1 else ""
        got = f"; got {err['input']!r}" if err["type"] != "missing" and not isinstance(err["input"], dict) else ""
        raise GateConfigError(f"{path}: field {where}: {err['msg']}{got}{more}") from None


# ---------------------------------------------------------------------------------------------
# verdict


@dataclass
class Guard:
    name: str
    passed: bool
    detail: str
    value: Optional[float] = None
    limit: Optional[float] = None
    warning: bool = False  #: passed, but only because it is configured to warn: reported as a warning


@dataclass
class Verdict:
    """What the gate decides: pass/fail, one reason per failure, guard outcomes, non-failing warnings."""

    passed: bool
    reasons: list[str] = field(default_factory=list)
    guards: list[Guard] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        return EXIT_PASS if self.passed else EXIT_FAIL

    def as_dict(self) -> dict[str, Any]:
        return {"passed": self.passed, "reasons": self.reasons, "warnings": self.warnings,
                "guards": [g.__dict__ for g in self.guards]}


def evaluate(diff: "DiffResult", config: GateConfig) -> Verdict:
    """Regressions, required metrics and guards -> the verdict (the diff has already applied the rules)."""
    from .differ.format import describe_cell

    reasons: list[str] = []
    for row in diff.regressions():
        reasons.append("regression: " + describe_cell(row))
    reasons += _missing_required(diff, config)
    guards = _guards(diff, config.guards)
    reasons += [f"guard {g.name}: {g.detail}" for g in guards if not g.passed]
    warnings = list(diff.warnings) + [f"guard {g.name}: {g.detail}" for g in guards if g.warning]
    return Verdict(passed=not reasons, reasons=reasons, guards=guards, warnings=warnings)


def _missing_required(diff: "DiffResult", config: GateConfig) -> list[str]:
    out = []
    tested = diff.cells
    wanted: list[tuple[str, str]] = [("overall", p) for p in config.required_metrics]
    for key, rule in config.task_types.items():
        wanted += [(key, p) for p in rule.required_metrics]
    for group_pat, metric_pat in wanted:
        rows = tested[[group_matches(group_pat, g) for g in tested["group"]]] if len(tested) else tested
        rows = rows[[fnmatch.fnmatchcase(m, metric_pat) for m in rows["metric"]]] if len(rows) else rows
        if not len(rows) or not (rows["n"] > 0).any():
            out.append(f"required metric {metric_pat!r} has no paired values in {group_pat!r} "
                       "(missing in a run: was its judge/probe stage run?)")
    return out


def _guards(diff: "DiffResult", g: Guards) -> list[Guard]:
    out: list[Guard] = []

    def rate(name: str, limit: Optional[float], values: dict[str, Optional[float]], what: str) -> None:
        if limit is None:
            return
        for side, value in values.items():
            if value is None:
                continue
            ok = value <= limit
            out.append(Guard(f"{name} ({side})", ok, f"{what} in {side} is {100 * value:.1f}% "
                             f"({'<=' if ok else '>'} {100 * limit:.1f}% allowed)", value, limit))

    runs = {"baseline " + diff.run_a.run_id: diff.run_a, "candidate " + diff.run_b.run_id: diff.run_b}
    rate("max_judge_unparsed_rate", g.max_judge_unparsed_rate,
         {k: r.judge_unparsed_rate for k, r in runs.items()}, "the judge's unparsed rate")
    rate("max_judge_error_rate", g.max_judge_error_rate,
         {k: r.judge_error_rate for k, r in runs.items()}, "the judge's error rate")
    not_judged = {k: r.judge_not_judged_rate for k, r in runs.items()}
    if diff.pairwise is not None:
        not_judged["pairwise judging"] = diff.pairwise.reliability.get("not_judged_rate")
    rate("max_judge_not_judged_rate", g.max_judge_not_judged_rate, not_judged,
         "the share of judge samples not judged (budget)")
    rate("max_generation_error_rate", g.max_generation_error_rate,
         {k: r.generation_error_rate for k, r in runs.items()}, "the generation error rate")
    if diff.pairwise is not None:
        rate("max_swap_flip_rate", g.max_swap_flip_rate, {"pairwise judging": diff.pairwise.swap_flip_rate},
             "the pairwise judge's swap flip rate")
    if not diff.suite_match:
        out.append(Guard("suite_hash_mismatch", g.suite_hash_mismatch == "warn",
                         f"the runs used different suites ({diff.run_a.suite_hash[:12]} vs "
                         f"{diff.run_b.suite_hash[:12]}); only shared item ids were compared"))
    if diff.paired == 0:
        out.append(Guard("no_paired_items", False, "the runs share no item ids: there is nothing to compare"))
    missing = len(diff.only_a)
    if missing:
        out.append(Guard("missing_items", g.missing_items == "warn",
                         f"{missing} baseline items have no result in the candidate run"))
    if g.judge_calibration is not None:
        out += calibration_guards(diff, g.judge_calibration)
    return out


def calibration_guards(diff: "DiffResult", cal: JudgeCalibration) -> list[Guard]:
    """judge_calibration: each judge-human kappa measured on >= min_labels labels must reach min_kappa."""
    name = "judge_calibration"
    if not diff.run_a.judge and not diff.run_b.judge and diff.pairwise is None:
        return [Guard(name, True, "no LLM judge in these runs: nothing to calibrate")]
    block = diff.agreement or {}
    measured: list[tuple[str, dict[str, Any]]] = []
    counts: list[str] = []
    sources = [(f"candidate {diff.run_b.run_id} single grading", "candidate", "overall", "kappa_w"),
               (f"baseline {diff.run_a.run_id} single grading", "baseline", "overall", "kappa_w"),
               ("pairwise (blind)", "pair", None, "kappa")]
    for label, side, part, stat in sources:
        jh = ((block.get(side) or {}).get("judge_vs_human") or {})
        jh = jh.get(part) if part else jh
        n = int((jh or {}).get("n", 0))
        counts.append(f"{label} {n}")
        value = ((jh or {}).get(stat) or {}).get("value")
        if n >= cal.min_labels and value is not None:
            measured.append((label, {"n": n, "kappa": value, "ci": (jh.get(stat) or {}).get("ci"), "stat": stat}))
    if not measured:
        detail = (f"the judge's agreement with people is unmeasured: labels compared with a judge verdict: "
                  f"{', '.join(counts)} ({cal.min_labels} needed in one of them; label items with `sfteval view`)")
        fail = cal.on_missing == "fail"
        return [Guard(name, not fail, detail + ("" if fail else " (on_missing: warn)"), None,
                      float(cal.min_labels), warning=not fail)]
    out = []
    for label, m in measured:
        ok = m["kappa"] >= cal.min_kappa
        ci = f" [{m['ci'][0]:.2f}, {m['ci'][1]:.2f}]" if m["ci"] else ""
        what = "κw (quadratic) on the overall score" if m["stat"] == "kappa_w" else "κ over win/tie/loss"
        out.append(Guard(name, ok, f"{label}: judge-human {what} {m['kappa']:.2f}{ci}, n={m['n']} "
                         f"({'>=' if ok else '<'} {cal.min_kappa:g} required)", m["kappa"], cal.min_kappa))
    return out
