"""`sfteval suites stats`: what a suite holds, per task_type at both levels.

Why: the eval set should mirror the training set's task_types, with more items where the task is hard
(PRACTICE 1); lengths show where latency and truncation will bite (PRACTICE 11) before a run.
"""

from __future__ import annotations

import statistics
from collections import Counter
from typing import Any, Callable, Optional

from ..models import Item
from ..suite import Suite
from ..summary import task_type_label

Counter_ = Callable[[str], int]


def _dist(values: list[int]) -> dict[str, float]:
    if not values:
        return {"n": 0}
    s = sorted(values)
    return {"n": len(s), "min": s[0], "median": statistics.median(s), "mean": round(statistics.fmean(s), 1),
            "p90": s[min(len(s) - 1, int(0.9 * len(s)))], "max": s[-1]}


def prompt_text(item: Item) -> str:
    """Everything the model reads before its first answer turn, as plain text (no chat template)."""
    return "\n".join(m.content for m in item.conversation)


def _row(items: list[Item], count: Counter_) -> dict[str, Any]:
    refs = [count(it.final_reference) for it in items if isinstance(it.final_reference, str)]
    prompts = [count(prompt_text(it)) for it in items]
    return {
        "items": len(items),
        "multi_turn": sum(it.n_answer_turns > 1 for it in items),
        "robustness": sum(it.is_robustness for it in items),
        "with_reference": sum(it.reference is not None for it in items),
        "prompt_median": statistics.median(prompts) if prompts else None,
        "reference_median": statistics.median(refs) if refs else None,
    }


def suite_stats(suite: Suite, tokenizer: Optional[Any] = None) -> dict[str, Any]:
    """Counts and length distributions; lengths in characters, and in tokens when a tokenizer is given."""
    items = suite.items
    chars: Counter_ = len
    by_level: dict[str, list[Item]] = {}
    for it in items:
        for lvl in it.task_type_levels:
            by_level.setdefault(lvl, []).append(it)
    out: dict[str, Any] = {
        "suite": suite.name, "version": suite.version, "hash": suite.content_hash, "items": len(items),
        "first_level_task_types": sum("/" not in k for k in by_level),
        "second_level_task_types": sum("/" in k for k in by_level),
        "task_types": {k: _row(v, chars) for k, v in sorted(by_level.items())},
        "multi_turn": sum(it.n_answer_turns > 1 for it in items),
        "fixed_history": sum(any(m.role == "assistant" for m in it.conversation) for it in items),
        "with_system_prompt": sum(it.conversation[0].role == "system" for it in items),
        "with_reference": sum(it.reference is not None for it in items),
        "with_choices": sum(it.choices is not None for it in items),
        "label_from_reference": sum(it.label_from_reference for it in items),
        "with_checks": sum(bool(it.checks and it.checks.active()) for it in items),
        "robustness": sum(it.is_robustness for it in items),
        "tags": dict(Counter(t for it in items for t in it.tags).most_common()),
        "answer_types": dict(Counter(it.answer_type or "(none)" for it in items).most_common()),
        "prompt_chars": _dist([len(prompt_text(it)) for it in items]),
        "reference_chars": _dist([len(it.final_reference) for it in items if isinstance(it.final_reference, str)]),
    }
    if tokenizer is not None:
        def toks(text: str) -> int:
            return len(tokenizer(text, add_special_tokens=False)["input_ids"])

        out["prompt_tokens"] = _dist([toks(prompt_text(it)) for it in items])
        out["reference_tokens"] = _dist([toks(it.final_reference) for it in items if isinstance(it.final_reference, str)])
    return out


def stats_text(stats: dict[str, Any]) -> str:
    from tabulate import tabulate

    rows = []
    for key, r in stats["task_types"].items():
        rows.append([task_type_label(key), r["items"], r["multi_turn"] or "", r["robustness"] or "", r["with_reference"],
                     r["prompt_median"], r["reference_median"] if r["reference_median"] is not None else ""])
    head = (f"{stats['suite']} v{stats['version']}: {stats['items']} items, {stats['first_level_task_types']} first-level "
            f"and {stats['second_level_task_types']} second-level task_types (hash {stats['hash'][:12]})")
    lines = [head, tabulate(rows, headers=["task_type", "items", "multi-turn", "robustness", "with ref",
                                           "prompt chars (median)", "ref chars (median)"]), ""]
    lines.append(f"multi-turn {stats['multi_turn']}, fixed history {stats['fixed_history']}, system prompt "
                 f"{stats['with_system_prompt']}, robustness {stats['robustness']}")
    from_ref = stats.get("label_from_reference")
    choices = f"{stats['with_choices']}" + (f" (label taken from the reference: {from_ref})" if from_ref else "")
    lines.append(f"with reference {stats['with_reference']}, choices {choices}, checks {stats['with_checks']}")
    lines.append("answer types: " + ", ".join(f"{k} {v}" for k, v in stats["answer_types"].items()))
    lines.append("tags: " + (", ".join(f"{k} {v}" for k, v in stats["tags"].items()) or "none"))
    for key in ("prompt_chars", "reference_chars", "prompt_tokens", "reference_tokens"):
        if key in stats and stats[key].get("n"):
            d = stats[key]
            lines.append(f"{key.replace('_', ' ')}: min {d['min']}, median {d['median']}, mean {d['mean']}, "
                         f"p90 {d['p90']}, max {d['max']} (n={d['n']})")
    return "\n".join(lines)
