"""Keep secrets off disk: mask them in command lines and URLs before a manifest records them.

One place decides what counts as secret, so the run manifest, the judge entry and the backends'
settings all mask the same things. Option *names* decide for option values (``--api-key X``,
``-o access_token=X``); inside URLs, the userinfo and secret-looking query parameters are masked.
Names that merely contain "token" (``--max-new-tokens``, ``--tokenizer``) are not secrets.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

MASK = "***"

#: words that make any name secret, wherever they appear in it
_SECRET_WORD = re.compile(r"api[-_]?key|secret|passw(or)?d|credential|private[-_]?key", re.I)
#: names that are secret as a whole, or by their last part (hf_token, client-key, x-sig)
_SECRET_NAME = re.compile(r"^(token|auth|authorization|bearer|key|sig|signature|session)$|[-_](token|key|sig)$", re.I)
#: names of *where* a secret lives (--api-key-env OPENAI_API_KEY) are not secrets themselves
_REFERENCE = re.compile(r"[-_](env|var|file|source)$", re.I)
#: a tokenizer's special tokens are text, not credentials
_SPECIAL_TOKEN = re.compile(r"^(bos|eos|pad|unk|sep|cls|mask|stop)[-_]token$", re.I)
_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>,;]+")
_PAIR_NAME = re.compile(r"[A-Za-z_][\w.-]*")


def is_secret_name(name: str) -> bool:
    """True for an option, setting or query-parameter name whose value is a credential."""
    name = name.lstrip("-").strip()
    if not name or _REFERENCE.search(name) or _SPECIAL_TOKEN.match(name):
        return False
    return bool(_SECRET_WORD.search(name) or _SECRET_NAME.search(name))


def redact_url(url: str) -> str:
    """``url`` with the userinfo and the values of secret-looking query parameters masked."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises on a malformed netloc
    except ValueError:
        return MASK if "@" in url else url
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, host = netloc.rsplit("@", 1)
        user, has_password, _ = userinfo.partition(":")
        # a password is masked; a user name alone is often a token itself (https://TOKEN@host)
        netloc = f"{user}:{MASK}@{host}" if has_password and user else f"{MASK}@{host}"
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        if any(is_secret_name(k) for k, _ in pairs):
            query = urlencode([(k, MASK if is_secret_name(k) else v) for k, v in pairs], safe="*")
    if (netloc, query) == (parts.netloc, parts.query):
        return url
    return urlunsplit(parts._replace(netloc=netloc, query=query))


def redact_text(text: str) -> str:
    """``text`` with every URL in it redacted (a URL inside a JSON option value too)."""
    return _URL.sub(lambda m: redact_url(m.group(0)), text)


def redact_value(value: Any) -> Any:
    """A recorded setting value with URLs redacted, recursively through dicts and lists."""
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, dict):
        return {k: MASK if is_secret_name(str(k)) else redact_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact_value(v) for v in value]
    return value


def _redact_arg(arg: str) -> str:
    """A non-option argument: ``NAME=VALUE`` (as after ``-o``) or anything that may hold a URL."""
    name, eq, value = arg.partition("=")
    if eq and _PAIR_NAME.fullmatch(name):
        return f"{name}={MASK}" if is_secret_name(name) else f"{name}={_redact_arg(value)}"
    return redact_text(arg)


def redact_argv(argv: list[str]) -> list[str]:
    """A command line fit for the manifest: values of secret options masked, URLs redacted."""
    out: list[str] = []
    hide_next = False
    for arg in argv:
        if hide_next:
            out.append(MASK)
            hide_next = False
        elif arg.startswith("-") and len(arg) > 1 and not arg[1].isdigit():
            name, eq, value = arg.partition("=")
            if is_secret_name(name):
                out.append(f"{name}={MASK}" if eq else arg)
                hide_next = not eq
            else:
                out.append(f"{name}={_redact_arg(value)}" if eq else arg)
        else:
            out.append(_redact_arg(arg))
    return out
