"""The ``openai`` backend: any OpenAI-compatible server (vllm serve, SGLang, TGI, llama.cpp, OpenAI).

Rendered prompts (the checkpoint's tokenizer is known) go to ``/v1/completions`` as token ids, so
the server scores exactly the tokens the other backends see; without a tokenizer the messages go
to ``/v1/chat/completions`` and the server applies its own template (``prompt_mode = "chat"``).
Requests run concurrently on a background event loop; each result is handed to the runner as
soon as it is done. Failures are retried with backoff (Retry-After honoured) and a request that
still fails becomes an error record, never a fake answer. The API key is never written anywhere.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Awaitable, Callable, Iterator, Literal, Optional, TypeVar
from urllib.parse import urlsplit

import openai
from pydantic import Field, SecretStr

from ...redact import redact_url as _redact_url
from ..base import Backend, BackendError, BackendOptions, GenRequest, GenResult, LogprobRequest, LogprobResult
from .retry import Failure, RetryPolicy, classify, scrub
from .runtime import LoopThread
from .wire import Collected, NoPromptLogprobs, echo_logprobs, prompt_logprobs, read_body, read_stream, sampling_body

T = TypeVar("T")
DEFAULT_BASE_URL = "https://api.openai.com/v1"


class OpenAIOptions(BackendOptions):
    base_url: Optional[str] = None  #: default: $OPENAI_BASE_URL, else OpenAI's
    model_name: Optional[str] = None  #: served model name (default: --model, or the server's only model)
    api_key: Optional[SecretStr] = None  #: prefer the environment (api_key_env)
    api_key_env: str = "OPENAI_API_KEY"
    api: Literal["auto", "completions", "chat"] = "auto"  #: auto: completions when a tokenizer is known
    prompt_as: Literal["ids", "text"] = "ids"  #: completions prompt: token ids (exact) or rendered text
    concurrency: int = Field(16, ge=1)
    max_retries: int = Field(5, ge=0)
    timeout: float = Field(600.0, gt=0)  #: seconds per attempt, whole answer included
    backoff_base: float = Field(0.5, ge=0)
    backoff_max: float = Field(30.0, ge=0)
    max_retry_after: float = Field(300.0, ge=0)
    stream: bool = True  #: needed for time to first token and per-token time
    max_tokens_param: Literal["max_tokens", "max_completion_tokens"] = "max_tokens"
    extra_body: dict[str, Any] = Field(default_factory=dict)  #: e.g. {top_k: -1, repetition_penalty: 1.0}
    logprobs_method: Literal["echo", "prompt_logprobs"] = "echo"
    price_per_1k_prompt: float = Field(0.0, ge=0)
    price_per_1k_completion: float = Field(0.0, ge=0)
    http_transport: Literal["auto", "aiohttp", "httpx"] = "auto"


@dataclass
class Totals:
    """Token and cost accounting of this session (written to manifest.usage)."""

    requests: int = 0
    failed: int = 0
    attempts: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float = 0.0
    scoring_requests: int = 0


def resolve_base_url(option: Optional[str]) -> str:
    """The API root requests go to: the option, else $OPENAI_BASE_URL, else OpenAI's; a bare host gets
    ``/v1``, where every OpenAI-compatible server mounts the API. The judge's cache identity uses it too."""
    base = (option or os.environ.get("OPENAI_BASE_URL") or DEFAULT_BASE_URL).rstrip("/")
    if urlsplit(base).path in ("", "/"):
        base += "/v1"
    return base


#: Sampling fields a vLLM server fills from the checkpoint's generation_config.json when a request leaves them
#: out (the OpenAI API has no such fields, so they are not sent by default), and their neutral values.
SERVER_FILLED_NEUTRAL: dict[str, Any] = {"top_k": (0, -1), "min_p": (0, 0.0), "repetition_penalty": (1, 1.0),
                                         "presence_penalty": (0, 0.0), "frequency_penalty": (0, 0.0)}


