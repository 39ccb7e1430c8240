"""The `sfteval` command line. Heavy packages (torch, transformers, pandas) load inside commands only,
so `sfteval --help` stays fast."""

from __future__ import annotations

import functools
import sys
from pathlib import Path
from typing import Any, Callable, Optional

import click

from . import __version__
from .judging.cli import exit_on_judge_errors, judge_cmd, judge_notes, judge_options, spec_from_options
from .probes.cli import probe_cmd
from .reporting.cli import diff_cmd, gate_cmd, report_cmd

def _user_errors() -> tuple[type[BaseException], ...]:
    from .backends.base import BackendError
    from .judging.spec import JudgeError
    from .modelref import ModelRefError
    from .render import RenderError
    from .runner import RunError
    from .store import StoreError
    from .suite import SuiteError

    return (SuiteError, RunError, BackendError, ModelRefError, StoreError, RenderError, JudgeError)


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
  sfteval run --model ./ckpt --suite my.jsonl --backend vllm --tensor-parallel-size 2
  sfteval run --model ./ckpt --suite my.jsonl --backend openai --base-url http://127.0.0.1:8000/v1
  sfteval run --model ./ckpt --suite my.jsonl --judge alignbench-zh --judge-model qwen2.5-72b-instruct \
      --judge-base-url http://gpu1:8000/v1                         # LLM judge: dimensions, usable rate
  sfteval run --model ./ckpt --suite my.jsonl --temperature 0.7 --max-new-tokens 1024   # override suite.yaml
  sfteval run --model ./base-ckpt --suite my.jsonl --prompt-format plain --no-probes   # no chat template
  sfteval run --model ./r1-ckpt --suite my.jsonl --keep-think      # score <think> blocks too

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
              help="Model backend: hf (transformers), vllm (vLLM offline engine; pip install 'sfteval[vllm]') or "
                   "openai (any OpenAI-compatible server). See `sfteval backends` and the README's Backends section.")
@click.option("--backend-option", "-o", "backend_option", multiple=True, metavar="KEY=VALUE",
              help="Backend-specific option, repeatable (e.g. -o trust_remote_code=true).")
@click.option("--tokenizer", metavar="PATH", help="Tokenizer to render prompts with (default: the model folder).")
@click.option("--device", help="hf: cpu, cuda, cuda:1 ... (default: cuda when available).")
@click.option("--dtype", type=click.Choice(["auto", "float32", "bfloat16", "float16"]),
              help="Weights dtype (hf default: bfloat16 on GPU, float32 on CPU; vllm: the checkpoint's).")
@click.option("--batch-size", type=click.IntRange(1), help="Prompts per forward pass (hf default 8).")
@click.option("--base-url", metavar="URL",
              help="openai: the server, e.g. http://127.0.0.1:8000/v1 (default: $OPENAI_BASE_URL, else OpenAI).")
@click.option("--api-key-env", metavar="VAR",
              help="openai: environment variable that holds the API key (default OPENAI_API_KEY); never stored.")
@click.option("--concurrency", type=click.IntRange(1), help="openai: requests in flight at once (default 16).")
@click.option("--max-retries", type=click.IntRange(0),
              help="openai: retries of a request after 429/5xx/timeouts/bad bodies (default 5; Retry-After honoured).")
@click.option("--request-timeout", type=click.FloatRange(0, min_open=True), metavar="SECONDS",
              help="openai: limit for one attempt, whole answer included (default 600).")
@click.option("--tensor-parallel-size", "-tp", type=click.IntRange(1), metavar="N",
              help="vllm: GPUs per model copy (other engine settings: -o data_parallel_size=, -o enforce_eager=true, "
                   "-o max_num_seqs=, -o engine_args='{...}').")
@click.option("--max-model-len", type=click.IntRange(1), metavar="TOKENS",
              help="vllm: context length of the engine (default: the checkpoint's).")
@click.option("--gpu-memory-utilization", type=click.FloatRange(0, 1, min_open=True), metavar="FRACTION",
              help="vllm: share of GPU memory for weights + KV cache (default: vLLM's).")
@click.option("--lora", "lora_path", type=click.Path(exists=True, file_okay=False), metavar="ADAPTER",
              help="vllm: a PEFT LoRA adapter folder applied to every request (probes are then skipped: vLLM "
                   "crashes on prompt log-probs with LoRA; score them with the hf backend).")
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
@click.option("--chat-template", type=click.Path(exists=True, dir_okay=False), metavar="FILE",
              help="A Jinja chat template file used instead of the tokenizer's (recorded in the manifest).")
@click.option("--strip-think/--keep-think", default=True, show_default=True,
              help="Remove <think>...</think> before scoring (kept in the record).")
@click.option("--think-markers", default="<think>,</think>", show_default=True, metavar="OPEN,CLOSE",
              help="Markers of a reasoning block.")
@click.option("--quiet", "-q", is_flag=True,
              help="Print only the final line (the run folder, on stdout), warnings and errors: no progress bars, "
                   "library logs, notes or table.")
