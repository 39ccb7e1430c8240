"""The vllm backend on Ray Data LLM: ``build_processor(vLLMEngineProcessorConfig(...))`` over the run's requests.

- Replicas and parallelism: ``concurrency=(N, N)`` engine replicas (``--replicas N``); each replica's engine gets the
  vllm backend's engine keywords (dtype, max_model_len, ``tensor_parallel_size``, ``-o engine_args``) and a
  placement group of ``tensor_parallel_size`` bundles (GPUs on a GPU cluster, CPUs otherwise).
- Prompts: the harness-rendered token ids as ``tokenized_prompt``; Ray Data LLM's chat-template, tokenize and
  detokenize stages are off, so the engine sees exactly the ids the other backends see and vLLM detokenizes the
  answer as the offline backend does. Every sampling field is explicit (the offline backend's
  :func:`~sfteval.harness.backends.vllm_backend.sampling_fields`).
- Probes: ``prompt_logprobs=1``, ``max_tokens=1`` on context + continuation, read exactly as the offline backend
  reads vLLM's prompt log-probs (the greedy flag is rank 1).
- A request the engine fails (``should_continue_on_error``) comes back as a failed request, stored as an error
  and retried on ``--resume``; Ray Data restarts engine actors that die.
- Each call (the generation of one turn, the probes) is one Ray Data pipeline: the engines start for it and stop
  after it (on a GPU cluster tens of seconds per call; keep ``--replicas`` at what the cluster holds at once).
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Iterator, Optional

from ..base import BackendError, GenRequest, GenResult, LogprobRequest, LogprobResult
from ..vllm_backend import VLLMOptions, base_engine_kwargs, continuation_logprobs, sampling_fields, timing_from_metrics
from .options import RayOptions, cluster_size

_ERROR = "__inference_error__"


def stop_token_ids(model: str, tokenizer: Optional[str]) -> set[int]:
    """The tokens that end an answer for vLLM: the tokenizer's EOS and generation_config.json's eos_token_id."""
    ids: set[int] = set()
    try:
        cfg = json.loads((Path(model) / "generation_config.json").read_text())
        eos = cfg.get("eos_token_id")
        ids.update(eos if isinstance(eos, list) else [eos] if eos is not None else [])
    except (OSError, ValueError):
        pass
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tokenizer or model)
    if tok.eos_token_id is not None:
        ids.add(int(tok.eos_token_id))
    return ids


class DataLLMEngine:
    def __init__(self, ray: Any, options: Any, ray_options: RayOptions):
        if not isinstance(options, VLLMOptions):
            raise BackendError("the Ray Data LLM engine runs the vllm backend only")
        if options.lora_path or options.enable_lora:
            raise BackendError("--ray with the vllm backend does not apply LoRA adapters yet: merge the adapter into "
                               "the weights, or run without --ray")
        if options.data_parallel_size > 1:
            raise BackendError("with --ray, engine replicas are --replicas N (each a full model copy); "
                               "drop -o data_parallel_size")
        self.ray, self.options, self.ray_options = ray, options, ray_options
        import ray.data  # noqa: F401
        from ray.data.llm import vLLMEngineProcessorConfig  # noqa: F401  (fails early when Ray Data LLM is missing)

        kw = base_engine_kwargs(options)
        kw.update(options.engine_args)
        self.model = kw.pop("model")
        self.engine_kwargs = kw
        self.stop_ids = stop_token_ids(self.model, options.tokenizer)
        self._sent: dict[str, dict[str, Any]] = {}
        ctx = ray.data.DataContext.get_current()
        ctx.enable_progress_bars = False  # the run's own bar counts stored results
        ctx.enable_operator_progress_bars = False

    # -- the processor ------------------------------------------------------------------------
    def placement(self) -> dict[str, Any]:
        tp = int(self.engine_kwargs.get("tensor_parallel_size") or 1)
        gpus = self.ray_options.num_gpus
        if gpus is None:
            gpus = 1.0 if self.ray.cluster_resources().get("GPU", 0) >= 1 else 0.0
        cpus = self.ray_options.num_cpus if self.ray_options.num_cpus is not None else 1.0
        bundle = {"GPU": gpus, "CPU": cpus} if gpus else {"CPU": cpus}
        return {"bundles": [bundle] * tp, "strategy": "PACK"}

    def processor(self) -> Any:
        from ray.data.llm import build_processor, vLLMEngineProcessorConfig

        replicas = self.ray_options.replicas
        config = vLLMEngineProcessorConfig(
            model_source=self.model, engine_kwargs=dict(self.engine_kwargs), concurrency=(replicas, replicas),
            batch_size=self.ray_options.batch_size, chat_template_stage=False, tokenize_stage=False,
            detokenize_stage=False, log_engine_metrics=False, should_continue_on_error=True,
            placement_group_config=self.placement(), runtime_env=self.ray_options.runtime_env or None)
        return build_processor(config)

    def _rows(self, rows: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        ds = self.processor()(self.ray.data.from_items(rows))
        yield from ds.iter_rows()

    # -- generation -----------------------------------------------------------------------------
    def generate(self, requests: list[GenRequest], progress: bool = True) -> Iterator[GenResult]:
        rows = []
        for r in requests:
            if r.prompt_ids is None:
                raise BackendError("the vllm backend needs harness-rendered prompt token ids (a local tokenizer)")
            fields = sampling_fields(r.sampling)
            self._sent.setdefault(json.dumps(fields, sort_keys=True), fields)
            rows.append({"key": r.key, "tokenized_prompt": list(r.prompt_ids),
                         "sampling_params": {k: v for k, v in fields.items() if v is not None}})
        by_key = {r.key: r for r in requests}
        for row in self._rows(rows):
            yield self._result(by_key[row["key"]], row)

    def _result(self, r: GenRequest, row: dict[str, Any]) -> GenResult:
        if row.get(_ERROR):
            return GenResult(key=r.key, prompt_tokens=len(r.prompt_ids or []), error=str(row[_ERROR]))
        tokens = [int(t) for t in row.get("generated_tokens") or []]
        n = len(tokens)
        if tokens and tokens[-1] in self.stop_ids:
            finish = "stop"
        else:  # vLLM's own reason is not in Ray Data LLM's output: the budget used up, else a stop string
            finish = "length" if n >= r.sampling.max_new_tokens else "stop"
        metrics = row.get("metrics")
        timing = timing_from_metrics(SimpleNamespace(**metrics) if isinstance(metrics, dict) else None, n)
        return GenResult(key=r.key, text=row.get("generated_text") or "", prompt_tokens=row.get("num_input_tokens"),
                         completion_tokens=n, finish_reason=finish, timing=timing)

    # -- probes ---------------------------------------------------------------------------------
    def logprobs(self, requests: list[LogprobRequest], progress: bool = True) -> Iterator[LogprobResult]:
        params = {"max_tokens": 1, "temperature": 0.0, "prompt_logprobs": 1, "detokenize": False}
        ready = []
        for r in requests:
            if not r.context_ids:
                yield LogprobResult(key=r.key, error="empty context: the first token has no prediction")
            elif not r.continuation_ids:
                yield LogprobResult(key=r.key, error="empty continuation: nothing to score")
            else:
                ready.append(r)
        if not ready:
            return
        by_key = {r.key: r for r in ready}
        rows = [{"key": r.key, "tokenized_prompt": r.context_ids + r.continuation_ids, "sampling_params": params}
                for r in ready]
        for row in self._rows(rows):
            r = by_key[row["key"]]
            if row.get(_ERROR):
                yield LogprobResult(key=r.key, error=str(row[_ERROR]))
            else:
                yield continuation_logprobs(r, _prompt_logprobs(row.get("prompt_logprobs")))

    # -- bookkeeping ----------------------------------------------------------------------------
    def effective_settings(self) -> dict[str, Any]:
        s = self.options.model_dump(mode="json")
        s.update(engine="ray-data-llm", engine_kwargs={k: _plain(v) for k, v in self.engine_kwargs.items()},
                 placement_group=self.placement(), stop_token_ids=sorted(self.stop_ids),
                 sampling_sent=list(self._sent.values())[:50],
                 sampling_note="every sampling field is sent with every request, so no generation_config.json "
                               "default applies to them")
        return s

    def cluster_info(self) -> dict[str, Any]:
        return {"engine": "ray-data-llm", **cluster_size(self.ray)}

    def close(self) -> None:
        pass


def _prompt_logprobs(entries: Any) -> Optional[list[Any]]:
    """Ray Data LLM's prompt_logprobs (per position None or {token_id: {logprob, rank, ...}}, after a trip
    through Arrow) as vLLM's shape: per position {token_id: object with .logprob and .rank}."""
    if entries is None:
        return None
    out: list[Any] = []
    for entry in entries:
        if entry is None:
            out.append(None)
            continue
        items = entry.items() if isinstance(entry, dict) else entry  # a map column comes back as (key, value) pairs
        pos: dict[int, Any] = {}
        for token, info in items:
            if info is None:
                continue
            pos[int(token)] = SimpleNamespace(logprob=float(info["logprob"]), rank=info.get("rank"))
        out.append(pos)
    return out


def _plain(v: Any) -> Any:
    if isinstance(v, dict):
        return {str(k): _plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    return v if v is None or isinstance(v, (bool, int, float, str)) else repr(v)
