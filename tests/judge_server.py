"""A judge for in-process tests: the scripted judge (or a test's own replies) behind a real OpenAI-compatible
HTTP server on 127.0.0.1, reached by the real ``openai`` judge backend through ``JudgeServer.spec()``.

The server keeps every request, so a test sees exactly what the judge was sent; ``hold`` and ``peak`` show
whether a batch travelled together, ``backend_loops()`` whether the judge backend was closed.
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any, Callable, Iterator, Optional

import pytest

from sfteval.harness.judging.spec import JudgeSpec
from scripted_judge import ScriptedJudge
from servers import OpenAIServer, Request
from servers.protocol import ReplyLike

#: model names the judge servers serve (the openai backend checks the name against /v1/models)
MODELS = ("scripted-judge", "qwen-72b", "Qwen2.5-72B-Instruct")


class JudgeServer:
    """A judge at ``base_url``: replies from ``respond(request)`` (default: the scripted judge).

    ``hold = n`` keeps every reply until n requests are in the server at once (or 3 s after the first
    arrived), so ``peak`` shows whether a batch was sent together rather than one request at a time."""

    def __init__(self) -> None:
        self.respond: Callable[[Request], ReplyLike] = ScriptedJudge()
        self.hold = 0
        self.inside = self.peak = 0
        self.first = 0.0  #: when the first request arrived
        self.srv = OpenAIServer(self.handle, models=MODELS)

    async def handle(self, req: Request) -> ReplyLike:
        self.inside += 1
        self.peak = max(self.peak, self.inside)
        try:
            self.first = self.first or time.monotonic()
            while self.inside < self.hold and time.monotonic() < self.first + 3:
                await asyncio.sleep(0.005)
            return self.respond(req)
        finally:
            self.inside -= 1

    def use(self, respond: Optional[Callable[[Request], ReplyLike]] = None, **scripted: Any) -> "JudgeServer":
        """Answer with ``respond`` (a request -> reply function), or the scripted judge with these knobs."""
        self.respond = respond or ScriptedJudge(**scripted)
        return self

    @property
    def base_url(self) -> str:
        return self.srv.base_url

    @property
    def requests(self) -> list[Request]:
        """Generation requests so far, in arrival order."""
        return self.srv.generation_requests()

    def spec(self, k: Optional[int] = None, config: str = "default-en", model: str = "scripted-judge",
             **options: Any) -> JudgeSpec:
        """This server as the judge; no HTTP retries, so every judge call is one request here."""
        return JudgeSpec(config=config, model=model, backend="openai", base_url=self.base_url, samples=k,
                         options={"max_retries": 0, **options}, progress=False)


def backend_loops() -> int:
    """Running event-loop threads of openai backends (one per open backend, stopped by its close())."""
    return sum(t.name == "sfteval-openai" and t.is_alive() for t in threading.enumerate())


def prompt_of(req: Request) -> str:
    return req.messages[-1]["content"] if req.messages else ""


@pytest.fixture
def judge() -> Iterator[JudgeServer]:
    server = JudgeServer()
    with server.srv:
        yield server


@pytest.fixture
def second_judge() -> Iterator[JudgeServer]:
    """Another endpoint serving the same model names."""
    server = JudgeServer()
    with server.srv:
        yield server
