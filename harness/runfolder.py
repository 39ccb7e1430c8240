"""A run folder as typed data: open it, load its records, build and read its summary, finalize it.

Every command that reads or completes a run goes through :class:`RunFolder` (run, judge, probe, report,
diff, gate, view); the stages below it only append records to the folder's streams (:class:`RunStore`).
The summary is built by iterating the stage registry, so a plugin stage's metrics and summary block appear
without this module knowing it.
"""

from __future__ import annotations

import gc
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Iterator, Optional, Union

from pydantic import ValidationError

from .judging.spec import ActiveJudge, load_active
from .judging.usage import judge_usage
from .models import Item, Judgment, RunManifest
from .recordindex import RecordIndex, file_stamp
from .report import run_report_markdown
from .scoring import group_metrics, item_frame, summarize
from .stages.base import RunRecords, Stage
from .stages.registry import stages as registered_stages
from .store import ITEMS, LABELS, MANIFEST, REPORT, STREAMS, SUMMARY, RunStore, StoreError, iter_lines
from .summary import RunSummary


@contextmanager
def bulk() -> Iterator[None]:
    """Cyclic garbage collection paused while records by the hundred thousand are built and aggregated: they hold
    no cycles, and collections triggered by every few hundred new objects made loading a 100k-item run 4x slower."""
    was_on = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_on:
            gc.enable()


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class RunFolder(RunStore):
    """``results/<run>/``: the manifest, the items, the record streams, summary.json and report.md."""

    def __init__(self, path: Path):
        super().__init__(path)
        self._index: Optional[RecordIndex] = None

    @classmethod
    def open(cls, spec: Union[str, Path], results: Path = Path("results")) -> "RunFolder":
        """A finished or unfinished run by folder path, or by id under ``results``."""
        path = Path(spec)
        folder = cls(path if (path / MANIFEST).exists() else Path(results) / spec)
        if not folder.exists():
            raise StoreError(f"no run found at {spec} (nor {Path(results) / spec})")
        return folder

    def manifest(self) -> RunManifest:
        try:
            return self.read_manifest()
        except ValidationError as e:
            raise StoreError(f"{self.path / MANIFEST}: not a run manifest this sfteval can read: "
                             f"{_first_error(e)}") from None

    def items(self) -> list[Item]:
        return [Item.model_validate_json(line) for line in iter_lines(self.path / ITEMS)]

    def records(self, manifest: Optional[RunManifest] = None) -> RunRecords:
        """Items, generations, judgments and probes, typed; plus the judge the summary aggregates."""
        manifest = manifest or self.manifest()
        try:
            with bulk():
                return RunRecords(items=self.items(), generations=self.read("generations"),
                                  judgments=self.read("judgments"), probes=self.read("probes"),
                                  judge=load_active(self.path, manifest.judge), labels=self.labels())
        except ValidationError as e:
            raise StoreError(f"{self.path}: a record this sfteval cannot read: {_first_error(e)}") from None

    def labels(self) -> dict[str, Judgment]:
        """Human labels of this run's answers (labels.jsonl), the latest per key."""
        return self.read(LABELS.removesuffix(".jsonl"), Judgment)

    # -- reading a large run a part at a time -------------------------------------------------
    def record_index(self) -> RecordIndex:
        """Where each item's records are in the streams (built once, rebuilt when items.jsonl changes)."""
        if self._index is None or self._index.stamp != file_stamp(self.path / ITEMS):
            self._index = RecordIndex(self.path, ITEMS)
        return self._index

    def item_records(self, item_ids: Iterable[str], manifest: Optional[RunManifest] = None,
                     judge: Union[ActiveJudge, None, str] = "load") -> RunRecords:
        """The records of these items only (a seek per record line: cheap on a run of any size)."""
        index = self.record_index()
        positions = sorted({index.positions[i] for i in item_ids if i in index.positions})
        return self._records_at(index, positions, manifest, judge)

    def record_chunks(self, size: int, manifest: Optional[RunManifest] = None) -> Iterator[RunRecords]:
        """The run's records ``size`` items at a time (all of an item's records in its chunk), in item order."""
        manifest = manifest or self.manifest()
        index = self.record_index()
        judge = load_active(self.path, manifest.judge)
        for start in range(0, len(index.item_ids), size):
            yield self._records_at(index, list(range(start, min(start + size, len(index.item_ids)))), manifest, judge)

    def _records_at(self, index: RecordIndex, positions: list[int], manifest: Optional[RunManifest],
                    judge: Union[ActiveJudge, None, str]) -> RunRecords:
        if judge == "load":
            judge = load_active(self.path, (manifest or self.manifest()).judge)
        try:
            streams: dict[str, dict[str, Any]] = {}
            for name, model in STREAMS.items():
                out: dict[str, Any] = {}
                for line in index.stream(name).read_raw(positions):
                    record = model.model_validate_json(line)  # pydantic's parser: half the time of json + validate
                    out[record.key] = record
                streams[name] = out
            items = [Item.model_validate_json(line) for line in index.items_raw(positions)]
            return RunRecords(items=items, judge=judge, **streams)  # type: ignore[arg-type]
        except ValidationError as e:
            raise StoreError(f"{self.path}: a record this sfteval cannot read: {_first_error(e)}") from None

    def stored_summary(self) -> Optional[RunSummary]:
        """summary.json as written (None when the run never finished a summary)."""
        path = self.path / SUMMARY
        if not path.exists():
            return None
        try:
            return RunSummary.model_validate_json(path.read_text(encoding="utf-8"))
        except ValidationError as e:
            raise StoreError(f"{path}: not a summary this sfteval can read: {_first_error(e)}") from None

    def summary(self) -> RunSummary:
        """The stored summary, or one built from the records (a run that stopped before it had one)."""
        stored = self.stored_summary()
        if stored is not None:
            return stored
        manifest = self.manifest()
        return build_summary(manifest, self.records(manifest))

    def finalize(self, manifest: RunManifest) -> RunSummary:
        """Rebuild summary.json and report.md from the stored records (after a run, a re-judge, a merge)."""
        with bulk():
            return self._finalize(manifest)

    def _finalize(self, manifest: RunManifest) -> RunSummary:
        records = self.records(manifest)
        gens = records.generations.values()
        judgments = records.judgments.values()
        manifest.counts = {
            "items": len(records.items),
            "generations": len(records.generations),
            "generation_errors": sum(g.status != "ok" for g in gens),
            "judgments": len(records.judgments),
            "unparsed": sum(j.status == "unparsed" for j in judgments),
            "judge_errors": sum(j.status == "error" for j in judgments),
            "not_judged": sum(j.status == "not_judged" for j in judgments),
            "probes": len(records.probes),
            "probe_errors": sum(r.status != "ok" for r in records.probes.values()),
        }
        usage = judge_usage(judgments)  # every judge's calls in this folder, per task_type
        if usage is not None:
            manifest.usage = {**manifest.usage, "judge": usage}
        summary = build_summary(manifest, records)
        self.write_json(SUMMARY, summary.as_json())
        self.write_text(REPORT, run_report_markdown(manifest, summary))
        # failed requests stay visible: the run is "incomplete" until a --resume retries them successfully
        manifest.status = "complete" if manifest.counts["generation_errors"] == 0 else "incomplete"
        manifest.finished_at = now()
        self.write_manifest(manifest)
        return summary


def build_summary(manifest: RunManifest, records: RunRecords, stages: Optional[list[Stage]] = None) -> RunSummary:
    """Per-group metrics from every stage's item metrics, then each stage's own summary block."""
    stages = registered_stages() if stages is None else stages
    groups = summarize(item_frame(records, stages), group_metrics(stages))
    data = {
        "run_id": manifest.run_id,
        "model": manifest.model.name,
        "suite": {"name": manifest.suite_name, "version": manifest.suite_version, "hash": manifest.suite_hash},
        "counts": manifest.counts,
        **groups,
    }
    for stage in stages:
        data.update(stage.summary_block(records, manifest, groups))
    return RunSummary(**data)


def _first_error(e: ValidationError) -> str:
    err = e.errors()[0]
    where = ".".join(str(p) for p in err["loc"])
    return f"{where}: {err['msg']}" if where else err["msg"]
