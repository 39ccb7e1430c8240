"""Option groups that `sfteval run` and `sfteval probe` share: the model, the suite, the backend, the run folder.

Declared once, so the two commands accept the same spelling for the same thing and a new backend option
reaches both.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from .common import add_options, parse_key_values

DTYPES = click.Choice(["auto", "float32", "bfloat16", "float16"])

#: command-line option -> the backend option it sets (the rest go through -o KEY=VALUE)
BACKEND_FLAGS = {
    "device": "device", "dtype": "dtype", "batch_size": "batch_size", "base_url": "base_url",
    "api_key_env": "api_key_env", "concurrency": "concurrency", "max_retries": "max_retries",
    "request_timeout": "timeout", "tensor_parallel_size": "tensor_parallel_size", "max_model_len": "max_model_len",
    "gpu_memory_utilization": "gpu_memory_utilization", "lora_path": "lora_path",
}

model_options = add_options([
    click.option("--model", "-m", required=True, metavar="CKPT",
                 help="Checkpoint folder (HF format), 'demo:v1'/'demo:v2'/'demo:base' for the built-in tiny models, "
                      "or a served model name with --backend openai."),
    click.option("--suite", "-s", required=True, metavar="SUITE",
                 help="A suite file (.jsonl/.yaml/.parquet), a suite folder, or a built-in suite name "
                      "(see `sfteval suites list`)."),
    click.option("--backend", "-b", default="hf", show_default=True, metavar="NAME",
                 help="Model backend: hf (transformers), vllm (vLLM offline engine; pip install 'sfteval[vllm]'), "
                      "openai (any OpenAI-compatible server), or a plugin's. See `sfteval backends`."),
    click.option("--backend-option", "-o", "backend_option", multiple=True, metavar="KEY=VALUE",
                 help="Backend-specific option, repeatable (e.g. -o trust_remote_code=true)."),
    click.option("--tokenizer", metavar="PATH", help="Tokenizer to render prompts with (default: the model folder)."),
    click.option("--device", help="hf: cpu, cuda, cuda:1 ... (default: cuda when available)."),
    click.option("--dtype", type=DTYPES,
                 help="Weights dtype (hf default: bfloat16 on GPU, float32 on CPU; vllm: the checkpoint's)."),
    click.option("--batch-size", type=click.IntRange(1), help="Prompts per forward pass (hf default 8)."),
    click.option("--base-url", metavar="URL",
                 help="openai: the server, e.g. http://127.0.0.1:8000/v1 (default: $OPENAI_BASE_URL, else OpenAI)."),
    click.option("--api-key-env", metavar="VAR",
                 help="openai: environment variable that holds the API key (default OPENAI_API_KEY); never stored."),
    click.option("--concurrency", type=click.IntRange(1), help="openai: requests in flight at once (default 16)."),
    click.option("--max-retries", type=click.IntRange(0),
                 help="openai: retries of a request after 429/5xx/timeouts/bad bodies (default 5; Retry-After "
                      "honoured)."),
    click.option("--request-timeout", type=click.FloatRange(0, min_open=True), metavar="SECONDS",
                 help="openai: limit for one attempt, whole answer included (default 600)."),
    click.option("--tensor-parallel-size", "-tp", type=click.IntRange(1), metavar="N",
                 help="vllm: GPUs per model copy (other engine settings: -o data_parallel_size=, "
                      "-o enforce_eager=true, -o max_num_seqs=, -o engine_args='{...}')."),
    click.option("--max-model-len", type=click.IntRange(1), metavar="TOKENS",
                 help="vllm: context length of the engine (default: the checkpoint's)."),
    click.option("--gpu-memory-utilization", type=click.FloatRange(0, 1, min_open=True), metavar="FRACTION",
                 help="vllm: share of GPU memory for weights + KV cache (default: vLLM's)."),
    click.option("--lora", "lora_path", type=click.Path(exists=True, file_okay=False), metavar="ADAPTER",
                 help="vllm: a PEFT LoRA adapter folder applied to every request (probes are then skipped: vLLM "
                      "crashes on prompt log-probs with LoRA; score them with the hf backend)."),
    click.option("--out", default="results", show_default=True, type=click.Path(file_okay=False, path_type=Path),
                 help="Results root; the run is written to OUT/<run>/."),
    click.option("--run-name", metavar="NAME", help="Run folder name (default: <model>__<suite>__<timestamp>)."),
    click.option("--resume", metavar="RUN",
                 help="Continue an interrupted run (its name or folder); finished work is not redone."),
    click.option("--limit", type=click.IntRange(1), metavar="N", help="Only the first N items of every task_type."),
    click.option("--prompt-format", type=click.Choice(["chat", "plain"]), default="chat", show_default=True,
                 help="chat: apply the tokenizer's chat template; plain: raw user text (base models)."),
    click.option("--chat-template", type=click.Path(exists=True, dir_okay=False), metavar="FILE",
                 help="A Jinja chat template file used instead of the tokenizer's (recorded in the manifest)."),
    click.option("--quiet", "-q", is_flag=True,
                 help="Print only the final line (the run folder, on stdout), warnings and errors: no progress bars, "
                      "library logs, notes or table."),
    click.option("--shard", metavar="I/N|auto",
                 help="Evaluate shard I of N only (0-based; items dealt per task_type by a hash of their id) into "
                      "RUN__shard-I-of-N; `sfteval merge` joins the shards into RUN. auto: from a Slurm job array "
                      "($SLURM_ARRAY_TASK_ID) or a Kubernetes Indexed Job ($JOB_COMPLETION_INDEX, with --shards)."),
    click.option("--shards", type=click.IntRange(1), metavar="N",
                 help="The number of shards, for --shard I or --shard auto (needed under Kubernetes)."),
    click.option("--ray", "ray_address", metavar="ADDRESS",
                 help="Run generation and probes on a Ray cluster (pip install 'sfteval[ray]'): auto (the running "
                      "cluster), local (start one here), or host:port / ray://host:10001. The run folder is "
                      "written here; vllm uses Ray Data LLM, other backends one Ray actor per replica."),
    click.option("--replicas", type=click.IntRange(1), metavar="N",
                 help="--ray: model copies (engine replicas) working at once (default 1); each gets "
                      "--tensor-parallel-size GPUs with vllm."),
    click.option("--ray-option", "ray_option", multiple=True, metavar="KEY=VALUE",
                 help="--ray: executor option, repeatable: num_cpus, num_gpus (per replica), batch_size (requests per "
                      "Ray task), max_restarts, runtime_env='{env_vars: {...}}'."),
])

#: the model-option values that are not backend options (run options, taken by name)
RUN_FIELDS = ("model", "suite", "backend", "tokenizer", "out", "run_name", "resume", "limit", "prompt_format",
              "chat_template")


def backend_options(values: dict[str, Any]) -> dict[str, Any]:
    """-o KEY=VALUE plus the dedicated flags that were given (a flag wins over the same -o key)."""
    options = parse_key_values(tuple(values.get("backend_option") or ()), "--backend-option")
    for flag, key in BACKEND_FLAGS.items():
        if values.get(flag) is not None:
            options[key] = values[flag]
    return options


def shard_option(values: dict[str, Any]) -> Any:
    """--shard / --shards (auto: from the job array's environment) as a ShardSpec, or None."""
    from ..shard import ShardError, resolve_shard

    try:
        return resolve_shard(values.get("shard"), values.get("shards"))
    except ShardError as e:
        raise click.BadParameter(str(e), param_hint="--shard") from None


def dispatch_option(values: dict[str, Any]) -> Any:
    """--ray ADDRESS (+ --replicas, --ray-option) as the backend's Dispatch to the ray executor, or None."""
    from ..backends.base import Dispatch

    extra = parse_key_values(tuple(values.get("ray_option") or ()), "--ray-option")
    if values.get("ray_address") is None:
        if values.get("replicas") is not None or extra:
            raise click.BadParameter("needs --ray ADDRESS", param_hint="--replicas/--ray-option")
        return None
    options = {"address": values["ray_address"], **extra}
    if values.get("replicas") is not None:
        options["replicas"] = values["replicas"]
    return Dispatch("ray", options)


def run_fields(values: dict[str, Any]) -> dict[str, Any]:
    """The RunOptions fields the model options set, and what every run records about itself."""
    return {**{k: values[k] for k in RUN_FIELDS}, "backend_options": backend_options(values),
            "progress": not values["quiet"], "command": ["sfteval"] + sys.argv[1:],
            "shard": shard_option(values), "dispatch": dispatch_option(values)}
