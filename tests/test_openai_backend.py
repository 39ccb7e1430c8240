"""The openai backend against a real loopback HTTP server: retries, faults, streaming, routing, log-probs.

No client mocking: the official ``openai`` client talks HTTP to ``servers.OpenAIServer``, whose
replies (and faults) are scripted per request. End-to-end CLI runs are in test_openai_cli.py.
"""

from __future__ import annotations

import time
from email.utils import formatdate
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from sfteval.harness.backends import create_backend
from sfteval.harness.backends.base import BackendError, GenRequest, GenResult, LogprobRequest
from sfteval.harness.backends.openai.retry import Failure, RetryPolicy, parse_retry_after, scrub
from sfteval.harness.models import SamplingParams
from servers import (Answer, OpenAIServer, Request, ToyModel, bad_request, by_attempt, drop, malformed,
                     rate_limited, server_error, slow, toy_logprob, toy_top)

FAST = {"backoff_base": 0.05, "backoff_max": 0.2}


@pytest.fixture
def serve() -> Iterator[Callable[..., OpenAIServer]]:
    servers: list[OpenAIServer] = []

    def start(handler: Any = None, **kw: Any) -> OpenAIServer:
        srv = OpenAIServer(handler, **kw).start()
        servers.append(srv)
        return srv

    yield start
    for s in servers:
        s.stop()


def backend(srv: OpenAIServer, **options: Any):
    opts = {"model": "test-model", "base_url": srv.base_url, "api": "completions", "prompt_as": "text", **FAST}
    opts.update(options)
    return create_backend("openai", **opts)


def gen(prompt: str, key: str | None = None, **sampling: Any) -> GenRequest:
    return GenRequest(key=key or prompt, sampling=SamplingParams(**sampling), prompt=prompt,
                      messages=[{"role": "user", "content": prompt}])


def run(srv: OpenAIServer, reqs: list[GenRequest], **options: Any) -> dict[str, GenResult]:
    with backend(srv, **options) as b:
        return {r.key: r for r in b.generate(reqs)}


def gaps(srv: OpenAIServer, prompt: str) -> list[float]:
    times = [r.received for r in srv.generation_requests() if r.prompt_text == prompt]
    return [b - a for a, b in zip(times, times[1:])]


# -- retries -------------------------------------------------------------------------------------


@pytest.mark.parametrize("header", ["seconds", "http-date"])
def test_429_waits_as_long_as_retry_after_says(serve, header: str) -> None:
    def handler(req: Request):
        if req.attempt == 1:
            return rate_limited("1" if header == "seconds" else formatdate(time.time() + 2, usegmt=True))
        return "fine"

    srv = serve(handler)
    res = run(srv, [gen("p")])["p"]
    assert res.ok and res.text == "fine" and res.attempts == 2
    (gap,) = gaps(srv, "p")
    assert gap >= 1.0  # an HTTP date has 1 s resolution: 2 s ahead is 1-2 s from now
    assert gap < 3.5


def test_500_then_success_and_permanent_failure_is_an_error_with_its_reason(serve) -> None:
    def handler(req: Request):
        if req.prompt_text == "flaky" and req.attempt == 1:
            return server_error(500)
        if req.prompt_text == "broken":
            return server_error(503, "engine is dead")
        return "ok " + req.prompt_text

    srv = serve(handler)
    res = run(srv, [gen("flaky"), gen("broken"), gen("fine")], max_retries=2)
    assert res["flaky"].ok and res["flaky"].attempts == 2 and res["flaky"].text == "ok flaky"
    assert res["fine"].ok and res["fine"].attempts == 1
    assert not res["broken"].ok and res["broken"].attempts == 3
    assert "HTTP 503: engine is dead" in res["broken"].error and "gave up after 3 attempts" in res["broken"].error
    assert len([r for r in srv.generation_requests() if r.prompt_text == "broken"]) == 3


def test_client_errors_are_not_retried(serve) -> None:
    srv = serve(lambda req: bad_request("prompt too long") if req.prompt_text == "long" else "ok")
    res = run(srv, [gen("short"), gen("long")])
    assert res["short"].ok
    assert res["long"].error == "HTTP 400: prompt too long" and res["long"].attempts == 1


def test_auth_failure_stops_the_run_with_one_clear_error(serve) -> None:
    srv = serve(lambda req: bad_request("invalid api key", status=401))
    with pytest.raises(BackendError, match="401.*invalid api key.*OPENAI_API_KEY"):
        run(srv, [gen(f"p{i}") for i in range(5)])