@click.option("--probes/--no-probes", default=True, show_default=True,
              help="Also score log P(reference | prompt) and choices per task_type (skipped with a warning when "
                   "the backend cannot score prompts). `sfteval probe` runs them alone.")
@judge_options
@friendly
def run(model: str, suite: str, backend: str, backend_option: tuple[str, ...], tokenizer: Optional[str],
        device: Optional[str], dtype: Optional[str], batch_size: Optional[int], out: Path, run_name: Optional[str],
        resume: Optional[str], limit: Optional[int], seed: int, max_new_tokens: Optional[int],
        temperature: Optional[float], prompt_format: str, chat_template: Optional[str], strip_think: bool,
        think_markers: str, quiet: bool, probes: bool, base_url: Optional[str], api_key_env: Optional[str],
        concurrency: Optional[int], max_retries: Optional[int], request_timeout: Optional[float],
        tensor_parallel_size: Optional[int], max_model_len: Optional[int], gpu_memory_utilization: Optional[float],
        lora_path: Optional[str], **judge_values: Any) -> None:
    """Evaluate one checkpoint on a suite: generate, score, aggregate per task_type.

    The suite is validated before any model is loaded. The chat template is
    applied once by sfteval and the exact prompt is stored with each answer.
    Rule scores: choice for items with choices, checks for items with checks,
    exact/normalized match where a match can decide (a reference of at most 5
    words on one line, or answer type fact); suite.yaml `rules` overrides this.
    """
    from .quiet import make_quiet, stderr_log

    if quiet:
        make_quiet()  # before any library that reads its logging switches is imported
    from .generate import ThinkMarkers
    from .report import summary_table
    from .probes.stage import ProbeOptions
    from .runner import RunOptions, run_eval

    options = parse_key_values(backend_option, "--backend-option")
    for key, value in (("device", device), ("dtype", dtype), ("batch_size", batch_size), ("base_url", base_url),
                       ("api_key_env", api_key_env), ("concurrency", concurrency), ("max_retries", max_retries),
                       ("timeout", request_timeout), ("tensor_parallel_size", tensor_parallel_size),
                       ("max_model_len", max_model_len), ("gpu_memory_utilization", gpu_memory_utilization),
                       ("lora_path", lora_path)):
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
        run_name=run_name, resume=resume, seed=seed, limit=limit, prompt_format=prompt_format,
        chat_template=chat_template, think=think,
        overrides={"max_new_tokens": max_new_tokens, "temperature": temperature}, progress=not quiet,
        command=["sfteval"] + sys.argv[1:], judge=spec_from_options(judge_values, progress=not quiet),
        probes=ProbeOptions() if probes else None,
    )
    store = run_eval(opts, log=stderr_log)
    summary = store.read_json("summary.json")
    manifest = store.read_manifest()
    if not quiet:
        click.echo(summary_table(summary))
        click.echo(judge_notes(summary))
    click.echo(f"run: {store.path}  (summary.json, report.md)")  # the final line, with -q the only one
    failed = manifest.counts.get("generation_errors", 0)
    if failed:
        click.echo(f"sfteval: {failed} requests failed (see generations.jsonl); "
                   f"`--resume {store.run_id}` retries them", err=True)
        sys.exit(3)
    exit_on_judge_errors(summary, store.run_id)


main.add_command(judge_cmd)
main.add_command(probe_cmd)
main.add_command(diff_cmd)
main.add_command(gate_cmd)
main.add_command(report_cmd)

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


class _FormatChoice(click.Choice):
    """The importer registry's format names, loaded only when a command needs them."""

    def __init__(self) -> None:
        super().__init__([])

    @property  # type: ignore[override]
    def choices(self) -> list[str]:
        from .importers import IMPORTERS

        return sorted(IMPORTERS)

    @choices.setter
    def choices(self, value: Any) -> None:
        pass


IMPORT_EPILOG = """
\b
Examples:
  sfteval suites import --format mt-bench data/mt_bench/ suites/mt-bench
  sfteval suites import --format alignbench data_release.jsonl suites/alignbench
  sfteval suites import --format arena-hard question.jsonl suites/arena-hard
  sfteval suites import --format chat-jsonl sft_train.jsonl suites/recall --task-type recall
  sfteval suites import --format table train.parquet suites/qa \\
      --map prompt=question --map reference=answer --map task_type=category
"""


@suites.command("import", epilog=IMPORT_EPILOG)
@click.option("--format", "-f", "fmt", required=True, type=_FormatChoice(), help="Source format.")
@click.argument("src", type=click.Path(exists=True, path_type=Path))
@click.argument("dest", type=click.Path(path_type=Path))
@click.option("--map", "field_map", multiple=True, metavar="FIELD=COLUMN",
              help="Read item FIELD from source COLUMN (repeatable), e.g. --map prompt=question.")
