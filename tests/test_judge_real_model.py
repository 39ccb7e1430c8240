"""A real model as judge: SmolLM2-135M-Instruct (built from a PyPI wheel, see tests/smollm.py) through the hf backend.

It is a weak judge; the point is that the whole path runs on a real model -- its own chat template,
sampled judge samples, the parser on real output -- and that its malformed outputs become ``unparsed``,
counted and excluded, never zeros.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from sfteval.judges.config import load_judge_config
from clikit import cli

REPO = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.slow

ITEMS = [
    {"id": "capital", "task_type": "knowledge/geography", "prompt": "What is the capital of France?",
     "reference": "The capital of France is Paris."},
    {"id": "sum", "task_type": "math/addition", "prompt": "What is 2 + 3?", "reference": "2 + 3 = 5."},
    {"id": "color", "task_type": "knowledge/nature", "prompt": "What colour is the sky on a clear day?",
     "reference": "Blue."},
    {"id": "poem", "task_type": "writing/poem", "prompt": "Write one line about the sea.",
     "reference": "The sea keeps every secret the moon tells it."},
]


@pytest.fixture(scope="module")
def smollm() -> Path:
    from smollm import ensure_smollm2

    return ensure_smollm2()


sfteval = cli(check=True, env={"HF_HUB_OFFLINE": "1"}, timeout=1500)


def test_smollm_judges_a_run_and_its_malformed_outputs_are_unparsed(smollm: Path, tmp_path: Path) -> None:
    suite = tmp_path / "tiny.jsonl"
    suite.write_text("".join(json.dumps(it) + "\n" for it in ITEMS))
    config = tmp_path / "tiny-en.yaml"  # a user's own config: the built-in English one with short judge answers
    text = Path(load_judge_config("default-en").source).read_text(encoding="utf-8")
    config.write_text(text.replace("name: default-en", "name: tiny-en").replace("max_tokens: 2048", "max_tokens: 32"))
    sfteval("run", "--model", str(smollm), "--suite", str(suite), "--out", str(tmp_path), "--run-name", "smol",
            "--max-new-tokens", "16", "--quiet", "--judge", str(config), "--judge-model", str(smollm),
            "--judge-backend", "hf", "--judge-samples", "1", "--judge-option", "batch_size=8")
    run = tmp_path / "smol"
    records = [json.loads(line) for line in (run / "judgments.jsonl").read_text().splitlines()]
    judged = [r for r in records if r["mode"] == "single"]
    assert len(judged) == len(ITEMS)
    assert {r["status"] for r in judged} <= {"ok", "unparsed"}  # the model answered every time
    assert all(r["raw"] for r in judged)  # the real judge text is kept, parsed or not
    unparsed = [r for r in judged if r["status"] == "unparsed"]
    # 32-token answers of a 135M model rarely reach the score dict: there are malformed outputs to check
    assert unparsed, [r["raw"] for r in judged]
    for r in judged:  # parsed: scores and overall within 1-10; unparsed: no score at all (never a 0) and a reason
        parsed = r["status"] == "ok"
        assert (r["overall"] is not None) == parsed and (parsed or (r["scores"] == {} and r["reason"]))
        assert all(1 <= v <= 10 for v in r["scores"].values()) and (r["overall"] is None or 1 <= r["overall"] <= 10)
    summary = json.loads((run / "summary.json").read_text())
    rel = summary["judge"]["reliability"]
    assert rel["unparsed"] == len(unparsed) and rel["samples"] == len(judged) and rel["errors"] == 0
    assert "itself" in rel["warnings"][0]  # the judge is the candidate model: flagged
    # a task_type whose every judgment is unparsed has no judge metrics: excluded, not 0
    unscored = [tt for tt in summary["task_types"] if all(
        r["status"] == "unparsed" for r in judged if r["task_type"] == tt or r["task_type"].startswith(tt + "/"))]
    assert unscored  # at least the task_type of an unparsed item (one item per task_type here)
    for tt in unscored:
        metrics = summary["task_types"][tt]["metrics"]
        assert metrics.get("usable") is None and metrics.get("judge:overall") is None, (tt, metrics)
    assert "## LLM judge" in (run / "report.md").read_text()

    before = (run / "judgments.jsonl").read_text()
    start = time.monotonic()
    sfteval("judge", str(run), "--quiet")  # the recorded judge again: every judgment is cached
    assert (run / "judgments.jsonl").read_text() == before
    assert time.monotonic() - start < 60  # the judge model was not even loaded
