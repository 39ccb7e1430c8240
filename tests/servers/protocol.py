"""What a scripted OpenAI-compatible server answers: reply types, fault helpers, and the JSON/SSE bodies.

Kept apart from the HTTP plumbing (openai_server.py) so a test reads as a list of replies:
a handler returns a ``str`` (the generated text), an :class:`Answer`, a ``dict`` (a raw JSON body)
or a :class:`Reply` (any status, headers, raw bytes, delay, dropped connection).
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Optional, Union


@dataclass
class Request:
    """One HTTP request as the server saw it (every request is kept in ``OpenAIServer.requests``)."""

    method: str
    path: str
    headers: dict[str, str]
    raw: bytes
    body: Optional[dict[str, Any]]
    index: int  #: 0-based arrival order
    attempt: int  #: 1 + how many earlier requests had the same method, path and body
    received: float  #: time.monotonic() at arrival

    @property
    def is_chat(self) -> bool:
        return self.path.rstrip("/").endswith("/chat/completions")

    @property
    def is_completion(self) -> bool:
        return self.path.rstrip("/").endswith("/completions") and not self.is_chat

    @property
    def stream(self) -> bool:
        return bool((self.body or {}).get("stream"))

    @property
    def prompt(self) -> Union[str, list[int], None]:
        return (self.body or {}).get("prompt")

    @property
    def messages(self) -> Optional[list[dict[str, Any]]]:
        return (self.body or {}).get("messages")

    @property
    def prompt_text(self) -> str:
        """The prompt as text: completions prompt, token ids joined by spaces, or the last chat message."""
        if self.messages:
            return str(self.messages[-1].get("content", ""))
        p = self.prompt
        if isinstance(p, list):
            return " ".join(str(t) for t in p)
        return p or ""


@dataclass
class Answer:
    """A successful generation; the server shapes it as chat or completions, streamed if asked.

    ``delay`` comes before the response headers, ``first_token_delay`` after them (streaming) and
    ``token_delay`` between chunks, so time to first token and per-token time can be set exactly.
    ``drop_after`` / ``malformed_after`` break a stream after that many text chunks.
    """

    text: str
    finish_reason: str = "stop"
    tokens: Optional[list[str]] = None
    prompt_tokens: Optional[int] = None
    usage: bool = True
    delay: float = 0.0
    first_token_delay: float = 0.0
    token_delay: float = 0.0
    reasoning: Optional[str] = None
    drop_after: Optional[int] = None
    malformed_after: Optional[int] = None

    def pieces(self) -> list[str]:
        if self.tokens is not None:
            return self.tokens
        return re.findall(r"\s*\S+|\s+$", self.text) or ([self.text] if self.text else [])


@dataclass
class Reply:
    """Anything that is not a normal answer: an error status, a raw body, a dropped connection."""

    status: int = 200
    body: Union[bytes, str, dict[str, Any], None] = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    drop: bool = False  #: close the connection without answering

    def payload(self) -> tuple[bytes, str]:
        if isinstance(self.body, dict):
            return json.dumps(self.body).encode(), "application/json"
        if isinstance(self.body, str):
            return self.body.encode(), "application/json"
        return self.body or b"", "application/json"


ReplyLike = Union[str, Answer, Reply, dict]

# -- faults ---------------------------------------------------------------------------------------


def error_body(message: str, kind: str = "server_error", code: Optional[int] = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}


def rate_limited(retry_after: Union[str, float, None] = "1", message: str = "rate limit reached") -> Reply:
    """429; ``retry_after`` is seconds or an HTTP date (``email.utils.formatdate(usegmt=True)``)."""
    headers = {} if retry_after is None else {"Retry-After": str(retry_after)}
    return Reply(429, error_body(message, "rate_limit_error", 429), headers)


def server_error(status: int = 500, message: str = "internal error") -> Reply:
    return Reply(status, error_body(message, "server_error", status))


def bad_request(message: str, status: int = 400) -> Reply:
    return Reply(status, error_body(message, "invalid_request_error", status))


def malformed(body: bytes = b'{"id": "cmpl-1", "choices": [{"text": ', content_type: str = "application/json") -> Reply:
    return Reply(200, body, {"Content-Type": content_type})


def drop() -> Reply:
    return Reply(drop=True)


def slow(seconds: float, then: ReplyLike = "late answer") -> Union[Answer, Reply]:
    """``then`` delivered after ``seconds`` (a client with a shorter timeout gives up first)."""
    r = as_reply(then)
    return replace(r, delay=r.delay + seconds)


def by_attempt(*replies: ReplyLike) -> "Callable[[Request], ReplyLike]":
    """A handler giving the n-th reply to the n-th attempt of the same request (the last one after that):
    ``by_attempt(rate_limited(1), server_error(), "ok")``."""
    if not replies:
        raise ValueError("by_attempt needs at least one reply")
    return lambda req: replies[min(req.attempt, len(replies)) - 1]


def no_streaming(handler: "Callable[[Request], ReplyLike]",
                 message: str = "stream=true is not supported") -> "Callable[[Request], ReplyLike]":
    """A server or proxy without streaming: a request with ``stream=true`` is a 400, anything else goes to
    ``handler``."""
    return lambda req: bad_request(message) if req.stream else handler(req)


def as_reply(r: ReplyLike) -> Union[Answer, Reply]:
    if isinstance(r, str):
        return Answer(r)
    if isinstance(r, dict):
        return Reply(200, r)
    return r


# -- bodies ---------------------------------------------------------------------------------------

_ids = iter(range(1, 1 << 62))


def count_prompt_tokens(req: Request) -> int:
    """The toy tokenization: token ids as given, otherwise UTF-8 bytes."""
    p = req.prompt
    if isinstance(p, list):
        return len(p)
    if req.messages:
        return sum(len(str(m.get("content", "")).encode()) for m in req.messages)
    return len((p or "").encode())


def usage_of(req: Request, a: Answer) -> dict[str, int]:
    pt = a.prompt_tokens if a.prompt_tokens is not None else count_prompt_tokens(req)
    ct = len(a.pieces())
    return {"prompt_tokens": pt, "completion_tokens": ct, "total_tokens": pt + ct}


def full_body(req: Request, a: Answer) -> dict[str, Any]:
    model = (req.body or {}).get("model", "test-model")
    base: dict[str, Any] = {"id": f"cmpl-{next(_ids)}", "created": int(time.time()), "model": model}
    if req.is_chat:
        message: dict[str, Any] = {"role": "assistant", "content": a.text}
        if a.reasoning is not None:
            message["reasoning_content"] = a.reasoning
        base.update(object="chat.completion",
                    choices=[{"index": 0, "message": message, "finish_reason": a.finish_reason, "logprobs": None}])
    else:
        base.update(object="text_completion",
                    choices=[{"index": 0, "text": a.text, "finish_reason": a.finish_reason, "logprobs": None}])
    if a.usage:
        base["usage"] = usage_of(req, a)
    return base


def stream_events(req: Request, a: Answer) -> list[tuple[Optional[dict[str, Any]], bool]]:
    """The SSE ``data:`` payloads of a streamed answer, each with "carries a token" (``None`` is ``[DONE]``)."""
    model = (req.body or {}).get("model", "test-model")
    head = {"id": f"cmpl-{next(_ids)}", "created": int(time.time()), "model": model}
    chat = req.is_chat
    obj = "chat.completion.chunk" if chat else "text_completion"

    def chunk(piece: Optional[str], finish: Optional[str], key: str = "content") -> dict[str, Any]:
        if chat:
            delta = {} if piece is None else {key: piece}
            choice = {"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}
        else:
            choice = {"index": 0, "text": piece or "", "finish_reason": finish, "logprobs": None}
        return {**head, "object": obj, "choices": [choice]}

    events: list[tuple[Optional[dict[str, Any]], bool]] = []
    if chat:
        events.append(({**head, "object": obj, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""},
                                                           "finish_reason": None, "logprobs": None}]}, False))
        if a.reasoning is not None:
            events.append((chunk(a.reasoning, None, "reasoning_content"), True))
    events.extend((chunk(p, None), True) for p in a.pieces())
    events.append((chunk(None if chat else "", a.finish_reason), False))
    opts = (req.body or {}).get("stream_options") or {}
    if a.usage and opts.get("include_usage"):
        events.append(({**head, "object": obj, "choices": [], "usage": usage_of(req, a)}, False))
    events.append((None, False))
    return events
