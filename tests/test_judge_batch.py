"""Batch mode (--judge-mode batch) against a loopback server that implements the OpenAI Batch API over real HTTP
(tests/servers/batch_api.py): records as online, half the cost, error lines, an expired batch, a process killed
while it polls (SIGKILL) or right after creating its batch -- and never the same work submitted twice.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Iterator

import pytest

from clikit import REPO
from judge_server import JudgeServer, judge  # noqa: F401 (fixture)
from scripted_judge import ScriptedJudge
from servers import OpenAIServer
from servers.batch_api import BatchAPI
from sfteval.harness.judging.spec import JudgeSpec
from sfteval.harness.runfolder import RunFolder
from sfteval.harness.runner import rejudge
from test_judge_stage import ITEMS, V1, make_run

PRICES = {"price_per_1k_prompt": 0.4, "price_per_1k_completion": 1.6}
SECRET = "sk-batch-secret-never-stored-7331"


@pytest.fixture
def api() -> Iterator[tuple[BatchAPI, OpenAIServer]]:
    handler = BatchAPI(ScriptedJudge(), polls=2)
    with OpenAIServer(handler, models=("scripted-judge",)) as srv:
        yield handler, srv


def batch_spec(srv: OpenAIServer, k: int = 1, **options: Any) -> JudgeSpec:
    return JudgeSpec(config="default-en", model="scripted-judge", base_url=srv.base_url, samples=k, mode="batch",
                     options={"max_retries": 0, "batch_poll_s": 0.01, **PRICES, **options}, progress=False)


def by_sample(folder: Path) -> dict[tuple[str, int], Any]:
    return {(j.item_id, j.judge_sample): j for j in RunFolder(folder).read("judgments").values() if j.mode == "single"}


def batch_state(folder: Path) -> list[dict[str, Any]]:
    return json.loads((folder / "judge_batches.json").read_text())["batches"]


def test_batch_records_equal_the_online_ones_at_half_the_cost(tmp_path: Path, api: Any, judge: JudgeServer) -> None:
    handler, srv = api
    online, batched = make_run(tmp_path, "online", V1), make_run(tmp_path, "batched", V1)
    spec = judge.spec(k=2, **PRICES)
    rejudge(RunFolder(online.path), spec, log=lambda m: None)
    rejudge(RunFolder(batched.path), batch_spec(srv, k=2), log=lambda m: None)
    assert srv.generation_requests() == []  # nothing went online
    assert len(handler.batches) == 1 and len(handler.answered) == 2 * len(ITEMS)
    a, b = by_sample(online.path), by_sample(batched.path)
    assert a.keys() == b.keys() and len(a) == 2 * len(ITEMS)
    for key, x in a.items():
        y = b[key]
        assert (y.status, y.scores, y.overall, y.raw, y.rationale) == (x.status, x.scores, x.overall, x.raw, x.rationale)
        assert set(y.details) == set(x.details) and y.details["usage"]["mode"] == "batch"
        tokens = y.details["usage"]["prompt_tokens"], y.details["usage"]["completion_tokens"]
        assert tokens == (x.details["usage"]["prompt_tokens"], x.details["usage"]["completion_tokens"])
        full = (tokens[0] * PRICES["price_per_1k_prompt"] + tokens[1] * PRICES["price_per_1k_completion"]) / 1000
        assert y.details["usage"]["cost"] == pytest.approx(full / 2) and x.details["usage"]["cost"] == pytest.approx(full)
    usage = RunFolder(batched.path).manifest().usage["judge"]
    assert usage["batch_calls"] == usage["calls"] == 2 * len(ITEMS)
    state = batch_state(batched.path)
    assert len(state) == 1 and state[0]["batch_id"] == next(iter(handler.batches))
    assert state[0]["file_id"] == handler.batches[state[0]["batch_id"]]["input_file_id"] and state[0]["consumed"]
    for line in handler.batches[state[0]["batch_id"]]["lines"]:  # each is exactly the online request's body
        same = [r.body for r in judge.requests if (r.body["messages"], r.body["seed"]) == (line["body"]["messages"],
                                                                                         line["body"]["seed"])]
        assert same == [line["body"]] and line["url"] == "/v1/chat/completions"
    assert rejudge(RunFolder(batched.path), None, log=lambda m: None)["records"] == 0  # cached: no batch
    assert len(handler.batches) == 1


def test_error_lines_become_error_records_and_are_retried(tmp_path: Path, api: Any) -> None:
    handler, srv = api
    handler.fail = lambda body: "overloaded" if "2+3=" in body["messages"][-1]["content"] else None
    store = make_run(tmp_path, "v1", V1)
    counts = rejudge(RunFolder(store.path), batch_spec(srv), log=lambda m: None)
    assert counts["errors"] == 1
    err = by_sample(store.path)[("m1", 0)]
    assert err.status == "error" and "HTTP 500: overloaded" in err.reason and err.details["usage"]["mode"] == "batch"
    handler.fail = lambda body: None
    counts = rejudge(RunFolder(store.path), None, log=lambda m: None)  # the recorded judge: batch mode again
    assert counts["errors"] == 0 and len(handler.batches) == 2
    second = list(handler.batches.values())[1]
    assert len(second["custom_ids"]) == 1 and "2+3=" in second["lines"][0]["body"]["messages"][-1]["content"]
    assert by_sample(store.path)[("m1", 0)].status == "ok"


def test_expired_batch_resubmits_only_what_is_missing(tmp_path: Path, api: Any) -> None:
    handler, srv = api
    handler.expire_next = 2  # the first batch answers 2 requests, then its window runs out
    store = make_run(tmp_path, "v1", V1)
    rejudge(RunFolder(store.path), batch_spec(srv, k=1), log=lambda m: None)
    first, second = handler.batches.values()
    assert first["status"] == "expired" and second["status"] == "completed"
    assert sorted(second["custom_ids"]) == sorted(first["custom_ids"][2:])
    assert len(handler.answered) == len(set(handler.answered)) == len(ITEMS)  # every request answered once
    assert all(j.status == "ok" for j in by_sample(store.path).values()) and len(by_sample(store.path)) == len(ITEMS)


def test_killed_right_after_creating_the_batch_finds_it_instead_of_submitting_again(
        tmp_path: Path, api: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    handler, srv = api
    store = make_run(tmp_path, "v1", V1)
    from sfteval.harness.backends.openai.batchapi import BatchAPI as Client

    create = Client.create

    def create_then_die(self: Any, *a: Any, **kw: Any) -> Any:
        create(self, *a, **kw)  # the batch exists on the server ...
        raise KeyboardInterrupt  # ... and the process dies before it stores the id

    monkeypatch.setattr(Client, "create", create_then_die)
    with pytest.raises(KeyboardInterrupt):
        rejudge(RunFolder(store.path), batch_spec(srv), log=lambda m: None)
    assert len(handler.batches) == 1 and batch_state(store.path)[0]["batch_id"] is None
    monkeypatch.setattr(Client, "create", create)
    rejudge(RunFolder(store.path), batch_spec(srv), log=lambda m: None)
    assert len(handler.batches) == 1 and len(handler.answered) == len(set(handler.answered)) == len(ITEMS)
    assert batch_state(store.path)[0]["batch_id"] == next(iter(handler.batches))
    assert all(j.status == "ok" for j in by_sample(store.path).values())


def test_sigkill_while_polling_then_resume(tmp_path: Path, api: Any) -> None:
    handler, srv = api
    handler.polls = 10_000  # stays in progress until the test lets it finish
    store = make_run(tmp_path, "v1", V1)
    args = [sys.executable, "-m", "sfteval.harness.cli", "judge", str(store.path), "--judge", "default-en",
            "--judge-model", "scripted-judge", "--judge-base-url", srv.base_url, "--judge-samples", "2",
            "--judge-mode", "batch", "--judge-option", "batch_poll_s=0.05", "--judge-option", "max_retries=0", "-q"]
    env = {**os.environ, "OPENAI_API_KEY": SECRET}
    proc = subprocess.Popen(args, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    try:
        deadline = time.monotonic() + 120
        while not (handler.batches and any(b["polled"] >= 3 for b in handler.batches.values())):
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the batch was never polled"
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
    state = batch_state(store.path)
    assert len(state) == 1 and state[0]["batch_id"] and not state[0]["consumed"]  # stored the moment it existed
    assert not by_sample(store.path)  # nothing judged yet
    handler.polls = 0  # the batch finishes now
    done = subprocess.run(args, cwd=REPO, capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr
    assert len(handler.batches) == 1  # polled the same batch, submitted nothing again
    assert len(handler.answered) == len(set(handler.answered)) == 2 * len(ITEMS)
    records = by_sample(store.path)
    assert len(records) == 2 * len(ITEMS) and all(j.status == "ok" for j in records.values())
    assert batch_state(store.path)[0]["consumed"] and srv.generation_requests() == []
    assert any(r.headers.get("authorization") == f"Bearer {SECRET}" for r in srv.requests)  # the key was used ...
    for f in store.path.rglob("*"):  # ... and never written anywhere
        assert not f.is_file() or SECRET not in f.read_text(errors="replace"), f


def test_batch_mode_needs_a_batch_capable_judge_backend(tmp_path: Path) -> None:
    store = make_run(tmp_path, "v1", V1)
    proc = subprocess.run([sys.executable, "-m", "sfteval.harness.cli", "judge", str(store.path), "--judge",
                           "default-en", "--judge-model", str(tmp_path), "--judge-backend", "hf", "--judge-mode",
                           "batch"], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "--judge-mode batch needs --judge-backend openai" in proc.stderr
    assert not (store.path / "judgments.jsonl").exists()


def test_an_unfinished_batch_is_collected_even_online(tmp_path: Path, api: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """A batch left by a killed process holds paid work: `sfteval judge` in online mode collects it, sends none."""
    handler, srv = api
    handler.polls = 3
    store = make_run(tmp_path, "v1", V1)

    def die(seconds: float) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr("sfteval.harness.judging.batch.time.sleep", die)  # killed at its first wait
    with pytest.raises(KeyboardInterrupt):
        rejudge(RunFolder(store.path), batch_spec(srv), log=lambda m: None)
    monkeypatch.undo()
    online = batch_spec(srv)
    online.mode = "online"
    rejudge(RunFolder(store.path), online, log=lambda m: None)
    assert srv.generation_requests() == [] and len(handler.batches) == 1
    assert all(j.status == "ok" and j.details["usage"]["mode"] == "batch" for j in by_sample(store.path).values())


@pytest.mark.slow
def test_run_with_a_capped_batch_judge_then_continue(tmp_path: Path, api: Any,
                                                     demo_checkpoints: dict[str, Path]) -> None:
    """`sfteval run --judge ... --judge-mode batch --max-judge-calls 3` on a real checkpoint, then `sfteval judge`."""
    from clikit import cli

    handler, srv = api
    sfteval = cli(timeout=900)
    out = tmp_path / "results"
    proc = sfteval("run", "--model", str(demo_checkpoints["v1"]), "--suite", str(REPO / "suites" / "demo"), "--out",
                   str(out), "--run-name", "v1", "--limit", "1", "--no-probes", "--judge", "default-en",
                   "--judge-model", "scripted-judge", "--judge-base-url", srv.base_url, "--judge-samples", "2",
                   "--judge-mode", "batch", "--judge-option", "batch_poll_s=0.05", "--max-judge-calls", "3",
                   "--judge-option", "price_per_1k_prompt=0.01", "-q")
    assert proc.returncode == 0, proc.stderr
    run = out / "v1"
    n_answers = len((run / "generations.jsonl").read_text().splitlines())
    assert len(handler.batches) == 1 and len(handler.answered) == 3
    assert "judge samples were not judged (budget)" in proc.stderr
    summary = json.loads((run / "summary.json").read_text())
    assert summary["judge"]["reliability"]["not_judged"] == 2 * n_answers - 3
    assert summary["judge"]["usage"]["batch_calls"] == 3 and summary["judge"]["usage"]["cost"] > 0
    proc = sfteval("judge", str(run), "-q")  # the recorded judge: batch mode again, no cap
    assert proc.returncode == 0, proc.stderr
    assert len(handler.batches) == 2 and len(handler.answered) == len(set(handler.answered)) == 2 * n_answers
    summary = json.loads((run / "summary.json").read_text())
    assert summary["judge"]["reliability"]["not_judged"] == 0 and summary["judge"]["usage"]["calls"] == 2 * n_answers
    assert srv.generation_requests() == []


def test_pairs_in_batch_mode_keep_their_batch_ids_in_the_pair_folder(tmp_path: Path, api: Any) -> None:
    from sfteval.harness.judging.pair import judge_pair

    handler, srv = api
    a, b = make_run(tmp_path, "v1", V1), make_run(tmp_path, "v2", dict(V1, k2=["<tok_7>"], w1=["a blue cat"]))
    summary = judge_pair(a, b, batch_spec(srv, k=2), log=lambda m: None)
    assert len(handler.batches) == 1 and len(handler.answered) == 2 * 2 * 2  # 2 differing pairs x 2 orders x k
    assert srv.generation_requests() == [] and summary["usage"]["batch_calls"] == 8
    assert summary["overall"]["loss"] == pytest.approx(2 / 5) and summary["reliability"]["errors"] == 0
    folder = b.path / "pairs" / "v1"
    assert batch_state(folder)[0]["consumed"] and "Judge cost" in (folder / "pair_report.md").read_text()
    judge_pair(a, b, batch_spec(srv, k=2), log=lambda m: None)
    assert len(handler.batches) == 1  # all cached
