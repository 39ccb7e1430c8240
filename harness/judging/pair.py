"""Pairwise grading with position swap: candidate run B against baseline run A on their common items.

Why both orders: judges prefer the answer shown first. Each pair is judged as AB (candidate first) and
BA (baseline first), k samples each; the verdicts are mapped back to candidate/baseline, and only a
consistent verdict counts -- an inconsistent one is a tie and counts towards the swap flip rate. Ties
for flips pull the score towards 50%, so the headline is the position-bias-corrected score
(:func:`judges.aggregate.balanced_outcome`: both orders' samples weighted equally), with the tie-based
score beside it. Two identical answers are a tie without a judge call, counted apart (``identical``) so
they do not dilute the flip rate.

Layout (read by the differ)::

    results/<B>/pairs/<A>/judgments.jsonl   Judgment records: mode "pair", order AB|BA, judge_sample,
                                            verdict by position (A = shown first), generation_key = B's
                                            answer, details.baseline_generation_key = A's answer
    results/<B>/pairs/<A>/pair_items.jsonl  one row per (item, answer sample): outcome win|tie|loss|null
                                            (candidate's side, tie-based), corrected_outcome, identical,
                                            flipped, position_bias, ab, ba, lengths
    results/<B>/pairs/<A>/pair_summary.json headline (corrected score), win/tie/loss, corrected
                                            win/tie/loss and flip rate per task_type, judge, reliability
    results/<B>/pairs/<A>/pair_report.md    the same for people
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Optional

from sfteval.judges.aggregate import (PairResult, balanced_outcome, candidate_points, combine_pair_samples,
                              position_advantage, verdict_label)
from sfteval.judges.parse import parse_verdict

from .. import reliability as rel
from ..models import Item, Judgment, RunManifest
from ..score import ScoreTarget, score_targets
from ..store import PAIR_ITEMS, PAIR_REPORT, PAIR_SUMMARY, RunStore, content_key, write_text_atomic
from .adaptive import pair_units, run_adaptive
from .answers import check_answer_types, suite_answer_types
from .engine import JudgeCall, JudgeClient, run_calls
from .single import answers_of
from .spec import JudgeSpec, effective_k
from .usage import adaptive_savings, judge_usage

if TYPE_CHECKING:
    from .dryrun import Estimate



@dataclass
class Side:
    store: RunStore
    manifest: RunManifest
    items: dict[str, Item]
    targets: dict[tuple[str, int], ScoreTarget]


def _side(store: RunStore) -> Side:
    manifest = store.read_manifest()
    items = [Item.model_validate(r) for r in store.read_items()]
    targets = {(t.item.id, t.generation.sample): t for t in score_targets(items, store.read("generations"))}
    return Side(store, manifest, {it.id: it for it in items}, targets)


def pair_dir(candidate: RunStore, baseline: RunStore) -> Path:
    return candidate.pair_dir(baseline.run_id)


def judge_pair(baseline_store: RunStore, candidate_store: RunStore, spec: JudgeSpec, *,
               log: Callable[[str], None] = lambda m: print(m, file=sys.stderr)) -> dict[str, Any]:
    """Judge candidate B against baseline A in both orders; write the pair folder; return the summary."""
    cfg = spec.load_config()
    k = effective_k(cfg, spec.samples)
    a, b = _side(baseline_store), _side(candidate_store)
    hash_mismatch = a.manifest.suite_hash != b.manifest.suite_hash
    if hash_mismatch:
        log(f"warning: the runs used different suites ({a.manifest.suite_name} {a.manifest.suite_hash[:12]} vs "
            f"{b.manifest.suite_name} {b.manifest.suite_hash[:12]}); comparing the items they share by id")
    pairs = [(b.targets[key], a.targets[key]) for key in b.targets if key in a.targets]
    changed = sorted({tb.item.id for tb, ta in pairs if tb.item != ta.item})
    if changed:
        log(f"warning: {len(changed)} shared item ids have different content in the two runs "
            f"(e.g. {changed[0]}); the candidate run's version of the item is used")
    items = [tb.item for tb, _ in pairs]
    check_answer_types(cfg, items, suite_answer_types(None))
    out = RunStore(pair_dir(b.store, a.store))
    out.lock()
    try:
        existing = out.read("judgments", Judgment)
        client = JudgeClient(spec, cfg, log, existing.values(), workdir=out.path)
        for j in _identical_records(cfg, client, spec, pairs):
            if j.key not in existing:
                out.append("judgments", j)
        calls = _calls(cfg, client, spec, k, [(tb, ta) for tb, ta in pairs if not identical(tb, ta)])
        retry = cfg.parser.retry_unparsed
        try:
            if cfg.sampling.adaptive and k > 1:
                records_ = run_adaptive(pair_units(calls), client, existing, retry_unparsed=retry, label="judge pairs")
            else:
                records_ = run_calls(calls, client, existing, retry_unparsed=retry, label="judge pairs")
            for j in records_:
                out.append("judgments", j)
        finally:
            client.close()
        records = out.read("judgments", Judgment)
        rows = pair_rows(pairs, records, cfg.config_hash(), spec.model, k, judge_id=client.judge_id)
        samples = [records[c.template.key] for c in calls if c.template.key in records]
        summary = pair_summary(rows, samples)
        summary["usage"] = judge_usage(samples)
        if summary["usage"] is not None and cfg.sampling.adaptive:
            n_pairs = len({(c.template.generation_key, c.template.details["baseline_generation_key"]) for c in calls})
            drawn = sum(j.status != "not_judged" for j in samples)
            summary["usage"]["adaptive"] = adaptive_savings(drawn, n_pairs, 2 * k)
        summary.update({
            "schema_version": 1, "candidate_run": b.store.run_id, "baseline_run": a.store.run_id,
            "candidate_model": b.manifest.model.name, "baseline_model": a.manifest.model.name,
            "judge": spec.manifest_entry(cfg, k),
            "suite": {"candidate": b.manifest.suite_hash, "baseline": a.manifest.suite_hash,
                      "hash_mismatch": hash_mismatch, "changed_items": changed},
            "items_only_in_candidate": len({i for i, _ in b.targets} - {i for i, _ in a.targets}),
            "items_only_in_baseline": len({i for i, _ in a.targets} - {i for i, _ in b.targets}),
        })
        judge_id = rel.identify_model(spec.model, path=spec.model if spec.backend != "openai" else None)
        for side in (b, a):
            who = rel.identify_model(side.manifest.model.name, side.manifest.model.name, side.manifest.model.path)
            warning = rel.family_warning(judge_id, who)
            if warning:
                summary["reliability"]["warnings"].insert(0, warning)
        out.write_json(PAIR_SUMMARY, summary)
        write_text_atomic(out.path / PAIR_ITEMS, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
        from .report import pair_report_markdown

        out.write_text(PAIR_REPORT, pair_report_markdown(summary))
        return summary
    finally:
        out.close()


def estimate_pair(baseline_store: RunStore, candidate_store: RunStore, spec: JudgeSpec) -> "Estimate":
    """`sfteval judge --pair A B --dry-run`: the calls both orders would need, their tokens and cost; nothing is
    sent or written."""
    from .dryrun import estimate

    cfg = spec.load_config()
    k = effective_k(cfg, spec.samples)
    a, b = _side(baseline_store), _side(candidate_store)
    pairs = [(b.targets[key], a.targets[key]) for key in b.targets if key in a.targets]
    check_answer_types(cfg, [tb.item for tb, _ in pairs], suite_answer_types(None))
    existing = RunStore(pair_dir(b.store, a.store)).read("judgments", Judgment)
    client = JudgeClient(spec, cfg, lambda m: None, existing.values())
    calls = _calls(cfg, client, spec, k, [(tb, ta) for tb, ta in pairs if not identical(tb, ta)])
    return estimate(f"judge --pair {a.store.run_id} {b.store.run_id}", calls, client, existing,
                    units=pair_units if cfg.sampling.adaptive and k > 1 else None)


def identical(tb: ScoreTarget, ta: ScoreTarget) -> bool:
    """The two runs gave the same answer (every turn, surrounding whitespace aside): a tie, nothing to judge."""
    return [x.strip() for x in answers_of(tb)] == [x.strip() for x in answers_of(ta)]


def _identical_records(cfg: Any, client: JudgeClient, spec: JudgeSpec,
                       pairs: list[tuple[ScoreTarget, ScoreTarget]]) -> list[Judgment]:
    """One 'tie' record per pair of identical answers, so the folder shows why no judge was called."""
    cfg_hash = cfg.config_hash()
    return [Judgment(
        key=content_key("pair-identical", cfg_hash, client.judge_id, tb.generation.key, ta.generation.key),
        item_id=tb.item.id, task_type=tb.item.task_type, generation_key=tb.generation.key,
        sample=tb.generation.sample, scorer=f"judge:{cfg.name}", judge_config_hash=cfg_hash, judge_model=spec.model,
        mode="pair", verdict="tie", status="ok", reason="identical answers",
        details={"baseline_generation_key": ta.generation.key, "identical": True, "judge_id": client.judge_id},
    ) for tb, ta in pairs if identical(tb, ta)]


def _calls(cfg: Any, client: JudgeClient, spec: JudgeSpec, k: int,
           pairs: list[tuple[ScoreTarget, ScoreTarget]]) -> list[JudgeCall]:
    from sfteval.judges.prompt import build_pair_prompts

    cfg_hash, judge_id = cfg.config_hash(), client.judge_id
    calls = []
    for tb, ta in pairs:
        prompts = build_pair_prompts(cfg, tb.item, answers_of(tb), answers_of(ta), tb.item.answer_type)
        for order, p in prompts.items():
            for i in range(k):
                ck, also = client.keys("pair", cfg_hash, p.content_hash(), i)
                template = Judgment(
                    key=content_key("pair-judgment", ck, order, tb.generation.key, ta.generation.key),
                    item_id=tb.item.id, task_type=tb.item.task_type, generation_key=tb.generation.key,
                    sample=tb.generation.sample,
                    scorer=f"judge:{cfg.name}", judge_config_hash=cfg_hash, judge_model=spec.model, mode="pair",
                    order=order, judge_sample=i, status="error",
                    details={"baseline_generation_key": ta.generation.key, "flags": p.flags,
                             "answer_type": p.answer_type, "judge_id": judge_id},
                )
                calls.append(JudgeCall(template, ck, p.messages, lambda text: parse_verdict(text, cfg), also=also))
    return calls


def pair_rows(pairs: list[tuple[ScoreTarget, ScoreTarget]], records: dict[str, Judgment], cfg_hash: str,
              model: str, k: int, *, judge_id: Optional[str] = None) -> list[dict[str, Any]]:
    """One row per compared answer pair: the tie-based and the corrected outcome from the candidate's side."""
    by_pair: dict[tuple[str, str], dict[str, list[Judgment]]] = {}
    for j in records.values():
        if (j.mode == "pair" and j.order and j.judge_config_hash == cfg_hash and j.judge_model == model
                and j.judge_sample < k and (judge_id is None or j.details.get("judge_id") == judge_id)):
            base = str(j.details.get("baseline_generation_key"))
            by_pair.setdefault((j.generation_key or "", base), {}).setdefault(j.order, []).append(j)
    rows = []
    for tb, ta in pairs:
        row: dict[str, Any] = {"item_id": tb.item.id, "task_type": tb.item.task_type, "sample": tb.generation.sample}
        if identical(tb, ta):
            row.update({"outcome": "tie", "corrected_outcome": "tie", "identical": True, "flipped": False,
                        "position_bias": None, "ab": None, "ba": None, "reason": "identical answers",
                        "ab_samples": [], "ba_samples": [], "ab_points": [], "ba_points": []})
        else:
            orders = by_pair.get((tb.generation.key, ta.generation.key), {})
            ab = sorted(orders.get("AB", []), key=lambda j: j.judge_sample)
            ba = sorted(orders.get("BA", []), key=lambda j: j.judge_sample)
            res: PairResult = combine_pair_samples(ab, ba)
            ab_points, ba_points = candidate_points(ab, "AB"), candidate_points(ba, "BA")
            row.update({"outcome": res.outcome, "corrected_outcome": balanced_outcome(ab_points, ba_points),
                        "identical": False, "flipped": res.flipped, "position_bias": res.position_bias,
                        "ab": res.ab, "ba": res.ba, "reason": res.reason,
                        "ab_samples": [verdict_label(j) for j in ab], "ba_samples": [verdict_label(j) for j in ba],
                        "ab_points": ab_points, "ba_points": ba_points})
        row.update({"candidate_chars": len(tb.generation.answer), "baseline_chars": len(ta.generation.answer),
                    "candidate_generation_key": tb.generation.key, "baseline_generation_key": ta.generation.key})
        rows.append(row)
    return rows


