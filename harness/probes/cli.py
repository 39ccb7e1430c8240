"""`sfteval probe`: probes alone, stored as a run (so `diff` compares probe numbers across checkpoints).

Kept apart from harness/cli.py so probe options live in one place; importing it loads only click.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Optional

import click

PROBE_EPILOG = """
\b
Examples:
  sfteval probe --model demo:v1 --suite demo
  sfteval probe --model demo:v1 --suite demo --base demo:base      # + what SFT lost vs the base
  sfteval probe --model ./ckpt/step-1200 --suite my.jsonl --run-name step-1200-probe
  sfteval probe --model ./ckpt --suite my.jsonl --no-eot             # P(reference) without the end of turn
  sfteval probe --model Qwen/Qwen2.5-7B-Instruct -b vllm --suite s/ --base ./qwen2.5-7b-base

\b
Per item: sum, token count, mean and greedy flag of log P(reference + end-of-turn | prompt); each choice's
log-prob and the prediction by raw and by per-token mean log-prob. Per task_type: means per item, the
per-token mean (sum of sums / sum of tokens) and the sum of sums. Output: results/<run>/probes.jsonl,
summary.json, report.md.
"""


def probe_config_options(fn: Any) -> Any:
    """Options that shape the probes (only on `sfteval probe`; `run` uses the defaults)."""
    from .continuation import KNOWLEDGE_TASK_TYPES
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


def options_from(values: dict[str, Any], *, required: bool):  # -> ProbeOptions
    from .continuation import ContinuationConfig
    from .core import ProbeConfig
    from .stage import ProbeOptions

    config = ProbeConfig(end_of_turn=values["eot"], end_of_turn_text=values.get("eot_text"),
                         choice_end_of_turn=values["choice_eot"], whitespace=values["whitespace"])
    task_types = tuple(t.strip() for t in values["knowledge_task_types"].split(",") if t.strip())
    cont = ContinuationConfig(task_types=task_types, max_new_tokens=values["continuation_tokens"],
                              whitespace=values["whitespace"])
    return ProbeOptions(config=config, base=values.get("base"), continuation=cont, required=required)


@click.command("probe", epilog=PROBE_EPILOG)
@click.option("--model", "-m", required=True, metavar="CKPT",
              help="Checkpoint folder, demo:v1/v2/base, or a served name.")
@click.option("--suite", "-s", required=True, metavar="SUITE", help="Suite file, folder or built-in name.")
@click.option("--backend", "-b", default="hf", show_default=True, metavar="NAME",
              help="A backend that scores prompt tokens: hf, vllm, or openai against a /v1/completions server.")
@click.option("--backend-option", "-o", "backend_option", multiple=True, metavar="KEY=VALUE",
              help="Backend-specific option, repeatable (e.g. -o score_batch_tokens=16384).")
@click.option("--tokenizer", metavar="PATH", help="Tokenizer to render prompts with (default: the model folder).")
@click.option("--device", help="hf: cpu, cuda, cuda:1 ... (default: cuda when available).")
@click.option("--dtype", type=click.Choice(["auto", "float32", "bfloat16", "float16"]),
              help="Weights dtype (default: bfloat16 on GPU, float32 on CPU).")
@click.option("--out", default="results", show_default=True, type=click.Path(file_okay=False, path_type=Path),
              help="Results root; the run is written to OUT/<run>/.")
@click.option("--run-name", metavar="NAME", help="Run folder name (default: <model>__<suite>__<timestamp>).")
@click.option("--resume", metavar="RUN", help="Continue an interrupted probe run; stored probes are not recomputed.")
@click.option("--limit", type=click.IntRange(1), metavar="N", help="Only the first N items of every task_type.")
@click.option("--prompt-format", type=click.Choice(["chat", "plain"]), default="chat", show_default=True,
              help="chat: the tokenizer's chat template; plain: raw user text (base models).")
@click.option("--chat-template", type=click.Path(exists=True, dir_okay=False), metavar="FILE",
              help="A Jinja chat template file used instead of the tokenizer's (as in `sfteval run`).")
@click.option("--quiet", "-q", is_flag=True,
              help="Warnings and errors only: no progress bars, library logs, notes or table.")
@probe_config_options
def probe_cmd(model: str, suite: str, backend: str, backend_option: tuple[str, ...], tokenizer: Optional[str],
              device: Optional[str], dtype: Optional[str], out: Path, run_name: Optional[str], resume: Optional[str],
              limit: Optional[int], prompt_format: str, chat_template: Optional[str], quiet: bool,
              **probe_values: Any) -> None:
    """Score log P(reference | prompt) and choices per task_type, without generating answers.

    With --base, also runs the continuation probe: the base model continues a plain-text prefix of each
    knowledge item, the SFT model answers it, and the items where the base knew the answer (meta.short_answer,
    else the reference) and SFT does not are listed (with both models' log P(answer)).
    """
    from ..cli import friendly, parse_key_values

    @friendly
    def go() -> None:
        from ..quiet import make_quiet, stderr_log

        if quiet:
            make_quiet()
        from ..runner import RunOptions, run_eval

        options = parse_key_values(backend_option, "--backend-option")
        for key, value in (("device", device), ("dtype", dtype)):
            if value is not None:
                options[key] = value
        opts = RunOptions(
            model=model, suite=suite, backend=backend, backend_options=options, tokenizer=tokenizer, out=out,
            run_name=run_name, resume=resume, limit=limit, prompt_format=prompt_format, chat_template=chat_template,
            progress=not quiet, command=["sfteval"] + sys.argv[1:], generate=False, probes=options_from(probe_values, required=True),
        )
        store = run_eval(opts, log=stderr_log)
        summary = store.read_json("summary.json")
        if not quiet:
            click.echo(probe_table(summary))
            click.echo(lost_lines(summary), nl=False)
            click.echo(f"\nrun: {store.path}  (probes.jsonl, summary.json, report.md)")
        if summary.get("counts", {}).get("probe_errors"):
            click.echo(f"sfteval: {summary['counts']['probe_errors']} probe records failed (see probes.jsonl); "
                       f"`--resume {store.run_id}` retries them", err=True)
            sys.exit(3)

    go()


PROBE_COLUMNS = ["probe:ref_mean", "probe:ref_token_mean", "probe:ref_sum", "probe:ref_greedy",
                 "probe:choice_acc", "probe:choice_acc_norm", "probe:cont_lost", "probe:cont_gap"]


def probe_table(summary: dict[str, Any], fmt: str = "simple") -> str:
    from tabulate import tabulate

    from ..report import task_type_rows

    present = [m for m in PROBE_COLUMNS if summary["overall"]["metrics"].get(m) is not None]
    if not present:
        return "no probe results (no item has a reference or choices)"
    return tabulate(task_type_rows(summary, present), headers=["task_type", "n"] + present, tablefmt=fmt,
                    disable_numparse=True)


def lost_lines(summary: dict[str, Any], limit: int = 20) -> str:
    section = summary.get("probes") or {}
    if "continuation" not in section.get("counts", {}):
        return ""
    lost = section.get("lost_knowledge") or []
    lines = [f"\nknowledge the base model had and the SFT model lost: {len(lost)} items"]
    for row in lost[:limit]:
        lines.append(f"  {row['item_id']} ({row['task_type']}): base {row['base']!r} | SFT {row['sft']!r} | "
                     f"log P(answer) SFT - base = {row['logprob_gap']:.2f}")
    return "\n".join(lines) + "\n"
