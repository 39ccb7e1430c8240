"""`sfteval judge` and the --judge* option group it shares with `sfteval run` (declared once, here)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Optional

import click

from .common import friendly, parse_key_values

if TYPE_CHECKING:
    from ..judging.spec import JudgeSpec
    from ..summary import RunSummary

def judge_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Add the --judge* options (config, model, endpoint, backend, samples, API-key variable, backend options)."""
    options = [
        click.option("--judge", "judge", metavar="CONFIG",
                     help="Judge config: a built-in name (alignbench-zh, default-en) or a YAML file."),
        click.option("--judge-model", metavar="NAME",
                     help="Judge model: a served model name (openai backend) or a checkpoint folder (hf)."),
        click.option("--judge-base-url", metavar="URL",
                     help="OpenAI-compatible endpoint of the judge (vllm serve, SGLang, TGI, llama.cpp, OpenAI). "
                          "Part of the judge's cache key: the same model on another host or port is judged "
                          "afresh (see --judge-cache-key)."),
        click.option("--judge-backend", metavar="NAME",
                     help="How the judge runs: openai (default; any OpenAI-compatible server) or hf (a local "
                          "checkpoint via transformers); any registered backend name works."),
        click.option("--judge-samples", type=click.IntRange(1), metavar="K",
                     help="Judge samples per answer (default: the config's sampling.k); median per dimension."),
        click.option("--judge-api-key-env", metavar="NAME",
                     help="Environment variable holding the judge's API key (default: OPENAI_API_KEY). "
                          "The key itself is never stored."),
        click.option("--judge-option", "judge_option", multiple=True, metavar="KEY=VALUE",
                     help="Judge-backend option, repeatable (e.g. concurrency=32, device=cuda:1)."),
        click.option("--judge-mode", type=click.Choice(["online", "batch"]),
                     help="online (default): requests through the judge backend. batch: the OpenAI Batch API "
                          "(about half the price, results within its window; --judge-option batch_poll_s=30) or, "
                          "with --judge-backend vllm, vLLM's offline batch runner. The batch ids are kept in the run "
                          "folder: a killed command, run again, collects the same batch and pays nothing twice."),
        click.option("--judge-adaptive/--judge-fixed-repeats", "judge_adaptive", default=None,
                     help="Adaptive repeats (the config's sampling.adaptive): draw judge samples one round at a time "
                          "and stop once the first ones agree (2 equal overall scores; the same verdict in both "
                          "orders of a pair), up to k. Cached judgments stay valid either way."),
        click.option("--judge-tokenizer", metavar="PATH",
                     help="A local tokenizer folder that counts the judge's prompt tokens for --dry-run and "
                          "--max-cost (default: a local judge's own; tiktoken for OpenAI models when installed; "
                          "else an estimate, said so)."),
        click.option("--max-cost", type=click.FloatRange(min=0), metavar="USD",
                     help="Spend at most this on judge calls in this command, at the configured prices "
                          "(--judge-option price_per_1k_prompt=... price_per_1k_completion=...). Dispatch stops "
                          "before a request could pass it; what was not sent is stored as not_judged (reason "
                          "budget, never a score) and a later run continues there. Cached calls are free."),
        click.option("--max-judge-calls", type=click.IntRange(min=0), metavar="N",
                     help="Send at most N judge requests in this command (retries of unparsed answers count); "
                          "the rest is not_judged (budget), continued by a later run."),
        click.option("--dry-run", is_flag=True,
                     help="Print the judge calls needed (new vs already judged or cached), prompt tokens, "
                          "completion tokens and cost at the configured prices; send nothing, write nothing."),
        click.option("--judge-cache-key", type=click.Choice(["endpoint", "model"]),
                     help="What identifies the judge in the cache. endpoint (default): model name, endpoint URL "
                          "and answer-changing options, so moving the judge server re-sends every request. model: "
                          "the model name and judge config only, so judgments of the same model name from any "
                          "endpoint are reused (for when you know it is the same model). Recorded with the run; "
                          "later re-judges keep it."),
    ]
    for opt in reversed(options):
        fn = opt(fn)
    return fn


