"""`sfteval merge`: the shard runs of one sharded evaluation become exactly one run.

A shard (``sfteval run --shard I/N``) is a normal run folder over some of the items; its manifest records its
place (:class:`~sfteval.harness.models.ShardInfo`). Merging checks that the shards are of one evaluation (same
parent run, suite content, model, backend, chat template, run settings, probe settings, judge) and that
together they hold every item exactly once, then assembles one folder -- the items in the one run's order,
every record once (records are keyed by content, identical for a greedy run in any process), side files --
and finalizes it like any run, so its summary.json and report.md are computed from the records exactly as
for a run done in one process.

Nothing half-written: the folder is assembled next to the destination under a hidden name and renamed into
place at the end. Merging again (after a failed shard was resumed) replaces the merged folder, keeping what
was added to it since (judgments of `sfteval judge`, probes, pairwise results).
"""

from __future__ import annotations

import glob
import os
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

from .models import RunManifest
from .redact import redact_argv
from .runfolder import RunFolder, bulk, now
from .runner import add_usage, select_items, settings_changes
from .shard import ShardSpec, shard_positions, shard_run_name
from .stages.base import RunError
from .store import JUDGE_CONFIG, PAIRS, PROBE_SETTINGS, STREAMS, StoreError, item_id, replace_dir

_GLOB_CHARS = set("*?[")
_SHOWN = 10  #: item ids named in an error before "and N more"


class MergeError(RunError):
    """Shards that cannot be merged; the message names the shard folders and what is wrong."""


@dataclass
class MergeResult:
    folder: RunFolder
    shards: list[str]
    items: int
    records: dict[str, int] = field(default_factory=dict)
    replaced: bool = False  #: an earlier merge of these shards was replaced


def shard_folders(args: list[str], results: Path) -> list[RunFolder]:
    """Shard run folders from paths, run names under ``results`` or globs (``results/v2__shard-*``), each once."""
    out: dict[Path, RunFolder] = {}
    for arg in args:
        if _GLOB_CHARS & set(arg) and not Path(arg).exists():
            matches = sorted(glob.glob(arg)) or sorted(glob.glob(str(results / arg)))
            runs = [RunFolder(Path(m)) for m in matches if RunFolder(Path(m)).exists()]
            if not runs:
                raise MergeError(f"{arg}: no run folder matches" + (f" ({len(matches)} other paths do)" if matches else ""))
        else:
            try:
                runs = [RunFolder.open(arg, results)]
            except StoreError as e:
                raise MergeError(str(e)) from None
        for run in runs:
            out.setdefault(run.path.resolve(), run)
    if not out:
        raise MergeError("no shard runs given")
    return list(out.values())


def _ids(ids: list[str]) -> str:
    more = f" and {len(ids) - _SHOWN} more" if len(ids) > _SHOWN else ""
    return ", ".join(ids[:_SHOWN]) + more


def _identity(folder: RunFolder, m: RunManifest) -> dict[str, Any]:
    """What every shard of one evaluation shares, by the name an error shows."""
    assert m.shard is not None
    judge = m.judge or {}
    return {
        "parent run": m.shard.parent_run,
        "number of shards": m.shard.count,
        "items in the whole run": m.shard.items_total,
        "shard assignment": m.shard.assignment,
        "suite content hash": m.suite_hash,
        "model fingerprint": m.model.fingerprint,
        "backend": m.backend,
        "chat template": m.model.chat_template_hash,
        "prompt mode": m.prompt_mode,
        "kind of run": "sfteval run" if (m.settings is None or m.settings.generate) else "sfteval probe",
        "judge": {k: judge.get(k) for k in ("config_hash", "model", "judge_id", "samples")} if judge else None,
        "probe settings": folder.read_json(PROBE_SETTINGS) if folder.has(PROBE_SETTINGS) else None,
    }


