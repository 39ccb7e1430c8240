"""`sfteval run`: validate, render, generate, score, aggregate — resumable at every step.

Stages read what earlier stages stored, so any stage can be re-run alone and a killed run
resumes without repeating finished work.
"""

from __future__ import annotations

import subprocess
import sys
from datetime import datetime
from pathlib import Path
from typing import Any, Callable, Optional

from . import __version__
from .backends import backend_class, create_backend
from .backends.base import Backend
from .judging.adaptive import single_units
from .judging.answers import check_answer_types, stored_suite, suite_answer_types
from .judging.dryrun import Estimate, estimate, placeholder_targets
from .judging.single import JudgeScorer
from .judging.spec import ActiveJudge, JudgeError, JudgeSpec, effective_k, save_active, spec_from_manifest
from .modelref import local_tokenizer_path, resolve_model
from .models import Item, Judgment, ModelInfo, RunManifest, RunSettings, ShardInfo
from .redact import redact_argv, redact_value
from .render import Renderer
from .runfolder import RunFolder, now
from .score import run_scorers, score_targets
from .shard import ASSIGNMENT, shard_positions, shard_run_name
from .stages.base import RunContext, RunError, RunOptions, Stage
from .stages.registry import stages as registered_stages
from .store import JUDGE_CONFIG
from .suite import Suite, load_suite

__all__ = ["RunError", "RunOptions", "estimate_rejudge", "estimate_run", "rejudge", "run_eval"]

#: RunSettings fields and the command-line options that set them
_SETTING_FLAGS = {"limit": "--limit", "prompt_format": "--prompt-format", "tokenizer": "--tokenizer",
                  "seed": "--seed", "think_markers": "--think-markers/--keep-think", "temperature": "--temperature",
                  "max_new_tokens": "--max-new-tokens"}
#: fields that only matter where answers are generated (`sfteval probe` may resume a run made by `sfteval run`)
_GENERATION_SETTINGS = ("seed", "think_markers", "temperature", "max_new_tokens")


def git_revision() -> Optional[str]:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=5,
                             cwd=Path(__file__).resolve().parent)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def default_run_id(model: ModelInfo, suite: Suite) -> str:
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    return f"{model.name}__{suite.name}__{stamp}"


def run_settings(opts: RunOptions) -> RunSettings:
    """The typed snapshot of the options a resume must repeat (see :class:`RunSettings`)."""
    tok = opts.tokenizer
    if tok and Path(tok).exists():
        tok = str(Path(tok).resolve())  # the same folder, whichever directory the resume runs from
    return RunSettings(
        seed=opts.seed, limit=opts.limit, prompt_format=opts.prompt_format,  # type: ignore[arg-type]
        think_markers=(opts.think.open, opts.think.close) if opts.think else None,
        temperature=opts.overrides.get("temperature"), max_new_tokens=opts.overrides.get("max_new_tokens"),
        tokenizer=tok, chat_template_file=str(Path(opts.chat_template).resolve()) if opts.chat_template else None,
        generate=opts.generate,
    )


def _shown(field_name: str, value: Any) -> str:
    if value is None:
        return "--keep-think" if field_name == "think_markers" else "not set"
    if field_name == "think_markers":
        return ",".join(value)
    return str(value)


def settings_changes(old: RunSettings, new: RunSettings) -> list[str]:
    """'--max-new-tokens was 16, now 32' for every recorded option the resume would change."""
    fields = [f for f in _SETTING_FLAGS if f not in _GENERATION_SETTINGS or (old.generate and new.generate)]
    return [f"{_SETTING_FLAGS[f]} was {_shown(f, getattr(old, f))}, now {_shown(f, getattr(new, f))}"
            for f in fields if getattr(old, f) != getattr(new, f)]


