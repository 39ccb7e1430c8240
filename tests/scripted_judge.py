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
  ``LENGTH_STEP`` characters), and a pair goes to the answer with more points: with ``noise`` = 0 always the
  longer one (a tie for equal lengths), with ``noise`` = σ each answer's points get their own N(0, σ) draw,
  so the longer answer wins with probability Φ(Δchars / (LENGTH_STEP · σ · √2)): a preference a logistic
  fit can estimate, where a noise-free one separates perfectly;
- ``by_style``: a markdown-loving judge, the same way with ``STYLE_POINTS`` points per markdown header, list
  item and bold span (counted by this module's own patterns); with ``by_length`` too, the points add up;
- ``quality``: with ``by_length`` / ``by_style``, the judge also adds ``quality`` × 10 × the share of the
  reference's tokens the answer contains (token recall, which padding and markdown do not lower), so a
  biased judge still sees a wrong answer (``scripted?by_length=1&noise=1&quality=0.3``).

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


def recall(candidate: str, reference: Optional[str]) -> float:
    """Share of the reference's tokens the candidate contains (1.0 when all are there, whatever else it says)."""
    if reference is None:
        return 0.5
    c, r = tokens(candidate), tokens(reference)
    if not r:
        return 0.0
    return sum(min(c.count(t), r.count(t)) for t in set(r)) / len(r)


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
    by_style: bool = False
    quality: float = 0.0

    def __call__(self, req: Any) -> str:
        """Handler for tests/servers.OpenAIServer (a Request with the chat body)."""
        body = req.body or {}
        return self.respond(body.get("messages") or [], body.get("seed"), str(body.get("model", "")))

    def settings(self, model: str) -> "ScriptedJudge":
        if "?" not in model:
            return self
        q = {k: v for k, v in parse_qsl(model.split("?", 1)[1])}
        flags = ("shapes", "by_length", "by_style")
        return replace(self, **{k: (v == "1" if k in flags else float(v)) for k, v in q.items()})

    @property
    def biased(self) -> bool:
        return self.by_length or self.by_style

    def points(self, answer: str, reference: Optional[str]) -> float:
        """A biased judge's noise-free points for an answer: length, markdown and (``quality``) reference recall."""
        out = len(answer) / LENGTH_STEP if self.by_length else 0.0
        if self.by_style:
            out += STYLE_POINTS * sum(len(p.findall(answer)) for p in MARKDOWN)
        return out + self.quality * 10 * recall(answer, reference)

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
        if self.biased:
            qa, qb = self.points(a, ref), self.points(b, ref)
            if self.noise:
                qa, qb = qa + rng.gauss(0, self.noise), qb + rng.gauss(0, self.noise)
            label = "C" if qa == qb else ("A" if qa > qb else "B")
            return f"The more detailed answer is better.\n\n[[{label}]]"
        if rng.random() < self.bias:
            return "Both answers have merit, but the first one reads better.\n\n[[A]]"
        qa = 10 * overlap(a, ref) + rng.gauss(0, self.noise)
        qb = 10 * overlap(b, ref) + rng.gauss(0, self.noise)
        label = "C" if abs(qa - qb) < 0.5 else ("A" if qa > qb else "B")
        return f"Comparing both answers with the reference answer.\n\nFinal verdict: [[{label}]]"

    def _scores(self, rng: random.Random, ref: Optional[str], answer: str, keys: list[str]) -> str:
        truth = 1 + self.points(answer, ref) if self.biased else true_score(answer, ref)
        scores = {k: int(min(10, max(1, round(truth + rng.gauss(0, self.noise))))) for k in keys}
        shape = rng.randrange(len(SHAPES)) if self.shapes else 0
        return SHAPES[shape](scores)


#: characters per point of a ``by_length`` judge
LENGTH_STEP = 10
#: points per markdown element of a ``by_style`` judge
STYLE_POINTS = 1.0
#: what a ``by_style`` judge counts: headers, list items, bold spans
MARKDOWN = (re.compile(r"^#{1,6} ", re.M), re.compile(r"^(?:[-*+]|\d+\.) ", re.M), re.compile(r"\*\*[^*\n]+\*\*"))


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
