"""Everything known about one item in one run, shaped for the item and review pages.

Read from the run folder for this item only (RunFolder.item_records): every turn of the prompt, the
reference, each answer sample per turn with its exact rendered prompt, tokens, latency and think block,
every judge sample (scores per dimension with their rationale, status), rule outcomes, probe values and the
human labels. The templates escape all of it.
"""

from __future__ import annotations

from typing import Any, Optional

from sfteval.judges.aggregate import aggregate_samples, decide_usability

from ..labels.records import answer_hash, reviewer_of, target_answers
from ..models import Generation, Item, Judgment, ProbeResult
from ..runfolder import RunFolder
from ..score import score_targets
from ..stages.base import RunRecords


def conversation(item: Item) -> list[dict[str, Any]]:
    """The item's turns; ``answered`` marks the user turns the model answers (0-based answer turn index)."""
    conv = item.conversation
    out, turn = [], 0
    for i, m in enumerate(conv):
        entry: dict[str, Any] = {"role": m.role, "content": m.content, "answered": None}
        if m.role == "user" and (i + 1 == len(conv) or conv[i + 1].role == "user"):
            entry["answered"] = turn
            turn += 1
        out.append(entry)
    return out


def references(item: Item) -> list[Optional[str]]:
    if isinstance(item.reference, list):
        return list(item.reference)
    refs: list[Optional[str]] = [None] * item.n_answer_turns
    if refs:
        refs[-1] = item.reference
    return refs


def _judge_view(records: RunRecords, gens: list[Generation]) -> dict[str, dict[str, Any]]:
    """generation key -> the active judge's samples and their aggregate on that answer."""
    judge = records.judge
    if judge is None:
        return {}
    cfg = judge.config
    out: dict[str, dict[str, Any]] = {}
    by_gen: dict[str, list[Judgment]] = {}
    for j in records.judgments.values():
        if j.mode == "single" and judge.selects(j) and j.generation_key:
            by_gen.setdefault(j.generation_key, []).append(j)
    for g in gens:
        samples = sorted(by_gen.get(g.key, []), key=lambda j: j.judge_sample)
        if not samples:
            continue
        agg = aggregate_samples(samples, cfg.overall.key)
        at = next((j.details.get("answer_type") for j in samples if j.details.get("answer_type")), None)
        usable = decide_usability(agg.scores, agg.overall, cfg, at) if agg.ok and at else None
        dims = [d.key for d in cfg.dimensions_for(at)] if at else sorted({k for j in samples for k in j.scores})
        out[g.key] = {
            "samples": [{"sample": j.judge_sample, "status": j.status, "scores": j.scores, "overall": j.overall,
                         "rationale": j.rationale, "raw": j.raw if j.status != "ok" else None, "reason": j.reason,
                         "flags": j.details.get("flags")} for j in samples],
            "dims": dims, "names": {d: cfg.display_name(d) for d in dims}, "median": agg.scores,
            "overall": agg.overall, "answer_type": at,
            "usable": None if usable is None else usable.usable,
            "usable_score": None if usable is None else usable.weighted_score,
            "usable_reason": None if usable is None else usable.reason,
            "judge": f"{judge.model} ({cfg.name})",
        }
    return out


def run_side(folder: RunFolder, item_id: str) -> Optional[dict[str, Any]]:
    """One run's view of one item (None when the run does not have the item)."""
    records = folder.item_records([item_id])
    if not records.items:
        return None
    item = records.items[0]
    gens = sorted(records.generations.values(), key=lambda g: (g.sample, g.turn))
    judged = _judge_view(records, gens)
    samples: dict[int, list[dict[str, Any]]] = {}
    for g in gens:
        samples.setdefault(g.sample, []).append({
            "turn": g.turn, "answer": g.answer, "output": g.output if g.output != g.answer else None,
            "think": g.think, "think_unclosed": g.think_unclosed, "prompt": g.prompt,
            "prompt_messages": g.prompt_messages, "prompt_tokens": g.prompt_tokens,
            "completion_tokens": g.completion_tokens, "finish_reason": g.finish_reason,
            "ttft_s": g.timing.ttft_s, "per_token_s": g.timing.per_token_s, "total_s": g.timing.total_s,
            "status": g.status, "error": g.error, "key": g.key, "judge": judged.get(g.key),
            "rules": [_rule(j) for j in sorted(records.judgments.values(), key=lambda j: j.scorer)
                      if j.mode == "rule" and j.generation_key == g.key],
            "sampling": g.sampling.model_dump(),
        })
    targets = {t.generation.sample: t for t in score_targets(records.items, records.generations)}
    first = targets[min(targets)] if targets else None
    return {"item": item, "conversation": conversation(item), "references": references(item),
            "samples": [samples[s] for s in sorted(samples)],
            "final_answer": first.generation.answer if first else None,
            "answer_hash": answer_hash(target_answers(first)) if first else None,
            "probes": [_probe(p) for p in sorted(records.probes.values(), key=lambda p: p.kind)],
            "labels": _labels(folder.labels().values(), item_id, first)}


def _rule(j: Judgment) -> dict[str, Any]:
    return {"scorer": j.scorer, "score": j.overall, "status": j.status, "reason": j.reason}


def _probe(p: ProbeResult) -> dict[str, Any]:
    return {"kind": p.kind, "sum_logprob": p.sum_logprob, "n_tokens": p.n_tokens, "mean_logprob": p.mean_logprob,
            "greedy": p.greedy, "choices": p.choices, "predicted": p.predicted, "correct": p.correct,
            "status": p.status, "error": p.error}


def _labels(labels: Any, item_id: str, target: Any) -> list[dict[str, Any]]:
    current = answer_hash(target_answers(target)) if target is not None else None
    return [label_view(j, j.details.get("answer_hash") == current)
            for j in sorted(labels, key=lambda j: str(j.details.get("time", ""))) if j.item_id == item_id]


def label_view(j: Judgment, current: bool) -> dict[str, Any]:
    return {"reviewer": reviewer_of(j), "mode": j.mode, "scores": j.scores, "overall": j.overall,
            "usable": j.details.get("usable"), "preferred": j.details.get("preferred"), "seat": j.order,
            "comment": j.rationale, "time": j.details.get("time"), "current": current,
            "source": j.details.get("source")}


def pair_view(rows: list[dict[str, Any]], judgments: list[dict[str, Any]], cand_key: Optional[str],
              base_key: Optional[str]) -> dict[str, Any]:
    """The pair judge on this item's two answers: the combined row and every sample of both orders."""
    row = next((r for r in rows if r.get("candidate_generation_key") == cand_key
                and r.get("baseline_generation_key") == base_key), rows[0] if rows else None)
    mine = [j for j in judgments if j.get("generation_key") == cand_key
            and (j.get("details") or {}).get("baseline_generation_key") == base_key]
    mine.sort(key=lambda j: (j.get("order") or "", j.get("judge_sample", 0)))
    samples = []
    for j in mine:
        v = j.get("verdict")
        # position A is shown first: in order AB that is the candidate, in BA the baseline
        side = None if v in (None, "tie") else ("candidate" if (v == "A") == (j.get("order") == "AB") else "baseline")
        samples.append({"order": j.get("order"), "sample": j.get("judge_sample", 0), "verdict": v, "prefers": side,
                        "status": j.get("status"), "rationale": j.get("rationale") or j.get("raw"),
                        "reason": j.get("reason"), "label": (j.get("details") or {}).get("verdict_label")})
    return {"row": row, "samples": samples}