def resume_problems(old: RunManifest, opts: RunOptions, model: ModelInfo, suite: Suite) -> list[str]:
    problems = []
    if old.suite_hash != suite.content_hash:
        problems.append(f"suite content changed (hash {old.suite_hash[:12]} -> {suite.content_hash[:12]})")
    if old.model.fingerprint != model.fingerprint:
        problems.append(f"model changed ({old.model.path} fingerprint {old.model.fingerprint} -> {model.fingerprint})")
    if old.backend != opts.backend:
        problems.append(f"backend changed ({old.backend} -> {opts.backend})")
    if old.settings is not None:
        problems += settings_changes(old.settings, run_settings(opts))
    elif opts.generate and old.seed != opts.seed:  # a run written before settings were recorded
        problems.append(f"--seed was {old.seed}, now {opts.seed}")
    old_shard = f"{old.shard.index}/{old.shard.count}" if old.shard else "not set"
    if old_shard != (str(opts.shard) if opts.shard else "not set"):
        problems.append(f"--shard was {old_shard}, now {opts.shard or 'not set'}")
    return problems


def find_resumed(opts: RunOptions) -> tuple[RunFolder, bool]:
    """The folder ``--resume`` names, and whether its run ever started (wrote a manifest).

    A run killed while loading the model leaves a folder without a manifest; resuming it starts it afresh.
    """
    assert opts.resume
    candidates = [RunFolder(Path(opts.resume)), RunFolder(opts.out / opts.resume)]
    if opts.shard:  # --resume PARENT finds this shard's folder first (PARENT itself may be the merged run)
        candidates.insert(0, RunFolder(opts.out / shard_run_name(Path(opts.resume).name, opts.shard)))
    for store in candidates:
        if store.exists():
            return store, True
    for store in reversed(candidates):
        if store.is_unstarted():
            return store, False
    raise RunError(f"--resume {opts.resume}: no run found at {candidates[1].path}")


def open_store(opts: RunOptions, model: ModelInfo, suite: Suite,
               log: Callable[[str], None] = lambda m: None) -> tuple[RunFolder, Optional[RunManifest]]:
    if opts.resume:
        try:
            store, started = find_resumed(opts)
        except RunError:
            if opts.shard is None:
                raise
            # a job array's task runs one command, first time or again: a shard not begun yet starts now
            store, started = RunFolder(opts.out / shard_run_name(Path(opts.resume).name, opts.shard)), False
            log(f"no folder for shard {opts.shard} of {opts.resume} yet: starting it")
            return store, None
        if not started:
            log(f"{store.path} holds no manifest (stopped before the run started): starting it now")
            return store, None
        old = store.manifest()
        problems = resume_problems(old, opts, model, suite)
        if problems:
            raise RunError(f"cannot resume {store.run_id}: " + "; ".join(problems)
                           + ". Resume with the original values, or start a new run.")
        if old.settings is None:
            log(f"{store.run_id} was written before run options were recorded: only --seed could be checked")
        return store, old
    run_id = opts.run_name or default_run_id(model, suite)
    if "/" in run_id or run_id in (".", ".."):
        raise RunError(f"--run-name {run_id!r} must be a plain folder name")
    if opts.shard:
        run_id = shard_run_name(parent_run_name(opts, model, suite), opts.shard)
    store = RunFolder(opts.out / run_id)
    if store.exists():
        raise RunError(f"run {run_id!r} already exists in {opts.out}; pass --resume {run_id} to continue it, "
                       "or choose another --run-name")
    return store, None


def parent_run_name(opts: RunOptions, model: ModelInfo, suite: Suite) -> str:
    """The run a shard belongs to: --run-name, else model and suite (no timestamp: every job must agree on it)."""
    return opts.run_name or f"{model.name}__{suite.name}"


def shard_parent(opts: RunOptions, model: ModelInfo, suite: Suite, previous: Optional[RunManifest]) -> str:
    if previous is not None and previous.shard is not None:
        return previous.shard.parent_run
    if opts.resume:  # a shard stopped before its manifest: --resume PARENT or the shard folder itself
        return Path(opts.resume).name.split("__shard-")[0]
    return parent_run_name(opts, model, suite)


def shard_info(opts: RunOptions, items: list[Item], parent: str) -> tuple[list[Item], Optional[ShardInfo]]:
    """``--shard I/N``: this shard's items (in suite order) and its place in the parent run."""
    if opts.shard is None:
        return items, None
    positions = shard_positions(items, opts.shard)
    return [items[p] for p in positions], ShardInfo(
        index=opts.shard.index, count=opts.shard.count, parent_run=parent, assignment=ASSIGNMENT,
        items_total=len(items), positions=positions)


