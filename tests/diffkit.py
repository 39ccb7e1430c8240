"""Synthetic run folders for the differ/report/gate unit tests: fabricated but typed records in a RunStore.

Why: unit tests need runs with known per-item values (judge scores, rule outcomes, probes, latency, errors)
in seconds; the end-to-end test (tests/test_diff_e2e.py) uses real runs of the demo checkpoints instead.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from sfteval.harness.models import Generation, Judgment, ModelInfo, ProbeResult, RunManifest, Timing
from sfteval.harness.store import RunStore, content_key

JUDGE_MODEL = "synthetic-judge"
FACT_DIMS = ("factuality", "user_satisfaction", "clarity", "completeness")


@dataclass
class Rec:
    """What one item looks like in one run."""

    answer: str = "an answer"
    exact: Optional[float] = None  # rule:exact_match 0/1 (None: no rule)
    judge: Optional[int] = None  # every dimension and overall get this 1-10 score
    judge_status: str = "ok"
    probe: Optional[float] = None  # sum log P(reference)
    ttft: float = 0.05
    gen_error: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


def items(spec: dict[str, int], robustness: int = 0) -> list[dict[str, Any]]:
    """task_type -> item count; ids '<task_type with - for />-<i>'; the first ``robustness`` of each tagged."""
    out = []
    for tt, n in spec.items():
        for i in range(n):
            it = {"id": f"{tt.replace('/', '-')}-{i:03d}", "task_type": tt, "prompt": f"Question {i} about {tt}?",
                  "reference": f"reference {i}"}
            if i < robustness:
                it["tags"] = ["robustness"]
            out.append(it)
    return out


def write_run(root: Path, name: str, item_list: list[dict[str, Any]], recs: dict[str, Rec], *,
              suite_hash: str = "suitehash0001", judged: bool = False, finalize: bool = True) -> RunStore:
    store = RunStore(root / name)
    store.path.mkdir(parents=True)
    manifest = RunManifest(run_id=name, sfteval_version="test", model=ModelInfo(path=f"/models/{name}", name=name),
                           backend="hf", suite_name="synthetic", suite_version="1", suite_hash=suite_hash,
                           suite_path="/nowhere", started_at="2024-01-01T00:00:00+00:00")
    if judged:
        from sfteval.judges.config import load_judge_config

        from sfteval.harness.judging.spec import JUDGE_CONFIG_FILE

        cfg = load_judge_config("default-en")
        store.write_json(JUDGE_CONFIG_FILE, cfg.model_dump(mode="json"))
        manifest.judge = {"config": cfg.name, "config_hash": cfg.config_hash(), "model": JUDGE_MODEL,
                          "backend": "openai", "samples": 1}
    store.write_items(item_list)
    store.write_manifest(manifest)
    for it in item_list:
        r = recs.get(it["id"], Rec())
        gen = Generation(key=content_key("gen", name, it["id"]), item_id=it["id"], task_type=it["task_type"],
                         prompt=it["prompt"], output=r.answer, answer=r.answer, completion_tokens=len(r.answer.split()),
                         finish_reason="stop", timing=Timing(ttft_s=r.ttft, per_token_s=0.01),
                         status="error" if r.gen_error else "ok", error="boom" if r.gen_error else None)
        store.append("generations", gen)
        if r.gen_error:
            continue
        if r.exact is not None:
            store.append("judgments", Judgment(
                key=content_key("rule", gen.key), item_id=it["id"], task_type=it["task_type"], generation_key=gen.key,
                scorer="rule:exact_match", mode="rule", scores={"exact_match": r.exact}, overall=r.exact))
        if judged and (r.judge is not None or r.judge_status != "ok"):
            ok = r.judge_status == "ok"
            store.append("judgments", Judgment(
                key=content_key("judge", gen.key), item_id=it["id"], task_type=it["task_type"], generation_key=gen.key,
                scorer="judge:default-en", judge_config_hash=manifest.judge["config_hash"],  # type: ignore[index]
                judge_model=JUDGE_MODEL, mode="single", scores={d: float(r.judge) for d in FACT_DIMS} if ok else {},
                overall=float(r.judge) if ok else None, status=r.judge_status,  # type: ignore[arg-type]
                rationale=f"RATIONALE[{name}:{it['id']}] the answer scores {r.judge}. " + "detail " * 60,
                raw="raw judge text", details={"answer_type": "fact"}))
        if r.probe is not None:
            store.append("probes", ProbeResult(key=content_key("probe", name, it["id"]), item_id=it["id"],
                                               task_type=it["task_type"], kind="reference", sum_logprob=r.probe,
                                               n_tokens=3, mean_logprob=r.probe / 3, greedy=r.probe > -1))
    store.close()
    if finalize:
        from sfteval.harness.runfolder import RunFolder

        RunFolder(store.path).finalize(manifest)
    return store


def write_pairs(candidate: RunStore, baseline: RunStore, outcomes: dict[str, tuple[str, str, Optional[str]]],
                flip_rate: float) -> Path:
    """outcomes: item id -> (task_type, tie-based outcome win|tie|loss|None, corrected outcome or None).

    A None corrected outcome writes a row without one, as pair files written before it existed."""
    folder = candidate.path / "pairs" / baseline.run_id
    folder.mkdir(parents=True)
    rows = [{"item_id": i, "task_type": tt, "sample": 0, "outcome": o, "flipped": o == "tie", "position_bias": None,
             **({"corrected_outcome": c} if c is not None else {})}
            for i, (tt, o, c) in outcomes.items()]
    (folder / "pair_items.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (folder / "pair_summary.json").write_text(json.dumps({"reliability": {"swap_flip_rate": flip_rate}}))
    return folder