def test_timeout_then_success(serve) -> None:
    srv = serve(by_attempt(slow(3.0, "late"), "quick"))
    t0 = time.monotonic()
    res = run(srv, [gen("p")], timeout=0.5)["p"]
    assert res.ok and res.text == "quick" and res.attempts == 2
    assert time.monotonic() - t0 < 2.5  # did not wait for the slow answer


def test_a_stalled_stream_times_out(serve) -> None:
    srv = serve(lambda req: Answer("a b c d", token_delay=1.0))
    res = run(srv, [gen("p")], timeout=0.5, max_retries=1)["p"]
    assert not res.ok and res.error.startswith("timeout") and res.attempts == 2


@pytest.mark.parametrize("fault,stream", [
    (malformed(), False),                                                 # truncated JSON body
    (malformed(b"<html>502 Bad Gateway</html>", "text/html"), False),     # a proxy's error page
    (malformed(b'{"object": "text_completion"}'), False),                 # JSON, but no choices
    (Answer("a b c d", malformed_after=2), True),                         # broken SSE chunk
    (Answer("a b c d", drop_after=2), True),                              # connection cut mid-stream
    (drop(), True),                                                       # connection closed, no answer
])
def test_malformed_or_cut_responses_are_retried(serve, fault: Any, stream: bool) -> None:
    srv = serve(by_attempt(fault, "good answer"))
    res = run(srv, [gen("p")], stream=stream)["p"]
    assert res.ok and res.text == "good answer" and res.attempts == 2, res


def test_backoff_grows_with_jitter_and_retry_after_wins() -> None:
    p = RetryPolicy(max_retries=5, base=1.0, cap=8.0)
    f = Failure("HTTP 503", True, 503)
    for attempt, full in [(1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (5, 8.0)]:
        d = p.delay(attempt, f)
        assert d is not None and full / 2 <= d <= full
    assert p.delay(6, f) is None  # max_retries spent
    assert 3.0 <= p.delay(1, Failure("429", True, 429, retry_after=3.0)) <= 3.3
    assert p.delay(1, Failure("429", True, 429, retry_after=1000.0)) is None  # beyond max_retry_after
    assert p.delay(1, Failure("HTTP 400", False, 400)) is None


def test_parse_retry_after() -> None:
    assert parse_retry_after({"retry-after": "7"}) == 7.0
    assert parse_retry_after({"retry-after-ms": "250", "retry-after": "7"}) == 0.25
    now = time.time()
    assert 9 <= parse_retry_after({"retry-after": formatdate(now + 10, usegmt=True)}, now=now) <= 10
    assert parse_retry_after({"retry-after": formatdate(now - 10, usegmt=True)}, now=now) == 0.0
    assert parse_retry_after({"retry-after": "soon"}) is None
    assert parse_retry_after({}) is None


def test_scrub_removes_keys_from_messages() -> None:
    assert scrub("bad key sk-live-123456 given", None) == "bad key sk-*** given"
    assert "hunter2-secret" not in scrub("Incorrect API key provided: hunter2-secret", "hunter2-secret")


# -- dispatch ------------------------------------------------------------------------------------


def test_concurrency_limit_is_respected(serve) -> None:
    srv = serve(lambda req: Answer("x", delay=0.15))
    run(srv, [gen(f"p{i}") for i in range(16)], concurrency=4)
    starts = sorted(r.received for r in srv.generation_requests())
    overlap = max(sum(1 for s in starts if t <= s < t + 0.15) for t in starts)
    assert overlap <= 4
    assert starts[-1] - starts[0] >= 3 * 0.15  # 16 requests, 4 at a time: at least 4 waves


def test_results_are_yielded_as_they_complete(serve) -> None:
    srv = serve(lambda req: Answer("slow", delay=3.0) if req.prompt_text == "slow" else "fast")
    t0 = time.monotonic()
    seen: list[tuple[str, float]] = []
    with backend(srv) as b:
        for r in b.generate([gen("slow"), gen("a"), gen("b")]):
            seen.append((r.key, time.monotonic() - t0))
    assert [k for k, _ in seen][-1] == "slow"
    assert all(t < 2.0 for k, t in seen if k != "slow")  # stored long before the slow one is done


def test_streaming_measures_time_to_first_token_and_per_token_time(serve) -> None:
    srv = serve(lambda req: Answer("a b c d e f", first_token_delay=0.4, token_delay=0.1))
    res = run(srv, [gen("p")])["p"]
    t = res.timing
    assert res.completion_tokens == 6 and res.text == "a b c d e f"
    assert 0.4 <= t.ttft_s < 1.5
    assert 0.08 <= t.per_token_s < 0.3
    assert t.total_s >= t.ttft_s + 5 * 0.1 - 0.02


def test_every_sampling_parameter_is_sent_and_recorded(serve) -> None:
    srv = serve()
    with backend(srv, extra_body={"top_k": -1}) as b:
        list(b.generate([gen("p", temperature=0.7, top_p=0.9, max_new_tokens=12, seed=5, stop=("###",))]))
        settings = b.effective_settings()
    body = srv.generation_requests()[0].body
    assert {k: body[k] for k in ("temperature", "top_p", "max_tokens", "seed", "stop", "top_k")} == {
        "temperature": 0.7, "top_p": 0.9, "max_tokens": 12, "seed": 5, "stop": ["###"], "top_k": -1}
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}
    assert settings["sampling_sent"] == [{"temperature": 0.7, "top_p": 0.9, "max_tokens": 12, "seed": 5, "n": 1,
                                          "stop": ["###"], "top_k": -1}]


