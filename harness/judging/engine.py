"""Calling a judge model: cached by content, batched into one backend call, unparsed retried once.

Why one engine for single and pairwise grading: both are "k samples of a prompt, parse, store", and
both must (1) never pay twice for the same judge call -- the cache key is the judge config hash, the
judge's identity (model, endpoint, output-changing options), the prompt's content hash and the judge
sample, so identical answers of two samples or a re-run share one call; (2) send every pending request
in ONE ``backend.generate`` call so an API backend's concurrency limit, not this loop, sets the pace;
(3) keep errors retriable: an ``error`` record is never a cache hit, while an ``unparsed`` one is final
(the raw text is kept).
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator, Optional, Union

from sfteval.judges.config import JudgeConfig
from sfteval.judges.parse import ParsedScores, ParsedVerdict, Unparsed, judgment_fields

from ..backends.base import Backend, GenRequest, GenResult
from ..models import Judgment, SamplingParams
from ..store import content_key
from .spec import JudgeError, JudgeSpec, backend_options, judge_identity

ParseResult = Union[ParsedScores, ParsedVerdict, Unparsed]
#: Seed offset of the one retry of an unparsed sample (a seeded server would repeat the same text).
RETRY_SEED_OFFSET = 100_003


@dataclass
class JudgeCall:
    """One judge sample to obtain: the record minus the judge's output, the prompt, and its parser."""

    template: Judgment
    cache_key: str
    messages: list[dict[str, str]]
    parse: Callable[[Optional[str]], ParseResult]
    annotate: Optional[Callable[[ParseResult], dict[str, Any]]] = None  #: extra details of a parsed sample
    also: tuple[str, ...] = ()  #: the same call's keys under the model's other identities (cache_key "model")


def cache_key(mode: str, cfg_hash: str, judge_id: str, prompt_hash: str, judge_sample: int) -> str:
    return content_key("judge", mode, cfg_hash, judge_id, prompt_hash, judge_sample)


def rationale(raw: Optional[str]) -> Optional[str]:
    """The judge's reasoning: its text before the final score dict or verdict."""
    if not raw:
        return None
    cut = max(raw.rfind("{"), raw.rfind("｛"), raw.rfind("[["), raw.rfind("【【"))
    text = (raw[:cut] if cut > 0 else raw).strip()
    return re.sub(r"(```(?:json|python)?\s*)$", "", text).strip() or None


def fill(call: JudgeCall, raw: Optional[str], result: Optional[ParseResult], *, attempts: int = 1,
         error: Optional[str] = None, extra: Optional[dict[str, Any]] = None) -> Judgment:
    """The stored record for one judge sample (error when the backend failed)."""
    t = call.template
    details = {**t.details, "cache_key": call.cache_key, "attempts": attempts, **(extra or {})}
    if error is not None or result is None:
        return t.model_copy(update={"status": "error", "reason": error or "no result", "raw": raw,
                                    "details": details})
    fields = judgment_fields(result)
    details.update(fields.pop("details", {}))
    if call.annotate is not None and not isinstance(result, Unparsed):
        details.update(call.annotate(result))
    return t.model_copy(update={**fields, "raw": raw, "rationale": rationale(raw), "details": details})


class JudgeClient:
    """The judge model behind a Backend; opened lazily, so a fully cached re-judge loads nothing.

    ``existing``: the stored judgments; with ``cache_key="model"`` the same model's judgments under any
    endpoint are cache hits (:meth:`keys`).
    """

    def __init__(self, spec: JudgeSpec, cfg: JudgeConfig, log: Callable[[str], None],
                 existing: Iterable[Judgment] = ()):
        self.spec, self.cfg, self.log = spec, cfg, log
        self._backend: Optional[Backend] = None
        self._renderer: Any = None
        self._judge_id: Optional[str] = None
        self.calls = 0  #: backend.generate invocations (tests assert batching)
        self._peers: tuple[str, ...] = ()
        if spec.cache_key == "model":
            cfg_hash = cfg.config_hash()
            self._peers = tuple(sorted({j.details["judge_id"] for j in existing if j.judge_model == spec.model
                                        and j.judge_config_hash == cfg_hash and j.details.get("judge_id")}
                                       - {self.judge_id}))

    @property
    def judge_id(self) -> str:
        """The judge's identity in cache keys (:func:`harness.judging.spec.judge_identity`), computed once."""
        if self._judge_id is None:
            self._judge_id = judge_identity(self.spec)
        return self._judge_id

    def keys(self, mode: str, cfg_hash: str, prompt_hash: str, judge_sample: int) -> tuple[str, tuple[str, ...]]:
        """A call's cache key, and its keys under the other identities of the same model name found in the
        stored judgments (other endpoints; only with ``cache_key="model"``)."""
        return (cache_key(mode, cfg_hash, self.judge_id, prompt_hash, judge_sample),
                tuple(cache_key(mode, cfg_hash, p, prompt_hash, judge_sample) for p in self._peers))

    def open(self) -> Backend:
        if self._backend is None:
            self._backend = create_judge_backend(self.spec)
            if self._backend.prompt_mode != "chat":
                from transformers import AutoTokenizer

                from ..render import Renderer

                tok = AutoTokenizer.from_pretrained(self.spec.options.get("tokenizer") or self.spec.model)
                self._renderer = Renderer(tok)
        return self._backend

    def close(self) -> None:
        if self._backend is not None:
            self._backend.close()
            self._backend = None

    def sampling(self, judge_sample: int, retry: bool) -> SamplingParams:
        s = self.cfg.sampling
        seed = s.seed + judge_sample + (RETRY_SEED_OFFSET if retry else 0)
        return SamplingParams(temperature=s.temperature, top_p=s.top_p, max_new_tokens=s.max_tokens, seed=seed)

    def request(self, key: str, messages: list[dict[str, str]], sampling: SamplingParams) -> GenRequest:
        if self._renderer is None:
            return GenRequest(key=key, sampling=sampling, messages=messages)
        r = self._renderer.render(messages)
        return GenRequest(key=key, sampling=sampling, prompt=r.text, prompt_ids=r.token_ids, messages=r.messages)

    def generate(self, requests: list[tuple[str, list[dict[str, str]], SamplingParams]]) -> Iterator[GenResult]:
        backend = self.open()
        batch = [self.request(k, m, s) for k, m, s in requests]
        self.calls += 1
        yield from backend.generate(batch)


