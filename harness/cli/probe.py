"""`sfteval probe`: probes alone, stored as a run (so `diff` compares probe numbers across checkpoints)."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

import click

from .common import friendly
from .options import model_options, run_fields

if TYPE_CHECKING:
    from ..probes.options import ProbeOptions
    from ..summary import RunSummary

PROBE_EPILOG = """
\b
Examples:
  sfteval probe --model demo:v1 --suite demo
  sfteval probe --model demo:v1 --suite demo --base demo:base      # + what SFT lost vs the base
  sfteval probe --model ./ckpt/step-1200 --suite my.jsonl --run-name step-1200-probe
  sfteval probe --model ./ckpt --suite my.jsonl --no-eot             # P(reference) without the end of turn
  sfteval probe --model Qwen/Qwen2.5-7B-Instruct -b vllm --suite s/ --base ./qwen2.5-7b-base
  sfteval probe --model ./ckpt --suite my.jsonl --run-name p --shard 1/4   # one shard; sfteval merge joins them
  sfteval probe --model ./ckpt --suite my.jsonl -b vllm --ray auto --replicas 4   # probes on a Ray cluster

\b
Per item: sum, token count, mean and greedy flag of log P(reference + end-of-turn | prompt); each choice's
log-prob and the prediction by raw and by per-token mean log-prob. Per task_type: means per item, the
per-token mean (sum of sums / sum of tokens) and the sum of sums. Output: results/<run>/probes.jsonl,
summary.json, report.md.
"""


def probe_config_options(fn: Any) -> Any:
    """Options that shape the probes (only on `sfteval probe`; `run` uses the defaults)."""
    from ..probes.continuation import KNOWLEDGE_TASK_TYPES

    options = [
        click.option("--eot/--no-eot", "eot", default=True, show_default=True,
                     help="Append the chat template's end-of-turn text to the reference."),
        click.option("--eot-text", metavar="TEXT", help="End-of-turn text to use instead of the template's."),
        click.option("--choice-eot", is_flag=True,
                     help="Score each choice with the end-of-turn appended (default: the bare choice)."),
        click.option("--whitespace", type=click.Choice(["exact", "lm-eval"]), default="exact", show_default=True,
                     help="lm-eval: move trailing whitespace of the prompt onto the continuation (to compare "
                          "with lm-evaluation-harness only)."),
        click.option("--base", metavar="CKPT",
                     help="Base model for the continuation probe: where did SFT lose knowledge the base had?"),
        click.option("--knowledge-task-types", default=",".join(KNOWLEDGE_TASK_TYPES), show_default=True,
                     metavar="A,B",
                     help="task_types (either level) of the items the continuation probe uses, besides any "
                          "item with meta.continuation_prefix."),
        click.option("--continuation-tokens", type=click.IntRange(1), default=32, show_default=True,
                     help="Greedy tokens generated per model for the continuation probe."),
    ]
    for opt in reversed(options):
        fn = opt(fn)
    return fn


def options_from(values: dict[str, Any], *, required: bool) -> "ProbeOptions":
    from ..probes.continuation import ContinuationConfig
    from ..probes.core import ProbeConfig
    from ..probes.options import ProbeOptions

    config = ProbeConfig(end_of_turn=values["eot"], end_of_turn_text=values.get("eot_text"),
                         choice_end_of_turn=values["choice_eot"], whitespace=values["whitespace"])
    task_types = tuple(t.strip() for t in values["knowledge_task_types"].split(",") if t.strip())
    cont = ContinuationConfig(task_types=task_types, max_new_tokens=values["continuation_tokens"],
                              whitespace=values["whitespace"])
    return ProbeOptions(config=config, base=values.get("base"), continuation=cont, required=required)


@click.command("probe", epilog=PROBE_EPILOG)
@model_options
@probe_config_options
@friendly
def probe_cmd(**values: Any) -> None:
    """Score log P(reference | prompt) and choices per task_type, without generating answers.

    Use a backend that scores prompt tokens: hf, vllm, or openai against a /v1/completions server. With
    --base, also runs the continuation probe: the base model continues a plain-text prefix of each
    knowledge item, the SFT model answers it, and the items where the base knew the answer (meta.short_answer,
    else the reference) and SFT does not are listed (with both models' log P(answer)).
    """
    from ..quiet import make_quiet, stderr_log

    if values["quiet"]:
        make_quiet()  # before any library that reads its logging switches is imported
    from ..runner import RunOptions, run_eval

    probe_keys = ("eot", "eot_text", "choice_eot", "whitespace", "base", "knowledge_task_types", "continuation_tokens")
    opts = RunOptions(**run_fields(values), generate=False,
                      probes=options_from({k: values[k] for k in probe_keys}, required=True))
    folder = run_eval(opts, log=stderr_log)
    summary = folder.summary()
    if not values["quiet"]:
        click.echo(probe_table(summary))
        click.echo(lost_lines(summary))
    click.echo(f"run: {folder.path}  (probes.jsonl, summary.json, report.md)")  # the final line, with -q the only one
    failed = summary.counts.get("probe_errors")
    if failed:
        click.echo(f"sfteval: {failed} probe records failed (see probes.jsonl); "
                   f"`--resume {folder.run_id}` retries them", err=True)
        sys.exit(3)


PROBE_COLUMNS = ["probe:ref_mean", "probe:ref_token_mean", "probe:ref_sum", "probe:ref_greedy",
                 "probe:choice_acc", "probe:choice_acc_norm", "probe:cont_lost", "probe:cont_gap"]


def probe_table(summary: "RunSummary", fmt: str = "simple") -> str:
    from tabulate import tabulate

    from ..report import task_type_rows

    present = [m for m in PROBE_COLUMNS if summary.overall.metrics.get(m) is not None]
    if not present:
        return "no probe results (no item has a reference or choices)"
    return tabulate(task_type_rows(summary, present), headers=["task_type", "n"] + present, tablefmt=fmt,
                    disable_numparse=True)


def lost_lines(summary: "RunSummary", limit: int = 20) -> str:
    section = summary.probes
    if section is None or "continuation" not in section.counts:
        return ""
    lost = section.lost_knowledge
    lines = [f"\nknowledge the base model had and the SFT model lost: {len(lost)} items"]
    for row in lost[:limit]:
        gap = "–" if row.logprob_gap is None else f"{row.logprob_gap:.2f}"
        lines.append(f"  {row.item_id} ({row.task_type}): base {row.base!r} | SFT {row.sft!r} | "
                     f"log P(answer) SFT - base = {gap}")
    return "\n".join(lines) + "\n"
