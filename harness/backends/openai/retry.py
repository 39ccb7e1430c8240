"""Which failures of an OpenAI-compatible server are worth retrying, and how long to wait.

The client's built-in retries are switched off: our own loop counts attempts (recorded with each
generation), also retries what the client cannot see as a failure (a malformed body, a stream cut
before its end, a total-time timeout), and keeps the last reason for the error record.
"""

from __future__ import annotations

import asyncio
import json
import random
import re
import time
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any, Mapping, Optional

import openai

#: 408 request timeout, 409 conflict (OpenAI's "try again"), 425 too early, 429 rate limit, and all 5xx.
RETRY_STATUSES = frozenset({408, 409, 425, 429})
#: Client errors that no request of this run can fix (auth, unknown model or endpoint): abort early.
GLOBAL_STATUSES = frozenset({401, 403, 404})


class MalformedResponse(ValueError):
    """The server answered 2xx but the body is not a usable completion (retried like a 5xx)."""


@dataclass(frozen=True)
class Failure:
    reason: str
    retryable: bool
    status: Optional[int] = None
    retry_after: Optional[float] = None

    @property
    def global_error(self) -> bool:
        return self.status in GLOBAL_STATUSES


def parse_retry_after(headers: Optional[Mapping[str, str]], now: Optional[float] = None) -> Optional[float]:
    """Seconds to wait from ``retry-after-ms``, ``Retry-After: <seconds>`` or ``Retry-After: <HTTP date>``."""
    if not headers:
        return None
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            return max(0.0, float(ms) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def _message(e: openai.APIStatusError) -> str:
    body: Any = e.body
    if isinstance(body, dict):
        err = body.get("error", body)
        msg = err.get("message") if isinstance(err, dict) else err
        if msg:
            return str(msg)
    text = str(e.message or "")
    return text[:300]


def classify(exc: BaseException, timeout: float) -> Failure:
    """A short reason for the record, and whether another attempt could succeed."""
    if isinstance(exc, openai.APIStatusError):
        status = exc.status_code
        retry = status in RETRY_STATUSES or status >= 500
        return Failure(f"HTTP {status}: {_message(exc)}", retry, status, parse_retry_after(exc.response.headers))
    cause = exc.__cause__ or exc.__context__
    if isinstance(exc, openai.APITimeoutError) and "cannot connect" in str(cause).lower():
        return Failure(f"connection error ({cause})"[:300], True)  # aiohttp reports a refused connect as a timeout
    if isinstance(exc, (openai.APITimeoutError, asyncio.TimeoutError, TimeoutError)):
        return Failure(f"timeout: no complete answer within {timeout:g} s", True)
    if isinstance(exc, openai.APIConnectionError):
        detail = f" ({type(cause).__name__}: {cause})" if cause else ""
        return Failure(f"connection error{detail}"[:300], True)
    if isinstance(exc, (json.JSONDecodeError, MalformedResponse, openai.APIResponseValidationError)):
        return Failure(f"malformed response: {exc}"[:300], True)
    if isinstance(exc, openai.APIError):  # e.g. an error event inside a stream
        return Failure(f"server error: {exc.message}"[:300], True)
    return Failure(f"{type(exc).__name__}: {exc}"[:300], False)


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with jitter; a server's Retry-After overrides it (capped by ``max_retry_after``)."""

    max_retries: int = 5
    base: float = 0.5
    cap: float = 30.0
    max_retry_after: float = 300.0

    def delay(self, attempt: int, failure: Failure) -> Optional[float]:
        """Seconds before attempt ``attempt + 1``, or None to give up."""
        if not failure.retryable or attempt > self.max_retries:
            return None
        if failure.retry_after is not None:
            if failure.retry_after > self.max_retry_after:
                return None
            return failure.retry_after + random.uniform(0, min(1.0, 0.1 * failure.retry_after))
        d = min(self.cap, self.base * 2 ** (attempt - 1))
        return d / 2 + random.uniform(0, d / 2)  # "equal jitter": spread clients, keep the growth

    def give_up_reason(self, attempt: int, failure: Failure) -> str:
        if failure.retryable and failure.retry_after is not None and failure.retry_after > self.max_retry_after:
            return (f"{failure.reason} (server asked to retry after {failure.retry_after:.0f} s, "
                    f"more than max_retry_after={self.max_retry_after:g})")
        if failure.retryable:
            return f"{failure.reason} (gave up after {attempt} attempts)"
        return failure.reason


_KEY_LIKE = re.compile(r"\b(sk|key|tok)-[A-Za-z0-9*_\-.]{4,}")


def scrub(text: str, secret: Optional[str]) -> str:
    """Remove an API key (and key-like strings servers echo back, e.g. 'sk-ab***yz') from a message."""
    if secret and len(secret) >= 4:
        text = text.replace(secret, "***")
    return _KEY_LIKE.sub(r"\1-***", text)
