"""The LLM judge as a run stage: single grading of every stored answer, after the rules.

An unreachable judge does not stop the run: its requests are stored as errors, so the answers and rule
scores still get a summary and `sfteval judge RUN` retries only the failed judge requests.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Optional

from ..models import RunManifest
from ..score import run_scorers, score_targets
from ..stages.base import RunContext, RunRecords, Stage
from .answers import check_answer_types, suite_answer_types
from .metrics import headline, judge_item_metrics, judge_summary
from .report import run_judge_markdown
from .single import JudgeScorer
from .spec import JudgeSpec, effective_k, save_active

if TYPE_CHECKING:
    import pandas as pd

    from ..summary import RunSummary


def scorer_for_run(ctx: RunContext, spec: JudgeSpec) -> JudgeScorer:
    """The judge for this run's answers; records the judge in the manifest and checks every answer type."""
    spec = spec.keep_recorded_cache_key(ctx.manifest.judge)
    cfg = spec.load_config()
    k = effective_k(cfg, spec.samples)
    answer_type_of = suite_answer_types(ctx.suite)
    check_answer_types(cfg, ctx.items, answer_type_of)
    scorer = JudgeScorer(spec, cfg, k, ctx.store.read("judgments"), answer_type_of=answer_type_of, fail_fast=False,
                         log=ctx.log, workdir=ctx.store.path)
    save_active(ctx.store, ctx.manifest, spec, cfg, k, scorer.client.judge_id)
    return scorer


class JudgeStage(Stage):
    """``judge:<dimension>``, ``judge:overall``, ``usable``, ``usable_score`` and the judge's reliability."""

    name = "judge"
    order = 300

    def __init__(self) -> None:
        self.scorer: Optional[JudgeScorer] = None

    def prepare(self, ctx: RunContext) -> None:
        if ctx.options.judge is not None and ctx.options.generate:  # before any GPU time: a bad setting fails now
            self.scorer = scorer_for_run(ctx, ctx.options.judge)

    def run(self, ctx: RunContext) -> None:
        if self.scorer is not None:
            run_scorers(ctx.store, [self.scorer], score_targets(ctx.items, ctx.store.read("generations")))

    def item_metrics(self, records: RunRecords) -> "pd.DataFrame":
        return judge_item_metrics(records)

    def summary_block(self, records: RunRecords, manifest: RunManifest, groups: dict[str, Any]) -> dict[str, Any]:
        if records.judge is None:
            return {}
        return {"headline": headline(groups), "judge": judge_summary(records, manifest)}

    def report_section(self, summary: "RunSummary") -> str:
        return run_judge_markdown(summary)
