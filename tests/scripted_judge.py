"""A scripted LLM judge with known behaviour, served over real HTTP by tests/servers (or called in-process).

It reads the judge prompt the way a model would -- the reference block, the delimited answers and the
requested score dict -- and answers deterministically from the token overlap of candidate and reference:
``true_score = 2 + 6 * F1``, so the truth is known to the test. Knobs (instance fields, or per request
as query parameters in the model name, e.g. ``scripted?noise=1.5&garbage=0.2&bias=0.4``):

- ``noise``: σ of Gaussian noise on each score (single) or each perceived quality (pairwise);
- ``garbage``: probability of an unparsable answer (no dict, a truncated dict, or an out-of-range score);
- ``bias``: pairwise probability of answering [[A]] (the first position) whatever the answers;
- ``shapes``: rotate through real-world output shapes (AlignBench analysis + dict, JSON in a code fence,
  full-width punctuation, 'n/10' values, markdown keys, an example dict before the final one);
- ``by_length``: a length-biased judge: scores grow with the answer's length (one point per
  ``LENGTH_STEP`` characters), and a pair goes to the longer answer (a tie for equal lengths).

The randomness is seeded from the request's ``seed``, the prompt and the model name, so a repeated
request gets the same answer and judge sample i (seed + i) gets an independent draw.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from dataclasses import dataclass, replace
from typing import Any, Optional
from urllib.parse import parse_qsl

START, END = "<<<ANSWER_START>>>", "<<<ANSWER_END>>>"
_REF = [("[The Start of Reference Answer]\n", "\n[The End of Reference Answer]"),
        ("[参考答案开始]\n", "\n[参考答案结束]")]


def tokens(text: str) -> list[str]:
    return re.findall(r"<[^<>\s]+>|\w+", text.casefold())


def overlap(candidate: str, reference: Optional[str]) -> float:
    """Token F1 of candidate vs reference (1.0 = same tokens)."""
    if reference is None:
        return 0.5
    c, r = tokens(candidate), tokens(reference)
    if not c or not r:
        return 0.0
    common = sum(min(c.count(t), r.count(t)) for t in set(c))
    if common == 0:
        return 0.0
    p, q = common / len(c), common / len(r)
    return 2 * p * q / (p + q)


def true_score(candidate: str, reference: Optional[str]) -> float:
    return 2 + 6 * overlap(candidate, reference)


def extract(prompt: str) -> tuple[Optional[str], list[str], list[str]]:
    """(reference, answers in order of appearance, requested score keys) from a judge prompt."""
    ref = None
    for a, b in _REF:
        if a in prompt:
            ref = prompt.split(a, 1)[1].split(b, 1)[0].strip()
            if ref.startswith(("(No reference", "（本题没有")):
                ref = None
    answers = [m.strip() for m in re.findall(re.escape(START) + r"\n(.*?)\n" + re.escape(END), prompt, re.S)]
    keys: list[str] = []
    for line in prompt.splitlines():
        if line.startswith("{'") and line.endswith("}") and not re.search(r"':\s*\d", line):
            keys = re.findall(r"'([^']+)':", line)
    return ref, answers, keys


@dataclass
class ScriptedJudge:
    noise: float = 0.0
    garbage: float = 0.0
    bias: float = 0.0
    shapes: bool = False
    by_length: bool = False

    def __call__(self, req: Any) -> str:
        """Handler for tests/servers.OpenAIServer (a Request with the chat body)."""
        body = req.body or {}
        return self.respond(body.get("messages") or [], body.get("seed"), str(body.get("model", "")))

    def settings(self, model: str) -> "ScriptedJudge":
        if "?" not in model:
            return self
        q = {k: v for k, v in parse_qsl(model.split("?", 1)[1])}
        return replace(self, **{k: (v == "1" if k in ("shapes", "by_length") else float(v)) for k, v in q.items()})

    def respond(self, messages: list[dict[str, str]], seed: Optional[int], model: str = "") -> str:
        me = self.settings(model)
        prompt = messages[-1]["content"] if messages else ""
        digest = hashlib.sha256(json.dumps([messages, seed, model], ensure_ascii=False).encode()).hexdigest()
        rng = random.Random(int(digest[:16], 16))
        ref, answers, keys = extract(prompt)
        if rng.random() < me.garbage:
            return rng.choice(GARBAGE).format(key=keys[0] if keys else "Overall")
        if '"[[A]]"' in prompt and len(answers) >= 2:
            return me._verdict(rng, ref, answers[-2], answers[-1])
        return me._scores(rng, ref, answers[-1] if answers else "", keys)

    def _verdict(self, rng: random.Random, ref: Optional[str], a: str, b: str) -> str:
        if self.by_length:
            label = "C" if len(a) == len(b) else ("A" if len(a) > len(b) else "B")
            return f"The more detailed answer is better.\n\n[[{label}]]"
        if rng.random() < self.bias:
            return "Both answers have merit, but the first one reads better.\n\n[[A]]"
        qa = 10 * overlap(a, ref) + rng.gauss(0, self.noise)
        qb = 10 * overlap(b, ref) + rng.gauss(0, self.noise)
        label = "C" if abs(qa - qb) < 0.5 else ("A" if qa > qb else "B")
        return f"Comparing both answers with the reference answer.\n\nFinal verdict: [[{label}]]"

    def _scores(self, rng: random.Random, ref: Optional[str], answer: str, keys: list[str]) -> str:
        truth = 1 + len(answer) / LENGTH_STEP if self.by_length else true_score(answer, ref)
        scores = {k: int(min(10, max(1, round(truth + rng.gauss(0, self.noise))))) for k in keys}
        shape = rng.randrange(len(SHAPES)) if self.shapes else 0
        return SHAPES[shape](scores)


#: characters per point of a ``by_length`` judge
LENGTH_STEP = 10


def _py(scores: dict[str, int]) -> str:
    return "{" + ", ".join(f"'{k}': {v}" for k, v in scores.items()) + "}"


SHAPES = [
    lambda s: f"The answer is compared with the reference answer point by point.\n\n{_py(s)}",
    lambda s: "分析：与参考答案逐点对比，存在一些不足。\n\n```json\n" + json.dumps(s, ensure_ascii=False) + "\n```",
    lambda s: "评价完毕。\n｛" + "，".join(f"“{k}”：{v}" for k, v in s.items()) + "｝",
    lambda s: "Scores:\n{" + ", ".join(f'"{k}": "{v}/10"' for k, v in s.items()) + "}",
    lambda s: "Example format: {'Overall': 5}\nMy actual scores follow.\n" + _py(s),
    lambda s: "**Final scores**\n{" + ", ".join(f"'**{k.lower()}**': {v}" for k, v in s.items()) + "}\n",
]

GARBAGE = [
    "I think this answer is quite good overall. Rating: great!",
    "Let me evaluate.\n{{'{key}': 8, 'Overa",
    "{{'{key}': 11}}",
]