def check_shards(folders: list[RunFolder], manifests: list[RunManifest], log: Callable[[str], None]) -> None:
    """One evaluation, every shard once and finished, every item once; else one error naming what is wrong."""
    for f, m in zip(folders, manifests):
        if m.shard is None:
            raise MergeError(f"{f.path} is not a shard (its manifest records no --shard): merge joins the shard runs "
                             "of one `sfteval run --shard I/N` evaluation")
    ref_f, ref_m = folders[0], manifests[0]
    ref = _identity(ref_f, ref_m)
    for f, m in zip(folders[1:], manifests[1:]):
        mine = _identity(f, m)
        diffs = [f"{k}: {ref[k]} vs {mine[k]}" for k in ref if ref[k] != mine[k]]
        if ref["model fingerprint"] != mine["model fingerprint"]:
            diffs.append(f"model: {ref_m.model.path} vs {m.model.path}")
        if ref_m.settings is not None and m.settings is not None:
            diffs += settings_changes(ref_m.settings, m.settings)
        elif (ref_m.settings is None) != (m.settings is None):
            diffs.append("run settings: recorded in one, not in the other")
        if diffs:
            raise MergeError(f"{f.path} is not a shard of the same run as {ref_f.path}: " + "; ".join(diffs))
    count = ref_m.shard.count  # type: ignore[union-attr]
    by_index: dict[int, RunFolder] = {}
    for f, m in zip(folders, manifests):
        index = m.shard.index  # type: ignore[union-attr]
        if index in by_index:
            raise MergeError(f"shard {index}/{count} is given twice: {by_index[index].path} and {f.path}; keep one")
        by_index[index] = f
    missing = [i for i in range(count) if i not in by_index]
    if missing:
        raise MergeError(_missing_message(missing, ref_m, folders[0].path.parent))
    for f, m in zip(folders, manifests):
        if m.status not in ("complete", "incomplete"):
            raise MergeError(f"shard {m.shard.index}/{count} ({f.path}) has not finished (status {m.status}): "  # type: ignore[union-attr]
                             f"run its command again with --resume {f.run_id}, then merge")
        if m.status == "incomplete":
            log(f"note: shard {m.shard.index}/{count} ({f.path}) has failed requests; the merged run will too "  # type: ignore[union-attr]
                f"(resume the shard with --resume {f.run_id} and merge again to retry them)")


def _missing_message(missing: list[int], ref: RunManifest, where: Path) -> str:
    """Name the missing shards and, where the suite is still there with the same content, their items."""
    assert ref.shard is not None
    count, parent = ref.shard.count, ref.shard.parent_run
    parts = []
    items = _whole_selection(ref)
    for i in missing:
        text = f"shard {i}/{count} ({where / shard_run_name(parent, ShardSpec(i, count))})"
        if items is not None:
            ids = [items[p].id for p in shard_positions(items, ShardSpec(i, count))]
            text += f" with {len(ids)} items: {_ids(ids)}"
        parts.append(text)
    return (f"missing {len(missing)} of {count} shards of {parent}: " + "; ".join(parts)
            + f". Run them (--shard I/{count}) and merge again")


def _whole_selection(m: RunManifest) -> Optional[list[Any]]:
    from .suite import SuiteError, load_suite

    try:
        suite = load_suite(m.suite_path)
    except (SuiteError, OSError):
        return None
    if suite.content_hash != m.suite_hash:
        return None
    items = select_items(suite, m.settings.limit if m.settings else None)
    return items if m.shard is not None and len(items) == m.shard.items_total else None


def ordered_items(folders: list[RunFolder], manifests: list[RunManifest]) -> list[str]:
    """items.jsonl lines of all shards in the one run's order; a position or an id held twice is an error naming it."""
    total = manifests[0].shard.items_total  # type: ignore[union-attr]
    slots: list[Optional[str]] = [None] * total
    owner: dict[str, Path] = {}
    duplicated: list[str] = []
    for f, m in zip(folders, manifests):
        assert m.shard is not None
        lines = f.item_lines()
        if len(lines) != len(m.shard.positions):
            raise MergeError(f"{f.path}: items.jsonl holds {len(lines)} items, its manifest places "
                             f"{len(m.shard.positions)}: the folder was changed after the run")
        for pos, line in zip(m.shard.positions, lines):
            iid = item_id(line)
            if iid in owner:
                duplicated.append(f"{iid} ({owner[iid]} and {f.path})")
            owner[iid] = f.path
            if not 0 <= pos < total or slots[pos] is not None:
                raise MergeError(f"{f.path}: item {iid} is placed at position {pos}, which another shard "
                                 "holds or which is out of range: the shards were not made by one assignment")
            slots[pos] = line
    if duplicated:
        raise MergeError(f"{len(duplicated)} items are in more than one shard: {_ids(duplicated)}")
    empty = [i for i, s in enumerate(slots) if s is None]
    if empty:
        raise MergeError(f"{len(empty)} of {total} item positions are held by no shard (positions "
                         f"{_ids([str(i) for i in empty])}): a shard is missing items")
    return [s for s in slots if s is not None]


