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

from sfteval.harness.suite import load_suite
from clikit import cli

REPO = Path(__file__).resolve().parents[1]
DEMO_SUITE = REPO / "suites" / "demo"


sfteval = cli(check=True)


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
    proc = subprocess.Popen([sys.executable, "-m", "sfteval.harness.cli", *args], cwd=REPO,
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


def quick_run(ckpt: Path, out: Path, *extra: str) -> list[str]:
    """One item per task_type, short answers, no probes: a whole run in seconds."""
    return ["run", "--model", str(ckpt), "--suite", str(DEMO_SUITE), "--out", str(out), "--run-name", "r",
            "--limit", "1", "--no-probes", "--quiet", *extra]


@pytest.mark.slow
def test_resume_refuses_changed_run_options(demo_checkpoints: dict[str, Path], tmp_path: Path) -> None:
    args = quick_run(demo_checkpoints["v1"], tmp_path, "--max-new-tokens", "8")
    sfteval(*args)
    gens = tmp_path / "r" / "generations.jsonl"
    before = gens.read_text()
    manifest = json.loads((tmp_path / "r" / "manifest.json").read_text())
    assert manifest["sampling_defaults"]["max_new_tokens"] == 8  # the effective value, not the suite's
    assert manifest["settings"]["limit"] == 1 and manifest["settings"]["max_new_tokens"] == 8

    changed = [a if a != "8" else "16" for a in args if a != "--no-probes"]
    changed[changed.index("--limit") + 1] = "2"
    refused = sfteval(*changed, "--no-probes", "--temperature", "0.5", "--keep-think", "--resume", "r", check=False)
    assert refused.returncode == 2, refused.stderr
    for change in ("--max-new-tokens was 8, now 16", "--limit was 1, now 2", "--temperature was not set, now 0.5",
                   "--think-markers/--keep-think was <think>,</think>, now --keep-think"):
        assert change in refused.stderr
    assert gens.read_text() == before  # nothing generated next to the old records

    sfteval(*args, "--resume", "r")  # the original options resume (nothing left to do)
    assert gens.read_text() == before


@pytest.mark.slow
def test_run_killed_while_loading_resumes_from_scratch(demo_checkpoints: dict[str, Path], tmp_path: Path) -> None:
    args = [a for a in quick_run(demo_checkpoints["v1"], tmp_path) if a != "--quiet"]  # quiet drops the notes
    log = tmp_path / "stderr.txt"
    with open(log, "w") as err:
        proc = subprocess.Popen([sys.executable, "-m", "sfteval.harness.cli", *args], cwd=REPO,
                                stdout=subprocess.DEVNULL, stderr=err)
    deadline = time.time() + 120
    while time.time() < deadline and "run: " not in log.read_text():
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert f"run: {tmp_path / 'r'} (resume with --resume r)" in log.read_text()  # printed before the model loads
    assert (tmp_path / "r").is_dir() and not (tmp_path / "r" / "manifest.json").exists(), \
        "the kill must land before the manifest is written"

    resumed = sfteval(*args, "--resume", "r")
    assert "starting it now" in resumed.stderr
    manifest = json.loads((tmp_path / "r" / "manifest.json").read_text())
    n_types = len({i.task_type for i in load_suite(DEMO_SUITE).items})
    assert manifest["status"] == "complete" and manifest["counts"]["generations"] == n_types

    missing = sfteval(*args, "--resume", "nowhere", check=False)
    assert missing.returncode == 2 and "no run found" in missing.stderr


@pytest.mark.slow
def test_chat_template_file_renders_a_checkpoint_without_one(demo_checkpoints: dict[str, Path],
                                                             tmp_path: Path) -> None:
    import shutil

    ckpt = tmp_path / "no-template"
    shutil.copytree(demo_checkpoints["v1"], ckpt)
    original = (ckpt / "chat_template.jinja").read_text()
    (ckpt / "chat_template.jinja").unlink()
    assert "chat_template" not in (ckpt / "tokenizer_config.json").read_text()

    refused = sfteval(*quick_run(ckpt, tmp_path), check=False)
    assert refused.returncode == 2 and "--chat-template FILE" in refused.stderr

    template = tmp_path / "custom.jinja"
    template.write_text("{{- 'CUSTOM-TEMPLATE\\n' }}" + original)
    shutil.rmtree(tmp_path / "r")
    sfteval(*quick_run(ckpt, tmp_path, "--chat-template", str(template)))
    gens = [json.loads(line) for line in (tmp_path / "r" / "generations.jsonl").read_text().splitlines()]
    assert gens and all(g["prompt"].startswith("CUSTOM-TEMPLATE\n<|im_start|>") for g in gens)
    manifest = json.loads((tmp_path / "r" / "manifest.json").read_text())
    assert manifest["chat_template"] == template.read_text()
    assert manifest["settings"]["chat_template_file"] == str(template.resolve())

    template.write_text(original)  # another template: the stored prompts would no longer match
    refused = sfteval(*quick_run(ckpt, tmp_path, "--chat-template", str(template), "--resume", "r"), check=False)
    assert refused.returncode == 2 and "chat template changed" in refused.stderr

    # probes alone take the same option
    sfteval("probe", "--model", str(ckpt), "--suite", str(DEMO_SUITE), "--chat-template", str(template),
            "--limit", "1", "--out", str(tmp_path), "--run-name", "p", "--quiet")
    probes = [json.loads(line) for line in (tmp_path / "p" / "probes.jsonl").read_text().splitlines()]
    assert probes and all(p["status"] == "ok" for p in probes)
    assert json.loads((tmp_path / "p" / "manifest.json").read_text())["chat_template"] == original
