"""Single grading as a Scorer: each stored answer (all its turns) graded k times by the judge model.

Why a Scorer: `sfteval run --judge` runs it right after the rules on the same ScoreTargets, and
`sfteval judge RUN` runs it alone on stored answers; both write Judgment records (mode "single",
one per judge sample) to the run's judgments stream, where resume and caching already work.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

from sfteval.judges.aggregate import decide_usability
from sfteval.judges.config import JudgeConfig, UnknownAnswerTypeError
from sfteval.judges.parse import parse_scores
from sfteval.judges.prompt import JudgePrompt, build_single_prompt

from ..models import Judgment
from ..score import Scorer, ScoreTarget
from ..store import content_key
from .adaptive import run_adaptive, single_units
from .answers import AnswerTypeOf
from .engine import JudgeCall, JudgeClient, ParseResult, run_calls
from .spec import JudgeError, JudgeSpec

def answers_of(target: ScoreTarget) -> list[str]:
    """The candidate's own answers, one per answered turn, in turn order."""
    return [g.answer for g in sorted(target.history, key=lambda g: g.turn)]


class JudgeScorer(Scorer):
    """LLM-judge single grading; the judge backend is opened only if some call is not cached."""

    name = "judge"

    def __init__(self, spec: JudgeSpec, cfg: JudgeConfig, k: int, existing: dict[str, Judgment], *,
                 answer_type_of: AnswerTypeOf = lambda item: item.answer_type, fail_fast: bool = True,
                 log: Callable[[str], None] = lambda m: print(m, file=sys.stderr), workdir: Optional[Path] = None):
        self.spec, self.cfg, self.k, self.existing = spec, cfg, k, existing
        self.answer_type_of = answer_type_of
        self.fail_fast = fail_fast  #: an unreachable judge raises (True) or is stored as errors (False)
        self.client = JudgeClient(spec, cfg, log, existing.values(), workdir=workdir)
        self.log = log

    def prompt(self, target: ScoreTarget) -> JudgePrompt:
        item = target.item
        try:
            return build_single_prompt(self.cfg, item, answers_of(target), self.answer_type_of(item))
        except UnknownAnswerTypeError as e:
            raise JudgeError(f"item {item.id} (task_type {item.task_type}): {e}") from None

    def calls(self, targets: list[ScoreTarget]) -> list[JudgeCall]:
        cfg_hash, judge_id = self.cfg.config_hash(), self.client.judge_id
        out = []
        for t in targets:
            if len(t.history) != t.item.n_answer_turns:
                continue  # an earlier turn is missing: nothing complete to judge
            p = self.prompt(t)  # every prompt is built (and validated) before the first judge call
            for i in range(self.k):
                ck, also = self.client.keys("single", cfg_hash, p.content_hash(), i)
                template = Judgment(
                    key=content_key("judgment", ck, t.generation.key), item_id=t.item.id,
                    task_type=t.item.task_type, generation_key=t.generation.key, sample=t.generation.sample,
                    scorer=f"judge:{self.cfg.name}", judge_config_hash=cfg_hash, judge_model=self.spec.model,
                    mode="single", judge_sample=i, status="error",
                    details={"flags": p.flags.get("answer", []), "answer_type": p.answer_type,
                             "judge_id": judge_id},
                )
                out.append(JudgeCall(template, ck, p.messages, _score_parser(self.cfg, p.answer_type),
                                     _usability_of(self.cfg, p.answer_type), also))
        return out

    def score(self, targets: list[ScoreTarget], done: set[str]) -> Iterator[Judgment]:
        calls = self.calls(targets)
        retry = self.cfg.parser.retry_unparsed
        try:
            if self.cfg.sampling.adaptive and self.k > 1:
                yield from run_adaptive(single_units(calls), self.client, self.existing, retry_unparsed=retry,
                                        label="judge", fail_fast=self.fail_fast)
            else:
                yield from run_calls(calls, self.client, self.existing, retry_unparsed=retry, label="judge",
                                     fail_fast=self.fail_fast)
        finally:
            self.client.close()


def _usability_of(cfg: JudgeConfig, answer_type: str) -> Callable[[ParseResult], dict[str, Any]]:
    """This one sample's usability (the item's decision uses the medians over samples)."""

    def annotate(result: ParseResult) -> dict[str, Any]:
        u = decide_usability(result.scores, result.overall, cfg, answer_type)  # type: ignore[union-attr]
        return {"usability": {"usable": u.usable, "weighted_score": u.weighted_score, "reason": u.reason}}

    return annotate


def _score_parser(cfg: JudgeConfig, answer_type: str) -> Callable[[Optional[str]], ParseResult]:
    return lambda text: parse_scores(text, cfg, answer_type)
