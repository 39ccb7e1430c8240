"""The score stage: every scorer (rules, LLM judges) judges the stored final answers.

Scorers share one small interface and write Judgment records keyed by content, so a
re-run (or a resumed run) calls no scorer for work that is already stored.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterable, Iterator, Optional

from .models import Generation, Item, Judgment
from .stages.base import RunContext, RunRecords, Stage, empty_metrics
from .store import RunStore, content_key
from .suite import Suite

if TYPE_CHECKING:
    import pandas as pd


@dataclass
class ScoreTarget:
    """One answer to judge: the item, its final-turn generation and all turns before it."""

    item: Item
    generation: Generation
    history: list[Generation]


class Scorer(ABC):
    name: str

    @abstractmethod
    def score(self, targets: list[ScoreTarget], done: set[str]) -> Iterator[Judgment]:
        """Yield judgments for targets whose keys are not in ``done``."""


class RuleScorer(Scorer):
    """Applies the rules a task_type names (or the item's defaults) to each answer."""

    name = "rules"

    def __init__(self, suite: Suite):
        self.suite = suite

    def rules_for(self, item: Item) -> list[str]:
        """The task_type's listed rules, else the item's defaults; a rule only where the item has what it needs."""
        from sfteval.judges.rules import applies, default_rules

        settings = self.suite.settings_for(item.task_type)
        names = settings.rules if settings.rules is not None else default_rules(item, settings.answer_type)
        return [name for name in names if applies(name, item)]

    def score(self, targets: list[ScoreTarget], done: set[str]) -> Iterator[Judgment]:
        from sfteval.judges.rules import rule_function

        for t in targets:
            for name in self.rules_for(t.item):
                key = content_key("rule", t.generation.key, name)
                if key in done:
                    continue
                outcome = rule_function(name)(t.item, t.generation.answer)  # names were checked at suite load
                yield Judgment(
                    key=key, item_id=t.item.id, task_type=t.item.task_type, generation_key=t.generation.key,
                    sample=t.generation.sample, scorer=f"rule:{name}", mode="rule",
                    scores={} if outcome.score is None else {name: outcome.score}, overall=outcome.score,
                    status="ok" if outcome.score is not None else "unparsed", reason=outcome.reason,
                    details=outcome.details or {},
                )


def score_targets(items: Iterable[Item], generations: dict[str, Generation]) -> list[ScoreTarget]:
    """Final-turn answers that exist and succeeded (failed ones are counted elsewhere, never scored)."""
    by_item: dict[str, dict[int, list[Generation]]] = {}
    for g in generations.values():
        by_item.setdefault(g.item_id, {}).setdefault(g.sample, []).append(g)
    targets = []
    for item in items:
        last = item.n_answer_turns - 1
        for _sample, gens in sorted(by_item.get(item.id, {}).items()):
            gens.sort(key=lambda g: g.turn)
            final = next((g for g in gens if g.turn == last), None)
            if final is not None and final.status == "ok":
                targets.append(ScoreTarget(item=item, generation=final, history=gens))
    return targets


def run_scorers(store: RunStore, scorers: list[Scorer], targets: list[ScoreTarget]) -> int:
    done = set(store.read("judgments"))
    n = 0
    for scorer in scorers:
        for judgment in scorer.score(targets, done):
            store.append("judgments", judgment)
            done.add(judgment.key)
            n += 1
    return n


class RuleStage(Stage):
    """Rule scores of every stored final answer (exact/normalized match, choice, checks, plugin rules)."""

    name = "rules"
    order = 200

    def run(self, ctx: RunContext) -> None:
        if ctx.options.generate:
            run_scorers(ctx.store, [RuleScorer(ctx.suite)], score_targets(ctx.items, ctx.store.read("generations")))

    def item_metrics(self, records: RunRecords) -> Optional["pd.DataFrame"]:
        """``rule:<name>`` (mean over answer samples) and ``rule:<name>:unparsed`` per item."""
        import numpy as np
        import pandas as pd

        per_gen: dict[tuple[str, Optional[str]], dict[str, list[float]]] = {}
        for j in records.judgments.values():
            if j.mode != "rule":
                continue
            bucket = per_gen.setdefault((j.item_id, j.generation_key), {})
            bucket.setdefault(f"{j.scorer}:unparsed", []).append(float(j.status != "ok"))
            if j.status == "ok":
                bucket.setdefault(j.scorer, []).append(float(j.overall))  # type: ignore[arg-type]
        if not per_gen:
            return empty_metrics()
        def mean(v: list[float]) -> float:  # np.mean's own result (it sums fewer than 8 values in order), 20x faster
            return sum(v) / len(v) if len(v) < 8 else float(np.mean(v))

        flat = [{"item_id": item_id, **{name: mean(v) for name, v in metrics.items()}}
                for (item_id, _gen), metrics in per_gen.items()]
        return pd.DataFrame(flat).groupby("item_id").mean(numeric_only=True)