@click.option("--task-type-map", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="YAML: source category (or 'category/subcategory') -> task_type, or -> {task_type, answer_type}.")
@click.option("--task-type", metavar="NAME", help="task_type for records that carry none.")
@click.option("--references", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="mt-bench: reference-answer file (default: reference_answer/gpt-4.jsonl beside the questions).")
@click.option("--name", help="Suite name (default: the DEST folder name).")
@click.option("--id-prefix", metavar="TEXT", help="Prefix of item ids (default per format, e.g. mt-bench-81).")
@click.option("--force", is_flag=True, help="Replace DEST if it exists.")
@friendly
def suites_import(fmt: str, src: Path, dest: Path, field_map: tuple[str, ...], task_type_map: Optional[Path],
                  task_type: Optional[str], references: Optional[Path], name: Optional[str], id_prefix: Optional[str],
                  force: bool) -> None:
    """Convert a third-party eval set into a suite folder (items.jsonl, suite.yaml, README.md).

    Everything is read and validated before anything is written, and the folder appears atomically:
    a broken record names its file, line and field, and leaves nothing behind.
    """
    from .importers import ImportOptions, import_suite, load_task_type_map

    mapping = {}
    for pair in field_map:
        target, sep, column = pair.partition("=")
        if not sep or not target.strip() or not column.strip():
            raise click.BadParameter(f"expected FIELD=COLUMN, got {pair!r}", param_hint="--map")
        mapping[target.strip()] = column.strip()
    opts = ImportOptions(field_map=mapping, task_type=task_type, references=references, name=name, id_prefix=id_prefix,
                         task_type_map=load_task_type_map(task_type_map) if task_type_map else {})
    s = import_suite(fmt, src, dest, opts, force=force)
    click.echo(f"imported {len(s.items)} items over {len(s.task_type_counts())} task_types into {dest} "
               f"(hash {s.content_hash[:12]}); next: sfteval suites lint {dest}")


@suites.command("stats")
@click.argument("path")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.option("--tokenizer", metavar="PATH", help="Also count tokens with this (Hugging Face) tokenizer.")
@friendly
def suites_stats(path: str, fmt: str, tokenizer: Optional[str]) -> None:
    """Items per task_type (both levels), prompt/reference lengths, tags, multi-turn, references, choices, checks."""
    import json

    from .suite import load_suite
    from .suitetools.stats import stats_text, suite_stats

    tok = None
    if tokenizer:
        from transformers import AutoTokenizer

        tok = AutoTokenizer.from_pretrained(tokenizer)
    stats = suite_stats(load_suite(path), tok)
    click.echo(json.dumps(stats, ensure_ascii=False, indent=1) if fmt == "json" else stats_text(stats))


@suites.command("lint")
@click.argument("path")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.option("--threshold", type=click.FloatRange(0, 1, min_open=True), default=0.9, show_default=True,
              help="Character-shingle Jaccard from which two prompts (or two answers) are near-duplicates.")
@click.option("--min-level", type=click.Choice(["error", "warning", "info"]), default="info", show_default=True,
              help="Least severe findings to print (text format).")
@friendly
def suites_lint(path: str, fmt: str, threshold: float, min_level: str) -> None:
    """Near-duplicate prompts and answers, suspicious references, punctuation width, checks the reference fails.

    Exit status 1 when any finding is an error.
    """
    from .suite import load_suite
    from .suitetools.lint import lint_suite

    report = lint_suite(load_suite(path), threshold=threshold)
    click.echo(report.to_json() if fmt == "json" else report.to_text(min_level))  # type: ignore[arg-type]
    if report.has_errors:
        sys.exit(1)


@suites.command("sample")
@click.argument("path")
@click.argument("dest", type=click.Path(path_type=Path))
@click.option("--per-task-type", "-n", required=True, type=click.IntRange(1), metavar="N",
              help="Items per (full) task_type.")
@click.option("--seed", default=0, show_default=True, help="Same seed, same sample.")
@click.option("--force", is_flag=True, help="Replace DEST if it exists.")
@friendly
def suites_sample(path: str, dest: Path, per_task_type: int, seed: int, force: bool) -> None:
    """Write a smaller suite for a quick run: N items per task_type, same settings, deterministic.

    A sampled robustness variant brings its original along (it is read against it).
    """
    from .suite import load_suite
    from .suitetools.sample import sample_suite

    s = sample_suite(load_suite(path), dest, per_task_type, seed, force=force)
    click.echo(f"sampled {len(s.items)} items over {len(s.task_type_counts())} task_types into {dest} "
               f"(hash {s.content_hash[:12]})")


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
        except (StoreError, ValueError) as e:  # shown, not hidden: a broken run folder needs a look
            rows.append([path.name, "unreadable", f"{type(e).__name__}: {str(e).splitlines()[0][:60]}", "", "", ""])
            continue
        rows.append([m.run_id, m.status, m.model.name, m.suite_name, m.counts.get("items", ""), m.started_at])
    click.echo(tabulate(rows, headers=["run", "status", "model", "suite", "items", "started"]) if rows else "no runs")


if __name__ == "__main__":
    main()
