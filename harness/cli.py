"""The `sfteval` command line. Heavy packages (torch, transformers, pandas) load inside commands only,
so `sfteval --help` stays fast."""

from __future__ import annotations

import functools
import sys
from pathlib import Path
from typing import Any, Callable, Optional

import click

from . import __version__

def _user_errors() -> tuple[type[BaseException], ...]:
    from .backends.base import BackendError
    from .modelref import ModelRefError
    from .render import RenderError
    from .runner import RunError
    from .store import StoreError
    from .suite import SuiteError

    return (SuiteError, RunError, BackendError, ModelRefError, StoreError, RenderError)


def friendly(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn errors a user can cause into one clear line and exit status 2 (no traceback)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except KeyboardInterrupt:
            click.echo("\ninterrupted: finished work is stored; rerun with --resume RUN to continue", err=True)
            sys.exit(130)
        except Exception as e:
            if isinstance(e, _user_errors()):
                click.echo(f"sfteval: error: {e}", err=True)
                sys.exit(2)
            raise

    return wrapper


def parse_key_values(pairs: tuple[str, ...], option: str) -> dict[str, Any]:
    import yaml

    out: dict[str, Any] = {}
    for pair in pairs:
        if "=" not in pair:
            raise click.BadParameter(f"expected KEY=VALUE, got {pair!r}", param_hint=option)
        key, value = pair.split("=", 1)
        out[key.strip().replace("-", "_")] = yaml.safe_load(value) if value else ""
    return out


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="sfteval")
def main() -> None:
    """Evaluate supervised fine-tuned LLM checkpoints per task_type, and compare versions.

    \b
    Quick start (no GPU, no network): a tiny real demo checkpoint on the demo suite
      sfteval run --model demo:v1 --suite demo
    Your checkpoint on a built-in or your own suite
      sfteval run --model ./ckpt/step-1200 --suite my_suite/ --run-name v2
    Check a suite before spending GPU time on it
      sfteval suites validate my_suite/
    """


# ---------------------------------------------------------------------------------------
# run
# ---------------------------------------------------------------------------------------

RUN_EPILOG = """
\b
Examples:
  sfteval run --model demo:v1 --suite demo
  sfteval run --model ./ckpt/step-1200 --suite suites/general-zh --run-name v2 --batch-size 16
  sfteval run --model ./ckpt --suite my.jsonl --limit 5            # 5 items per task_type
  sfteval run --model ./ckpt --suite my.jsonl --resume v2          # finish a killed run
  sfteval run --model ./ckpt --suite my.jsonl -o gguf_file=m.gguf  # a backend-specific option

\b
Output: results/<run>/ holds manifest.json, items.jsonl, generations.jsonl,
judgments.jsonl, summary.json (per task_type metrics) and report.md.
"""


@main.command(epilog=RUN_EPILOG)
@click.option("--model", "-m", required=True, metavar="CKPT",
              help="Checkpoint folder (HF format), 'demo:v1'/'demo:v2'/'demo:base' for the built-in tiny models, "
                   "or a served model name with --backend openai.")
@click.option("--suite", "-s", required=True, metavar="SUITE",
              help="A suite file (.jsonl/.yaml/.parquet), a suite folder, or a built-in suite name (see `sfteval suites list`).")
@click.option("--backend", "-b", default="hf", show_default=True, metavar="NAME",
              help="Model backend: hf (transformers). See `sfteval backends`.")
@click.option("--backend-option", "-o", "backend_option", multiple=True, metavar="KEY=VALUE",
              help="Backend-specific option, repeatable (e.g. -o trust_remote_code=true).")
@click.option("--tokenizer", metavar="PATH", help="Tokenizer to render prompts with (default: the model folder).")
@click.option("--device", help="hf: cpu, cuda, cuda:1 ... (default: cuda when available).")
@click.option("--dtype", type=click.Choice(["auto", "float32", "bfloat16", "float16"]),
              help="Weights dtype (default: bfloat16 on GPU, float32 on CPU).")
@click.option("--batch-size", type=click.IntRange(1), help="Prompts per forward pass (hf default 8).")
@click.option("--out", default="results", show_default=True, type=click.Path(file_okay=False, path_type=Path),
              help="Results root; the run is written to OUT/<run>/.")
@click.option("--run-name", metavar="NAME", help="Run folder name (default: <model>__<suite>__<timestamp>).")
@click.option("--resume", metavar="RUN", help="Continue an interrupted run (its name or folder); finished work is not redone.")
@click.option("--limit", type=click.IntRange(1), metavar="N", help="Only the first N items of every task_type.")
@click.option("--seed", default=0, show_default=True, help="Seed for sampled generation (sample i uses seed+i).")
@click.option("--max-new-tokens", type=click.IntRange(1), help="Override every task_type's max_new_tokens.")
@click.option("--temperature", type=click.FloatRange(0), help="Override every task_type's temperature (0 = greedy).")
@click.option("--prompt-format", type=click.Choice(["chat", "plain"]), default="chat", show_default=True,
              help="chat: apply the tokenizer's chat template; plain: raw user text (base models).")
@click.option("--strip-think/--keep-think", default=True, show_default=True,
              help="Remove <think>...</think> before scoring (kept in the record).")
@click.option("--think-markers", default="<think>,</think>", show_default=True, metavar="OPEN,CLOSE",
              help="Markers of a reasoning block.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bars or table.")
