"""transformers backend: batched left-padded generation and teacher-forced log-probs, CPU or GPU."""

from __future__ import annotations

import time
from collections import defaultdict
from pathlib import Path
from typing import Any, Iterator, Literal, Optional

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig, LogitsProcessor, LogitsProcessorList

from ..models import SamplingParams, Timing
from .base import Backend, BackendError, BackendOptions, GenRequest, GenResult, LogprobRequest, LogprobResult, batched


class HFOptions(BackendOptions):
    device: str = "auto"
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    batch_size: int = 8
    trust_remote_code: bool = False
    gguf_file: Optional[str] = None
    score_batch_tokens: int = 8192  #: log-prob scoring: tokens per forward (padded rows x width)
    score_batch_rows: int = 256  #: log-prob scoring: at most this many sequences per forward


class _StepClock(LogitsProcessor):
    """Records the wall time of every decoding step: step 0 ends the prefill (time to first token)."""

    def __init__(self) -> None:
        self.start = time.perf_counter()
        self.steps: list[float] = []

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        self.steps.append(time.perf_counter())
        return scores


def _resolve_device(device: str) -> str:
    if device != "auto":
        return device
    if torch.cuda.is_available():
        return "cuda"
    return "cpu"


def _resolve_dtype(dtype: str, device: str) -> torch.dtype:
    if dtype == "auto":
        return torch.bfloat16 if device.startswith("cuda") else torch.float32
    return getattr(torch, dtype)


