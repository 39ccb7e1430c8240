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
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Optional, Union

from sfteval.judges.config import JudgeConfig
from sfteval.judges.parse import ParsedScores, ParsedVerdict, Unparsed, judgment_fields

from ..backends.base import Backend, GenRequest, GenResult
from ..models import Judgment, SamplingParams
from ..store import content_key
from .budget import BUDGET, Budget, dispatch_rounds
from .cost import Prices, TokenCounter, counter_for
from .spec import JudgeError, JudgeSpec, backend_options, check_judge_options, judge_identity

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


def not_judged(call: JudgeCall, reason: str) -> Judgment:
    """A judge sample that was not sent (``reason``: ``budget``): no score, and sent by a later run."""
    t = call.template
    return t.model_copy(update={"status": "not_judged", "reason": reason,
                                "details": {**t.details, "cache_key": call.cache_key, "attempts": 0}})


#: statuses a later run sends again (an ``unparsed`` answer is final: its text is kept)
RETRIED = ("error", "not_judged")


def add_usage(a: Optional[dict[str, Any]], b: dict[str, Any]) -> dict[str, Any]:
    """Two requests' usage as one (an unparsed answer and its retry)."""
    if not a:
        return dict(b)
    out = {**a, **{k: v for k, v in b.items() if not isinstance(v, (int, float))}}
    for k in ("requests", "prompt_tokens", "completion_tokens", "cost"):
        if k in a or k in b:
            out[k] = round((a.get(k) or 0) + (b.get(k) or 0), 8)
    return out


class JudgeClient:
    """The judge model behind a Backend; opened lazily, so a fully cached re-judge loads nothing.

    ``existing``: the stored judgments; with ``cache_key="model"`` the same model's judgments under any
    endpoint are cache hits (:meth:`keys`).
    """

    def __init__(self, spec: JudgeSpec, cfg: JudgeConfig, log: Callable[[str], None],
                 existing: Iterable[Judgment] = (), *, workdir: Optional[Path] = None):
        self.spec, self.cfg, self.log = spec, cfg, log
        self.workdir = workdir  #: the folder whose records these are (batch mode keeps its batch ids there)
        self._backend: Optional[Backend] = None
        self._renderer: Any = None
        self._judge_id: Optional[str] = None
        self._counter: Optional[TokenCounter] = None
        check_judge_options(spec)
        self.prices = Prices.of(spec)
        self.budget = budget_for(spec, self.prices)
        self.refused: set[str] = set()  #: keys of the last generate() that the budget kept back
        self.calls = 0  #: dispatches (backend.generate invocations or batch rounds; tests assert batching)
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

    @property
    def counter(self) -> TokenCounter:
        """Counts prompt tokens (:func:`harness.judging.cost.counter_for`), loaded on first use."""
        if self._counter is None:
            self._counter = counter_for(self.spec)
        return self._counter

    @property
    def batch(self) -> bool:
        return self.spec.mode == "batch"

    def worst_cost(self, messages: list[dict[str, str]], sampling: SamplingParams) -> float:
        """The most one request can cost: what the budget reserves before sending it."""
        if self.budget is None or self.budget.max_cost is None:
            return 0.0
        return self.prices.cost(self.counter.upper(messages), sampling.max_new_tokens, self.batch)

    def usage_of(self, res: GenResult) -> dict[str, Any]:
        """One request's usage as stored with its judgment: tokens, cost at the configured prices, how it went."""
        batch = res.usage.get("mode") == "batch"
        pt, ct = res.prompt_tokens or 0, res.completion_tokens or 0
        usage: dict[str, Any] = {"requests": 1, "prompt_tokens": pt, "completion_tokens": ct,
                                 "mode": "batch" if batch else "online"}
        if self.prices.known:
            usage["cost"] = round(self.prices.cost(pt, ct, batch), 8)
        if res.usage.get("batch_id"):
            usage["batch_id"] = res.usage["batch_id"]
        return usage

    def generate(self, requests: list[tuple[str, list[dict[str, str]], SamplingParams]]) -> Iterator[GenResult]:
        """Results of the requests sent (any order); the keys the budget kept back are in ``self.refused``.

        Batches an earlier process submitted for this work are collected first, whatever the mode, so nothing
        is paid for twice; then the rest goes online through the backend or as a new batch.
        """
        self.calls += 1
        self.refused = set()
        todo = list(requests)
        if self.workdir is not None:
            from .batch import collect_pending

            todo = yield from collect_pending(self, todo)
        if not todo:
            return
        if self.batch:
            from .batch import run_batches

            yield from run_batches(self, todo)
            return
        backend = self.open()

        def send(admitted: Iterable[tuple[str, list[dict[str, str]], SamplingParams]]) -> Iterator[GenResult]:
            batch: Iterable[GenRequest] = (self.request(k, m, s) for k, m, s in admitted)
            if not backend.streams_requests:
                batch = list(batch)  # admitted up front: every reservation at its worst case
            return backend.generate(batch)  # type: ignore[arg-type]

        yield from dispatch_rounds(todo, self.budget, lambda r: r[0], send, lambda r: self.worst_cost(r[1], r[2]),
                                   self.refused)


