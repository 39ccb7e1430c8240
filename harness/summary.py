"""summary.json as a typed, versioned model: the contract that reports, the differ, the viewer and users' own
scripts (pandas, DuckDB) read. Its JSON Schema is in docs/schema/ (``sfteval schema``).

Stages add top-level blocks (``judge`` and ``headline`` from the judge, ``probes`` from the probes); a plugin
stage's block is kept as it is (extra keys are allowed), so nothing a stage writes is lost on a read.
"""

from __future__ import annotations

from typing import Any, Iterator, Optional

from pydantic import BaseModel, ConfigDict, Field

from .models import Versioned

OVERALL = "overall"


class GroupSummary(BaseModel):
    """One group (overall, a task_type at either level, the robustness items): item count and metric means."""

    n: int
    metrics: dict[str, Optional[float]] = Field(default_factory=dict)


class SuiteRef(BaseModel):
    name: str
    version: str
    hash: str


class Headline(BaseModel):
    """The release metric (the usable rate) overall and per task_type."""

    metric: str
    overall: Optional[float] = None
    task_types: dict[str, Optional[float]] = Field(default_factory=dict)


class JudgeReliability(BaseModel):
    """How far the judge's numbers can be trusted: unparsed and failed shares, repeat spread, length bias."""

    model_config = ConfigDict(extra="allow")

    samples: int
    unparsed: int
    errors: int
    not_judged: int = 0  #: judge samples never sent (the budget ran out): no score, sent by a later re-judge
    unparsed_rate: Optional[float] = None
    error_rate: Optional[float] = None
    not_judged_rate: Optional[float] = None
    repeat_spread: dict[str, dict[str, float]] = Field(default_factory=dict)
    mean_repeat_std: Optional[float] = None
    length_correlation: Optional[float] = None
    swap_flip_rate: Optional[float] = None
    injection_flagged_items: list[str] = Field(default_factory=list)
    warnings: list[str] = Field(default_factory=list)


class UsageCounts(BaseModel):
    """What judging cost: requests sent, tokens, USD at the configured prices."""

    calls: int = 0  #: judge requests sent (an unparsed answer's retry included)
    batch_calls: int = 0  #: of those, through a batch (OpenAI Batch API or vLLM's batch runner)
    cached: int = 0  #: judge samples without a request of their own (the cache, or an identical prompt's request)
    not_judged: int = 0  #: judge samples the budget kept back
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: Optional[float] = None  #: USD; None when no prices were configured


class AdaptiveSavings(BaseModel):
    """Adaptive repeats: samples fixed k would draw, samples drawn, and the difference (judge calls saved)."""

    samples_max: int
    samples_drawn: int
    saved: int


class JudgeUsage(UsageCounts):
    """Totals of the run's active judge, and the same per task_type (both levels)."""

    task_types: dict[str, UsageCounts] = Field(default_factory=dict)
    adaptive: Optional[AdaptiveSavings] = None


class JudgeBlock(BaseModel):
    """Who judged and how reliably."""

    model_config = ConfigDict(extra="allow")

    config: str
    config_hash: str
    model: str
    samples: int
    backend: Optional[str] = None
    items_judged: int
    items_scored: int
    dimensions: dict[str, str] = Field(default_factory=dict)
    reliability: JudgeReliability
    usage: Optional[JudgeUsage] = None


class LostKnowledge(BaseModel):
    """An item whose answer the base model knew and the SFT model does not (continuation probe)."""

    item_id: str
    task_type: str
    base: Optional[str] = None
    sft: Optional[str] = None
    logprob_gap: Optional[float] = None


class ProbeBlock(BaseModel):
    counts: dict[str, dict[str, int]] = Field(default_factory=dict)
    lost_knowledge: list[LostKnowledge] = Field(default_factory=list)


class RunSummary(Versioned):
    """Per-group metrics of one run, plus the blocks its stages add."""

    model_config = ConfigDict(extra="allow")

    run_id: str
    model: str
    suite: SuiteRef
    counts: dict[str, int] = Field(default_factory=dict)
    overall: GroupSummary
    task_types: dict[str, GroupSummary] = Field(default_factory=dict)
    robustness: Optional[GroupSummary] = None
    headline: Optional[Headline] = None
    judge: Optional[JudgeBlock] = None
    probes: Optional[ProbeBlock] = None
    agreement: Optional[dict[str, Any]] = None  #: judge-human agreement on the run's labels (harness/labels)

    def groups(self) -> Iterator[tuple[str, GroupSummary]]:
        """Task_types (a first level, then its second levels), then robustness, then overall: the table's rows."""
        yield from self.task_types.items()
        if self.robustness is not None:
            yield "robustness", self.robustness
        yield OVERALL, self.overall

    def as_json(self) -> dict[str, Any]:
        """The summary.json object (blocks a run does not have are left out, not written as null)."""
        return self.model_dump(mode="json", exclude_unset=True)


def task_type_label(name: str) -> str:
    """A task_type's name as a table row: a second level as ``└ child`` under its first level (a markdown table
    drops leading spaces, so indentation alone would read as one more first-level row)."""
    return f"└ {name.split('/', 1)[1]}" if "/" in name else name