class HFBackend(Backend):
    name = "hf"
    Options = HFOptions
    loads_local_weights = True
    supports_prompt_logprobs = True

    def __init__(self, options: HFOptions):
        super().__init__(options)
        self.device = _resolve_device(options.device)
        self.dtype = _resolve_dtype(options.dtype, self.device)
        extra: dict[str, Any] = {"trust_remote_code": options.trust_remote_code}
        if options.gguf_file:
            extra["gguf_file"] = options.gguf_file
        if not Path(options.model).exists():
            raise BackendError(f"model path does not exist: {options.model}")
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(options.tokenizer or options.model, **extra)
            self.model = AutoModelForCausalLM.from_pretrained(options.model, dtype=self.dtype, **extra)
        except (OSError, ValueError) as e:
            raise BackendError(f"cannot load model from {options.model}: {e}") from e
        self.model.to(self.device).eval()
        self.pad_id = self.tokenizer.pad_token_id
        if self.pad_id is None:
            self.pad_id = self.tokenizer.eos_token_id if self.tokenizer.eos_token_id is not None else 0
        self.eos_ids = _eos_ids(self.model.generation_config, self.tokenizer)
        self.checkpoint_generation_config = self.model.generation_config.to_diff_dict()
        self._scorer: Any = None

    # -- generation --------------------------------------------------------------------
    def generate(self, requests: list[GenRequest]) -> Iterator[GenResult]:
        groups: dict[SamplingParams, list[GenRequest]] = defaultdict(list)
        for r in requests:
            if r.prompt_ids is None:
                raise BackendError("the hf backend needs harness-rendered prompt token ids")
            groups[r.sampling].append(r)
        for sampling, group in groups.items():
            group.sort(key=lambda r: len(r.prompt_ids or []))
            for batch in batched(group, self.options.batch_size):
                yield from self._generate_batch(batch, sampling)

    def _generate_batch(self, batch: list[GenRequest], sampling: SamplingParams) -> list[GenResult]:
        try:
            return self._run_batch(batch, sampling)
        except (RuntimeError, torch.cuda.OutOfMemoryError) as e:  # OOM or a kernel error: isolate the culprit
            if len(batch) == 1:
                return [GenResult(key=batch[0].key, error=f"{type(e).__name__}: {e}")]
            if self.device.startswith("cuda"):
                torch.cuda.empty_cache()
            return [res for r in batch for res in self._generate_batch([r], sampling)]

    def generation_config(self, sampling: SamplingParams) -> GenerationConfig:
        """An explicit config: nothing from the checkpoint's generation_config.json applies silently."""
        return GenerationConfig(
            max_new_tokens=sampling.max_new_tokens,
            do_sample=not sampling.greedy,
            temperature=sampling.temperature if not sampling.greedy else None,
            top_p=sampling.top_p if not sampling.greedy else None,
            top_k=None,
            eos_token_id=self.eos_ids,
            pad_token_id=self.pad_id,
            bos_token_id=self.model.generation_config.bos_token_id,
        )

    @torch.inference_mode()
    def _run_batch(self, batch: list[GenRequest], sampling: SamplingParams) -> list[GenResult]:
        width = max(len(r.prompt_ids or []) for r in batch)
        ids = torch.full((len(batch), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for i, r in enumerate(batch):
            p = r.prompt_ids or []
            ids[i, width - len(p):] = torch.tensor(p, dtype=torch.long)
            mask[i, width - len(p):] = 1
        if not sampling.greedy:
            torch.manual_seed(sampling.seed)
        clock = _StepClock()
        out = self.model.generate(
            input_ids=ids.to(self.device),
            attention_mask=mask.to(self.device),
            generation_config=self.generation_config(sampling),
            logits_processor=LogitsProcessorList([clock]),
        )
        results = []
        for i, r in enumerate(batch):
            new = out[i, width:].tolist()
            n, finish = _cut_at_eos(new, self.eos_ids)
            generated = n + 1 if finish == "stop" else n  # the EOS token was generated too
            text = self.tokenizer.decode(new[:n], skip_special_tokens=True)
            text, stopped = _apply_stop(text, sampling.stop)
            results.append(GenResult(
                key=r.key, text=text, prompt_tokens=len(r.prompt_ids or []), completion_tokens=generated,
                finish_reason="stop" if stopped else finish, timing=_timing(clock, generated),
            ))
        return results

    # -- log-probs ----------------------------------------------------------------------
    def logprobs(self, requests: list[LogprobRequest]) -> Iterator[LogprobResult]:
        """Teacher-forced log-probs; planning, batching and exactness notes in :mod:`.hf_scoring`."""
        if self._scorer is None:
            from .hf_scoring import TeacherForcedScorer

            o = self.options
            self._scorer = TeacherForcedScorer(self.model, self.pad_id, self.device, o.score_batch_tokens,
                                               o.score_batch_rows)
        yield from self._scorer.score(requests)

    def effective_settings(self) -> dict[str, Any]:
        s = super().effective_settings()
        s.update(device=self.device, dtype=str(self.dtype).removeprefix("torch."),
                 eos_token_ids=self.eos_ids, checkpoint_generation_config=self.checkpoint_generation_config)
        return s

    def close(self) -> None:
        del self.model
        if self.device.startswith("cuda"):
            torch.cuda.empty_cache()


def _eos_ids(gen_config: Any, tokenizer: Any) -> list[int]:
    ids: list[int] = []
    cfg = getattr(gen_config, "eos_token_id", None)
    for x in (cfg if isinstance(cfg, list) else [cfg]) + [tokenizer.eos_token_id]:
        if x is not None and x not in ids:
            ids.append(int(x))
    return ids


def _cut_at_eos(tokens: list[int], eos_ids: list[int]) -> tuple[int, str]:
    """Number of answer tokens before the first EOS, and why generation ended."""
    for i, t in enumerate(tokens):
        if t in eos_ids:
            return i, "stop"
    return len(tokens), "length"


def _apply_stop(text: str, stops: tuple[str, ...]) -> tuple[str, bool]:
    cut = min((text.index(s) for s in stops if s and s in text), default=None)
    return (text, False) if cut is None else (text[:cut], True)


def _timing(clock: _StepClock, x: int) -> Timing:
    if not clock.steps:
        return Timing()
    x = max(1, min(x, len(clock.steps)))
    first, last = clock.steps[0], clock.steps[x - 1]
    per_token = (last - first) / (x - 1) if x > 1 else None
    return Timing(ttft_s=first - clock.start, per_token_s=per_token, total_s=last - clock.start)
