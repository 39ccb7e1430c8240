"""Where judge and human labels meet: the pairs of ratings the agreement statistics are computed on.

Single grading: a label is compared with the run's active judge on the same answer (the judge's median per
dimension and overall over its samples, and its usable decision from judges/aggregate.py). Pairwise: with the
judge's position-bias-corrected outcome for the same two answers (``corrected_outcome`` in pair_items.jsonl,
the pairwise headline; the tie-based outcome for pair files older than it). Between reviewers: every two
reviewers who labelled the same answer(s). Only current labels count: a label whose answer changed since is
stale, counted and left out.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from itertools import combinations
from typing import Any, Iterable, Optional

from sfteval.judges.aggregate import decide_usability

from ..models import Judgment
from ..score import ScoreTarget, score_targets
from ..stages.base import RunRecords
from . import agreement as ag
from .records import OUTCOME, is_current, reviewer_of


def _seed(seed: int, *parts: str) -> int:
    """A seed per statistic, so adding a dimension never changes another's interval."""
    blob = "\x1f".join([str(seed), *parts]).encode()
    return int.from_bytes(hashlib.blake2b(blob, digest_size=8).digest(), "little") >> 1


def settings(min_n: int = ag.MIN_N, resamples: int = ag.RESAMPLES, confidence: float = ag.CONFIDENCE,
             seed: int = 0) -> dict[str, Any]:
    return {"min_n": min_n, "resamples": resamples, "confidence": confidence, "seed": seed}


def targets_by_generation(records: RunRecords) -> dict[str, ScoreTarget]:
    return {t.generation.key: t for t in score_targets(records.items, records.generations)}


def judge_values(records: RunRecords) -> dict[str, dict[str, Any]]:
    """generation key -> the active judge's scores, overall and usable decision on that answer."""
    judge = records.judge
    if judge is None:
        return {}
    from ..judging.metrics import answer_judgments

    out = {}
    for a in answer_judgments(records):
        if a.agg.ok and a.answer_type is not None:
            u = decide_usability(a.agg.scores, a.agg.overall, judge.config, a.answer_type)
            out[a.generation.key] = {"scores": dict(a.agg.scores), "overall": a.agg.overall, "usable": u.usable}
    return out


def _split(labels: Iterable[Judgment], mode: str, current: Any) -> tuple[list[Judgment], int]:
    chosen = [j for j in labels if j.mode == mode and j.status == "ok"]
    ok = [j for j in chosen if current(j)]
    return ok, len(chosen) - len(ok)


def _dimension_order(labels: list[Judgment], records: RunRecords) -> list[str]:
    keys = {k for j in labels for k in j.scores}
    known = [d.key for d in records.judge.config.dimensions] if records.judge is not None else []
    return [k for k in known if k in keys] + sorted(keys - set(known))


def _score_block(pairs: dict[str, tuple[list[float], list[float], list[str]]], prefix: str,
                 opts: dict[str, Any]) -> dict[str, Any]:
    kw = {k: opts[k] for k in ("min_n", "resamples", "confidence")}
    return {name: ag.score_agreement(x, y, c, seed=_seed(opts["seed"], prefix, name), **kw)
            for name, (x, y, c) in pairs.items()}


