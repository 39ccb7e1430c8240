"""Per-item judge metrics and the run's judge section, computed with judges.aggregate.

Why here and not in scoring.py: the judge's aggregation rules (median per dimension over judge samples,
unparsed excluded and counted, usability on the medians) live in judges/aggregate.py; this module only
selects the active judge's records and shapes the result as item-frame columns:

``judge:<dim>`` and ``judge:overall`` (medians), ``usable`` (0/1) and ``usable_score`` (the weighted
score), ``judge:spread`` (population std of the overall score over the parsed judge samples; only with
two or more, so a task_type's mean says how much the judge disagrees with itself there),
``judge:unparsed`` / ``judge:error`` / ``judge:not_judged`` (share of judge samples; not judged: the budget
ran out). Several answer samples of one item are
averaged, so every item weighs the same.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Optional

import numpy as np
import pandas as pd

from sfteval.judges.aggregate import AggregatedScores, aggregate_samples, decide_usability

from .. import reliability as rel
from ..models import Generation, Judgment
from ..stages.base import empty_metrics
from .usage import adaptive_savings, judge_usage

from ..summary import OVERALL, Headline, JudgeBlock

if TYPE_CHECKING:
    from ..models import RunManifest
    from ..stages.base import RunRecords


@dataclass
class AnswerJudgment:
    """The active judge's samples of one answer (one generation) and their aggregate."""

    item_id: str
    generation: Generation
    samples: list[Judgment]
    agg: AggregatedScores
    answer_type: Optional[str]


def answer_judgments(records: "RunRecords") -> list[AnswerJudgment]:
    judge = records.judge
    if judge is None:
        return []
    by_gen: dict[str, list[Judgment]] = {}
    for j in records.judgments.values():
        if j.mode == "single" and judge.selects(j) and j.generation_key in records.generations:
            by_gen.setdefault(j.generation_key, []).append(j)  # type: ignore[arg-type]
    out = []
    for gen_key, samples in by_gen.items():
        samples.sort(key=lambda j: j.judge_sample)
        at = next((j.details.get("answer_type") for j in samples if j.details.get("answer_type")), None)
        out.append(AnswerJudgment(samples[0].item_id, records.generations[gen_key], samples,
                                  aggregate_samples(samples, judge.config.overall.key), at))
    return out


def judge_item_metrics(records: "RunRecords") -> pd.DataFrame:
    """One row per judged item: medians per dimension, usability, overall-score spread, unparsed/error shares."""
    judge = records.judge
    rows = []
    for a in answer_judgments(records):
        n = len(a.samples)
        row: dict[str, Any] = {
            "item_id": a.item_id,
            "judge:unparsed": sum(j.status == "unparsed" for j in a.samples) / n,
            "judge:error": sum(j.status == "error" for j in a.samples) / n,
            "judge:not_judged": sum(j.status == "not_judged" for j in a.samples) / n,
        }
        if judge is not None and a.agg.ok and a.answer_type is not None:
            u = decide_usability(a.agg.scores, a.agg.overall, judge.config, a.answer_type)
            row.update({f"judge:{d}": v for d, v in a.agg.scores.items()})
            row.update({"judge:overall": a.agg.overall, "usable": float(u.usable), "usable_score": u.weighted_score})
            if a.agg.n_parsed >= 2:
                row["judge:spread"] = a.agg.spread[judge.config.overall.key].std
        rows.append(row)
    if not rows:
        return empty_metrics()
    frame = pd.DataFrame(rows).groupby("item_id").mean(numeric_only=True)
    lead = [c for c in ("usable", "usable_score") if c in frame.columns]
    return frame[lead + [c for c in frame.columns if c not in lead]]


def judge_summary(records: "RunRecords", manifest: "RunManifest") -> JudgeBlock:
    """The summary's ``judge`` block: who judged, how many items, and the judge's reliability."""
    judge = records.judge
    assert judge is not None
    answers = answer_judgments(records)
    samples = [j for a in answers for j in a.samples]
    status = rel.status_rates(j.status for j in samples)
    spread = rel.repeat_spread(a.agg.spread for a in answers if a.agg.n_parsed >= 2)
    scored = [a for a in answers if a.agg.ok]
    length_corr = rel.spearman([float(a.agg.overall) for a in scored],  # type: ignore[arg-type]
                               [float(len(a.generation.answer)) for a in scored])
    entry = manifest.judge or {}
    judge_model = rel.identify_model(judge.model, path=judge.model if entry.get("backend") != "openai" else None)
    cand = rel.identify_model(manifest.model.name, manifest.model.name, manifest.model.path)
    flagged = sorted({j.item_id for j in samples if j.details.get("flags")})
    reliability = {
        **status, "repeat_spread": spread,
        "mean_repeat_std": _avg([v["mean_std"] for v in spread.values()]),
        "length_correlation": length_corr, "swap_flip_rate": None,
        "injection_flagged_items": flagged,
    }
    warnings = rel.threshold_warnings(reliability, len({a.item_id for a in answers}))
    fam = rel.family_warning(judge_model, cand)
    if fam:
        warnings.insert(0, fam)
    reliability["warnings"] = warnings
    usage = judge_usage(samples)
    if usage is not None and judge.config.sampling.adaptive:
        drawn = sum(j.status != "not_judged" for j in samples)
        usage["adaptive"] = adaptive_savings(drawn, len(answers), judge.k)
    return JudgeBlock.model_validate({
        "config": judge.config.name, "config_hash": judge.config_hash, "model": judge.model, "samples": judge.k,
        "backend": entry.get("backend"), "items_judged": len({a.item_id for a in answers}),
        "items_scored": len({a.item_id for a in scored}),
        "dimensions": {d.key: d.name for d in judge.config.dimensions if any(d.key in a.agg.scores for a in scored)},
        "reliability": reliability, "usage": usage,
    })


def headline(groups: dict[str, Any]) -> Headline:
    """The release metric: usable rate overall and per task_type (both levels)."""
    return Headline(metric="usable", overall=groups[OVERALL].metrics.get("usable"),
                    task_types={tt: g.metrics.get("usable") for tt, g in groups["task_types"].items()})


def _avg(v: list[float]) -> Optional[float]:
    return float(np.mean(v)) if v else None
