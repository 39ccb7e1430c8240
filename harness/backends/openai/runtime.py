"""Drive async HTTP from the synchronous Backend interface.

An asyncio loop lives in a daemon thread for the backend's lifetime (one HTTP connection pool,
one concurrency limit shared by every call). ``stream_results`` runs a bounded pool of workers on
it and hands each result to the calling thread the moment it is done, so the runner stores it at
once: a SIGKILL loses at most the requests in flight.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from typing import Awaitable, Callable, Coroutine, Iterable, Iterator, TypeVar

T = TypeVar("T")
R = TypeVar("R")

_DONE = object()


class LoopThread:
    def __init__(self, name: str = "sfteval-openai") -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name=name, daemon=True)
        self._thread.start()

    def run(self, coro: Coroutine[object, object, T]) -> T:
        """Run one coroutine on the loop and wait for its result."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result()

    def stream_results(self, items: Iterable[T], work: Callable[[T], Awaitable[R]], workers: int) -> Iterator[R]:
        """Yield ``work(item)`` for every item as each finishes (any order).

        An exception from ``work`` stops everything and is raised here; results yielded
        before it stay valid. Closing the iterator early cancels the work still running.
        ``items`` is consumed lazily, on the loop, one item whenever a worker is free.
        """
        if isinstance(items, (list, tuple)):
            if not items:
                return
            workers = min(workers, len(items))
        results: "queue.SimpleQueue[object]" = queue.SimpleQueue()

        async def main() -> None:
            pending = iter(items)

            async def worker() -> None:
                for item in pending:  # workers share one iterator: each takes the next item
                    results.put(await work(item))

            tasks = [asyncio.ensure_future(worker()) for _ in range(workers)]
            try:
                done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
                for t in done:
                    t.result()
            finally:
                for t in tasks:
                    t.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
                results.put(_DONE)

        future = asyncio.run_coroutine_threadsafe(main(), self.loop)
        try:
            while (r := results.get()) is not _DONE:
                yield r  # type: ignore[misc]
            future.result()
        finally:
            future.cancel()  # no-op when finished; otherwise cancels the workers on the loop

    def close(self) -> None:
        if self.loop.is_closed():
            return
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=10)
        if not self.loop.is_running():
            self.loop.close()
