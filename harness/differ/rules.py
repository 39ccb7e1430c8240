"""Which way is better, and how big a change matters, for every metric: built-in defaults + gate.yaml.

Why defaults per metric family: a 0.05 change is large for a rate and negligible for a 1-10 judge score,
latency is better when lower, and an answer that got longer is neither better nor worse. ``gate: false``
metrics (latency, log-prob sums, lengths) are still tested and marked (worse/better/changed), but do not
count as regressions unless gate.yaml says so: latency measured at different times on shared hardware moves
with the machine's load, and log-prob drift is an early signal to watch, not a release criterion.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, replace
from typing import Literal

from ..gate import GateConfig, MetricRule

Direction = Literal["higher", "lower", "none"]


@dataclass(frozen=True)
class Rule:
    direction: Direction
    min_effect: float  # absolute, or a fraction of |mean A| when relative
    relative: bool
    gate: bool
    alpha: float

    def threshold(self, mean_a: float) -> float:
        return self.min_effect * abs(mean_a) if self.relative else self.min_effect


Spec = tuple[Direction, float, bool, bool]  # direction, min_effect, relative, gate


def _r(direction: Direction, min_effect: float, relative: bool = False, gate: bool = True) -> Spec:
    return (direction, min_effect, relative, gate)


#: First matching pattern wins. Rates in [0, 1]; judge scores on a 1-10 scale; probe values in nats.
BUILTIN: list[tuple[str, Spec]] = [
    ("usable", _r("higher", 0.05)),
    ("usable_score", _r("higher", 0.5)),
    ("judge:unparsed", _r("lower", 0.02, gate=False)),  # the judge's reliability: guarded by the gate instead
    ("judge:error", _r("lower", 0.02, gate=False)),
    ("judge:not_judged", _r("lower", 0.02, gate=False)),
    ("judge:spread", _r("none", 0.5, gate=False)),  # the judge's repeat spread: not the model's quality
    ("judge:*", _r("higher", 0.5)),
    ("gen:error", _r("lower", 0.02)),
    ("gen:truncated", _r("lower", 0.05)),
    ("gen:ttft_s", _r("lower", 0.2, relative=True, gate=False)),
    ("gen:per_token_s", _r("lower", 0.2, relative=True, gate=False)),
    ("gen:total_s", _r("lower", 0.2, relative=True, gate=False)),
    ("gen:answer_chars", _r("none", 0.2, relative=True, gate=False)),
    ("gen:completion_tokens", _r("none", 0.2, relative=True, gate=False)),
    ("rule:*:unparsed", _r("lower", 0.05)),
    ("rule:*", _r("higher", 0.05)),
    ("probe:ref_sum", _r("higher", 1.0, gate=False)),
    ("probe:ref_mean", _r("higher", 0.1, gate=False)),
    ("probe:ref_tokens", _r("none", 0.1, relative=True, gate=False)),
    ("probe:ref_greedy", _r("higher", 0.05)),
    ("probe:choice_acc*", _r("higher", 0.05)),
    ("probe:choice_margin", _r("higher", 0.5, gate=False)),
    ("probe:cont_base_knows", _r("none", 0.05, gate=False)),
    ("probe:cont_sft_correct", _r("higher", 0.05)),
    ("probe:cont_lost", _r("lower", 0.05)),
    ("probe:cont_gap", _r("higher", 1.0, gate=False)),
]
#: Metrics nobody registered: 0/1 metrics read as rates, anything else is watched at 10% relative.
UNKNOWN_BINARY = _r("higher", 0.05)
UNKNOWN_OTHER = _r("higher", 0.1, relative=True, gate=False)


def builtin_rule(metric: str, binary: bool, alpha: float) -> Rule:
    spec = next((spec for pattern, spec in BUILTIN if fnmatch.fnmatchcase(metric, pattern)),
                UNKNOWN_BINARY if binary else UNKNOWN_OTHER)
    direction, min_effect, relative, gate = spec
    return Rule(direction=direction, min_effect=min_effect, relative=relative, gate=gate, alpha=alpha)


def _apply(rule: Rule, override: MetricRule) -> Rule:
    return replace(rule, **{k: v for k, v in override.model_dump().items() if v is not None})


def _matching(rules: dict[str, MetricRule], metric: str) -> list[MetricRule]:
    """Glob keys first (file order), the exact key last, so the most specific one wins."""
    globs = [r for k, r in rules.items() if k != metric and fnmatch.fnmatchcase(metric, k)]
    return globs + ([rules[metric]] if metric in rules else [])


def resolve(config: GateConfig, group: str, metric: str, binary: bool) -> Rule:
    """Built-in default < gate.yaml metrics < task_type rules (first level < second level)."""
    rule = builtin_rule(metric, binary, config.alpha)
    for override in _matching(config.metrics, metric):
        rule = _apply(rule, override)
    for tt in config.task_type_rules(group):
        if tt.alpha is not None:
            rule = replace(rule, alpha=tt.alpha)
        for override in _matching(tt.metrics, metric):
            rule = _apply(rule, override)
    return rule
