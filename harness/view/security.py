"""Who may talk to the viewer: the token check, the Host check, CSRF, and headers that keep pages inert.

- Bound to a loopback address, only requests whose ``Host`` names that loopback address are served (a web
  page elsewhere cannot reach the viewer through DNS rebinding).
- With ``--token`` (required for any other address), every request must carry it: the
  ``Authorization: Bearer`` or ``X-Sfteval-Token`` header, or the ``sfteval_token`` cookie, which a first
  visit to any URL with ``?token=T`` sets (HttpOnly, SameSite=Strict) before redirecting to the URL without it.
- Every form carries a per-server CSRF value; a POST without it is refused.
- Pages are served with a Content-Security-Policy that allows no inline script and nothing from elsewhere,
  ``nosniff``, ``no-referrer`` and ``frame-ancestors 'none'``; model text is escaped in the templates as well.
"""

from __future__ import annotations

import hmac
import ipaddress
import secrets
import time
from typing import Any, Awaitable, Callable, Optional
from urllib.parse import parse_qsl, urlencode

TOKEN_COOKIE = "sfteval_token"
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; object-src 'none'; "
       "base-uri 'none'; frame-ancestors 'none'; form-action 'self'")
HEADERS = [(b"content-security-policy", CSP.encode()), (b"x-content-type-options", b"nosniff"),
           (b"referrer-policy", b"no-referrer"), (b"x-frame-options", b"DENY"), (b"cache-control", b"no-store")]


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def new_secret() -> str:
    return secrets.token_urlsafe(24)


def _same(a: Optional[str], b: str) -> bool:
    return a is not None and hmac.compare_digest(a.encode(), b.encode())


class Guard:
    """ASGI middleware around the app: Host and token checks, timing and security headers on every response."""

    def __init__(self, app: Any, *, host: str, port: int, token: Optional[str]):
        self.app, self.token = app, token
        self.check_host = is_loopback(host)
        names = {host, "127.0.0.1", "localhost", "[::1]", "::1"}
        self.hosts = {h for n in names for h in (n, f"{n}:{port}")}

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Callable[[dict[str, Any]], Awaitable[None]]) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        if self.check_host and headers.get("host", "") not in self.hosts:
            await _plain(send, 421, "this viewer answers only on its loopback address")
            return
        if self.token is not None:
            query = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True))
            given = query.get("token")
            if given is not None:
                if not _same(given, self.token):
                    await _plain(send, 401, "wrong token")
                    return
                rest = urlencode([(k, v) for k, v in parse_qsl(scope.get("query_string", b"").decode("latin-1"),
                                                               keep_blank_values=True) if k != "token"])
                path = scope.get("raw_path") or scope["path"].encode("utf-8")
                location = path.decode("latin-1") + (f"?{rest}" if rest else "")
                await _redirect_with_cookie(send, location, self.token)
                return
            auth = headers.get("authorization", "")
            bearer = auth[7:] if auth.lower().startswith("bearer ") else None
            cookie = _cookie(headers.get("cookie", ""), TOKEN_COOKIE)
            if not any(_same(v, self.token) for v in (bearer, headers.get("x-sfteval-token"), cookie)):
                await _plain(send, 401, "this viewer needs its token: open the URL it printed (with ?token=...) "
                                        "or send the header 'Authorization: Bearer TOKEN'")
                return
        start = time.perf_counter()

        async def send_with_headers(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                ms = 1000 * (time.perf_counter() - start)
                extra = HEADERS + [(b"server-timing", f"app;dur={ms:.2f}".encode())]
                message = {**message, "headers": list(message.get("headers", [])) + extra}
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _cookie(header: str, name: str) -> Optional[str]:
    for part in header.split(";"):
        k, _, v = part.strip().partition("=")
        if k == name:
            return v
    return None


async def _plain(send: Any, status: int, text: str) -> None:
    body = (text + "\n").encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"text/plain; charset=utf-8"),
                            (b"content-length", str(len(body)).encode())] + HEADERS})
    await send({"type": "http.response.body", "body": body})


async def _redirect_with_cookie(send: Any, location: str, token: str) -> None:
    cookie = f"{TOKEN_COOKIE}={token}; HttpOnly; SameSite=Strict; Path=/"
    await send({"type": "http.response.start", "status": 303,
                "headers": [(b"location", location.encode("latin-1", "replace")), (b"set-cookie", cookie.encode()),
                            (b"content-length", b"0")] + HEADERS})
    await send({"type": "http.response.body", "body": b""})


def csrf_ok(form: dict[str, str], secret: str) -> bool:
    return _same(form.get("csrf"), secret)
