"""`sfteval run --backend openai` end to end, through the real CLI, against a loopback HTTP server.

Failures are counted and retried only on --resume, a SIGKILL loses at most the requests in flight,
rendered prompts reach the server token for token, usage lands in the manifest, and no secret
reaches the run folder or the console.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from servers import Answer, OpenAIServer, Request, ToyModel, bad_request, rate_limited, server_error
from clikit import cli

REPO = Path(__file__).resolve().parents[1]
CHATML = ("{%- for m in messages %}{{- '<|im_start|>' + m['role'] + '\\n' + m['content'] + '<|im_end|>\\n' }}"
          "{%- endfor %}{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}")


def write_suite(path: Path, n: int = 9) -> Path:
    types = ["knowledge/capitals", "math/sums", "chat"]
    items = [{"id": f"q{i}", "task_type": types[i % 3], "prompt": f"question {i}?", "reference": f"answer {i}"}
             for i in range(n)]
    path.write_text("".join(json.dumps(x) + "\n" for x in items))
    return path


@pytest.fixture(scope="module")
def tokenizer_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small real BPE tokenizer with a ChatML template (no model: the server stands in for it)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=300, show_progress=False,
                                  special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(["question answer user assistant 0123456789 ?"], trainer)
    out = tmp_path_factory.mktemp("tok")
    PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>",
                            chat_template=CHATML).save_pretrained(out)
    return out


sfteval = cli("run", "--backend", "openai", "--quiet", drop_env=("OPENAI_",), timeout=300)


def common(srv: OpenAIServer, suite: Path, out: Path, *extra: str) -> list[str]:
    return ["--base-url", srv.base_url, "--suite", str(suite), "--out", str(out), "--run-name", "r",
            "-o", "backoff_base=0.05", "-o", "backoff_max=0.1", *extra]


def manifest(out: Path) -> dict[str, Any]:
    return json.loads((out / "r" / "manifest.json").read_text())


def records(out: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (out / "r" / "generations.jsonl").read_text().splitlines()]


def test_failures_are_counted_and_resume_sends_only_the_failed_items(tmp_path: Path) -> None:
    state = {"broken": True}

    def handler(req: Request):
        if state["broken"] and req.prompt_text in ("question 4?", "question 7?"):
            return server_error(502, "upstream down")
        return "fine " + req.prompt_text

    suite = write_suite(tmp_path / "s.jsonl")
    with OpenAIServer(handler) as srv:
        args = common(srv, suite, tmp_path, "--model", "test-model", "--max-retries", "1", "--no-probes")
        first = sfteval(*args)
        assert first.returncode == 3, first.stderr
        assert "2 requests failed" in first.stderr and "--resume r" in first.stderr
        m = manifest(tmp_path)
        assert m["status"] == "incomplete" and m["counts"]["generation_errors"] == 2
        assert m["prompt_mode"] == "chat" and m["backend_settings"]["api"] == "chat"
        summary = json.loads((tmp_path / "r" / "summary.json").read_text())
        assert summary["counts"]["generation_errors"] == 2
        errors = {r["item_id"]: r for r in records(tmp_path) if r["status"] == "error"}
        assert set(errors) == {"q4", "q7"}
        assert all(r["error"] == "HTTP 502: upstream down (gave up after 2 attempts)" and r["attempts"] == 2
                   for r in errors.values())

        state["broken"] = False
        mark = len(srv.requests)
        again = sfteval(*args, "--resume", "r")  # the same command, with --resume
        assert again.returncode == 0, again.stderr
        resumed = [r for r in srv.generation_requests() if r.index >= mark]
        assert sorted(r.prompt_text for r in resumed) == ["question 4?", "question 7?"]
    m = manifest(tmp_path)
    assert m["status"] == "complete" and m["counts"]["generation_errors"] == 0
    assert m["usage"]["requests"] == 9 + 2 and m["usage"]["failed"] == 2  # summed over both sessions
    latest = {r["item_id"]: r for r in records(tmp_path)}
    assert latest["q4"]["status"] == "ok" and latest["q4"]["answer"] == "fine question 4?"


def test_sigkill_loses_at_most_the_requests_in_flight(tmp_path: Path) -> None:
    suite = write_suite(tmp_path / "s.jsonl", n=12)
    with OpenAIServer(lambda req: Answer("slow answer", delay=0.4)) as srv:
        args = common(srv, suite, tmp_path, "--model", "test-model", "--concurrency", "2", "--no-probes")
        clean = {k: v for k, v in os.environ.items() if not k.startswith("OPENAI_")}
        proc = subprocess.Popen([sys.executable, "-m", "sfteval.harness.cli", "run", "--backend", "openai", "-q", *args],
                                cwd=REPO, env=clean, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        gens = tmp_path / "r" / "generations.jsonl"
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and (not gens.exists() or len(gens.read_text().splitlines()) < 4):
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        stored = len(records(tmp_path))
        sent = len(srv.generation_requests())
        assert 4 <= stored < 12
        assert sent - stored <= 2  # only the requests in flight (concurrency 2) were lost
        mark = len(srv.requests)
        again = sfteval(*args, "--resume", "r")
        assert again.returncode == 0, again.stderr
        assert len([r for r in srv.generation_requests() if r.index >= mark]) == 12 - stored
    assert manifest(tmp_path)["status"] == "complete" and len({r["item_id"] for r in records(tmp_path)}) == 12


def test_rendered_prompts_reach_the_server_token_for_token(tmp_path: Path, tokenizer_dir: Path) -> None:
    from transformers import AutoTokenizer

    from sfteval.harness.render import Renderer

    toy = ToyModel(answer=lambda req: Answer("an answer here", first_token_delay=0.05, token_delay=0.02,
                                             prompt_tokens=len(req.prompt or [])))
    suite = write_suite(tmp_path / "s.jsonl", n=6)
    with OpenAIServer(toy) as srv:
        proc = sfteval(*common(srv, suite, tmp_path, "--model", "test-model", "--tokenizer", str(tokenizer_dir),
                               "-o", "price_per_1k_prompt=0.5", "-o", "price_per_1k_completion=2"))
        assert proc.returncode == 0, proc.stderr
        sent = [r for r in srv.generation_requests() if not (r.body or {}).get("echo")]
    renderer = Renderer(AutoTokenizer.from_pretrained(tokenizer_dir))
    gens = records(tmp_path)
    assert all(r.path == "/v1/completions" for r in sent)
    assert sorted(r.prompt for r in sent) == sorted(renderer.encode_prompt(g["prompt"]) for g in gens)
    assert all(g["prompt"].endswith("<|im_start|>assistant\n") for g in gens)
    for g in gens:  # streamed: time to first token and per-token time are measured
        assert g["timing"]["ttft_s"] >= 0.05 and g["timing"]["per_token_s"] >= 0.015
        assert g["completion_tokens"] == 3
    m = manifest(tmp_path)
    assert m["prompt_mode"] == "rendered" and m["backend_settings"]["api"] == "completions"
    assert m["backend_settings"]["sampling_sent"] == [
        {"temperature": 0.0, "top_p": 1.0, "max_tokens": 256, "seed": 0, "n": 1}]
    u = m["usage"]
    assert u["requests"] == 6 and u["completion_tokens"] >= 18
    assert u["cost"] == pytest.approx((u["prompt_tokens"] * 0.5 + u["completion_tokens"] * 2) / 1000)
    assert m["counts"]["probes"] == 6 and m["counts"]["probe_errors"] == 0  # log-probs via /completions echo


@pytest.mark.parametrize("how", ["env", "option", "url"])
def test_no_secret_reaches_the_run_folder_or_the_console(tmp_path: Path, tokenizer_dir: Path, how: str) -> None:
    secret = "sk-test-" + secrets.token_hex(16)
    # "url": a server behind a basic-auth proxy, its password in the base URL (httpx sends it as Basic auth)
    url_secret = "pw-" + secrets.token_hex(16)
    basic = base64.b64encode(f"user:{url_secret}".encode()).decode()
    expected = f"Basic {basic}" if how == "url" else f"Bearer {secret}"
    echoed = []

    def handler(req: Request):
        if req.headers.get("authorization") != expected:
            return bad_request("no key", status=401)
        generation = req.is_completion and not (req.body or {}).get("echo")
        if generation and req.attempt == 1:
            return rate_limited("0")
        if generation and not echoed:  # real servers echo (parts of) a rejected key back
            echoed.append(req)
            return bad_request(f"Incorrect API key provided: {secret}. Find yours at ...")
        return ToyModel()(req)

    suite = write_suite(tmp_path / "s.jsonl")
    out = tmp_path / "results"
    with OpenAIServer(handler) as srv:
        key_args = ["-o", f"api_key={secret}"] if how == "option" else ["--api-key-env", "SFTEVAL_TEST_KEY"]
        args = common(srv, suite, out, "--model", "test-model", "--tokenizer", str(tokenizer_dir), *key_args)
        if how == "url":
            args[1] = srv.base_url.replace("http://", f"http://user:{url_secret}@")
            args += ["-o", "http_transport=httpx"]
        proc = sfteval(*args, env={} if how == "option" else {"SFTEVAL_TEST_KEY": secret})
        assert proc.returncode in (0, 3), proc.stderr
        assert any(r.is_completion for r in srv.requests)  # the key was used: the server accepted it
    assert manifest(out)["backend_settings"]["api_key_source"] in ("env:SFTEVAL_TEST_KEY", "option")
    assert any(r["status"] == "error" and "Incorrect API key provided" in r["error"] for r in records(out))
    files = [p for p in out.rglob("*") if p.is_file()]
    assert len(files) >= 5
    for p in files:
        assert secret.encode() not in p.read_bytes(), p
        assert secret[8:24].encode() not in p.read_bytes(), p  # not even a fragment
        assert url_secret.encode() not in p.read_bytes(), p
    assert secret not in proc.stdout and secret not in proc.stderr
    assert url_secret not in proc.stdout and url_secret not in proc.stderr
    if how == "url":  # masked where it is recorded, not dropped
        m = manifest(out)
        assert "user:***@127.0.0.1" in m["backend_settings"]["base_url"]
        assert any("user:***@127.0.0.1" in a for a in m["command"])
