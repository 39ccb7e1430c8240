"""Training data next to the eval: the mix per task_type, its changes between two training sets, and the
training examples nearest to an eval prompt (with exact / near-duplicate membership).

The API the differ, ``sfteval trend`` and the viewer use::

    ts = load_training("train.jsonl", {"task_type": "category"})   # TrainingSet (TrainDataError on bad input)
    mix(ts)                        # per task_type: count, share, mean_answer_chars, duplicate_rate
    compare(ts_a, ts_b)            # both sides, deltas, changed_answers / new_prompts / dropped_prompts
    index = TrainingIndex(ts)      # exact + TF-IDF index, built once
    index.query(prompt, k=3)       # [Neighbour(row, similarity, score, exact)], most similar first
    index.membership(prompt)       # "exact" | "near-duplicate" | None
"""

from __future__ import annotations

from .index import NEAR_DUPLICATE, Neighbour, TrainingIndex
from .load import TrainDataError, TrainingSet, load_training, parse_map, prompt_text
from .composition import changed, changes, compare, mix

__all__ = ["NEAR_DUPLICATE", "Neighbour", "TrainDataError", "TrainingIndex", "TrainingSet", "changed", "changes",
           "compare", "load_training", "mix", "parse_map", "prompt_text"]
