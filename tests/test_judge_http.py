"""The LLM judge over real HTTP, through the real CLI, against loopback OpenAI-compatible servers.

Answers come from a toy server (`--backend openai`, chat mode, no checkpoint), the judge is the scripted judge
of tests/scripted_judge.py on servers of its own: one that rejects ``stream=true`` as some proxies do, and two
serving the same model name on different ports, to show what the judge cache reuses across endpoints.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Iterator

import pytest

from scripted_judge import ScriptedJudge
from servers import OpenAIServer, Request, no_streaming
from clikit import cli

sfteval = cli(check=True, drop_env=("OPENAI_",), env={"OPENAI_API_KEY": "sk-test-judge-http"}, timeout=300)
N_ITEMS = 6


@pytest.fixture(scope="module")
def suite(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("suite") / "s.jsonl"
    types = ["knowledge/capitals", "writing"]
    rows = [{"id": f"q{i}", "task_type": types[i % 2], "prompt": f"question {i}?", "reference": f"answer {i}"}
            for i in range(N_ITEMS)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture(scope="module")
def answers() -> Iterator[OpenAIServer]:
    with OpenAIServer(lambda req: "answer " + req.prompt_text.split()[-1].rstrip("?")) as srv:
        yield srv


def run_args(answers: OpenAIServer, suite: Path, out: Path, name: str) -> list[str]:
    return ["run", "--backend", "openai", "--model", "test-model", "--base-url", answers.base_url, "--suite",
            str(suite), "--out", str(out), "--run-name", name, "--no-probes", "-q"]


def judge_requests(srv: OpenAIServer) -> list[Request]:
    return srv.generation_requests()


def summary(run: Path) -> dict:
    return json.loads((run / "summary.json").read_text())


def test_judge_calls_are_not_streamed_generation_is(answers: OpenAIServer, suite: Path, tmp_path: Path) -> None:
    """A judge server that rejects stream=true (an OpenAI-compatible proxy without streaming) still judges every
    answer; the answers themselves are still streamed (time to first token needs it)."""
    with OpenAIServer(no_streaming(ScriptedJudge()), models=("scripted",)) as judge:
        mark = len(answers.generation_requests())
        proc = sfteval(*run_args(answers, suite, tmp_path, "r"), "--judge", "default-en", "--judge-model",
                       "scripted", "--judge-base-url", judge.base_url, "--judge-samples", "1")
        sent = judge_requests(judge)
    assert proc.stderr == "" and proc.stdout == f"run: {tmp_path / 'r'}  (summary.json, report.md)\n"  # -q
    assert len(sent) == N_ITEMS and not any(r.stream for r in sent)
    generated = answers.generation_requests()[mark:]
    assert len(generated) == N_ITEMS and all(r.stream for r in generated)
    j = summary(tmp_path / "r")["judge"]
    assert j["reliability"]["errors"] == 0 and j["items_scored"] == N_ITEMS
    gens = [json.loads(line) for line in (tmp_path / "r" / "generations.jsonl").read_text().splitlines()]
    assert all(g["timing"]["ttft_s"] is not None for g in gens)


def per_item_judge(run: Path) -> dict[str, float]:
    from sfteval.harness.runfolder import RunFolder
    from sfteval.harness.scoring import item_frame

    frame = item_frame(RunFolder(run).records())
    return frame["judge:overall"].to_dict()


def test_moving_the_judge_server_reuses_judgments_with_cache_key_model(answers: OpenAIServer, suite: Path,
                                                                       tmp_path: Path) -> None:
    """By default the judge's endpoint is part of its cache key: the same model served on another port is judged
    afresh. With `--judge-cache-key model` (model name + judge config) nothing reaches the new port, and the
    choice is recorded, so a later re-judge of the run keeps it."""
    run, copy = tmp_path / "r", tmp_path / "copy"
    sfteval(*run_args(answers, suite, tmp_path, "r"))
    with OpenAIServer(ScriptedJudge(), models=("scripted",)) as p1:
        quiet = sfteval("judge", str(run), "--judge", "default-en", "--judge-model", "scripted", "--judge-base-url",
                        p1.base_url, "--judge-samples", "1", "-q")
        assert len(judge_requests(p1)) == N_ITEMS
        assert quiet.stdout == (f"judged: {N_ITEMS} judge samples ({N_ITEMS} new), 0 unparsed, 0 failed, 0 not judged "
                                f"(budget); run: {run}\n")  # -q: the final line only
    scores = per_item_judge(run)
    assert len(scores) == N_ITEMS and all(v == v for v in scores.values())  # every answer judged
    shutil.copytree(run, copy)

    with OpenAIServer(ScriptedJudge(), models=("scripted",)) as p2:
        sfteval("judge", str(run), "--judge-base-url", p2.base_url, "--judge-cache-key", "model", "-q")
        assert judge_requests(p2) == []
        manifest = json.loads((run / "manifest.json").read_text())
        assert manifest["judge"]["cache_key"] == "model" and manifest["judge"]["base_url"] == p2.base_url
        assert per_item_judge(run) == scores
        assert summary(run)["judge"]["reliability"]["samples"] == N_ITEMS

        sfteval("judge", str(copy), "--judge-base-url", p2.base_url, "-q")  # the default: endpoint
        assert len(judge_requests(p2)) == N_ITEMS

    with OpenAIServer(ScriptedJudge(), models=("scripted",)) as p3:
        sfteval("judge", str(run), "--judge-base-url", p3.base_url, "-q")  # the recorded choice holds
        assert judge_requests(p3) == []