def test_generation_config_defaults_a_server_would_apply_are_recorded_and_warned(
        serve, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import json

    srv = serve()
    (tmp_path / "generation_config.json").write_text(json.dumps(
        {"temperature": 0.7, "top_k": 20, "repetition_penalty": 1.05, "min_p": 0.0}))
    with backend(srv, tokenizer=str(tmp_path)) as b:
        settings = b.effective_settings()
    # temperature is always sent and min_p is neutral: only the two that change answers are listed
    assert settings["server_default_sampling"] == {"top_k": 20, "repetition_penalty": 1.05}
    err = capsys.readouterr().err
    assert "repetition_penalty" in err and "extra_body='{top_k: -1, repetition_penalty: 1.0}'" in err
    with backend(srv, tokenizer=str(tmp_path), extra_body={"top_k": -1, "repetition_penalty": 1.0}) as b:
        assert b.effective_settings()["server_default_sampling"] == {}  # sent explicitly: nothing left over
    assert "warning" not in capsys.readouterr().err


# -- routing: rendered prompt vs chat ------------------------------------------------------------


def test_prompt_mode_follows_the_tokenizer(serve, tmp_path: Path) -> None:
    srv = serve(models=("served-model", "other"))
    base = {"base_url": srv.base_url, **FAST}
    with create_backend("openai", model="served-model", **base) as b:
        assert (b.prompt_mode, b.api) == ("chat", "chat")  # no tokenizer: the server templates
    with create_backend("openai", model="served-model", tokenizer=str(tmp_path), **base) as b:
        assert (b.prompt_mode, b.api) == ("rendered", "completions")
    with create_backend("openai", model="served-model", tokenizer=str(tmp_path), api="chat", **base) as b:
        assert b.prompt_mode == "chat"
    ckpt = tmp_path / "run-a" / "checkpoint-100"
    ckpt.mkdir(parents=True)
    with create_backend("openai", model=str(ckpt), model_name="other", **base) as b:
        assert b.prompt_mode == "rendered" and b.model_name == "other"
    with pytest.raises(BackendError, match="which model served"):
        create_backend("openai", model=str(ckpt), **base)
    with pytest.raises(BackendError, match="'nope' is not served"):
        create_backend("openai", model="nope", **base)


def test_a_local_checkpoint_maps_to_the_only_served_model(serve, tmp_path: Path) -> None:
    srv = serve(models=("/models/ckpt",))
    with create_backend("openai", model=str(tmp_path), base_url=srv.base_url) as b:
        assert b.model_name == "/models/ckpt"


def test_completions_get_token_ids_and_chat_gets_messages(serve) -> None:
    srv = serve()
    req = GenRequest(key="k", sampling=SamplingParams(), prompt="<s>user: hi\nassistant:", prompt_ids=[5, 6, 7],
                     messages=[{"role": "user", "content": "hi"}])
    with backend(srv, prompt_as="ids") as b:
        list(b.generate([req]))
    with backend(srv, prompt_as="text") as b:
        list(b.generate([req]))
    with backend(srv, api="chat") as b:
        list(b.generate([req]))
    ids, text, chat = srv.generation_requests()
    assert ids.path == "/v1/completions" and ids.prompt == [5, 6, 7]
    assert text.path == "/v1/completions" and text.prompt == "<s>user: hi\nassistant:"
    assert chat.path == "/v1/chat/completions" and chat.messages == [{"role": "user", "content": "hi"}]


def test_reasoning_returned_separately_is_kept_in_think_markers(serve) -> None:
    srv = serve(lambda req: Answer("Paris.", reasoning="capital of France"))
    for stream in (True, False):
        res = run(srv, [gen("q")], api="chat", stream=stream)["q"]
        assert (res.text, res.reasoning) == ("Paris.", "capital of France")


@pytest.mark.parametrize("markers", [None, ("<reasoning>", "</reasoning>")])
def test_separate_reasoning_is_split_off_with_the_configured_markers(markers: Any) -> None:
    from sfteval.harness.generate import with_reasoning
    from sfteval.harness.think import ThinkMarkers, split_think

    think = ThinkMarkers(*markers) if markers else ThinkMarkers()
    result = GenResult(key="k", text="Paris.", reasoning="capital of France")
    output = with_reasoning(result, think)
    assert split_think(output, think) == ("Paris.", "capital of France", False)
    assert with_reasoning(result, None) == "<think>capital of France</think>Paris."  # --keep-think: all scored
    assert with_reasoning(GenResult(key="k", text="Paris."), think) == "Paris."


def test_usage_and_cost_are_summed(serve) -> None:
    srv = serve(lambda req: Answer("one two three", prompt_tokens=100))
    with backend(srv, price_per_1k_prompt=0.5, price_per_1k_completion=2.0) as b:
        results = list(b.generate([gen(f"p{i}") for i in range(4)]))
        usage = b.usage()
    assert all(r.prompt_tokens == 100 and r.completion_tokens == 3 for r in results)
    assert usage["prompt_tokens"] == 400 and usage["completion_tokens"] == 12 and usage["requests"] == 4
    assert usage["cost"] == pytest.approx((400 * 0.5 + 12 * 2.0) / 1000)


def test_unreachable_server_is_a_clear_error() -> None:
    with pytest.raises(BackendError, match="cannot use the server at http://127.0.0.1:9/v1.*connection"):
        create_backend("openai", model="m", base_url="http://127.0.0.1:9/v1", timeout=2)


def test_missing_key_variable_is_named(serve, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SFTEVAL_NO_SUCH_KEY", raising=False)
    with pytest.raises(BackendError, match="SFTEVAL_NO_SUCH_KEY is not set"):
        create_backend("openai", model="m", base_url=serve().base_url, api_key_env="SFTEVAL_NO_SUCH_KEY")


# -- prompt log-probs ----------------------------------------------------------------------------


def expected(ctx: list[int], cont: list[int]) -> tuple[list[float], list[bool]]:
    seq = ctx + cont
    pairs = list(zip(seq[len(ctx) - 1:], cont))
    return [toy_logprob(p, t) for p, t in pairs], [t == toy_top(p) for p, t in pairs]


SCORE = [LogprobRequest("a", [1, 2, 3], [10, 5]), LogprobRequest("b", [4], [toy_top(4), toy_top(toy_top(4))]),
         LogprobRequest("c", [9, 9, 9, 9], [1])]


@pytest.mark.parametrize("toy,method", [
    (ToyModel(), "echo"),
    (ToyModel(bos=0), "echo"),                    # the server prepends a BOS: the continuation end still aligns
    (ToyModel(max_tokens_zero=False), "echo"),    # max_tokens=0 refused: falls back to 1
    (ToyModel(), "prompt_logprobs"),
])
def test_prompt_logprobs_match_the_servers_model(serve, toy: ToyModel, method: str) -> None:
    srv = serve(toy)
    with backend(srv, logprobs_method=method) as b:
        assert b.supports_prompt_logprobs
        got = {r.key: r for r in b.logprobs(SCORE)}
        notes = b.effective_settings().get("logprobs_notes", [])
    for r in SCORE:
        values, greedy = expected(r.context_ids, r.continuation_ids)
        assert got[r.key].ok and got[r.key].token_logprobs == pytest.approx(values) and got[r.key].greedy == greedy
    assert got["b"].greedy == [True, True]
    assert bool(notes) == (not toy.max_tokens_zero)
    sent = [r.body for r in srv.generation_requests()]
    assert all(b["prompt"] in ([1, 2, 3, 10, 5], [4, toy_top(4), toy_top(toy_top(4))], [9, 9, 9, 9, 1]) for b in sent)


@pytest.mark.parametrize("toy,method", [(ToyModel(echo=False), "echo"),
                                        (ToyModel(prompt_logprobs=False), "prompt_logprobs")])
def test_a_server_without_prompt_logprobs_is_a_clear_error(serve, toy: ToyModel, method: str) -> None:
    srv = serve(toy)
    with backend(srv, logprobs_method=method) as b, pytest.raises(BackendError, match="cannot return prompt log-probs"):
        list(b.logprobs(SCORE))
    assert len(srv.generation_requests()) <= 2  # found out with one item (max_tokens 0, then 1), not one per item


def test_a_server_that_ignores_echo_is_a_clear_error(serve) -> None:
    srv = serve(lambda req: "plain answer")  # answers, but without any log-probs
    with backend(srv) as b, pytest.raises(BackendError, match="no logprobs"):
        list(b.logprobs(SCORE))