def create_judge_backend(spec: JudgeSpec) -> Backend:
    """The judge's backend: an OpenAI-compatible server (chat messages) or a local checkpoint (hf, vllm)."""
    from ..backends import create_backend

    return create_backend(spec.backend, model=spec.model, **backend_options(spec))


def run_calls(calls: Iterable[JudgeCall], client: JudgeClient, existing: dict[str, Judgment], *,
              retry_unparsed: bool, label: str = "judge", fail_fast: bool = True) -> Iterator[Judgment]:
    """Yield a record for every call not already stored: cache hits first, then one batched backend call.

    ``existing`` is the store's records by key. When every request failed (an unreachable judge),
    ``fail_fast`` raises :class:`JudgeError` before anything is written for them; without it the error
    records are yielded like any other (a run keeps its answers and summary, and a re-judge retries them).
    """
    cache = {j.details["cache_key"]: j for j in existing.values() if j.status != "error" and "cache_key" in j.details}
    todo: dict[str, list[JudgeCall]] = {}
    for call in calls:
        have = existing.get(call.template.key)
        if have is not None and have.status != "error":
            continue
        hit = next((cache[k] for k in (call.cache_key, *call.also) if k in cache), None)
        if hit is not None:  # same prompt already judged (another answer sample, another target): no call
            yield fill(call, hit.raw, call.parse(hit.raw), attempts=0, extra={"cached_from": hit.key})
            continue
        todo.setdefault(call.cache_key, []).append(call)
    if not todo:
        return
    retries: dict[str, tuple[str, str]] = {}
    errors: list[Judgment] = []
    n_ok = 0
    for ck, result, attempt in _execute(client, todo, retry=False, label=label):
        calls_ = todo[ck]
        if not result.ok:
            errors += [fill(c, None, None, error=result.error, attempts=result.attempts) for c in calls_]
            continue
        n_ok += 1
        parsed = calls_[0].parse(result.text)
        if isinstance(parsed, Unparsed) and retry_unparsed:
            retries[ck] = (result.text, parsed.reason)
            continue
        yield from (fill(c, result.text, parsed, attempts=attempt) for c in calls_)
    if n_ok == 0 and errors:
        message = f"the judge failed on all {len(errors)} requests: {errors[0].reason}"
        if fail_fast:
            raise JudgeError(message)
        client.log(f"warning: {message}; stored as errors")
    yield from errors
    if retries:
        for ck, result, _ in _execute(client, {k: todo[k] for k in retries}, retry=True, label=f"{label} retry"):
            first_text, first_reason = retries[ck]
            extra = {"first_attempt": {"raw": first_text, "reason": first_reason}}
            for c in todo[ck]:
                if result.ok:
                    yield fill(c, result.text, c.parse(result.text), attempts=2, extra=extra)
                else:  # the retry failed: keep the first (unparsed) answer rather than an error
                    yield fill(c, first_text, c.parse(first_text), attempts=2,
                               extra={"retry_error": result.error})


def _execute(client: JudgeClient, todo: dict[str, list[JudgeCall]], *, retry: bool,
             label: str) -> Iterator[tuple[str, GenResult, int]]:
    from tqdm import tqdm

    reqs = [(ck, cs[0].messages, client.sampling(cs[0].template.judge_sample, retry)) for ck, cs in todo.items()]
    bar = tqdm(total=len(reqs), desc=label, unit="req", disable=not client.spec.progress, file=sys.stderr,
               dynamic_ncols=True)
    seen: set[str] = set()
    try:
        for res in client.generate(reqs):
            seen.add(res.key)
            bar.update(1)
            yield res.key, res, 2 if retry else 1
    finally:
        bar.close()
    for ck in todo.keys() - seen:  # a backend must answer every request; a lost one is an error
        yield ck, GenResult(key=ck, error="backend returned no result for this request"), 1