def read_chat_template(opts: RunOptions) -> Optional[str]:
    """``--chat-template FILE``, checked before any model loads (a Jinja syntax error names its line)."""
    if opts.chat_template is None:
        return None
    if opts.prompt_format == "plain":
        raise RunError("--chat-template and --prompt-format plain exclude each other (plain applies no template)")
    path = Path(opts.chat_template)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise RunError(f"--chat-template {path}: cannot read it ({e})") from None
    if not text.strip():
        raise RunError(f"--chat-template {path}: the file is empty")
    import jinja2

    try:
        jinja2.Environment(extensions=["jinja2.ext.loopcontrols"]).parse(text)
    except jinja2.TemplateSyntaxError as e:
        raise RunError(f"--chat-template {path}:{e.lineno}: {e.message}") from None
    return text


def build_renderer(opts: RunOptions, model: ModelInfo, backend: Backend, log: Callable[[str], None],
                   chat_template: Optional[str] = None) -> Optional[Renderer]:
    tok_path = local_tokenizer_path(model, opts.tokenizer)
    if tok_path is None:
        if chat_template is not None:
            raise RunError("--chat-template needs a tokenizer to render with: pass --tokenizer PATH")
        if backend.prompt_mode != "chat":
            raise RunError("no tokenizer to render prompts with: pass --tokenizer PATH")
        log("no local tokenizer: the server applies its own chat template (recorded as prompt_mode=chat)")
        return None
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tok_path)
    if chat_template is not None:
        tokenizer.chat_template = chat_template
    return Renderer(tokenizer, plain=opts.prompt_format == "plain")


def sampling_defaults(suite: Suite, overrides: dict[str, Any]) -> dict[str, Any]:
    """The suite's default generation settings as this run applies them (command-line overrides included)."""
    values = suite.settings_for("_").model_dump(exclude={"rules", "answer_type", "weight"})
    values.update({k: v for k, v in overrides.items() if v is not None and k in values})
    return values


def select_items(suite: Suite, limit: Optional[int]) -> list[Item]:
    """``--limit N``: the first N items of every task_type (a quick run that still covers all of them)."""
    if limit is None:
        return list(suite.items)
    seen: dict[str, int] = {}
    out = []
    for it in suite.items:
        if seen.get(it.task_type, 0) < limit:
            out.append(it)
            seen[it.task_type] = seen.get(it.task_type, 0) + 1
    return out


def run_eval(opts: RunOptions, *, stages: Optional[list[Stage]] = None,
             log: Callable[[str], None] = lambda m: print(m, file=sys.stderr)) -> RunFolder:
    """Run (or resume) one evaluation through the registered stages; returns the finished run's folder."""
    suite = load_suite(opts.suite)  # validation happens before any model is loaded
    items = select_items(suite, opts.limit)
    chat_template = read_chat_template(opts)
    model = resolve_model(opts.model, must_exist=backend_class(opts.backend).loads_local_weights)
    store, previous = open_store(opts, model, suite, log)
    items, shard = shard_info(opts, items, shard_parent(opts, model, suite, previous))
    store.lock()
    log(f"run: {store.path} (resume with --resume {store.run_id})")
    try:
        backend = create_backend(opts.backend, model=model.path, tokenizer=opts.tokenizer, seed=opts.seed,
                                 dispatch=opts.dispatch, **opts.backend_options)
        backend.progress = opts.progress
        with backend:
            renderer = build_renderer(opts, model, backend, log, chat_template)
            if renderer is not None:
                model.tokenizer = opts.tokenizer or model.path
                model.chat_template_hash = renderer.template_hash
            if previous is not None:
                check_template(previous, model, store.run_id)
            manifest = start_manifest(opts, store, previous, model, suite, backend, renderer)
            manifest.shard = manifest.shard or shard
            if previous is None:
                store.write_items(it.model_dump(mode="json", exclude_none=True) for it in items)
            store.write_manifest(manifest)
            ctx = RunContext(opts, suite, items, model, store, manifest, backend, renderer, log)
            try:
                execute(ctx, registered_stages() if stages is None else stages)
            except BaseException:
                manifest.status = "interrupted"
                manifest.render_notes = renderer.notes if renderer else []
                store.write_manifest(manifest)
                raise
    finally:
        store.close()
    return store