def spec_from_options(values: dict[str, Any], *, progress: bool = True,
                      recorded_ok: bool = False) -> Optional["JudgeSpec"]:
    """A validated JudgeSpec from the --judge* values; None when no judge config was given.

    ``recorded_ok``: settings without --judge are overrides of a run's recorded judge (`sfteval judge`).
    """
    from ..judging.spec import DEFAULT_API_KEY_ENV, JudgeSpec, effective_k

    config, model = values.get("judge"), values.get("judge_model")
    budget_keys = ("max_cost", "max_judge_calls", "dry_run")
    given = [f"--{k.replace('_', '-')}" for k, v in values.items()
             if (k.startswith("judge_") or k in budget_keys) and v not in (None, (), False)]
    if config is None:
        if given and not recorded_ok:
            raise click.UsageError(f"{', '.join(given)} need --judge CONFIG (and --judge-model NAME)")
        return None
    if model is None:
        raise click.UsageError("--judge CONFIG needs --judge-model NAME (a served model name or a checkpoint folder)")
    spec = JudgeSpec(config=config, model=model, backend=values.get("judge_backend") or "openai",
                     base_url=values.get("judge_base_url"),
                     api_key_env=values.get("judge_api_key_env") or DEFAULT_API_KEY_ENV,
                     samples=values.get("judge_samples"), progress=progress,
                     options=parse_key_values(tuple(values.get("judge_option") or ()), "--judge-option"),
                     cache_key=values.get("judge_cache_key"), **_dispatch_fields(values))
    check_spec(spec)
    effective_k(spec.load_config(), spec.samples)  # a bad config fails now, before any model loads
    return spec


def _dispatch_fields(values: dict[str, Any]) -> dict[str, Any]:
    """JudgeSpec fields of how judge calls are sent and capped (never recorded as the judge's identity)."""
    out = {"mode": values.get("judge_mode"), "tokenizer": values.get("judge_tokenizer"),
           "adaptive": values.get("judge_adaptive"), "max_cost": values.get("max_cost"),
           "max_calls": values.get("max_judge_calls")}
    return {k: v for k, v in out.items() if v is not None}


def check_spec(spec: "JudgeSpec") -> None:
    """Settings that cannot work together, as one usage error naming them (before anything is loaded)."""
    from ..judging.cost import Prices
    from ..judging.spec import check_judge_options

    check_judge_options(spec)  # a JudgeError: one line, exit 2
    if spec.mode == "batch" and spec.backend not in ("openai", "vllm"):
        raise click.UsageError(f"--judge-mode batch needs --judge-backend openai (the Batch API) or vllm (its offline "
                               f"batch runner), not {spec.backend}")
    if spec.max_cost is not None and not Prices.of(spec).known:
        raise click.UsageError("--max-cost needs the judge's prices: --judge-option price_per_1k_prompt=USD "
                               "--judge-option price_per_1k_completion=USD")


def overrides_from_options(values: dict[str, Any]) -> dict[str, Any]:
    """Single settings that replace a run's recorded judge (`sfteval judge RUN --judge-samples 5`)."""

    out = {"model": values.get("judge_model"), "backend": values.get("judge_backend"),
           "base_url": values.get("judge_base_url"), "api_key_env": values.get("judge_api_key_env"),
           "samples": values.get("judge_samples"), "cache_key": values.get("judge_cache_key"),
           **_dispatch_fields(values)}
    if values.get("judge_option"):
        out["options"] = parse_key_values(tuple(values["judge_option"]), "--judge-option")
    return {k: v for k, v in out.items() if v is not None}


