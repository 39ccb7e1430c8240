"""Entry points: the judge inside `sfteval run`, and `sfteval judge RUN` on stored answers.

Why a re-judge needs no generation: answers, items and the rendered prompts are all in the run folder,
so a new judge (or a fixed config) costs only judge calls -- and none for judgments already cached.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Optional

from sfteval.judges.config import JudgeConfig, UnknownAnswerTypeError

from ..models import Item, Judgment, RunManifest
from ..score import run_scorers, score_targets
from ..store import RunStore
from .single import AnswerTypeOf, JudgeScorer
from .spec import JUDGE_CONFIG_FILE, ActiveJudge, JudgeError, JudgeSpec, effective_k, save_active, spec_from_manifest

if TYPE_CHECKING:
    from ..runner import RunContext
    from ..suite import Suite


def check_answer_types(cfg: JudgeConfig, items: list[Item], answer_type_of: AnswerTypeOf) -> None:
    """Every item's answer type must exist in the judge config: fail before the first judge call."""
    for item in items:
        try:
            cfg.answer_type_for(item.task_type, answer_type_of(item))
        except UnknownAnswerTypeError as e:
            raise JudgeError(f"item {item.id} (task_type {item.task_type}): {e}") from None


def suite_answer_types(suite: Optional["Suite"]) -> AnswerTypeOf:
    """The item's own answer_type, else the suite's per-task_type setting, else the judge config's map."""
    if suite is None:
        return lambda item: item.answer_type
    return lambda item: item.answer_type or suite.settings_for(item.task_type).answer_type


def scorer_for_run(ctx: "RunContext", spec: JudgeSpec) -> JudgeScorer:
    """The judge as the run's second scorer; records the judge in the manifest first.

    An unreachable judge does not stop the run: its requests are stored as errors, so the answers and
    rule scores still get a summary and `sfteval judge RUN` retries only the failed judge requests.
    """
    spec = spec.keep_recorded_cache_key(ctx.manifest.judge)
    cfg = spec.load_config()
    k = effective_k(cfg, spec.samples)
    answer_type_of = suite_answer_types(ctx.suite)
    check_answer_types(cfg, ctx.items, answer_type_of)
    scorer = JudgeScorer(spec, cfg, k, ctx.store.read("judgments"), answer_type_of=answer_type_of, fail_fast=False,
                         log=ctx.log)
    save_active(ctx.store, ctx.manifest, spec, cfg, k, scorer.client.judge_id)
    return scorer


def _stored_suite(manifest: RunManifest, log: Callable[[str], None]) -> Optional["Suite"]:
    """The run's suite for its per-task_type settings, if it is still where it was and unchanged."""
    from ..suite import SuiteError, load_suite

    try:
        suite = load_suite(manifest.suite_path)
    except (SuiteError, OSError):
        suite = None
    if suite is None or suite.content_hash != manifest.suite_hash:
        log(f"note: suite {manifest.suite_path} is gone or changed; answer types come from the items and the "
            "judge config's task_type map (suite.yaml answer_type settings are not applied)")
        return None
    return suite


def judge_run(store: RunStore, spec: Optional[JudgeSpec], *, overrides: Optional[dict[str, Any]] = None,
              log: Callable[[str], None] = lambda m: print(m, file=sys.stderr)) -> dict[str, int]:
    """(Re)judge a run's stored answers and rewrite its summary.json and report.md.

    Without ``spec`` the judge recorded in the run is used (``overrides`` replace single settings).
    Returns counts of the active judge's samples (total, unparsed, errors) and of the new records.
    """
    from ..runner import finalize

    store.lock()
    try:
        manifest = store.read_manifest()
        recorded = manifest.judge
        if spec is None:
            if not recorded:
                raise JudgeError(f"run {store.run_id} has no judge recorded: pass --judge CONFIG --judge-model NAME")
            spec = spec_from_manifest(store.path, recorded, **(overrides or {}))
        spec = spec.keep_recorded_cache_key(recorded)
        cfg = spec.load_config()
        k = effective_k(cfg, spec.samples)
        items = [Item.model_validate(r) for r in store.read_items()]
        answer_type_of = suite_answer_types(_stored_suite(manifest, log))
        check_answer_types(cfg, items, answer_type_of)
        existing = store.read("judgments", Judgment)
        scorer = JudgeScorer(spec, cfg, k, existing, answer_type_of=answer_type_of, log=log)
        targets = score_targets(items, store.read("generations"))
        written = run_scorers(store, [scorer], targets)
        snapshot_used = recorded and Path(spec.config) == store.path / JUDGE_CONFIG_FILE
        save_active(store, manifest, spec, cfg, k, scorer.client.judge_id)
        if snapshot_used and manifest.judge is not None:  # keep naming the YAML file the config came from
            manifest.judge["config_source"] = recorded.get("config_source")  # type: ignore[union-attr]
        finalize(store, manifest)
        judge = ActiveJudge(cfg, spec.model, k, scorer.client.judge_id)
        active = [j for j in store.read("judgments", Judgment).values() if j.mode == "single" and judge.selects(j)]
        return {"records": written, "backend_calls": scorer.client.calls, "samples": len(active),
                "errors": sum(j.status == "error" for j in active),
                "unparsed": sum(j.status == "unparsed" for j in active)}
    finally:
        store.close()