def start_manifest(opts: RunOptions, store: RunFolder, previous: Optional[RunManifest], model: ModelInfo,
                   suite: Suite, backend: Backend, renderer: Optional[Renderer]) -> RunManifest:
    """The manifest of a new run, or the resumed run's, updated with this session's backend and template."""
    manifest = previous or RunManifest(
        run_id=store.run_id, sfteval_version=__version__, git_revision=git_revision(),
        command=redact_argv(opts.command), model=model, backend=opts.backend,
        suite_name=suite.name, suite_version=suite.version, suite_hash=suite.content_hash,
        suite_path=str(suite.path), seed=opts.seed, started_at=now(),
        sampling_defaults=sampling_defaults(suite, opts.overrides), settings=run_settings(opts),
    )
    if opts.generate and manifest.settings is not None and not manifest.settings.generate:
        # a probe-only run that now also generates: record the generation settings it uses
        manifest.settings = run_settings(opts)
        manifest.seed = opts.seed
        manifest.sampling_defaults = sampling_defaults(suite, opts.overrides)
    manifest.status = "running"
    manifest.backend_settings = redact_value(backend.effective_settings())
    manifest.prompt_mode = "chat" if renderer is None or backend.prompt_mode == "chat" else "rendered"
    manifest.chat_template = renderer.chat_template if renderer else None
    return manifest


def check_template(previous: RunManifest, model: ModelInfo, run_id: str) -> None:
    """A resume must render prompts with the same chat template (generation keys do not include the prompt)."""
    old, new = previous.model.chat_template_hash, model.chat_template_hash
    if old != new:
        raise RunError(f"cannot resume {run_id}: the chat template changed (hash {old or 'none'} -> {new or 'none'}; "
                       "see --tokenizer and --chat-template). Resume with the original template, or start a new run.")


def execute(ctx: RunContext, stages: list[Stage]) -> None:
    """Every stage checks its settings first (a bad judge config fails before any GPU time), then runs."""
    for stage in stages:
        stage.prepare(ctx)
    for stage in stages:
        stage.run(ctx)
    ctx.manifest.render_notes = ctx.renderer.notes if ctx.renderer else []
    ctx.manifest.backend_settings = redact_value(ctx.backend.effective_settings())  # incl. what was sent
    ctx.manifest.usage = add_usage(ctx.manifest.usage, ctx.backend.usage())
    assert isinstance(ctx.store, RunFolder)
    ctx.store.finalize(ctx.manifest)


def add_usage(before: dict[str, Any], session: dict[str, Any]) -> dict[str, Any]:
    """Token/cost totals summed over the sessions of a resumed run (numbers add, anything else is replaced)."""
    out = dict(before)
    for k, v in session.items():
        old = out.get(k)
        both_numbers = isinstance(v, (int, float)) and isinstance(old, (int, float))
        out[k] = round(old + v, 6) if both_numbers else v
    return out


def _rejudge_setup(folder: RunFolder, spec: Optional[JudgeSpec], overrides: Optional[dict[str, Any]],
                   log: Callable[[str], None]) -> tuple[JudgeScorer, list[Item], RunManifest]:
    """The scorer `sfteval judge RUN` uses: the given judge, else the one the run recorded with ``overrides``."""
    manifest = folder.manifest()
    recorded = manifest.judge
    if spec is None:
        if not recorded:
            raise JudgeError(f"run {folder.run_id} has no judge recorded: pass --judge CONFIG --judge-model NAME")
        spec = spec_from_manifest(folder.path, recorded, **(overrides or {}))
    spec = spec.keep_recorded_cache_key(recorded)
    cfg = spec.load_config()
    k = effective_k(cfg, spec.samples)
    items = folder.items()
    answer_type_of = suite_answer_types(stored_suite(manifest, log))
    check_answer_types(cfg, items, answer_type_of)
    scorer = JudgeScorer(spec, cfg, k, folder.read("judgments", Judgment), answer_type_of=answer_type_of, log=log,
                         workdir=folder.path)
    return scorer, items, manifest


