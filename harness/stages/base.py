"""The stage protocol: what generation, rule scoring, the LLM judge, probes (and any plugin stage) implement.

A stage reads what earlier stages stored and appends its own records, so any stage can run again alone and
an interrupted run resumes. Aggregation and reports never import a stage: they iterate the registry
(:mod:`.registry`) and ask each stage for its item metrics, its summary block and its report section.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Optional

from ..backends.base import Backend, Dispatch
from ..judging.spec import ActiveJudge, JudgeSpec
from ..models import Generation, Item, Judgment, ModelInfo, ProbeResult, RunManifest
from ..probes.options import ProbeOptions
from ..render import Renderer
from ..shard import ShardSpec
from ..store import RunStore
from ..suite import Suite
from ..think import ThinkMarkers

if TYPE_CHECKING:
    import pandas as pd

    from ..summary import RunSummary


@dataclass
class RunOptions:
    """Everything `sfteval run` / `sfteval probe` was asked to do; stages read the part that concerns them."""

    model: str
    suite: str
    backend: str = "hf"
    backend_options: dict[str, Any] = field(default_factory=dict)
    tokenizer: Optional[str] = None
    out: Path = Path("results")
    run_name: Optional[str] = None
    resume: Optional[str] = None
    seed: int = 0
    limit: Optional[int] = None
    prompt_format: str = "chat"
    chat_template: Optional[str] = None  #: a Jinja template file that replaces the tokenizer's
    think: Optional[ThinkMarkers] = None
    overrides: dict[str, Any] = field(default_factory=dict)
    progress: bool = True
    command: list[str] = field(default_factory=list)
    judge: Optional[JudgeSpec] = None  #: LLM-judge the answers after the rules
    generate: bool = True  #: False for `sfteval probe`: no answers, no scores, probes only
    probes: Optional[ProbeOptions] = None  #: None = no probes (--no-probes)
    shard: Optional[ShardSpec] = None  #: --shard I/N: only this shard's items (sfteval merge joins the shards)
    dispatch: Optional[Dispatch] = None  #: --ray: the backend's requests run on a cluster (an executor plugin)


@dataclass
class RunContext:
    """What a running stage works with: the run's options, items, model, backend and folder."""

    options: RunOptions
    suite: Suite
    items: list[Item]
    model: ModelInfo
    store: RunStore
    manifest: RunManifest
    backend: Backend
    renderer: Optional[Renderer]
    log: Callable[[str], None]


@dataclass
class RunRecords:
    """A run's stored records, typed: what aggregation, reports and the differ read."""

    items: list[Item]
    generations: dict[str, Generation] = field(default_factory=dict)
    judgments: dict[str, Judgment] = field(default_factory=dict)
    probes: dict[str, ProbeResult] = field(default_factory=dict)
    judge: Optional[ActiveJudge] = None  #: the judge whose judgments the summary aggregates, if judged
    labels: dict[str, Judgment] = field(default_factory=dict)  #: human labels (labels.jsonl), latest per key


def empty_metrics() -> "pd.DataFrame":
    """An item-metric frame with no rows (a stage with nothing stored yet)."""
    import pandas as pd

    return pd.DataFrame(index=pd.Index([], name="item_id"))


#: A group-level metric that is not a mean of per-item values: (a group's item frame) -> value or None.
GroupMetric = Callable[["pd.DataFrame"], Optional[float]]


class RunError(RuntimeError):
    """A user-facing failure of a run or one of its stages (bad options, an incompatible resume)."""


class Stage:
    """One step of a run. Subclass it and register the class under the ``sfteval.stages`` entry points.

    ``order`` places it in the run (generate 100, rules 200, judge 300, probes 400); every hook has a
    do-nothing default, so a stage implements only what it has.
    """

    name: ClassVar[str]
    order: ClassVar[int]

    def prepare(self, ctx: RunContext) -> None:
        """Check settings before any stage runs, so a bad one fails before model time is spent."""

    def run(self, ctx: RunContext) -> None:
        """Compute what is not stored yet and append it to ``ctx.store``."""

    def item_metrics(self, records: RunRecords) -> Optional["pd.DataFrame"]:
        """Metric columns for the item frame, indexed by ``item_id`` (None: this stage has none)."""
        return None

    def group_metrics(self) -> dict[str, GroupMetric]:
        """Metrics of a whole group that are not a mean of items (e.g. a token-weighted mean)."""
        return {}

    def summary_block(self, records: RunRecords, manifest: RunManifest,
                      groups: dict[str, Any]) -> dict[str, Any]:
        """Top-level summary.json entries this stage adds (``groups`` is the per-task_type part)."""
        return {}

    def report_section(self, summary: "RunSummary") -> str:
        """Markdown for report.md, after the per-task_type table ('' for none)."""
        return ""
