"""Dispatch efficiency of the openai backend: wall time / ideal for N requests to a fixed-latency server.

    python bench/openai_dispatch.py                 # N=2000, 50 ms, concurrency 32 (target ratio <= 1.15)

Ideal = N * latency / concurrency: what a client with zero overhead would take. The server runs
in its own process (an asyncio loop, not the bottleneck: its CPU use is printed) so the ratio
measures the backend: the openai client, the event-loop thread, and the hand-over of each result
to the caller. On a shared machine, other processes inflate the ratio; the load average and a
floor (the same requests with bare aiohttp, no openai client) are printed to read it against.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def start_server(latency: float, tokens: int) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen([sys.executable, "-m", "servers", "--latency", str(latency),
                             "--tokens", str(tokens)], cwd=REPO / "tests", stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    url = proc.stdout.readline().strip()
    if not url.startswith("http"):
        proc.kill()
        raise SystemExit(f"the bench server did not start (got {url!r})")
    return proc, url


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_backend(url: str, n: int, concurrency: int, stream: bool, transport: str) -> tuple[float, float, int]:
    from sfteval.harness.backends import create_backend
    from sfteval.harness.backends.base import GenRequest
    from sfteval.harness.models import SamplingParams

    sampling = SamplingParams(max_new_tokens=16)
    reqs = [GenRequest(key=str(i), sampling=sampling, prompt=f"prompt {i}") for i in range(n)]
    with create_backend("openai", model="test-model", base_url=url, api="completions", prompt_as="text",
                        concurrency=concurrency, stream=stream, http_transport=transport, max_retries=0) as b:
        list(b.generate(reqs[: 2 * concurrency]))  # warm up: open the connections
        t0, c0 = time.perf_counter(), time.process_time()
        failed = sum(not r.ok for r in b.generate(reqs))
        return time.perf_counter() - t0, time.process_time() - c0, failed


def run_floor(url: str, n: int, concurrency: int) -> float:
    """The same requests with bare aiohttp: what this machine allows right now without the openai client."""
    import aiohttp

    async def main() -> float:
        sem = asyncio.Semaphore(concurrency)
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency + 8)) as s:
            async def one(i: int) -> None:
                async with sem, s.post(f"{url}/completions", json={"model": "m", "prompt": f"p{i}", "stream": True,
                                                                   "max_tokens": 16}) as r:
                    async for _ in r.content:
                        pass

            await asyncio.gather(*(one(i) for i in range(2 * concurrency)))
            t0 = time.perf_counter()
            await asyncio.gather(*(one(i) for i in range(n)))
            return time.perf_counter() - t0

    return asyncio.run(main())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=2000)
    p.add_argument("--latency", type=float, default=0.05)
    p.add_argument("--concurrency", type=int, default=32)
    p.add_argument("--tokens", type=int, default=4, help="words per streamed answer")
    p.add_argument("--no-stream", action="store_true")
    p.add_argument("--transport", choices=["auto", "aiohttp", "httpx"], default="auto")
    p.add_argument("--no-floor", action="store_true", help="skip the bare-aiohttp floor")
    args = p.parse_args()

    ideal = args.n * args.latency / args.concurrency
    print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} (other processes share them)")
    server, url = start_server(args.latency, args.tokens)
    try:
        s0 = cpu_seconds(server.pid)
        wall, cpu, failed = run_backend(url, args.n, args.concurrency, not args.no_stream, args.transport)
        server_cpu = cpu_seconds(server.pid) - s0
        floor = None if args.no_floor else run_floor(url, args.n, args.concurrency)
    finally:
        server.terminate()
        server.wait()
    print(f"requests: {args.n} at concurrency {args.concurrency}, server latency {args.latency * 1000:.0f} ms, "
          f"{'streamed' if not args.no_stream else 'not streamed'}, {failed} failed")
    print(f"ideal:    {ideal:.2f} s (N x latency / concurrency)")
    print(f"wall:     {wall:.2f} s   client CPU {cpu / args.n * 1000:.2f} ms/request   "
          f"server CPU {server_cpu / wall:.0%} of one core")
    if floor is not None:
        print(f"floor:    {floor:.2f} s = {floor / ideal:.2f} x ideal (bare aiohttp, no openai client, same server)")
    print(f"ratio:    {wall / ideal:.2f} (wall / ideal; target <= 1.15)")


if __name__ == "__main__":
    main()
