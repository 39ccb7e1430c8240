"""``--dry-run``: the judge calls a command would send, their tokens and their cost -- and nothing is sent.

The calls are built by the code that would send them (the same prompts, cache keys and cache lookups:
:func:`harness.judging.engine.partition`), so the counts are what a real run sends. Prompt tokens are counted
as :mod:`harness.judging.cost` says (the judge's tokenizer, tiktoken, or an estimate, named in the output).
For ``sfteval run --dry-run`` the answers do not exist yet: each answer counts as ``max_new_tokens`` tokens
(the most it can be), so its numbers are an upper estimate, and the output says so.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from tabulate import tabulate

from ..models import Generation, Item, Judgment
from ..score import ScoreTarget
from ..store import content_key
from .adaptive import Unit
from .cost import Prices, observed_completion_mean
from .engine import JudgeCall, JudgeClient, partition


@dataclass
class Estimate:
    """What judging would take: calls (stored, cached, to send), tokens and cost at the configured prices."""

    what: str
    judge: str
    samples: int  #: judge samples (records) once everything is judged
    stored: int  #: already judged (records exist)
    cached: int  #: answered from the cache: no request
    new: int  #: requests to send (with adaptive repeats: at most)
    first_round: Optional[int]  #: adaptive: requests of the first round (at least)
    prompt_tokens: int
    max_tokens: int  #: per request (the config's sampling.max_tokens)
    observed_mean: Optional[float]  #: completion tokens per request this judge gave before
    counter: str
    exact: bool
    prices: Prices
    batch: bool
    extra_prompt_tokens: int = 0  #: answers not generated yet, counted at max_new_tokens
    task_types: dict[str, dict[str, int]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def total_prompt_tokens(self) -> int:
        return self.prompt_tokens + self.extra_prompt_tokens

    @property
    def max_completion_tokens(self) -> int:
        return self.new * self.max_tokens

    def cost(self, completion_tokens: float) -> Optional[float]:
        if not self.prices.known:
            return None
        return self.prices.cost(self.total_prompt_tokens, completion_tokens, self.batch)

    def as_dict(self) -> dict[str, Any]:
        expected = None if self.observed_mean is None else self.new * self.observed_mean
        return {"what": self.what, "judge": self.judge, "samples": self.samples, "stored": self.stored,
                "cached": self.cached, "calls": self.new, "first_round_calls": self.first_round,
                "prompt_tokens": self.total_prompt_tokens, "prompt_tokens_counted_by": self.counter,
                "prompt_tokens_exact": self.exact and not self.extra_prompt_tokens,
                "max_completion_tokens": self.max_completion_tokens, "observed_completion_mean": self.observed_mean,
                "max_cost": self.cost(self.max_completion_tokens),
                "expected_cost": None if expected is None else self.cost(expected),
                "mode": "batch" if self.batch else "online", "task_types": self.task_types, "notes": self.notes}

    def render(self) -> str:
        d = self.as_dict()
        usd = lambda v: "–" if v is None else f"${v:,.4f}"  # noqa: E731
        calls = (f"judge calls: {self.new} to send ({self.samples} judge samples: {self.stored} already judged, "
                 f"{self.cached} from the cache)")
        lines = [f"dry run ({self.what}): nothing was sent", f"judge: {self.judge}", calls]
        if self.first_round is not None:
            lines.append(f"  adaptive repeats: at least {self.first_round}, at most {self.new} (samples stop once "
                         "the first ones agree)")
        how = "counted with " + self.counter if self.exact else self.counter
        prompt = f"prompt tokens: {self.total_prompt_tokens:,} ({how})"
        if self.extra_prompt_tokens:
            prompt += f", of which {self.extra_prompt_tokens:,} are answers counted at max_new_tokens"
        lines.append(prompt)
        completion = (f"completion tokens: at most {self.max_completion_tokens:,} ({self.new} x max_tokens "
                      f"{self.max_tokens})")
        if self.observed_mean is not None:
            completion += (f"; this judge has answered with {self.observed_mean:.0f} per call on average: about "
                           f"{self.new * self.observed_mean:,.0f}")
        lines.append(completion)
        if self.prices.known:
            mode = " in batch mode (the Batch API's discount applied)" if self.batch else ""
            cost = f"cost{mode}: at most {usd(d['max_cost'])}"
            if d["expected_cost"] is not None:
                cost += f", about {usd(d['expected_cost'])} at the observed completion length"
            lines.append(cost)
        else:
            lines.append("cost: – (no prices: --judge-option price_per_1k_prompt=USD "
                         "--judge-option price_per_1k_completion=USD)")
        lines += [f"note: {n}" for n in self.notes]
        if self.task_types:
            rows = [[name, v["calls"], f"{v['prompt_tokens']:,}"] for name, v in self.task_types.items()]
            lines += ["", tabulate(rows, headers=["task_type", "calls to send", "prompt tokens"], tablefmt="github",
                                   disable_numparse=True)]
        return "\n".join(lines) + "\n"


def estimate(what: str, calls: list[JudgeCall], client: JudgeClient, existing: dict[str, Judgment],
             units: Optional[Callable[[list[JudgeCall]], list[Unit]]] = None,
             extra_tokens: Optional[Callable[[JudgeCall], int]] = None) -> Estimate:
    """The estimate of sending ``calls`` (``units``: the adaptive grouping when the config repeats adaptively)."""
    _, hits, todo = partition(calls, existing)
    counter = client.counter
    prompt = extra = 0
    per_tt: dict[str, dict[str, int]] = {}
    for cs in todo.values():
        n = counter.count(cs[0].messages)
        more = extra_tokens(cs[0]) if extra_tokens else 0
        prompt, extra = prompt + n, extra + more
        for name in dict.fromkeys([cs[0].template.task_type.split("/")[0], cs[0].template.task_type]):
            g = per_tt.setdefault(name, {"calls": 0, "prompt_tokens": 0})
            g["calls"] += 1
            g["prompt_tokens"] += n + more
    first = None
    if units is not None:
        firsts = {c.cache_key for u in units(calls) for c in (u.rounds[0] if u.rounds else [])}
        first = len(firsts & todo.keys())
    cfg, spec = client.cfg, client.spec
    return Estimate(
        what=what, judge=f"{spec.model} ({cfg.name}, {spec.backend}, {spec.mode})", samples=len(calls),
        stored=len(calls) - len(hits) - sum(len(cs) for cs in todo.values()), cached=len(hits), new=len(todo),
        first_round=first, prompt_tokens=prompt, max_tokens=cfg.sampling.max_tokens,
        observed_mean=observed_completion_mean(existing.values(), cfg.config_hash(), spec.model),
        counter=counter.method, exact=counter.exact, prices=client.prices, batch=client.batch,
        extra_prompt_tokens=extra, task_types=dict(sorted(per_tt.items())))


def placeholder_targets(items: list[Item], samples: Callable[[Item], int]) -> list[ScoreTarget]:
    """Answers that do not exist yet, for ``run --dry-run``: one empty placeholder per answered turn and sample."""
    targets = []
    for item in items:
        for s in range(samples(item)):
            history = [Generation(key=content_key("dry-run", item.id, s, t), item_id=item.id, task_type=item.task_type,
                                  sample=s, turn=t, answer=f"[answer {s}]", output="")
                       for t in range(item.n_answer_turns)]
            targets.append(ScoreTarget(item=item, generation=history[-1], history=history))
    return targets