def merge_shards(args: list[str], into: str, results: Path = Path("results"), *, command: Optional[list[str]] = None,
                 log: Callable[[str], None] = lambda m: print(m, file=sys.stderr)) -> MergeResult:
    """Check the shards, assemble the merged run next to its destination, finalize it, rename it into place."""
    folders = shard_folders(args, results)
    manifests = [f.manifest() for f in folders]
    check_shards(folders, manifests, log)
    order = sorted(range(len(folders)), key=lambda i: manifests[i].shard.index)  # type: ignore[union-attr]
    folders, manifests = [folders[i] for i in order], [manifests[i] for i in order]
    target = Path(into) if ("/" in into or os.sep in into) else results / into
    if target.name in (".", "..", ""):
        raise MergeError(f"--into {into!r} must name a run folder")
    previous = RunFolder(target)
    held: list[RunFolder] = []
    try:
        old_manifest = _previous_merge(previous, manifests[0]) if previous.exists() else None
        if old_manifest is None and target.exists() and any(target.iterdir()):
            raise MergeError(f"--into {target}: the folder exists and holds no run; choose another name")
        for f in ([previous] if old_manifest else []) + folders:
            f.lock()  # nobody writes a shard (or the merged run) while it is read
            held.append(f)
        with bulk():
            return _assemble(folders, manifests, target, old_manifest, command, log)
    finally:
        for f in held:
            f.close()


def _previous_merge(previous: RunFolder, ref: RunManifest) -> RunManifest:
    """The manifest of an earlier merge of the same shards at --into (merging again replaces it)."""
    old = previous.manifest()
    if old.merged_from is None:
        raise MergeError(f"--into {previous.path}: a run that is not a merge is there; choose another name")
    if old.suite_hash != ref.suite_hash or old.model.fingerprint != ref.model.fingerprint:
        raise MergeError(f"--into {previous.path}: it is a merge of another evaluation (suite or model differ); "
                         "choose another name")
    return old


def _assemble(folders: list[RunFolder], manifests: list[RunManifest], target: Path,
              old: Optional[RunManifest], command: Optional[list[str]], log: Callable[[str], None]) -> MergeResult:
    items = ordered_items(folders, manifests)
    tmp = target.parent / f".{target.name}.merging-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    try:
        out = RunFolder(tmp)
        out.write_item_lines(items)
        n_items = len(items)
        del items  # the merged run is finalized from its files
        counts = {}
        for stream in STREAMS:
            lines = RunFolder(target).raw(stream) if old else {}  # what was added to the merged run since
            for f in folders:
                lines.update(f.raw(stream))
            out.write_stream(stream, lines.values())
            counts[stream] = len(lines)
            del lines
        manifest = merged_manifest(folders, manifests, target.name, command)
        for name in (PROBE_SETTINGS, JUDGE_CONFIG):
            if folders[0].has(name):
                out.write_json(name, folders[0].read_json(name))
        if old is not None:
            _carry_over(RunFolder(target), out, old, manifest)
        log(f"merging {len(folders)} shards: {n_items} items, "
            + ", ".join(f"{n} {s}" for s, n in counts.items()))
        out.finalize(manifest)
        replace_dir(tmp, target)  # an earlier merge stays in place until this one is complete
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return MergeResult(RunFolder(target), [f.run_id for f in folders], n_items, counts, replaced=old is not None)


def merged_manifest(folders: list[RunFolder], manifests: list[RunManifest], run_id: str,
                    command: Optional[list[str]]) -> RunManifest:
    """Shard 0's manifest as the one run's: no shard, the shards it came from, summed usage, the earliest start."""
    manifest = manifests[0].model_copy(deep=True)
    manifest.run_id = run_id
    manifest.shard = None
    manifest.merged_from = [f.run_id for f in folders]
    manifest.started_at = min(m.started_at for m in manifests)
    manifest.finished_at = now()
    manifest.command = redact_argv(command) if command else manifest.command
    usage: dict[str, Any] = {}
    notes: list[str] = []
    for m in manifests:
        usage = add_usage(usage, m.usage)
        notes += [n for n in m.render_notes if n not in notes]
    manifest.usage, manifest.render_notes = usage, notes
    return manifest


def _carry_over(previous: RunFolder, out: RunFolder, old: RunManifest, manifest: RunManifest) -> None:
    """Keep what the merged run gained after the last merge: its judge (sfteval judge) and pairwise results."""
    if old.judge and not manifest.judge and previous.has(JUDGE_CONFIG):
        manifest.judge = old.judge
        out.write_json(JUDGE_CONFIG, previous.read_json(JUDGE_CONFIG))
    if not out.has(PROBE_SETTINGS) and previous.has(PROBE_SETTINGS):
        out.write_json(PROBE_SETTINGS, previous.read_json(PROBE_SETTINGS))
    if previous.has(PAIRS):
        shutil.copytree(previous.path / PAIRS, out.path / PAIRS)