JUDGE_EPILOG = """
\b
Examples:
  sfteval judge results/v2 --judge alignbench-zh --judge-model qwen-72b --judge-base-url http://gpu1:8000/v1
  sfteval judge results/v2                         # again with the recorded judge: cached, no calls
  sfteval judge results/v2 --judge-samples 5       # 2 more samples per answer, the first 3 are cached
  sfteval judge --pair v1 v2 --judge default-en --judge-model gpt-4o   # v2 (candidate) vs v1 (baseline)
  sfteval judge results/v2 --judge-base-url http://gpu2:9000/v1 --judge-cache-key model
                                                   # the same judge model, moved: cached, no calls

\b
Cost:
  sfteval judge v2 --judge default-en --judge-model gpt-4o --judge-option price_per_1k_prompt=0.0025 \\
      --judge-option price_per_1k_completion=0.01 --dry-run      # calls, tokens, cost; nothing sent
  sfteval judge v2 --max-cost 5                    # the recorded judge, at most $5 now; again continues
  sfteval judge v2 --max-judge-calls 500           # at most 500 requests now
  sfteval judge v2 --judge-mode batch              # the Batch API at half price; killed? run it again
  sfteval judge --pair v1 v2 --judge-adaptive      # stop repeats once both orders agree

\b
Single grading rewrites RUN/summary.json and RUN/report.md. Pairwise writes
RESULTS/<RUN_B>/pairs/<RUN_A>/ (judgments.jsonl, pair_items.jsonl, pair_summary.json, pair_report.md).
The API key is read from $OPENAI_API_KEY (or --judge-api-key-env NAME) and never stored.

\b
The cache key of a judgment holds the judge config, the prompt, the sample and the judge: by default its
model name, endpoint URL and answer-changing options, so the same model served on another host or port
re-sends every request. --judge-cache-key model keys by model name (and config) only; the choice is
recorded in the run's judge entry and kept by later re-judges (--judge-cache-key endpoint to go back).
"""


@click.command("judge", epilog=JUDGE_EPILOG)
@click.argument("runs", nargs=-1, required=True, metavar="RUN | --pair RUN_A RUN_B")
@click.option("--pair", is_flag=True, help="Pairwise: RUN_B (candidate) vs RUN_A (baseline), both orders.")
@judge_options
@click.option("--out", default="results", show_default=True, type=click.Path(file_okay=False, path_type=Path),
              help="Results root that run names are looked up in.")
@click.option("--quiet", "-q", is_flag=True,
              help="Print only the final line (the counts and the run or pair folder, on stdout), warnings and "
                   "errors: no progress bars, library logs, notes or table.")
def judge_cmd(runs: tuple[str, ...], pair: bool, out: Path, quiet: bool, **judge_values: Any) -> None:
    """(Re)judge stored answers with an LLM judge, without regenerating them.

    Judgments are cached by content (judge config hash, judge model, prompt, sample):
    re-running costs no judge call. Unparsed judge outputs are excluded and counted, never 0.
    """
    friendly(_judge)(runs, pair, out, quiet, judge_values)


