"""The probe stage of a run: compute what is missing, store it, never fail a run for lack of support.

`sfteval run` calls it after generation and scoring (probes on by default); `sfteval probe` runs it alone.
Records are keyed by content, so a resumed run computes only probes that are not stored yet.
"""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Any, Optional

from tqdm import tqdm

from ..backends.base import BackendError
from ..models import Generation, Item, ProbeResult, RunManifest
from ..store import PROBE_SETTINGS
from ..stages.base import GroupMetric, RunContext, RunError, RunRecords, Stage
from . import continuation as cont
from .core import compute_probes, plan_probes
from .metrics import probe_item_metrics, probe_markdown, probe_summary, ref_sum_total, ref_token_mean
from .options import ProbeOptions

if TYPE_CHECKING:
    import pandas as pd

    from ..summary import RunSummary


def unsupported_reason(ctx: RunContext) -> Optional[str]:
    if not getattr(ctx.backend, "supports_prompt_logprobs", False):
        return f"the {ctx.backend.name} backend cannot score prompt tokens"
    if ctx.renderer is None or ctx.backend.prompt_mode == "chat":
        return "prompts are rendered by the server (no local tokenizer), so the scored tokens are unknown"
    return None


def run_probe_stage(ctx: RunContext, options: ProbeOptions) -> None:
    """Reference + choice probes for the run's model, then (with a base model) the continuation probe."""
    reason = unsupported_reason(ctx)
    if reason:
        if options.required:
            raise BackendError(f"cannot probe: {reason}")
        ctx.log(f"warning: probes skipped: {reason} (pass --no-probes to silence this)")
        return
    assert ctx.renderer is not None
    check_settings(ctx, options)
    knowledge = cont.selected(ctx.items, options.continuation, ctx.suite.sources) if options.base else []
    stored: dict[str, ProbeResult] = ctx.store.read("probes", ProbeResult)
    done = {k for k, r in stored.items() if r.status == "ok"}
    plans = [p for p in plan_probes(ctx.items, ctx.renderer, options.config) if p.key not in done]
    errors = 0
    if plans:
        bar = tqdm(total=len(plans), desc="probe", unit="item", disable=not ctx.options.progress, file=sys.stderr,
                   dynamic_ncols=True)
        try:
            for record in compute_probes(ctx.backend, ctx.renderer, ctx.items, options.config, done=done,
                                         on_progress=bar.update):
                ctx.store.append("probes", record)
                errors += record.status != "ok"
        except BackendError as e:
            if options.required:
                raise
            ctx.log(f"warning: probes skipped: {e}")
            return
        finally:
            bar.close()
    if options.base:
        errors += run_continuation(ctx, options, knowledge, done)
    if errors:
        ctx.log(f"warning: {errors} probe records failed; they are stored as errors and retried on --resume")


SETTINGS = PROBE_SETTINGS


def check_settings(ctx: RunContext, options: ProbeOptions) -> None:
    """Record the probe settings; refuse to resume a run with different ones (its records would mix)."""
    from dataclasses import asdict

    from ..modelref import resolve_model

    base = resolve_model(options.base) if options.base else None  # a missing base fails before any work
    now = {"config": asdict(options.config), "continuation": asdict(options.continuation) if base else None,
           "base": {"path": base.path, "fingerprint": base.fingerprint} if base else None}
    now = json.loads(json.dumps(now))  # tuples as lists, as they come back from the file
    path = ctx.store.path / SETTINGS
    if path.exists():
        before = ctx.store.read_json(SETTINGS)
        changed = [k for k in now if now[k] is not None and before.get(k) not in (None, now[k])]
        if changed:
            raise RunError(f"probe settings changed since this run started ({', '.join(changed)}: {before} -> {now}); "
                           "start a new run (--run-name) to probe with other settings")
        now = {k: now[k] if now[k] is not None else before.get(k) for k in now}
    ctx.store.write_json(SETTINGS, now)


def _stored_answers(ctx: RunContext) -> dict[str, str]:
    """Greedy first-sample answers already generated in this run (reused as the SFT side)."""
    out: dict[str, str] = {}
    gens: dict[str, Generation] = ctx.store.read("generations", Generation)
    for g in gens.values():
        if g.status == "ok" and g.sample == 0 and g.turn == 0 and g.sampling.greedy:
            out[g.item_id] = g.answer
    return out


def run_continuation(ctx: RunContext, options: ProbeOptions, items: list[Item], done: set[str]) -> int:
    """SFT side with the run's backend, then the base side, for the selected knowledge ``items``. The base
    model is loaded next to the SFT model (same backend and options, minus adapters): on one GPU both must fit."""
    from ..backends import create_backend
    from ..modelref import resolve_model
    from ..render import Renderer

    cfg = options.continuation
    assert ctx.renderer is not None and options.base is not None
    base_info = resolve_model(options.base)
    contexts = {it.id: cont.sft_context(it, ctx.renderer) for it in items}
    keys = {it.id: cont.record_key(it, base_info.fingerprint, contexts[it.id], cfg) for it in items}
    todo = [it for it in items if keys[it.id] not in done]
    if not items:
        ctx.log(f"continuation probe: no knowledge items (task_types {', '.join(cfg.task_types)} or "
                "meta.continuation_prefix) in this suite")
        return 0
    if not todo:
        return 0
    ctx.log(f"continuation probe: {len(todo)} items, SFT side")
    answers = _stored_answers(ctx)
    sft = cont.run_side(ctx.backend, ctx.renderer,
                        [(contexts[it.id], cont.answer_text(it), answers.get(it.id)) for it in todo],
                        cfg.max_new_tokens, cfg.whitespace)
    ctx.log(f"continuation probe: base model {base_info.name}")
    # the SFT model's own files and adapters are not the base model's
    backend_options = {k: v for k, v in ctx.options.backend_options.items()
                       if k not in ("gguf_file", "tokenizer") and "lora" not in k}
    with create_backend(ctx.options.backend, model=base_info.path, seed=ctx.options.seed, **backend_options) as base:
        from transformers import AutoTokenizer

        base_renderer = Renderer(AutoTokenizer.from_pretrained(base_info.path), plain=True)
        pairs = [cont.base_pair(it, cfg) for it in todo]
        base_sides = cont.run_side(base, base_renderer, [(p, c, None) for p, c in pairs],
                                   cfg.max_new_tokens, cfg.whitespace)
    errors = 0
    for it, (prefix, _), b, s in zip(todo, pairs, base_sides, sft):
        record = cont.build_record(it, keys[it.id], prefix, b, s, f"{base_info.name} ({base_info.fingerprint})")
        ctx.store.append("probes", record)
        errors += record.status != "ok"
    return errors


class ProbeStage(Stage):
    """log P(reference | prompt), choice and continuation probes (``probe:*`` metrics, the ``probes`` block)."""

    name = "probes"
    order = 400

    def run(self, ctx: RunContext) -> None:
        if ctx.options.probes is not None:
            run_probe_stage(ctx, ctx.options.probes)

    def item_metrics(self, records: RunRecords) -> "pd.DataFrame":
        return probe_item_metrics(records)

    def group_metrics(self) -> dict[str, GroupMetric]:
        return {"probe:ref_token_mean": ref_token_mean, "probe:ref_sum_total": ref_sum_total}

    def summary_block(self, records: RunRecords, manifest: RunManifest, groups: dict[str, Any]) -> dict[str, Any]:
        return {"probes": probe_summary(records.probes)} if records.probes else {}

    def report_section(self, summary: "RunSummary") -> str:
        return probe_markdown(summary)