def create_judge_backend(spec: JudgeSpec) -> Backend:
    """The judge's backend: an OpenAI-compatible server (chat messages) or a local checkpoint (hf, vllm)."""
    from ..backends import create_backend

    return create_backend(spec.backend, model=spec.model, **backend_options(spec))


def budget_for(spec: JudgeSpec, prices: Prices) -> Optional[Budget]:
    """The command's cap (None without one); a cost cap needs prices to count against."""
    if spec.max_cost is None and spec.max_calls is None:
        return None
    if spec.max_cost is not None and not prices.known:
        raise JudgeError("--max-cost needs the judge's prices: --judge-option price_per_1k_prompt=USD "
                         "--judge-option price_per_1k_completion=USD")
    return Budget(spec.max_cost, spec.max_calls)


def partition(calls: Iterable[JudgeCall], existing: dict[str, Judgment]
              ) -> tuple[list[JudgeCall], list[tuple[JudgeCall, Judgment]], dict[str, list[JudgeCall]]]:
    """(already stored, answered by the cache, to send by cache key): exactly what :func:`run_calls` sends."""
    cache = {j.details["cache_key"]: j for j in existing.values()
             if j.status not in RETRIED and "cache_key" in j.details}
    stored: list[JudgeCall] = []
    hits: list[tuple[JudgeCall, Judgment]] = []
    todo: dict[str, list[JudgeCall]] = {}
    for call in calls:
        have = existing.get(call.template.key)
        if have is not None and have.status not in RETRIED:
            stored.append(call)
            continue
        hit = next((cache[k] for k in (call.cache_key, *call.also) if k in cache), None)
        if hit is not None:  # same prompt already judged (another answer sample, another target): no call
            hits.append((call, hit))
            continue
        todo.setdefault(call.cache_key, []).append(call)
    return stored, hits, todo


def _sent(calls: list[JudgeCall], results: Callable[[JudgeCall, dict[str, Any]], Judgment],
          usage: dict[str, Any]) -> Iterator[Judgment]:
    """One request's records: the first carries its usage, the others (same prompt) point to it."""
    first = calls[0].template.key
    for i, c in enumerate(calls):
        yield results(c, {"usage": usage} if i == 0 else {"same_call_as": first})


