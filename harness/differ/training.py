"""The training data behind a diff: the mix per task_type beside the eval deltas, and the training examples
nearest to every flipped item.

Why: when v2 is worse on a task_type, the next step is that task_type's training data -- did it shrink, did
its answers get longer, is it duplicated, were its answers relabelled -- and, for a failing item, the
training examples that resemble it, and whether the eval prompt itself is in the training data (then the
item tests recall of a trained answer, and a wrong trained answer explains the flip at once).

JSON (``DiffResult.training``)::

    {"baseline": {"path", "rows"} | null, "candidate": {...} | null, "metric": <headline metric>,
     "task_types": [{task_type, count_a, count_b, count_delta, share_*, mean_answer_chars_*, duplicate_rate_*,
                     changed_answers, new_prompts, dropped_prompts, changes: [text], eval: {delta, status, ...}}],
     "flipped": {item_id: {"index": "candidate"|"baseline", "membership": "exact"|"near-duplicate"|null,
                           "neighbours": [{row, source, task_type, similarity, score, exact, prompt, answer}]}}}
"""

from __future__ import annotations

from typing import Any, Optional

from ..traindata import TrainingIndex, TrainingSet, changed, compare, prompt_text
from .result import DiffResult, FlipItem

NEIGHBOURS = 3


def item_prompt(detail: dict[str, Any]) -> Optional[str]:
    """The eval prompt as training prompts are compared: every turn's content before the answer, in order."""
    messages = detail.get("messages")
    if messages:
        return prompt_text(messages)
    return detail.get("prompt")


def eval_by_task_type(diff: DiffResult, metric: Optional[str]) -> dict[str, dict[str, Any]]:
    cells = diff.cells
    if metric is None or not len(cells):
        return {}
    sel = cells[cells["metric"] == metric]
    return {r["group"]: {"metric": metric, "mean_a": r["mean_a"], "mean_b": r["mean_b"], "delta": r["delta"],
                         "p_holm": r["p_holm"], "status": r["status"], "same_as": r["same_as"]}
            for r in sel.to_dict("records")}


def nearest(index: TrainingIndex, items: list[FlipItem], k: int = NEIGHBOURS) -> dict[str, dict[str, Any]]:
    """Neighbours and membership of each flipped item's prompt; answers read back in one pass."""
    found: dict[str, tuple[Any, Optional[str]]] = {}
    for it in items:
        prompt = item_prompt(it.detail or {})
        if prompt is None:
            continue
        nb = index.query(prompt, k)
        found[it.item_id] = (nb, index.membership(prompt, nb))
    answers = index.ts.answers_of([n.row for nb, _ in found.values() for n in nb])
    return {item_id: {"membership": member, "neighbours": [n.as_dict(index.ts, answers.get(n.row)) for n in nb]}
            for item_id, (nb, member) in found.items()}


def add_training(diff: DiffResult, train_a: Optional[TrainingSet], train_b: Optional[TrainingSet],
                 k: int = NEIGHBOURS) -> None:
    """Fill ``diff.training`` and each flipped item's ``detail['training']``."""
    if train_a is None and train_b is None:
        return
    metric = diff.headline_metric()
    evals = eval_by_task_type(diff, metric)
    rows = compare(train_a, train_b)
    for row in rows:
        row["changes"] = changed(row)
        row["eval"] = evals.get(row["task_type"])
    flipped: dict[str, dict[str, Any]] = {}
    side, ts = ("candidate", train_b) if train_b is not None else ("baseline", train_a)
    items = diff.worse + diff.better
    if ts is not None and items:
        flipped = nearest(TrainingIndex(ts), items, k)
        for it in items:
            if it.item_id in flipped:
                flipped[it.item_id]["index"] = side
                it.detail["training"] = flipped[it.item_id]
    diff.training = {
        "baseline": None if train_a is None else {"path": str(train_a.path), "rows": len(train_a)},
        "candidate": None if train_b is None else {"path": str(train_b.path), "rows": len(train_b)},
        "metric": metric, "task_types": rows, "flipped": flipped,
    }
    for row in rows:
        ev = row["eval"]
        if ev and ev["status"] == "regression" and not ev["same_as"] and row["changes"] and row["task_type"] != "overall":
            diff.warnings.append(f"training data of {row['task_type']}, which regressed on {metric}: "
                                 + "; ".join(row["changes"]))
