"""Request bodies and response parsing for /v1/completions and /v1/chat/completions, as plain dicts.

Plain dicts rather than the client's typed models: nothing a server adds (vLLM's
``prompt_logprobs``, ``reasoning_content``) is lost, no pydantic model is built per stream chunk
(about a millisecond per request on a small CPU, which caps dispatch rate), and the parameters
recorded in the manifest are exactly the ones sent.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, AsyncIterator, Optional

from ...models import SamplingParams, Timing
from .retry import MalformedResponse


class NoPromptLogprobs(RuntimeError):
    """The server answered but gave no prompt log-probs (it ignores echo/logprobs or prompt_logprobs)."""


def sampling_body(s: SamplingParams, max_tokens_param: str = "max_tokens") -> dict[str, Any]:
    """Every sampling parameter, sent explicitly: a server fills anything missing from the checkpoint's
    generation_config.json (vLLM does by default), which would make runs differ silently."""
    body: dict[str, Any] = {"temperature": s.temperature, "top_p": s.top_p, max_tokens_param: s.max_new_tokens,
                            "seed": s.seed, "n": 1}
    if s.stop:
        body["stop"] = list(s.stop)
    return body


@dataclass
class Collected:
    text: str = ""
    reasoning: str = ""
    finish_reason: Optional[str] = None
    prompt_tokens: Optional[int] = None
    completion_tokens: Optional[int] = None
    first: Optional[float] = None  #: perf_counter() of the first text chunk
    last: Optional[float] = None
    chunks: int = 0  #: text-carrying chunks (a token count when the server gives no usage)

    def timing(self, start: float, end: float) -> Timing:
        if self.first is None:
            return Timing(total_s=end - start)
        x = self.completion_tokens or self.chunks
        per_token = (self.last - self.first) / (x - 1) if x > 1 and self.last is not None else None
        return Timing(ttft_s=self.first - start, per_token_s=per_token, total_s=end - start)


def _choices(data: Any) -> list[Any]:
    if not isinstance(data, dict):
        raise MalformedResponse(f"expected a JSON object, got {type(data).__name__}: {str(data)[:80]!r}")
    choices = data.get("choices")
    if not isinstance(choices, list):
        raise MalformedResponse(f"no 'choices' list in {str(data)[:120]!r}")
    return choices


def _usage(data: dict[str, Any], into: Collected) -> None:
    u = data.get("usage")
    if isinstance(u, dict):
        if isinstance(u.get("prompt_tokens"), int):
            into.prompt_tokens = u["prompt_tokens"]
        if isinstance(u.get("completion_tokens"), int):
            into.completion_tokens = u["completion_tokens"]


def _reasoning(d: dict[str, Any]) -> str:
    return d.get("reasoning_content") or d.get("reasoning") or ""


async def read_stream(stream: AsyncIterator[Any], chat: bool) -> Collected:
    """Consume an SSE stream of completion chunks, timing the first and last text chunk."""
    c = Collected()
    parts: list[str] = []
    thoughts: list[str] = []
    async for data in stream:
        choices = _choices(data)
        _usage(data, c)
        if not choices:
            continue
        ch = choices[0]
        if not isinstance(ch, dict):
            raise MalformedResponse(f"choice is not an object: {str(ch)[:80]!r}")
        if chat:
            delta = ch.get("delta") or {}
            piece, thought = delta.get("content") or "", _reasoning(delta)
        else:
            piece, thought = ch.get("text") or "", ""
        if piece or thought:
            now = time.perf_counter()
            c.first = c.first if c.first is not None else now
            c.last = now
            c.chunks += 1
            parts.append(piece)
            thoughts.append(thought)
        if ch.get("finish_reason"):
            c.finish_reason = ch["finish_reason"]
    if c.finish_reason is None:
        raise MalformedResponse("the stream ended before a finish_reason")
    c.text, c.reasoning = "".join(parts), "".join(thoughts)
    return c


def read_body(data: Any, chat: bool) -> Collected:
    """A non-streamed completion body."""
    choices = _choices(data)
    if not choices or not isinstance(choices[0], dict):
        raise MalformedResponse(f"empty 'choices' in {str(data)[:120]!r}")
    ch = choices[0]
    c = Collected(finish_reason=ch.get("finish_reason"))
    _usage(data, c)
    if chat:
        msg = ch.get("message")
        if not isinstance(msg, dict):
            raise MalformedResponse("chat choice without a 'message'")
        c.text, c.reasoning = msg.get("content") or "", _reasoning(msg)
    else:
        if not isinstance(ch.get("text"), str):
            raise MalformedResponse("completion choice without 'text'")
        c.text = ch["text"]
    return c


# -- prompt log-probs --------------------------------------------------------------------------


def _prompt_len(data: dict[str, Any], n_entries: int, max_tokens: int) -> int:
    """How many of the echoed entries are prompt tokens (the rest are generated ones)."""
    u = data.get("usage") or {}
    if isinstance(u.get("prompt_tokens"), int):
        return int(u["prompt_tokens"])
    generated = u.get("completion_tokens")
    return n_entries - (generated if isinstance(generated, int) else max_tokens)


def echo_logprobs(data: Any, n_cont: int, n_sent: int, max_tokens: int) -> tuple[list[float], list[bool]]:
    """Continuation log-probs and greedy flags from an ``echo=True, logprobs=1`` completion.

    The continuation is the last ``n_cont`` prompt tokens (a server that prepends a BOS shifts
    the start, not the end). Greedy: the token's log-prob is the best among the top alternatives.
    """
    choices = _choices(data)
    lp = choices[0].get("logprobs") if choices and isinstance(choices[0], dict) else None
    if not isinstance(lp, dict) or not isinstance(lp.get("token_logprobs"), list):
        raise NoPromptLogprobs("the response has no logprobs.token_logprobs (echo with logprobs unsupported?)")
    values, tops = lp["token_logprobs"], lp.get("top_logprobs")
    n_prompt = _prompt_len(data, len(values), max_tokens)
    if n_prompt < n_sent or n_prompt > len(values):
        raise NoPromptLogprobs(f"the server echoed {n_prompt} prompt tokens of {len(values)} entries; "
                               f"{n_sent} were sent (echo unsupported, or the prompt was re-tokenized)")
    start = n_prompt - n_cont
    out = values[start:n_prompt]
    if any(v is None for v in out):
        raise MalformedResponse("a continuation token has no log-prob")
    greedy: list[bool] = []
    for i, v in enumerate(out):
        alts = tops[start + i] if isinstance(tops, list) and start + i < len(tops) else None
        if not isinstance(alts, dict) or not alts:
            raise NoPromptLogprobs("the response has no top_logprobs to decide greedy tokens")
        greedy.append(v >= max(alts.values()) - 1e-6)
    return [float(v) for v in out], greedy


def prompt_logprobs(data: Any, continuation: list[int]) -> tuple[list[float], list[bool]]:
    """vLLM's ``prompt_logprobs`` extra: per prompt position {token_id: {logprob, rank}}; greedy is rank 1."""
    choices = _choices(data)
    ch = choices[0] if choices and isinstance(choices[0], dict) else {}
    entries = ch.get("prompt_logprobs", data.get("prompt_logprobs"))
    if not isinstance(entries, list):
        raise NoPromptLogprobs("the response has no prompt_logprobs (not a vLLM server?)")
    if len(entries) < len(continuation):
        raise MalformedResponse("fewer prompt_logprobs entries than continuation tokens")
    values: list[float] = []
    greedy: list[bool] = []
    for tok, entry in zip(continuation, entries[len(entries) - len(continuation):]):
        info = entry.get(str(tok)) if isinstance(entry, dict) else None
        if not isinstance(info, dict) or info.get("logprob") is None:
            raise MalformedResponse(f"token {tok} missing from prompt_logprobs (the server's tokens differ)")
        values.append(float(info["logprob"]))
        greedy.append(info.get("rank") == 1)
    return values, greedy