def single_block(records: RunRecords, opts: Optional[dict[str, Any]] = None) -> Optional[dict[str, Any]]:
    """Judge vs human and human vs human on single-grading labels of one run; None without such labels."""
    opts = opts or settings()
    if not any(j.mode == "single" for j in records.labels.values()):
        return None
    records = _restricted(records, {j.item_id for j in records.labels.values()})
    targets = targets_by_generation(records)
    labels, stale = _split(records.labels.values(), "single",
                           lambda j: is_current(j, targets.get(j.generation_key or "")))
    if not labels and not stale:
        return None
    kw = {k: opts[k] for k in ("min_n", "resamples", "confidence")}
    dims = _dimension_order(labels, records)
    block: dict[str, Any] = {"labels": len(labels), "stale": stale, "items": len({j.item_id for j in labels}),
                             "reviewers": sorted({reviewer_of(j) for j in labels}), "dimensions": dims,
                             "dimension_names": {d: records.judge.config.display_name(d) if records.judge else d
                                                 for d in dims},
                             "judge": f"{records.judge.model} ({records.judge.config.name})" if records.judge else None}
    judged = judge_values(records)
    if records.judge is not None:
        scores: dict[str, tuple[list[float], list[float], list[str]]] = {d: ([], [], []) for d in dims + ["overall"]}
        usable: tuple[list[bool], list[bool], list[str]] = ([], [], [])
        for j in labels:
            jv = judged.get(j.generation_key or "")
            if jv is None:
                continue  # the judge has no parsed verdict on this answer
            for d in dims:
                if d in j.scores and d in jv["scores"]:
                    _add(scores[d], jv["scores"][d], j.scores[d], j.item_id)
            if j.overall is not None:
                _add(scores["overall"], jv["overall"], j.overall, j.item_id)
            if j.details.get("usable") is not None:
                _add(usable, jv["usable"], bool(j.details["usable"]), j.item_id)
        block["judge_vs_human"] = {
            "dimensions": _score_block({d: scores[d] for d in dims}, "judge-human", opts),
            "overall": _score_block({"overall": scores["overall"]}, "judge-human", opts)["overall"],
            "usable": ag.binary_agreement(*usable, seed=_seed(opts["seed"], "judge-human", "usable"), **kw)}
    hh: dict[str, tuple[list[float], list[float], list[str]]] = {d: ([], [], []) for d in dims + ["overall"]}
    hh_usable: tuple[list[bool], list[bool], list[str]] = ([], [], [])
    for group in _by_content(labels, lambda j: (j.generation_key, j.details.get("answer_hash"))):
        for a, b in combinations(group, 2):
            for d in dims:
                if d in a.scores and d in b.scores:
                    _add(hh[d], a.scores[d], b.scores[d], a.item_id)
            if a.overall is not None and b.overall is not None:
                _add(hh["overall"], a.overall, b.overall, a.item_id)
            if a.details.get("usable") is not None and b.details.get("usable") is not None:
                _add(hh_usable, bool(a.details["usable"]), bool(b.details["usable"]), a.item_id)
    block["human_vs_human"] = {
        "pairs": len(hh["overall"][0]),
        "dimensions": _score_block({d: hh[d] for d in dims}, "human-human", opts),
        "overall": _score_block({"overall": hh["overall"]}, "human-human", opts)["overall"],
        "usable": ag.binary_agreement(*hh_usable, seed=_seed(opts["seed"], "human-human", "usable"), **kw)}
    return block


def pair_block(candidate: RunRecords, baseline: RunRecords, rows: list[dict[str, Any]], labels: Iterable[Judgment],
               opts: Optional[dict[str, Any]] = None, judge: Optional[str] = None) -> Optional[dict[str, Any]]:
    """Judge vs human and human vs human on pairwise labels of candidate B against baseline A."""
    opts = opts or settings()
    kw = {k: opts[k] for k in ("min_n", "resamples", "confidence")}
    tb, ta = targets_by_generation(candidate), targets_by_generation(baseline)
    chosen, stale = _split(labels, "pair", lambda j: is_current(
        j, tb.get(j.generation_key or ""), ta.get(str(j.details.get("baseline_generation_key")))))
    if not chosen and not stale:
        return None
    verdict = {(r.get("candidate_generation_key"), r.get("baseline_generation_key")):
               r.get("corrected_outcome", r.get("outcome")) for r in rows}
    jh: tuple[list[str], list[str], list[str]] = ([], [], [])
    for j in chosen:
        v = verdict.get((j.generation_key, j.details.get("baseline_generation_key")))
        if v is not None:
            _add(jh, v, OUTCOME[j.details["preferred"]], j.item_id)
    hh: tuple[list[str], list[str], list[str]] = ([], [], [])
    for group in _by_content(chosen, lambda j: (j.generation_key, j.details.get("baseline_generation_key"))):
        for a, b in combinations(group, 2):
            _add(hh, OUTCOME[a.details["preferred"]], OUTCOME[b.details["preferred"]], a.item_id)
    return {"labels": len(chosen), "stale": stale, "items": len({j.item_id for j in chosen}),
            "reviewers": sorted({reviewer_of(j) for j in chosen}), "judge": judge,
            "judged": bool(rows),
            "judge_vs_human": ag.verdict_agreement(*jh, seed=_seed(opts["seed"], "pair", "judge-human"), **kw),
            "human_vs_human": {"pairs": len(hh[0]), **ag.verdict_agreement(
                *hh, seed=_seed(opts["seed"], "pair", "human-human"), bias=False, **kw)}}


def _restricted(records: RunRecords, ids: set[str]) -> RunRecords:
    """The records of the labelled items only (a whole run's judge aggregation is not needed for 50 labels)."""
    if len(ids) == len(records.items):
        return records
    return RunRecords(items=[it for it in records.items if it.id in ids],
                      generations={k: g for k, g in records.generations.items() if g.item_id in ids},
                      judgments={k: j for k, j in records.judgments.items() if j.item_id in ids},
                      judge=records.judge, labels=records.labels)


def _add(acc: tuple[list[Any], list[Any], list[str]], a: Any, b: Any, item_id: str) -> None:
    acc[0].append(a)
    acc[1].append(b)
    acc[2].append(item_id)


def _by_content(labels: list[Judgment], key: Any) -> list[list[Judgment]]:
    """Labels of the same content by different reviewers, each group ordered by reviewer."""
    groups: dict[Any, list[Judgment]] = defaultdict(list)
    for j in labels:
        groups[key(j)].append(j)
    return [sorted(g, key=lambda j: j.scorer) for g in groups.values() if len(g) > 1]