def server_default_sampling(folder: Optional[str], sent: dict[str, Any]) -> dict[str, Any]:
    """Non-neutral values of the checkpoint's generation_config.json that a server applies to unsent fields.

    vLLM serves with ``--generation-config auto``: a Qwen-style ``repetition_penalty: 1.05`` then changes
    greedy answers, although temperature and top_p are sent. Recording it (and warning) makes that visible;
    ``-o extra_body='{repetition_penalty: 1.0}'`` neutralises it."""
    if not folder:
        return {}
    path = Path(folder) / "generation_config.json"
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(config, dict):
        return {}
    return {k: config[k] for k, neutral in SERVER_FILLED_NEUTRAL.items()
            if k in config and k not in sent and config[k] is not None and config[k] not in neutral}


async def _within(seconds: float, call: Callable[[], Awaitable[T]]) -> T:
    """``call()`` with a deadline (asyncio.timeout avoids wait_for's extra task per attempt on 3.11+)."""
    if sys.version_info >= (3, 11):
        async with asyncio.timeout(seconds):
            return await call()
    return await asyncio.wait_for(call(), seconds)  # pragma: no cover - Python 3.10


class OpenAIBackend(Backend):
    name = "openai"
    Options = OpenAIOptions
    supports_prompt_logprobs = True
    streams_requests = True

    def __init__(self, options: OpenAIOptions):
        super().__init__(options)
        self.options: OpenAIOptions = options
        base = resolve_base_url(options.base_url)
        if urlsplit(base).scheme not in ("http", "https"):
            raise BackendError(f"base URL {_redact_url(base)!r} must start with http:// or https://")
        self.base_url = base
        self._key, self._key_source = self._api_key()
        tokenizer_known = options.tokenizer is not None or Path(options.model).exists()
        self.api = options.api if options.api != "auto" else ("completions" if tokenizer_known else "chat")
        self.prompt_mode = "rendered" if self.api == "completions" else "chat"
        self.retry = RetryPolicy(options.max_retries, options.backoff_base, options.backoff_max,
                                 options.max_retry_after)
        self.totals = Totals()
        local = options.tokenizer or (options.model if Path(options.model).is_dir() else None)
        self.server_defaults = server_default_sampling(local, options.extra_body)
        if self.server_defaults:
            fixes = ", ".join(f"{k}: {SERVER_FILLED_NEUTRAL[k][1]}" for k in self.server_defaults)
            print(f"sfteval: warning: the checkpoint's generation_config.json sets {self.server_defaults}; a vLLM "
                  f"server applies these to every request (fields the OpenAI API does not send). To turn them "
                  f"off: -o extra_body='{{{fixes}}}'", file=sys.stderr)
        self._sent: dict[str, dict[str, Any]] = {}
        self._ok_seen = False
        self._lp_max_tokens = 0
        self._lp_notes: list[str] = []
        self._loop = LoopThread()
        self._client: Optional[openai.AsyncOpenAI] = None
        try:
            self._client, self.transport = self._loop.run(self._make_client())
            self.model_name = self._loop.run(self._check_server())
            self._sem = asyncio.Semaphore(options.concurrency)
        except BaseException:
            self.close()
            raise

    # -- setup --------------------------------------------------------------------------------
    def _api_key(self) -> tuple[str, str]:
        if self.options.api_key is not None:
            return self.options.api_key.get_secret_value(), "option"
        env = self.options.api_key_env
        value = os.environ.get(env)
        if value:
            return value, f"env:{env}"
        if env != "OPENAI_API_KEY":
            raise BackendError(f"api_key_env={env}: the environment variable {env} is not set")
        return "EMPTY", "none"  # local servers need no key; a real API answers 401 (clear error below)

    async def _make_client(self) -> tuple[openai.AsyncOpenAI, str]:
        try:
            import httpx2 as httpx  # the openai 3.x client
        except ImportError:  # pragma: no cover - openai 1.x
            import httpx  # type: ignore[no-redef]
        c = self.options.concurrency
        kw: dict[str, Any] = {"limits": httpx.Limits(max_connections=c + 8, max_keepalive_connections=c + 8),
                              "timeout": httpx.Timeout(self.options.timeout, connect=min(10.0, self.options.timeout))}
        transport = self.options.http_transport
        if transport in ("auto", "aiohttp"):
            try:  # aiohttp costs ~40% less CPU per request than httpx: it bounds the dispatch rate
                import aiohttp  # noqa: F401

                http: Any = openai.DefaultAioHttpClient(**kw)
                transport = "aiohttp"
            except (ImportError, AttributeError, RuntimeError) as e:
                if transport == "aiohttp":
                    raise BackendError(f"http_transport=aiohttp needs `pip install aiohttp` ({e})") from e
                transport = "httpx"
        if transport == "httpx":
            http = openai.DefaultAsyncHttpxClient(**kw)
        client = openai.AsyncOpenAI(base_url=self.base_url, api_key=self._key, max_retries=0,
                                    timeout=kw["timeout"], http_client=http)
        return client, transport

    async def _check_server(self) -> str:
        """Reach the server once before any work, and pick the served model name."""
        assert self._client is not None
        where = _redact_url(self.base_url)
        try:
            data = await asyncio.wait_for(self._client.get("/models", cast_to=object), min(30.0, self.options.timeout))
        except Exception as e:
            f = classify(e, min(30.0, self.options.timeout))
            if f.status in (404, 405):  # a server without /models: trust the configuration
                data = None
            else:
                raise BackendError(self._explain(f"cannot use the server at {where}: {f.reason}", f)) from None
        listed = data.get("data", []) if isinstance(data, dict) else []
        served = [str(m["id"]) for m in listed if isinstance(m, dict) and m.get("id")]
        if self.options.model_name:
            return self.options.model_name
        model = self.options.model
        if not Path(model).exists():
            if served and model not in served:
                raise BackendError(f"model {model!r} is not served at {where} (served: {', '.join(served[:20])}); "
                                   "pass the served name with --model or -o model_name=NAME")
            return model
        for name in served:  # `vllm serve ./ckpt` serves it under the path as given
            if Path(name).name == Path(model).name or Path(name).resolve() == Path(model).resolve():
                return name
        if len(served) == 1:
            return served[0]
        raise BackendError(f"which model served at {where} is {model}? served: {', '.join(served[:20]) or 'none'}; "
                           "pass -o model_name=NAME")

    def _explain(self, message: str, f: Failure) -> str:
        if f.status == 401 and self._key_source == "none":
            message += f" (no API key: set {self.options.api_key_env}, or -o api_key_env=NAME)"
        return scrub(message, self._key)

    # -- retries ------------------------------------------------------------------------------
    async def _with_retries(self, call: Callable[[], Awaitable[T]],
                            strict: bool = False) -> tuple[Optional[T], Optional[str], int]:
        """(value, None, attempts) or (None, reason, attempts). ``strict``: a failure that retrying cannot
        fix raises BackendError (used for the capability check of prompt log-probs)."""
        attempt = 0
        while True:
            attempt += 1
            self.totals.attempts += 1
            try:
                async with self._sem:
                    value = await _within(self.options.timeout, call)
                self._ok_seen = True
                return value, None, attempt
            except asyncio.CancelledError:
                raise
            except Exception as e:
                f = classify(e, self.options.timeout)
                if strict and (isinstance(e, NoPromptLogprobs) or not f.retryable):
                    raise BackendError(self._explain(
                        f"the server at {_redact_url(self.base_url)} cannot return prompt log-probs with "
                        f"logprobs_method={self.options.logprobs_method}: {f.reason}. Try "
                        "-o logprobs_method=prompt_logprobs (vLLM), or the hf/vllm backend", f)) from None
                if f.global_error and not self._ok_seen:
                    message = f"the server rejected the first requests: {f.reason}"
                    raise BackendError(self._explain(message, f)) from None
                delay = self.retry.delay(attempt, f)
                if delay is None:
                    return None, scrub(self.retry.give_up_reason(attempt, f), self._key), attempt
                await asyncio.sleep(delay)

    # -- generation ---------------------------------------------------------------------------
    def generate(self, requests: list[GenRequest]) -> Iterator[GenResult]:
        return self._loop.stream_results(requests, self._generate_one, self.options.concurrency)

    def request_body(self, req: GenRequest, stream: Optional[bool] = None) -> tuple[str, dict[str, Any]]:
        """(path under the API root, JSON body) of one generation request: what is sent online, and what a batch
        input line carries (``stream=False``)."""
        path, body, _ = self._body(req, self.options.stream if stream is None else stream)
        return path, body

    def batch_api(self) -> Any:
        """The server's Batch API (``/v1/files``, ``/v1/batches``), with this backend's client and retries."""
        from .batchapi import BatchAPI

        return BatchAPI(self)

    def _body(self, req: GenRequest, stream: Optional[bool] = None) -> tuple[str, dict[str, Any], bool]:
        sampling = sampling_body(req.sampling, self.options.max_tokens_param)
        sent = {**sampling, **self.options.extra_body}
        self._sent.setdefault(json.dumps(sent, sort_keys=True), sent)
        body: dict[str, Any] = {"model": self.model_name, **sent}
        if self.api == "completions" and (req.prompt_ids is not None or req.prompt is not None):
            use_ids = self.options.prompt_as == "ids" and req.prompt_ids is not None
            body["prompt"] = req.prompt_ids if use_ids else req.prompt
            path, chat = "/completions", False
        elif req.messages is not None:
            body["messages"] = req.messages
            path, chat = "/chat/completions", True
        else:
            raise BackendError("the openai backend got a request with neither a rendered prompt nor messages")
        if self.options.stream if stream is None else stream:
            body.update(stream=True, stream_options={"include_usage": True})
        return path, body, chat

    async def _post(self, path: str, body: dict[str, Any], chat: bool) -> Collected:
        assert self._client is not None
        if not body.get("stream"):
            return read_body(await self._client.post(path, cast_to=object, body=body), chat)
        stream = await self._client.post(path, cast_to=object, body=body, stream=True,
                                         stream_cls=openai.AsyncStream[object])
        try:
            return await read_stream(stream, chat)
        finally:
            await stream.close()

    async def _generate_one(self, req: GenRequest) -> GenResult:
        path, body, chat = self._body(req)
        timing: dict[str, float] = {}

        async def attempt() -> Collected:
            timing["start"] = time.perf_counter()
            got = await self._post(path, body, chat)
            timing["end"] = time.perf_counter()
            return got

        got, error, attempts = await self._with_retries(attempt)
        self.totals.requests += 1
        if got is None:
            self.totals.failed += 1
            if isinstance(body.get("prompt"), list) and error and error.startswith(("HTTP 400", "HTTP 422")):
                error += " (if this server does not take token-id prompts: -o prompt_as=text)"
            return GenResult(key=req.key, error=error, attempts=attempts)
        pt = got.prompt_tokens if got.prompt_tokens is not None else (len(req.prompt_ids) if req.prompt_ids else None)
        cost = self._account(pt, got.completion_tokens)
        return GenResult(
            key=req.key, text=got.text, reasoning=got.reasoning or None, prompt_tokens=pt,
            completion_tokens=got.completion_tokens,
            finish_reason=got.finish_reason, timing=got.timing(timing["start"], timing["end"]), attempts=attempts,
            usage={"prompt_tokens": pt, "completion_tokens": got.completion_tokens, "cost": cost},
        )

    def _account(self, prompt_tokens: Optional[int], completion_tokens: Optional[int]) -> float:
        pt, ct = prompt_tokens or 0, completion_tokens or 0
        cost = (pt * self.options.price_per_1k_prompt + ct * self.options.price_per_1k_completion) / 1000
        self.totals.prompt_tokens += pt
        self.totals.completion_tokens += ct
        self.totals.cost += cost
        return cost

    # -- prompt log-probs ---------------------------------------------------------------------
    def logprobs(self, requests: list[LogprobRequest]) -> Iterator[LogprobResult]:
        todo = list(requests)
        probe = next((r for r in todo if r.context_ids), None)
        if probe is not None:  # one request alone first: an unsupported server fails once, clearly
            yield self._loop.run(self._score_one(probe, strict=True))
            todo = [r for r in todo if r is not probe]
        yield from self._loop.stream_results(todo, self._score_one, self.options.concurrency)

    async def _score_one(self, req: LogprobRequest, strict: bool = False) -> LogprobResult:
        if not req.context_ids:
            return LogprobResult(key=req.key, error="empty context: the first token has no prediction")
        ids = req.context_ids + req.continuation_ids
        echo = self.options.logprobs_method == "echo"

        async def attempt() -> tuple[list[float], list[bool]]:
            assert self._client is not None
            body: dict[str, Any] = {"model": self.model_name, "prompt": ids, "temperature": 0.0, "n": 1}
            if echo:
                body.update(echo=True, logprobs=1, max_tokens=self._lp_max_tokens)
            else:
                body.update(prompt_logprobs=1, max_tokens=1)
            try:
                data = await self._client.post("/completions", cast_to=object, body=body)
            except openai.APIStatusError as e:
                if not (echo and body["max_tokens"] == 0 and e.status_code in (400, 422)):
                    raise
                body["max_tokens"] = 1  # some servers refuse max_tokens=0: one generated token is ignored
                data = await self._client.post("/completions", cast_to=object, body=body)
                self._lp_max_tokens = 1
                self._lp_notes.append(f"max_tokens=0 refused (HTTP {e.status_code}); scoring with max_tokens=1")
            if isinstance(data, dict):
                u = data.get("usage") or {}
                self._account(u.get("prompt_tokens"), u.get("completion_tokens"))
            if echo:
                return echo_logprobs(data, len(req.continuation_ids), len(ids), body["max_tokens"])
            return prompt_logprobs(data, req.continuation_ids)

        got, error, _ = await self._with_retries(attempt, strict=strict)
        self.totals.scoring_requests += 1
        if got is None:
            return LogprobResult(key=req.key, error=error)
        return LogprobResult(key=req.key, token_logprobs=got[0], greedy=got[1])

    # -- records ------------------------------------------------------------------------------
    def effective_settings(self) -> dict[str, Any]:
        s = self.options.model_dump(mode="json", exclude={"api_key"})
        s.update(
            base_url=_redact_url(self.base_url), model_name=self.model_name, api=self.api,
            prompt_mode=self.prompt_mode, http_transport=self.transport, api_key_source=self._key_source,
            sampling_sent=list(self._sent.values())[:50],
            sampling_note="temperature, top_p, max tokens, seed and stop (and extra_body) are sent with every "
                          "request, so no server or generation_config.json default applies to them; "
                          "server_default_sampling lists the checkpoint's values a vLLM server applies to "
                          "the fields not sent",
            server_default_sampling=self.server_defaults,
        )
        if self._lp_notes:
            s["logprobs_notes"] = sorted(set(self._lp_notes))
        return s

    def usage(self) -> dict[str, Any]:
        t = self.totals
        out: dict[str, Any] = {
            "requests": t.requests, "failed": t.failed, "scoring_requests": t.scoring_requests,
            "attempts": t.attempts, "retries": t.attempts - t.requests - t.scoring_requests,
            "prompt_tokens": t.prompt_tokens, "completion_tokens": t.completion_tokens,
            "total_tokens": t.prompt_tokens + t.completion_tokens,
        }
        if self.options.price_per_1k_prompt or self.options.price_per_1k_completion:
            out["cost"] = round(t.cost, 6)
        return out

    def close(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            try:
                self._loop.run(client.close())
            except Exception:  # closing must never hide the error that got us here
                pass
        self._loop.close()