def rejudge(folder: RunFolder, spec: Optional[JudgeSpec], *, overrides: Optional[dict[str, Any]] = None,
            log: Callable[[str], None] = lambda m: print(m, file=sys.stderr)) -> dict[str, int]:
    """(Re)judge a run's stored answers and rewrite its summary.json and report.md (`sfteval judge RUN`).

    Why no generation: answers, items and the rendered prompts are all in the run folder, so a new judge (or a
    fixed config) costs only judge calls -- and none for judgments already cached. Without ``spec`` the judge
    recorded in the run is used (``overrides`` replace single settings). Returns counts of the active judge's
    samples (total, unparsed, errors, not judged) and of the new records.
    """
    folder.lock()
    try:
        scorer, items, manifest = _rejudge_setup(folder, spec, overrides, log)
        recorded = manifest.judge
        spec, cfg, k = scorer.spec, scorer.cfg, scorer.k
        written = run_scorers(folder, [scorer], score_targets(items, folder.read("generations")))
        snapshot_used = recorded and Path(spec.config) == folder.path / JUDGE_CONFIG
        save_active(folder, manifest, spec, cfg, k, scorer.client.judge_id)
        if snapshot_used and manifest.judge is not None:  # keep naming the YAML file the config came from
            manifest.judge["config_source"] = recorded.get("config_source")  # type: ignore[union-attr]
        folder.finalize(manifest)
        judge = ActiveJudge(cfg, spec.model, k, scorer.client.judge_id)
        active = [j for j in folder.read("judgments", Judgment).values() if j.mode == "single" and judge.selects(j)]
        return {"records": written, "backend_calls": scorer.client.calls, "samples": len(active),
                "errors": sum(j.status == "error" for j in active),
                "unparsed": sum(j.status == "unparsed" for j in active),
                "not_judged": sum(j.status == "not_judged" for j in active)}
    finally:
        folder.close()


def estimate_rejudge(folder: RunFolder, spec: Optional[JudgeSpec], *, overrides: Optional[dict[str, Any]] = None,
                     log: Callable[[str], None] = lambda m: None) -> Estimate:
    """`sfteval judge RUN --dry-run`: what judging the stored answers would send and cost; nothing is written."""
    scorer, items, _ = _rejudge_setup(folder, spec, overrides, log)
    calls = scorer.calls(score_targets(items, folder.read("generations")))
    adaptive = scorer.cfg.sampling.adaptive and scorer.k > 1
    return estimate(f"judge {folder.run_id}", calls, scorer.client, scorer.existing,
                    units=single_units if adaptive else None)


def estimate_run(opts: RunOptions, log: Callable[[str], None] = lambda m: None) -> Estimate:
    """`sfteval run --judge ... --dry-run`: the judge calls of a new run, before any answer exists (no model is
    loaded). Each answer counts as its task_type's max_new_tokens, so the prompt tokens are an upper estimate."""
    if opts.judge is None:
        raise RunError("--dry-run estimates what the judge will cost: pass --judge CONFIG --judge-model NAME")
    if opts.resume:
        raise RunError(f"--dry-run with --resume: `sfteval judge {opts.resume} --dry-run` estimates judging the "
                       "stored answers")
    suite = load_suite(opts.suite)
    items = select_items(suite, opts.limit)
    spec = opts.judge
    cfg = spec.load_config()
    k = effective_k(cfg, spec.samples)
    answer_type_of = suite_answer_types(suite)
    check_answer_types(cfg, items, answer_type_of)
    scorer = JudgeScorer(spec, cfg, k, {}, answer_type_of=answer_type_of, log=log)
    settings = sampling_defaults(suite, opts.overrides)

    def max_new(item: Item) -> int:
        return int(opts.overrides.get("max_new_tokens") or suite.settings_for(item.task_type).max_new_tokens
                   or settings["max_new_tokens"])

    calls = scorer.calls(placeholder_targets(items, lambda it: int(suite.settings_for(it.task_type).samples or 1)))
    by_id = {it.id: it for it in items}
    adaptive = cfg.sampling.adaptive and k > 1
    est = estimate(f"run {opts.run_name or 'NEW'} on {suite.name}", calls, scorer.client, {},
                   units=single_units if adaptive else None,
                   extra_tokens=lambda c: max_new(by_id[c.template.item_id]) * by_id[c.template.item_id].n_answer_turns)
    est.notes.append("the answers do not exist yet: each counts as max_new_tokens tokens (an upper estimate, in the "
                     "candidate's tokens); `sfteval judge RUN --dry-run` counts the stored answers exactly")
    return est
