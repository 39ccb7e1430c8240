"""Adaptive repeats as rounds of judge calls: each round is one batched dispatch (one batch in batch mode).

A unit is what the stop rule looks at: one answer (single grading; its samples in order) or one answer pair
(pairwise; round r holds sample r of both orders). The first round draws what the rule needs to decide
(:mod:`sfteval.judges.adaptive`); every later round draws one more sample for the units whose samples still
disagree, up to k. Stored samples count as drawn, so a re-run (or a raised budget) continues where the last
one stopped; a unit whose round the budget kept back stops there (its ``not_judged`` records say so).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterator

from sfteval.judges.adaptive import PAIR_FIRST_ROUND, majority, pair_agrees, single_agrees

from ..models import Judgment
from .engine import JudgeCall, JudgeClient, run_calls


@dataclass
class Unit:
    rounds: list[list[JudgeCall]]
    agrees: Callable[[list[Judgment]], bool]


def single_units(calls: list[JudgeCall]) -> list[Unit]:
    """One unit per answer (generation): a majority of its k samples first (2 of 3), then one at a time."""
    by_answer: dict[str, list[JudgeCall]] = {}
    for c in calls:
        by_answer.setdefault(c.template.generation_key or c.template.key, []).append(c)
    units = []
    for cs in by_answer.values():
        cs.sort(key=lambda c: c.template.judge_sample)
        k = len(cs)
        first = cs[:majority(k)]
        units.append(Unit([first] + [[c] for c in cs[len(first):]], lambda js, k=k: single_agrees(js, k)))
    return units


def pair_units(calls: list[JudgeCall]) -> list[Unit]:
    """One unit per answer pair: round r is sample r in both orders (both orders are always judged)."""
    by_pair: dict[tuple[str, str], dict[int, list[JudgeCall]]] = {}
    for c in calls:
        t = c.template
        pair = (t.generation_key or "", str(t.details.get("baseline_generation_key")))
        by_pair.setdefault(pair, {}).setdefault(t.judge_sample, []).append(c)
    units = []
    for samples in by_pair.values():
        rounds = [samples[i] for i in sorted(samples)]
        first = [c for r in rounds[:PAIR_FIRST_ROUND] for c in r]
        units.append(Unit([first] + rounds[PAIR_FIRST_ROUND:], _pair_rule))
    return units


def _pair_rule(samples: list[Judgment]) -> bool:
    return pair_agrees([j for j in samples if j.order == "AB"], [j for j in samples if j.order == "BA"])


def run_adaptive(units: list[Unit], client: JudgeClient, existing: dict[str, Judgment], *, retry_unparsed: bool,
                 label: str = "judge", fail_fast: bool = True) -> Iterator[Judgment]:
    """Records for the samples the units need, round by round (see the module docstring)."""
    known = dict(existing)
    active = [u for u in units if u.rounds]
    r = 0
    while active:
        calls = [c for u in active for c in u.rounds[r]]
        for j in run_calls(calls, client, known, retry_unparsed=retry_unparsed,
                           label=f"{label} (round {r + 1})" if r else label, fail_fast=fail_fast):
            known[j.key] = j
            yield j
        still = []
        for u in active:
            drawn = [known[c.template.key] for rr in u.rounds[:r + 1] for c in rr if c.template.key in known]
            held_back = any(known.get(c.template.key) is None or known[c.template.key].status == "not_judged"
                            for c in u.rounds[r])
            if not held_back and r + 1 < len(u.rounds) and not u.agrees(drawn):
                still.append(u)
        active = still
        r += 1
