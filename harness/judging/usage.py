"""What judging cost, counted from the stored judgments: calls, tokens, USD, per run and per task_type.

Why from the records: every judge request's usage is stored with the judgment it produced (``details.usage``:
requests, prompt and completion tokens, cost at the configured prices, online or batch), so the totals survive
resumes, re-judges and merges, and nothing is counted twice. A cache hit carries no usage (it cost nothing) and
is counted as ``cached``, and so is an answer whose identical prompt shared another answer's request
(``same_call_as``).
"""

from __future__ import annotations

from typing import Any, Iterable, Optional

from ..models import Judgment


def _empty() -> dict[str, Any]:
    return {"calls": 0, "batch_calls": 0, "cached": 0, "not_judged": 0, "prompt_tokens": 0,
            "completion_tokens": 0, "cost": None}


def _add(acc: dict[str, Any], j: Judgment) -> None:
    u = j.details.get("usage")
    if isinstance(u, dict):
        n = int(u.get("requests") or 0)
        acc["calls"] += n
        acc["batch_calls"] += n if u.get("mode") == "batch" else 0
        acc["prompt_tokens"] += int(u.get("prompt_tokens") or 0)
        acc["completion_tokens"] += int(u.get("completion_tokens") or 0)
        if u.get("cost") is not None:
            acc["cost"] = round((acc["cost"] or 0.0) + float(u["cost"]), 8)
    elif j.details.get("cached_from") or j.details.get("same_call_as"):  # no request of its own
        acc["cached"] += 1
    if j.status == "not_judged":
        acc["not_judged"] += 1


def judge_usage(judgments: Iterable[Judgment]) -> Optional[dict[str, Any]]:
    """Totals and per-task_type (both levels) usage of LLM-judge records; None when there are none."""
    total = _empty()
    groups: dict[str, dict[str, Any]] = {}
    seen = False
    for j in judgments:
        if j.mode == "rule" or j.details.get("identical"):
            continue
        seen = True
        _add(total, j)
        levels = j.task_type.split("/")
        for name in dict.fromkeys([levels[0], j.task_type]):
            _add(groups.setdefault(name, _empty()), j)
    if not seen:
        return None
    return {**total, "task_types": dict(sorted(groups.items()))}


def adaptive_savings(drawn: int, units: int, k: int) -> dict[str, int]:
    """Samples fixed repeats would have drawn (``units`` x k), the samples drawn, and the calls saved."""
    most = units * k
    return {"samples_max": most, "samples_drawn": drawn, "saved": max(0, most - drawn)}
