"""`sfteval run` end to end on real tiny checkpoints, through the real CLI."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from harness.suite import load_suite

REPO = Path(__file__).resolve().parents[1]
DEMO_SUITE = REPO / "suites" / "demo"


def sfteval(*args: str, check: bool = True, **kw) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "harness.cli", *args], capture_output=True, text=True, cwd=REPO, **kw)
    if check and proc.returncode != 0:
        raise AssertionError(f"sfteval {' '.join(args)} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc


def direct_exact_match(ckpt: Path) -> dict[str, float]:
    """What the checkpoint really does, computed without sfteval: one prompt at a time, greedy."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(ckpt)
    model = AutoModelForCausalLM.from_pretrained(ckpt).eval()
    suite = load_suite(DEMO_SUITE)
    hits: dict[str, list[float]] = {}
    for item in suite.items:
        msgs = [m.model_dump() for m in item.conversation]
        ids = tok.apply_chat_template(msgs, add_generation_prompt=True, return_tensors="pt", return_dict=True)
        with torch.no_grad():
            out = model.generate(**ids, max_new_tokens=16, do_sample=False, eos_token_id=tok.eos_token_id,
                                 pad_token_id=tok.pad_token_id)
        answer = tok.decode(out[0, ids["input_ids"].shape[1]:], skip_special_tokens=True)
        gold = item.label if item.choices else item.reference
        hits.setdefault(item.task_type, []).append(float(answer.strip() == gold.strip()))
    return {tt: sum(v) / len(v) for tt, v in hits.items()}


def metric_for(task_type: str) -> str:
    """Items with choices are scored by the choice rule, the others by exact match."""
    return "rule:choice" if task_type.startswith("classification") else "rule:exact_match"


@pytest.mark.slow
def test_run_reports_what_the_checkpoints_really_do(demo_checkpoints: dict[str, Path], tmp_path: Path) -> None:
    for version in ("v1", "v2"):
        proc = sfteval("run", "--model", str(demo_checkpoints[version]), "--suite", str(DEMO_SUITE),
                       "--out", str(tmp_path), "--run-name", version, "--batch-size", "16")
        summary = json.loads((tmp_path / version / "summary.json").read_text())
        expected = direct_exact_match(demo_checkpoints[version])
        for tt, value in expected.items():
            assert summary["task_types"][tt]["metrics"][metric_for(tt)] == pytest.approx(value), (version, tt)
        assert summary["task_types"]["knowledge/likes"]["n"] == Counter(
            i.task_type for i in load_suite(DEMO_SUITE).items)["knowledge/likes"]
        assert "knowledge" in summary["task_types"]  # first level aggregated too
        assert "knowledge/likes" in proc.stdout or "likes" in proc.stdout  # the printed table
        manifest = json.loads((tmp_path / version / "manifest.json").read_text())
        assert manifest["status"] == "complete"
        assert manifest["suite_hash"] == load_suite(DEMO_SUITE).content_hash
        gen = json.loads((tmp_path / version / "generations.jsonl").read_text().splitlines()[0])
        assert gen["prompt"].endswith("<|im_start|>assistant\n")  # the rendered prompt is stored
        assert gen["timing"]["ttft_s"] > 0
    v1 = json.loads((tmp_path / "v1" / "summary.json").read_text())["task_types"]
    v2 = json.loads((tmp_path / "v2" / "summary.json").read_text())["task_types"]
    drops = {tt: v1[tt]["metrics"][metric_for(tt)] - v2[tt]["metrics"][metric_for(tt)] for tt in v1 if "/" in tt}
    assert max(drops, key=drops.get) == "knowledge/likes"


@pytest.mark.slow
def test_killed_run_resumes_without_redoing_work(demo_checkpoints: dict[str, Path], tmp_path: Path) -> None:
    args = ["run", "--model", str(demo_checkpoints["v1"]), "--suite", str(DEMO_SUITE), "--out", str(tmp_path),
            "--run-name", "r", "--batch-size", "1", "--quiet"]
    proc = subprocess.Popen([sys.executable, "-m", "harness.cli", *args], cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    gens = tmp_path / "r" / "generations.jsonl"
    deadline = time.time() + 300
    while time.time() < deadline:
        if gens.exists() and gens.read_text().count("\n") >= 10:
            break
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    before = gens.read_text()
    finished_before = before.count("\n")
    n_items = len(load_suite(DEMO_SUITE).items)
    assert 10 <= finished_before < n_items, "the kill must land mid-run"

    refused = sfteval(*args, check=False)  # the same command without --resume must not clobber the run
    assert refused.returncode == 2 and "--resume r" in refused.stderr

    sfteval(*args, "--resume", "r")
    after = gens.read_text()
    assert after.startswith(before.rsplit("\n", 1)[0])  # nothing finished before the kill was rewritten
    keys = [json.loads(line)["key"] for line in after.splitlines()]
    assert len(keys) == len(set(keys)) == n_items  # every item exactly once
    assert sorted(json.loads(line)["item_id"] for line in after.splitlines()) == sorted(
        i.id for i in load_suite(DEMO_SUITE).items)
    manifest = json.loads((tmp_path / "r" / "manifest.json").read_text())
    assert manifest["status"] == "complete" and manifest["counts"]["generations"] == n_items
