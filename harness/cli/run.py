"""`sfteval run`: evaluate a checkpoint on a suite through every registered stage."""

from __future__ import annotations

import sys
from typing import Any

import click

from .common import friendly
from .judge import exit_on_judge_errors, judge_notes, judge_options, spec_from_options
from .options import model_options, run_fields

RUN_EPILOG = """
\b
Examples:
  sfteval run --model demo:v1 --suite demo
  sfteval run --model ./ckpt/step-1200 --suite suites/general-zh --run-name v2 --batch-size 16
  sfteval run --model ./ckpt --suite my.jsonl --limit 5            # 5 items per task_type
  sfteval run --model ./ckpt --suite my.jsonl --resume v2          # finish a killed run
  sfteval run --model ./ckpt --suite my.jsonl -o gguf_file=m.gguf  # a backend-specific option
  sfteval run --model ./ckpt --suite my.jsonl --backend vllm --tensor-parallel-size 2
  sfteval run --model ./ckpt --suite my.jsonl --backend openai --base-url http://127.0.0.1:8000/v1
  sfteval run --model ./ckpt --suite my.jsonl --judge alignbench-zh --judge-model qwen2.5-72b-instruct \
      --judge-base-url http://gpu1:8000/v1                         # LLM judge: dimensions, usable rate
  sfteval run --model ./ckpt --suite my.jsonl --judge default-en --judge-model gpt-4o \
      --judge-option price_per_1k_prompt=0.0025 --judge-option price_per_1k_completion=0.01 \
      --dry-run                                                    # judge calls, tokens, cost; nothing runs
  sfteval run ... --judge default-en --judge-model gpt-4o --max-cost 20 --judge-mode batch
                                                                   # Batch API at half price, capped at $20
  sfteval run --model ./ckpt --suite my.jsonl --temperature 0.7 --max-new-tokens 1024   # override suite.yaml
  sfteval run --model ./base-ckpt --suite my.jsonl --prompt-format plain --no-probes   # no chat template
  sfteval run --model ./r1-ckpt --suite my.jsonl --keep-think      # score <think> blocks too
  sfteval run --model ./ckpt --suite my.jsonl --run-name v2 --shard 0/4    # 1 of 4 shards -> results/v2__shard-0-of-4
  sfteval run --model ./ckpt --suite my.jsonl --resume v2 --shard auto     # a Slurm / Kubernetes array task
  sfteval merge 'results/v2__shard-*' --into v2                          # the shards as one run
  sfteval run --model ./ckpt --suite my.jsonl --backend vllm --ray auto --replicas 8   # Ray Data LLM on a cluster
  sfteval run --model demo:v1 --suite demo --ray local --replicas 2      # Ray started here, 2 model copies

\b
Output: results/<run>/ holds manifest.json, items.jsonl, generations.jsonl,
judgments.jsonl, summary.json (per task_type metrics) and report.md.
"""



@click.command("run", epilog=RUN_EPILOG)
@model_options
@click.option("--seed", default=0, show_default=True, help="Seed for sampled generation (sample i uses seed+i).")
@click.option("--max-new-tokens", type=click.IntRange(1), help="Override every task_type's max_new_tokens.")
@click.option("--temperature", type=click.FloatRange(0), help="Override every task_type's temperature (0 = greedy).")
@click.option("--strip-think/--keep-think", default=True, show_default=True,
              help="Remove <think>...</think> before scoring (kept in the record).")
@click.option("--think-markers", default="<think>,</think>", show_default=True, metavar="OPEN,CLOSE",
              help="Markers of a reasoning block.")
@click.option("--probes/--no-probes", default=True, show_default=True,
              help="Also score log P(reference | prompt) and choices per task_type (skipped with a warning when "
                   "the backend cannot score prompts). `sfteval probe` runs them alone.")
@judge_options
@friendly
def run_cmd(seed: int, max_new_tokens: int | None, temperature: float | None, strip_think: bool, think_markers: str,
            probes: bool, **values: Any) -> None:
    """Evaluate one checkpoint on a suite: generate, score, aggregate per task_type.

    The suite is validated before any model is loaded. The chat template is
    applied once by sfteval and the exact prompt is stored with each answer.
    Rule scores: choice for items with choices, checks for items with checks,
    exact/normalized match where a match can decide (a reference of at most 5
    words on one line, or answer type fact); suite.yaml `rules` overrides this.
    """
    from ..quiet import make_quiet, stderr_log

    if values["quiet"]:
        make_quiet()  # before any library that reads its logging switches is imported
    from ..probes.options import ProbeOptions
    from ..report import summary_table
    from ..runner import RunOptions, run_eval
    from ..think import ThinkMarkers

    think = None
    if strip_think:
        open_marker, sep, close_marker = think_markers.partition(",")
        if not sep or not open_marker or not close_marker:
            raise click.BadParameter("expected OPEN,CLOSE", param_hint="--think-markers")
        think = ThinkMarkers(open_marker, close_marker)
    quiet = values["quiet"]
    judge_values = {k: v for k, v in values.items()
                    if k == "judge" or k.startswith("judge_") or k in ("max_cost", "max_judge_calls", "dry_run")}
    opts = RunOptions(
        **run_fields(values), seed=seed, think=think,
        overrides={"max_new_tokens": max_new_tokens, "temperature": temperature},
        judge=spec_from_options(judge_values, progress=not quiet), probes=ProbeOptions() if probes else None,
    )
    if values.get("dry_run"):
        from ..runner import estimate_run

        click.echo(estimate_run(opts, log=stderr_log).render(), nl=False)
        return
    folder = run_eval(opts, log=stderr_log)
    summary = folder.summary()
    manifest = folder.manifest()
    if not quiet:
        click.echo(summary_table(summary))
        click.echo(judge_notes(summary))
    click.echo(f"run: {folder.path}  (summary.json, report.md)")  # the final line, with -q the only one
    failed = manifest.counts.get("generation_errors", 0)
    if failed:
        click.echo(f"sfteval: {failed} requests failed (see generations.jsonl); "
                   f"`--resume {folder.run_id}` retries them", err=True)
        sys.exit(3)
    exit_on_judge_errors(summary, folder.run_id)