@friendly
def run(model: str, suite: str, backend: str, backend_option: tuple[str, ...], tokenizer: Optional[str],
        device: Optional[str], dtype: Optional[str], batch_size: Optional[int], out: Path, run_name: Optional[str],
        resume: Optional[str], limit: Optional[int], seed: int, max_new_tokens: Optional[int],
        temperature: Optional[float], prompt_format: str, strip_think: bool, think_markers: str, quiet: bool) -> None:
    """Evaluate one checkpoint on a suite: generate, score, aggregate per task_type.

    The suite is validated before any model is loaded. The chat template is
    applied once by sfteval and the exact prompt is stored with each answer.
    Rule scores (exact/normalized match, choice, checks) are computed for every
    item that has a reference, choices or checks.
    """
    from .generate import ThinkMarkers
    from .report import summary_table
    from .runner import RunOptions, run_eval

    options = parse_key_values(backend_option, "--backend-option")
    for key, value in (("device", device), ("dtype", dtype), ("batch_size", batch_size)):
        if value is not None:
            options[key] = value
    think = None
    if strip_think:
        open_marker, sep, close_marker = think_markers.partition(",")
        if not sep or not open_marker or not close_marker:
            raise click.BadParameter("expected OPEN,CLOSE", param_hint="--think-markers")
        think = ThinkMarkers(open_marker, close_marker)
    opts = RunOptions(
        model=model, suite=suite, backend=backend, backend_options=options, tokenizer=tokenizer, out=out,
        run_name=run_name, resume=resume, seed=seed, limit=limit, prompt_format=prompt_format, think=think,
        overrides={"max_new_tokens": max_new_tokens, "temperature": temperature}, progress=not quiet,
        command=["sfteval"] + sys.argv[1:],
    )
    store = run_eval(opts)
    summary = store.read_json("summary.json")
    manifest = store.read_manifest()
    if not quiet:
        click.echo(summary_table(summary))
        click.echo(f"\nrun: {store.path}  (summary.json, report.md)")
    failed = manifest.counts.get("generation_errors", 0)
    if failed:
        click.echo(f"sfteval: {failed} requests failed (see generations.jsonl); "
                   f"`--resume {store.run_id}` retries them", err=True)
        sys.exit(3)


# ---------------------------------------------------------------------------------------
# suites
# ---------------------------------------------------------------------------------------


@main.group()
def suites() -> None:
    """Inspect and check eval suites."""


@suites.command("validate")
@click.argument("path")
@friendly
def suites_validate(path: str) -> None:
    """Check every item of a suite; print the first problem with its file, line and field."""
    from .suite import load_suite

    s = load_suite(path)
    click.echo(f"ok: {s.name} v{s.version}: {len(s.items)} items, {len(s.task_type_counts())} task_types, "
               f"hash {s.content_hash[:12]}")


@suites.command("show")
@click.argument("path")
@friendly
def suites_show(path: str) -> None:
    """Item counts per task_type (both levels) and the settings each one runs with."""
    from tabulate import tabulate

    from .suite import load_suite

    s = load_suite(path)
    level1: dict[str, int] = {}
    for tt, n in s.task_type_counts().items():
        level1[tt.split("/")[0]] = level1.get(tt.split("/")[0], 0) + n
    rows = []
    for top in sorted(level1):
        rows.append([top, level1[top], "", "", ""])
        for tt, n in s.task_type_counts().items():
            if tt.split("/")[0] == top and "/" in tt:
                st = s.settings_for(tt)
                rows.append([f"  {tt.split('/', 1)[1]}", n, st.temperature, st.max_new_tokens, st.answer_type or ""])
    click.echo(f"{s.name} v{s.version}  ({len(s.items)} items, hash {s.content_hash[:12]})")
    if s.config.description:
        click.echo(s.config.description)
    click.echo(tabulate(rows, headers=["task_type", "items", "temperature", "max_new_tokens", "answer_type"]))


@suites.command("list")
def suites_list() -> None:
    """Built-in suites, usable by name with --suite."""
    from .suite import list_builtin_suites, load_suite

    for name in list_builtin_suites():
        s = load_suite(name)
        click.echo(f"{name:16} {len(s.items):5} items  {s.config.description.splitlines()[0] if s.config.description else ''}")


# ---------------------------------------------------------------------------------------
# runs and backends
# ---------------------------------------------------------------------------------------


@main.command("backends")
def backends_cmd() -> None:
    """List model backends."""
    from .backends import DESCRIPTIONS, available

    for name in available():
        click.echo(f"{name:8} {DESCRIPTIONS.get(name, '')}")


@main.command("runs")
@click.option("--out", default="results", show_default=True, type=click.Path(path_type=Path))
def runs_cmd(out: Path) -> None:
    """List stored runs with their status."""
    from tabulate import tabulate

    from .store import RunStore, StoreError

    rows = []
    for path in sorted(out.iterdir()) if out.exists() else []:
        store = RunStore(path)
        if not store.exists():
            continue
        try:
            m = store.read_manifest()
        except (StoreError, ValueError):
            continue
        rows.append([m.run_id, m.status, m.model.name, m.suite_name, m.counts.get("items", ""), m.started_at])
    click.echo(tabulate(rows, headers=["run", "status", "model", "suite", "items", "started"]) if rows else "no runs")


if __name__ == "__main__":
    main()
