"""The ``agreement`` block of summary.json and the run report's judge-human agreement section.

A stage with nothing to run: at every finalize (run, re-judge, merge) it compares the run's human labels with
its judge, so the numbers sit in summary.json next to the judge's own reliability numbers. Labels added
later are counted by ``sfteval agreement RUN`` and ``sfteval labels import`` (which refresh the block),
and by ``report`` and ``diff``, which always compute it from the current labels.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..models import RunManifest
from ..stages.base import RunRecords, Stage
from .collect import settings, single_block
from .report import agreement_markdown

if TYPE_CHECKING:
    from ..summary import RunSummary


def run_agreement(records: RunRecords, **opts: Any) -> dict[str, Any]:
    """The run's agreement block (``{}`` when it has no labels)."""
    block = single_block(records, settings(**opts))
    return {**settings(**opts), "single": block} if block else {}


class AgreementStage(Stage):
    name = "agreement"
    order = 900

    def summary_block(self, records: RunRecords, manifest: RunManifest, groups: dict[str, Any]) -> dict[str, Any]:
        block = run_agreement(records)
        return {"agreement": block} if block else {}

    def report_section(self, summary: "RunSummary") -> str:
        return agreement_markdown(getattr(summary, "agreement", None))
