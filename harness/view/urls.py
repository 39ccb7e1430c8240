"""The viewer's URLs, built in one place: the pages link to each other and reports link into the pages."""

from __future__ import annotations

from typing import Any, Optional
from urllib.parse import quote, urlencode


def q(part: str) -> str:
    """One path segment (run names and item ids may hold '/', '?', '#', spaces or any script)."""
    return quote(str(part), safe="")


def run_url(run: str) -> str:
    return f"/runs/{q(run)}"


def run_items_url(run: str, **params: Any) -> str:
    return f"/runs/{q(run)}/items" + _query(params)


def run_item_url(run: str, item_id: str) -> str:
    return f"/runs/{q(run)}/item/{q(item_id)}"


def compare_url(a: str, b: str) -> str:
    return f"/compare/{q(a)}/{q(b)}"


def compare_items_url(a: str, b: str, **params: Any) -> str:
    return f"/compare/{q(a)}/{q(b)}/items" + _query(params)


def compare_item_url(base: Optional[str], a: str, b: str, item_id: str) -> str:
    """``base``: the viewer's address (``http://127.0.0.1:8765``) for a link from outside; None for a page's own."""
    path = f"/compare/{q(a)}/{q(b)}/item/{q(item_id)}"
    return (base.rstrip("/") + path) if base else path


def review_pair_url(a: str, b: str, **params: Any) -> str:
    """Blind pairwise review of candidate ``b`` against baseline ``a``."""
    return f"/review/pair/{q(a)}/{q(b)}" + _query(params)


def review_single_url(run: str, baseline: Optional[str] = None, **params: Any) -> str:
    """Single grading of ``run``'s answers (with a baseline: the items that flipped against it first)."""
    return f"/review/single/{q(run)}" + _query({"baseline": baseline, **params})


def _query(params: dict[str, Any]) -> str:
    clean = {k: v for k, v in params.items() if v not in (None, "", False)}
    return ("?" + urlencode(clean, doseq=True)) if clean else ""