def run_calls(calls: Iterable[JudgeCall], client: JudgeClient, existing: dict[str, Judgment], *,
              retry_unparsed: bool, label: str = "judge", fail_fast: bool = True) -> Iterator[Judgment]:
    """Yield a record for every call not already stored: cache hits first, then one batched dispatch.

    ``existing`` is the store's records by key. When every request failed (an unreachable judge),
    ``fail_fast`` raises :class:`JudgeError` before anything is written for them; without it the error
    records are yielded like any other (a run keeps its answers and summary, and a re-judge retries them).
    Requests a budget kept back are ``not_judged`` records (reason ``budget``).
    """
    _, hits, todo = partition(calls, existing)
    for call, hit in hits:
        yield fill(call, hit.raw, call.parse(hit.raw), attempts=0, extra={"cached_from": hit.key})
    if not todo:
        return
    retries: dict[str, tuple[str, str, dict[str, Any]]] = {}
    errors: list[Judgment] = []
    skipped: list[Judgment] = []
    n_ok = 0
    for ck, result, attempt in _execute(client, todo, retry=False, label=label):
        calls_ = todo[ck]
        if result is None:
            skipped += [not_judged(c, BUDGET) for c in calls_]
            continue
        usage = client.usage_of(result)
        if not result.ok:
            errors += _sent(calls_, lambda c, x: fill(c, None, None, error=result.error, attempts=result.attempts,
                                                      extra=x), usage)
            continue
        n_ok += 1
        parsed = calls_[0].parse(result.text)
        if isinstance(parsed, Unparsed) and retry_unparsed:
            retries[ck] = (result.text, parsed.reason, usage)
            continue
        yield from _sent(calls_, lambda c, x: fill(c, result.text, parsed, attempts=attempt, extra=x), usage)
    if n_ok == 0 and errors:
        message = f"the judge failed on all {len(errors)} requests: {errors[0].reason}"
        if fail_fast:
            raise JudgeError(message)
        client.log(f"warning: {message}; stored as errors")
    yield from errors
    yield from skipped
    if retries:
        for ck, result, _ in _execute(client, {k: todo[k] for k in retries}, retry=True, label=f"{label} retry"):
            first_text, first_reason, first_usage = retries[ck]
            first = {"raw": first_text, "reason": first_reason}
            if result is None:  # the budget kept the retry back: the first (unparsed) answer stands
                extra = {"first_attempt": first, "retry_skipped": BUDGET}
                yield from _sent(todo[ck], lambda c, x: fill(c, first_text, c.parse(first_text), attempts=1,
                                                             extra={**extra, **x}), first_usage)
                continue
            usage = add_usage(first_usage, client.usage_of(result))
            if result.ok:
                yield from _sent(todo[ck], lambda c, x: fill(c, result.text, c.parse(result.text), attempts=2,
                                                             extra={"first_attempt": first, **x}), usage)
            else:  # the retry failed: keep the first (unparsed) answer rather than an error
                yield from _sent(todo[ck], lambda c, x: fill(c, first_text, c.parse(first_text), attempts=2,
                                                             extra={"retry_error": result.error, **x}), usage)


def _execute(client: JudgeClient, todo: dict[str, list[JudgeCall]], *, retry: bool,
             label: str) -> Iterator[tuple[str, Optional[GenResult], int]]:
    """(cache key, result, attempt) per request; result None for a request the budget kept back."""
    from tqdm import tqdm

    reqs = [(ck, cs[0].messages, client.sampling(cs[0].template.judge_sample, retry)) for ck, cs in todo.items()]
    bar = tqdm(total=len(reqs), desc=label, unit="req", disable=not client.spec.progress, file=sys.stderr,
               dynamic_ncols=True)
    seen: set[str] = set()
    try:
        for res in client.generate(reqs):
            if res.key in seen or res.key not in todo:
                continue
            seen.add(res.key)
            if client.budget is not None:
                client.budget.settle(res.key, client.usage_of(res).get("cost", 0.0))
            bar.update(1)
            yield res.key, res, 2 if retry else 1
    finally:
        bar.close()
    for ck in todo.keys() - seen:
        if ck in client.refused:
            yield ck, None, 0
        else:  # a backend must answer every request; a lost one is an error
            yield ck, GenResult(key=ck, error="backend returned no result for this request"), 1
