"""`sfteval view` as a real server process on a free loopback port, and a small HTTP client for it.

The server is started exactly as a user starts it (the CLI, uvicorn, ``--port 0``); the URL it prints is read
from its stdout. The client follows no redirects, so tests see status codes, cookies and Location headers.
"""

from __future__ import annotations

import http.client
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional
from urllib.parse import quote, urlencode, urlsplit

REPO = Path(__file__).resolve().parents[1]
BROWSER_ARGS = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync"]
CHROMIUM = "/usr/bin/chromium"


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: str

    def cookie(self, name: str) -> Optional[str]:
        m = re.search(rf"{name}=([^;]*)", self.headers.get("set-cookie", ""))
        return m.group(1) if m else None


@dataclass
class ViewServer:
    results: Path
    args: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)
    proc: Optional[subprocess.Popen] = None
    url: str = ""

    def __enter__(self) -> "ViewServer":
        cmd = [sys.executable, "-m", "sfteval.harness.cli", "view", "--results", str(self.results), "--port", "0",
               *self.args]
        self.proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     env={**os.environ, **self.env})
        line = self.proc.stdout.readline()  # type: ignore[union-attr]
        m = re.search(r"(http://\S+)", line)
        if not m:
            self.proc.kill()
            raise AssertionError(f"sfteval view did not start: {line!r} {self.proc.stderr.read()}")  # type: ignore
        self.url = m.group(1)
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                if self.get("/healthz", headers=self.auth()).status in (200, 401):
                    return self
            except OSError:
                time.sleep(0.1)
        raise AssertionError("sfteval view did not answer /healthz")

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    @property
    def base(self) -> str:
        parts = urlsplit(self.url)
        return f"{parts.scheme}://{parts.netloc}"

    @property
    def token(self) -> Optional[str]:
        m = re.search(r"token=([^&\s]+)", self.url)
        return m.group(1) if m else None

    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    def request(self, method: str, path: str, body: Optional[bytes] = None,
                headers: Optional[dict[str, str]] = None, timeout: float = 120) -> Reply:
        parts = urlsplit(self.url)
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
        try:
            conn.request(method, quote(path, safe="/?&=%:+,;@~!*'()"), body=body, headers=headers or {})
            r = conn.getresponse()
            return Reply(r.status, {k.lower(): v for k, v in r.getheaders()}, r.read().decode("utf-8", "replace"))
        finally:
            conn.close()

    def get(self, path: str, headers: Optional[dict[str, str]] = None, timeout: float = 120) -> Reply:
        return self.request("GET", path, headers=headers, timeout=timeout)

    def post(self, path: str, data: dict[str, str], headers: Optional[dict[str, str]] = None) -> Reply:
        h = {"Content-Type": "application/x-www-form-urlencoded", **(headers or {})}
        return self.request("POST", path, urlencode(data).encode(), h)


def form_fields(html: str) -> dict[str, str]:
    """The hidden inputs of a page's review form (name -> value), unescaped."""
    import html as h

    return {h.unescape(n): h.unescape(v) for n, v in
            re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', html)}