def _rates(per_item: list[list[dict[str, Any]]], field: str) -> tuple[dict[str, Optional[float]], int, int]:
    """Item-weighted win/tie/loss shares and score (ties half) of ``field``; also decided and excluded counts."""
    fracs: dict[str, list[float]] = {"win": [], "tie": [], "loss": []}
    excluded = 0
    for rs in per_item:
        decided = [r for r in rs if r[field] is not None]
        excluded += len(rs) - len(decided)
        if decided:
            for o in fracs:
                fracs[o].append(sum(r[field] == o for r in decided) / len(decided))
    n = len(fracs["win"])
    rate: dict[str, Optional[float]] = {o: (sum(v) / n if n else None) for o, v in fracs.items()}
    rate["score"] = None if not n else rate["win"] + 0.5 * rate["tie"]  # type: ignore[operator]
    return rate, n, excluded


def _group(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Item-weighted rates (several answer samples of an item share its weight), tie-based and corrected.

    The swap flip rate and the first-position advantage count judged pairs only: identical answers
    (a tie with no judge call) are counted apart in ``identical``.
    """
    per_item: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        per_item.setdefault(r["item_id"], []).append(r)
    rate, n, excluded = _rates(list(per_item.values()), "outcome")
    corrected, _, _ = _rates(list(per_item.values()), "corrected_outcome")
    flips = []
    for rs in per_item.values():
        judged = [r for r in rs if r["outcome"] is not None and not r["identical"]]
        if judged:
            flips.append(sum(r["flipped"] for r in judged) / len(judged))
    judged_rows = [r for r in rows if not r["identical"]]
    advantage = position_advantage([p for r in judged_rows for p in r["ab_points"]],
                                   [p for r in judged_rows for p in r["ba_points"]])
    return {"n": len(per_item), "decided": n, "excluded": excluded, **rate,
            "corrected": corrected, "corrected_score": corrected["score"],
            "identical": sum(r["identical"] for r in rows),
            "swap_flip_rate": sum(flips) / len(flips) if flips else None, "position_advantage": advantage}


def pair_summary(rows: list[dict[str, Any]], samples: list[Judgment]) -> dict[str, Any]:
    """Headline (corrected score), overall and per-task_type (both levels) rates, and the reliability block."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        levels = r["task_type"].split("/")
        for name in {levels[0], r["task_type"]}:
            groups.setdefault(name, []).append(r)
    judged = [r for r in rows if not r["identical"]]
    reliability = {
        **rel.status_rates(j.status for j in samples),
        "swap_flip_rate": rel.flip_rate(r["flipped"] for r in judged if r["outcome"] is not None),
        "first_position_rate": rel.first_position_rate(verdict_label(j) for j in samples),
        "longer_answer_win_rate": rel.longer_answer_win_rate(
            (r["outcome"], r["candidate_chars"], r["baseline_chars"]) for r in judged),
        "position_bias_pairs": {p: sum(r["position_bias"] == p for r in judged) for p in ("A", "B")},
        "identical_pairs": len(rows) - len(judged),
        "repeat_agreement": _repeat_agreement(judged),
        "injection_flagged_items": sorted({j.item_id for j in samples if any(j.details.get("flags", {}).values())}),
    }
    reliability["warnings"] = rel.threshold_warnings(reliability, sum(r["outcome"] is not None for r in judged))
    overall = _group(rows)
    task_types = {k: _group(v) for k, v in sorted(groups.items())}
    headline = {"metric": "corrected_score", "overall": overall["corrected_score"],
                "task_types": {k: g["corrected_score"] for k, g in task_types.items()}}
    return {"headline": headline, "overall": overall, "task_types": task_types, "reliability": reliability}


def _repeat_agreement(rows: list[dict[str, Any]]) -> Optional[float]:
    """Share of (pair, order) sample groups in which all k parsed samples agree."""
    groups = [[v for v in r[o] if v is not None] for r in rows for o in ("ab_samples", "ba_samples")]
    groups = [g for g in groups if len(g) >= 2]
    return sum(len(set(g)) == 1 for g in groups) / len(groups) if groups else None