def _judge(runs: tuple[str, ...], pair: bool, out: Path, quiet: bool, values: dict[str, Any]) -> None:
    from ..judging.spec import spec_from_manifest
    from ..quiet import make_quiet, stderr_log
    from ..runfolder import RunFolder
    from ..runner import rejudge

    if quiet:
        make_quiet()

    if len(runs) != (2 if pair else 1):
        raise click.UsageError("--pair needs exactly two runs: RUN_A (baseline) RUN_B (candidate)" if pair
                               else "give one run to judge (or --pair RUN_A RUN_B)")
    spec = spec_from_options(values, progress=not quiet, recorded_ok=True)  # fails before anything is read
    overrides = {**overrides_from_options(values), "progress": not quiet}
    dry_run = values.get("dry_run")
    if pair:
        from ..judging.pair import estimate_pair, judge_pair
        from ..store import PAIR_REPORT

        a, b = RunFolder.open(runs[0], out), RunFolder.open(runs[1], out)
        if spec is None:
            recorded = b.manifest().judge
            if not recorded:
                raise click.UsageError(f"run {b.run_id} has no recorded judge: pass --judge CONFIG --judge-model NAME")
            spec = spec_from_manifest(b.path, recorded, **overrides)
            check_spec(spec)
        if dry_run:
            click.echo(estimate_pair(a, b, spec).render(), nl=False)
            return
        summary = judge_pair(a, b, spec, log=stderr_log)
        pair_folder = b.pair_dir(a.run_id)
        if not quiet:
            click.echo((pair_folder / PAIR_REPORT).read_text(encoding="utf-8"))
        r = summary["reliability"]
        click.echo(_judged_line(r["samples"], None, r["unparsed"], r["errors"], r["not_judged"],
                                f"pair: {pair_folder}"))  # the final line, with -q the only one
        _warn_not_judged(r["not_judged"], f"--pair {runs[0]} {runs[1]}")
        _exit_on_errors(r["errors"], r["samples"], f"--pair {runs[0]} {runs[1]}")
        return
    folder = RunFolder.open(runs[0], out)
    if dry_run:
        from ..runner import estimate_rejudge

        click.echo(estimate_rejudge(folder, spec, overrides=overrides, log=stderr_log).render(), nl=False)
        return
    counts = rejudge(folder, spec, overrides=overrides, log=stderr_log)
    if not quiet:
        from ..judging.report import run_judge_markdown
        from ..report import summary_table

        summary = folder.summary()
        click.echo(summary_table(summary))
        click.echo("\n" + run_judge_markdown(summary))
    click.echo(_judged_line(counts["samples"], counts["records"], counts["unparsed"], counts["errors"],
                            counts["not_judged"], f"run: {folder.path}"))  # the final line, with -q the only one
    _warn_not_judged(counts["not_judged"], runs[0])
    _exit_on_errors(counts["errors"], counts["samples"], runs[0])


def _judged_line(samples: int, new: Optional[int], unparsed: int, errors: int, not_judged: int, where: str) -> str:
    fresh = "" if new is None else f" ({new} new)"
    return (f"judged: {samples} judge samples{fresh}, {unparsed} unparsed, {errors} failed, {not_judged} not judged "
            f"(budget); {where}")


def _warn_not_judged(n: int, again: str) -> None:
    """The budget ran out: say so on stderr (the exit status stays 0: the command did what it was told)."""
    if n:
        click.echo(f"sfteval: warning: {n} judge samples were not judged (budget); they are excluded from scores "
                   f"and `sfteval judge {again}` (with a higher cap) continues there", err=True)


def judge_notes(summary: "RunSummary") -> str:
    """Terminal lines after `sfteval run --judge`: who judged, the reliability warnings."""
    j = summary.judge
    if j is None:
        return ""
    r = j.reliability
    lines = [f"\njudge: {j.model} ({j.config}, k={j.samples}): {j.items_scored}/{j.items_judged} items "
             f"scored; unparsed {r.unparsed}, failed {r.errors}, not judged {r.not_judged} of {r.samples} judge "
             "samples"]
    if j.usage is not None:
        cost = "" if j.usage.cost is None else f", ${j.usage.cost:,.4f}"
        lines.append(f"judge cost: {j.usage.calls} calls, {j.usage.prompt_tokens:,} prompt + "
                     f"{j.usage.completion_tokens:,} completion tokens{cost}")
    lines += [f"judge warning: {w}" for w in r.warnings]
    return "\n".join(lines) + "\n"


def exit_on_judge_errors(summary: "RunSummary", run_id: str) -> None:
    if summary.judge is not None:
        _warn_not_judged(summary.judge.reliability.not_judged, run_id)
        _exit_on_errors(summary.judge.reliability.errors, summary.judge.reliability.samples, run_id)


def _exit_on_errors(errors: int, total: int, again: str) -> None:
    if errors:
        click.echo(f"sfteval: {errors} of {total} judge requests failed (stored as errors, excluded from scores); "
                   f"`sfteval judge {again}` retries them", err=True)
        sys.exit(3)
