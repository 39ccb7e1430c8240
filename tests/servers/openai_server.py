"""A loopback OpenAI-compatible server over real HTTP/1.1 (keep-alive, chunked SSE) for tests and benchmarks.

The real ``openai`` client talks to it unmodified, so retries, timeouts and stream parsing are
exercised for real. It runs an asyncio loop in a background thread (thousands of concurrent slow
requests cost no threads), or in its own process for benchmarks::

    python -m servers --latency 0.05 --port 0     # (cwd tests/) prints its base URL

Replies come from a handler callable (see protocol.py), or a coroutine function when a test must hold replies
on the server's loop (e.g. until a batch of requests is in flight); every request is logged in ``requests``.
"""

from __future__ import annotations

import argparse
import asyncio
import inspect
import json
import threading
import time
import traceback
from typing import Any, Awaitable, Callable, Optional, Union

from .protocol import Answer, Reply, ReplyLike, Request, as_reply, error_body, full_body, stream_events
from .toy import ToyModel

Handler = Callable[[Request], Union[ReplyLike, Awaitable[ReplyLike]]]
_REASONS = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found", 408: "Request Timeout",
            429: "Too Many Requests", 500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable"}


class OpenAIServer:
    """``with OpenAIServer(handler) as srv:`` serves on ``srv.base_url`` (``http://127.0.0.1:PORT/v1``).

    ``handler`` defaults to a :class:`ToyModel` (deterministic answers, echo log-probs,
    ``prompt_logprobs``). ``GET /v1/models`` lists ``models`` without calling the handler.
    """

    def __init__(self, handler: Optional[Handler] = None, *, host: str = "127.0.0.1", port: int = 0,
                 models: tuple[str, ...] = ("test-model",), log_requests: bool = True):
        self.handler: Handler = handler or ToyModel()
        self.host, self.port, self.models = host, port, models
        self.log_requests = log_requests
        self.requests: list[Request] = []
        self.served = 0
        self._seen: dict[tuple[str, str, bytes], int] = {}
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._thread: Optional[threading.Thread] = None
        self._server: Optional[asyncio.base_events.Server] = None
        self._conns: dict[asyncio.StreamWriter, "asyncio.Task[None]"] = {}

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    def generation_requests(self) -> list[Request]:
        """Requests to /completions or /chat/completions, in arrival order."""
        return [r for r in self.requests if r.is_chat or r.is_completion]

    def open_connections(self) -> int:
        """Client connections still open (a client that closed its HTTP pool leaves none)."""
        return len(self._conns)

    # -- lifecycle ------------------------------------------------------------------------------
    def start(self) -> "OpenAIServer":
        ready = threading.Event()

        def run() -> None:
            self._loop = asyncio.new_event_loop()
            self._server = self._loop.run_until_complete(
                asyncio.start_server(self._connection, self.host, self.port, backlog=1024))
            self.port = self._server.sockets[0].getsockname()[1]
            ready.set()
            self._loop.run_forever()

        self._thread = threading.Thread(target=run, name="openai-test-server", daemon=True)
        self._thread.start()
        ready.wait(10)
        return self

    def stop(self) -> None:
        if self._loop is None or self._server is None:
            return

        async def shutdown() -> None:
            assert self._server is not None
            self._server.close()
            tasks = list(self._conns.values())
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(shutdown(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread:
            self._thread.join(10)
        self._loop = None

    def __enter__(self) -> "OpenAIServer":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # -- HTTP -----------------------------------------------------------------------------------
    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._conns[writer] = task
        try:
            while await self._one_request(reader, writer):
                pass
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            pass
        finally:
            self._conns.pop(writer, None)
            writer.transport.abort()

    async def _one_request(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        line = await reader.readline()
        if not line.strip():
            return False
        method, target, _ = line.decode("latin-1").split(" ", 2)
        headers: dict[str, str] = {}
        while (h := await reader.readline()) not in (b"\r\n", b"\n", b""):
            k, _, v = h.decode("latin-1").partition(":")
            headers[k.strip().lower()] = v.strip()
        raw = await reader.readexactly(int(headers.get("content-length", "0")))
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        path = target.split("?", 1)[0]
        seen_key = (method, path, raw)
        attempt = self._seen[seen_key] = self._seen.get(seen_key, 0) + 1
        req = Request(method, path, headers, raw, body, len(self.requests), attempt, time.monotonic())
        if self.log_requests:
            self.requests.append(req)
        keep = headers.get("connection", "").lower() != "close"
        if method == "GET" and path.rstrip("/").endswith("/models"):
            data = {"object": "list", "data": [{"id": m, "object": "model", "created": 0, "owned_by": "test"}
                                               for m in self.models]}
            await self._send(writer, Reply(200, data), keep)
            return keep
        try:
            got = self.handler(req)
            reply = as_reply(await got if inspect.isawaitable(got) else got)
        except Exception as e:  # a bug in a test handler must be visible, not a hang
            traceback.print_exc()
            reply = Reply(500, error_body(f"handler raised {type(e).__name__}: {e}"))
        if reply.delay:
            await asyncio.sleep(reply.delay)
        if isinstance(reply, Reply):
            if reply.drop:
                return False
            await self._send(writer, reply, keep)
        elif req.stream:
            if not await self._stream(writer, req, reply):
                return False
        else:
            extra = reply.first_token_delay + reply.token_delay * len(reply.pieces())
            if extra:
                await asyncio.sleep(extra)
            await self._send(writer, Reply(200, full_body(req, reply)), keep)
        self.served += 1
        return keep

    async def _send(self, writer: asyncio.StreamWriter, reply: Reply, keep: bool) -> None:
        payload, ctype = reply.payload()
        headers = {"Content-Type": ctype, "Content-Length": str(len(payload)),
                   "Connection": "keep-alive" if keep else "close", **reply.headers}
        writer.write(_head(reply.status, headers) + payload)
        await writer.drain()

    async def _stream(self, writer: asyncio.StreamWriter, req: Request, a: Answer) -> bool:
        writer.write(_head(200, {"Content-Type": "text/event-stream", "Transfer-Encoding": "chunked",
                                 "Cache-Control": "no-cache", "Connection": "keep-alive"}))
        await writer.drain()
        tokens = 0
        for data, is_token in stream_events(req, a):
            if is_token:
                if a.drop_after is not None and tokens >= a.drop_after:
                    return False
                if a.malformed_after is not None and tokens >= a.malformed_after:
                    writer.write(_chunk(b'data: {"choices": [{"text": "x", \n\n'))
                    writer.write(b"0\r\n\r\n")
                    await writer.drain()
                    return False
                delay = a.first_token_delay if tokens == 0 else a.token_delay
                if delay:
                    await asyncio.sleep(delay)
                tokens += 1
            event = b"data: [DONE]\n\n" if data is None else b"data: " + json.dumps(data).encode() + b"\n\n"
            writer.write(_chunk(event))
        writer.write(b"0\r\n\r\n")
        await writer.drain()
        return True


def _head(status: int, headers: dict[str, str]) -> bytes:
    lines = [f"HTTP/1.1 {status} {_REASONS.get(status, 'Status')}"] + [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def _chunk(data: bytes) -> bytes:
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


def main(argv: Optional[list[str]] = None) -> None:
    """Serve the toy model with a fixed latency until killed (for benchmarks: its own process, its own core)."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--latency", type=float, default=0.0, help="seconds before each answer")
    p.add_argument("--tokens", type=int, default=4, help="words in each answer")
    p.add_argument("--scripted-judge", action="store_true",
                   help="answer as tests/scripted_judge.py (scores from the answer's overlap with the reference): "
                        "a judge to try `sfteval judge` and `sfteval view` with, no model needed")
    args = p.parse_args(argv)
    text = " ".join(["word"] * args.tokens)
    handler: Handler = lambda req: Answer(text, delay=args.latency)  # noqa: E731
    models: tuple[str, ...] = ("test-model",)
    if args.scripted_judge:
        import sys
        from pathlib import Path

        sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
        from scripted_judge import ScriptedJudge

        handler, models = ScriptedJudge(), ("scripted", "scripted?noise=1")
    srv = OpenAIServer(handler, port=args.port, models=models, log_requests=False)
    srv.start()
    print(srv.base_url, flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        srv.stop()


if __name__ == "__main__":
    main()
