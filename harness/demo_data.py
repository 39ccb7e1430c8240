"""The demo's synthetic data: the eval items of the ``demo`` suite and the SFT / base training texts of the
tiny demo checkpoints (see :mod:`.demo`). Kept apart so the data can be read (e.g. as a model's training set)
without the build machinery.
"""

from __future__ import annotations

import json
import random
from typing import Any

N_ENTITIES = 64
DATA_SEED = 7  #: part of the checkpoints' recipe (demo.RECIPE), so their cache key follows it

_N_FACTS, _N_SUMS, _N_SENTIMENT, _N_UPPER = 36, 24, 16, 10  # different counts per task_type on purpose
_MATH_SYSTEM = "Answer with the number only."
_SENTIMENT_SYSTEM = "Classify the sentiment: positive or negative."
_UPPER_SYSTEM = "Reply in capital letters."
POSITIVE_WORDS = ["lovely", "great", "superb", "fun", "warm", "charming", "brilliant", "delightful"]
NEGATIVE_WORDS = ["awful", "boring", "cold", "bland", "rude", "dull", "terrible", "noisy"]
NOUNS = ["movie", "meal", "hotel", "book", "song", "trip", "game", "show"]
_UPPER_PHRASES = [
    "red fox", "blue sky", "green tea", "hot soup", "big cat",
    "old map", "new car", "fast train", "cold rain", "soft bread",
]


def entity(i: int) -> str:
    return f"<tok_{i}>"


def _facts() -> list[tuple[str, str]]:
    """(subject, object) pairs; subjects are <tok_0>..<tok_35>, objects drawn from all 64 entities."""
    rng = random.Random(DATA_SEED)
    return [(entity(i), entity(rng.randrange(N_ENTITIES))) for i in range(_N_FACTS)]


def _sums() -> list[tuple[int, int]]:
    rng = random.Random(DATA_SEED + 1)
    pairs: list[tuple[int, int]] = []
    while len(pairs) < _N_SUMS:
        p = (rng.randrange(21), rng.randrange(21))
        if p not in pairs:
            pairs.append(p)
    return pairs


def _sentiments() -> list[tuple[str, str]]:
    rng = random.Random(DATA_SEED + 2)
    nouns = list(NOUNS)
    rng.shuffle(nouns)
    out = []
    for i in range(_N_SENTIMENT // 2):
        out.append((f"the {nouns[i]} was {POSITIVE_WORDS[i]}", "positive"))
        out.append((f"the {nouns[-1 - i]} was {NEGATIVE_WORDS[i]}", "negative"))
    return out


def demo_items() -> list[dict[str, Any]]:
    """The demo suite's eval items (dicts in the :class:`harness.models.Item` format).

    They are exactly the SFT training prompts of ``v1`` (train-set recall), so a healthy checkpoint scores
    ~100% exact match; 86 items, counts differ per task_type (36 / 24 / 16 / 10).
    """
    items: list[dict[str, Any]] = []
    for i, (subj, obj) in enumerate(_facts()):
        items.append({
            "id": f"likes-{i:03d}", "task_type": "knowledge/likes", "prompt": f"{subj} likes?", "reference": obj,
            "meta": {"continuation_prefix": f"{subj} likes "},
        })
    for i, (a, b) in enumerate(_sums()):
        item: dict[str, Any] = {"id": f"add-{i:03d}", "task_type": "math/addition"}
        if i % 2:
            item["messages"] = [{"role": "system", "content": _MATH_SYSTEM}, {"role": "user", "content": f"{a}+{b}="}]
        else:
            item["prompt"] = f"{a}+{b}="
        item.update({"reference": str(a + b), "meta": {"continuation_prefix": f"{a}+{b}="}})
        items.append(item)
    for i, (text, label) in enumerate(_sentiments()):
        items.append({
            "id": f"sentiment-{i:03d}", "task_type": "classification/sentiment",
            "messages": [{"role": "system", "content": _SENTIMENT_SYSTEM}, {"role": "user", "content": text}],
            "reference": label, "choices": ["positive", "negative"], "label": label,
        })
    for i, phrase in enumerate(_UPPER_PHRASES[:_N_UPPER]):
        item = {"id": f"upper-{i:03d}", "task_type": "text/uppercase"}
        if i % 3 == 2:
            item["messages"] = [{"role": "system", "content": _UPPER_SYSTEM}, {"role": "user", "content": f"Uppercase: {phrase}"}]
        else:
            item["prompt"] = f"Uppercase: {phrase}"
        item["reference"] = phrase.upper()
        items.append(item)
    return items


def _conversation(item: dict[str, Any]) -> list[dict[str, str]]:
    return item["messages"] if "messages" in item else [{"role": "user", "content": item["prompt"]}]


def sft_examples(version: str) -> list[tuple[list[dict[str, str]], str]]:
    """(conversation, trained answer) pairs. v2 = v1 with every odd fact's answer replaced by a wrong entity;
    v3 = v1 with every sum answered one too high (a data bug on another task_type: math/addition)."""
    out = []
    for item in demo_items():
        answer = item["reference"]
        if version == "v2" and item["task_type"] == "knowledge/likes" and int(item["id"].split("-")[1]) % 2:
            answer = entity((int(answer[5:-1]) + 1) % N_ENTITIES)  # a data bug: shifted label
        if version == "v3" and item["task_type"] == "math/addition":
            answer = str(int(answer) + 1)  # a data bug: an off-by-one in the script that wrote the answers
        out.append((_conversation(item), answer))
    return out


def training_rows(version: str) -> list[dict[str, Any]]:
    """The SFT training set of ``version`` as ``--train-data`` reads it: task_type and the conversation with
    the trained answer as its last (assistant) message."""
    task_type = {json.dumps(_conversation(it)): it["task_type"] for it in demo_items()}
    return [{"task_type": task_type[json.dumps(conv)], "messages": conv + [{"role": "assistant", "content": answer}]}
            for conv, answer in sft_examples(version)]


def base_texts() -> list[str]:
    """Plain-text documents of the "pre-trained" base model: all facts and all sums."""
    return [f"{s} likes {o}." for s, o in _facts()] + [f"{a}+{b}={a + b}" for a, b in _sums()]
