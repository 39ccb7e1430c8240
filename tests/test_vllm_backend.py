"""The vllm backend's own logic, without vLLM: a stand-in ``vllm`` module records what the backend asks for.

(The real engine is exercised in tests/test_vllm.py; these run in seconds anywhere.)
"""

from __future__ import annotations

import json
import subprocess
import sys
import types
from dataclasses import dataclass, fields
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from sfteval.harness.backends.base import BackendError, GenRequest, LogprobRequest
from sfteval.harness.backends.vllm_backend import VLLMBackend, VLLMOptions, engine_lora_rank, timing_from_metrics
from sfteval.harness.models import SamplingParams

REPO = Path(__file__).resolve().parents[1]


class _Unset:
    def __repr__(self) -> str:
        return "UNSET"


UNSET: Any = _Unset()


@dataclass(kw_only=True)
class StandInSamplingParams:
    """``vllm.SamplingParams`` as far as the backend may use it: the real field names, and like the real one (a
    msgspec Struct) a TypeError for any other keyword, so a misspelt field fails here as it would on vLLM.

    The fields are those vLLM has had from 0.10 (the oldest supported) to 0.32 (test_vllm.py checks them against
    the real class). Unset fields stay ``UNSET`` so a test sees exactly what the backend sent."""

    n: Any = UNSET
    presence_penalty: Any = UNSET
    frequency_penalty: Any = UNSET
    repetition_penalty: Any = UNSET
    temperature: Any = UNSET
    top_p: Any = UNSET
    top_k: Any = UNSET
    min_p: Any = UNSET
    seed: Any = UNSET
    stop: Any = UNSET
    stop_token_ids: Any = UNSET
    bad_words: Any = UNSET
    include_stop_str_in_output: Any = UNSET
    ignore_eos: Any = UNSET
    max_tokens: Any = UNSET
    min_tokens: Any = UNSET
    logprobs: Any = UNSET
    prompt_logprobs: Any = UNSET
    detokenize: Any = UNSET
    skip_special_tokens: Any = UNSET
    spaces_between_special_tokens: Any = UNSET
    logit_bias: Any = UNSET
    allowed_token_ids: Any = UNSET
    extra_args: Any = UNSET
    output_kind: Any = UNSET


SAMPLING_FIELDS = tuple(f.name for f in fields(StandInSamplingParams))


def sent(params: StandInSamplingParams) -> dict[str, Any]:
    """The fields a request set explicitly."""
    return {k: v for k, v in vars(params).items() if v is not UNSET}


class FakeLLM:
    """Generates ``len(prompt)`` tokens' worth of text; token id 999 in a prompt makes the engine raise."""

    instances: list["FakeLLM"] = []

    def __init__(self, **kwargs: Any):
        if kwargs.get("data_parallel_size", 1) > 1:
            raise ValueError("LLM(data_parallel_size=2) is not supported for single-process usage")
        self.kwargs = kwargs
        self.calls: list[tuple[list[dict], Any, Any]] = []
        cfg = SimpleNamespace(max_model_len=kwargs.get("max_model_len", 64), dtype="torch.float32")
        self.llm_engine = SimpleNamespace(model_config=cfg)
        FakeLLM.instances.append(self)

    def get_default_sampling_params(self) -> Any:
        return StandInSamplingParams(  # vLLM's defaults updated from a generation_config.json
            temperature=0.7, top_p=0.8, top_k=20, min_p=0.0, repetition_penalty=1.0, presence_penalty=0.0,
            frequency_penalty=0.0, max_tokens=16, seed=None, stop=[], stop_token_ids=[])

    def generate(self, prompts: list[dict], params: Any, *, use_tqdm: bool, lora_request: Any) -> list[Any]:
        self.calls.append((prompts, params, lora_request))
        self.bars = []
        if use_tqdm:  # as vLLM does: an iterable bar while adding requests, then a counting bar over the run
            factory = use_tqdm if callable(use_tqdm) else None
            assert factory is not None
            list(factory(prompts, desc="Adding requests"))
            bar = factory(total=len(prompts), desc="Processed prompts", dynamic_ncols=True)
            bar.update(len(prompts))
            self.bars.append(bar.format_dict["elapsed"])
            bar.close()
        outs = []
        for p in prompts:
            ids = p["prompt_token_ids"]
            if 999 in ids:
                raise ValueError("token id 999 is out of vocabulary")
            plp = [None] + [{t: SimpleNamespace(logprob=-0.5 * i, rank=1 if t % 2 else 3)} for i, t in enumerate(ids)][1:]
            metrics = SimpleNamespace(first_token_latency=0.5, first_token_ts=10.0, last_token_ts=11.0,
                                      num_generation_tokens=3)
            outs.append(SimpleNamespace(prompt_token_ids=ids, prompt_logprobs=plp, metrics=metrics, outputs=[
                SimpleNamespace(text=f"answer to {len(ids)}", token_ids=[5, 6, 7], finish_reason="stop")]))
        return outs


@pytest.fixture
def fake_vllm(monkeypatch: pytest.MonkeyPatch) -> types.ModuleType:
    mod = types.ModuleType("vllm")
    mod.__version__ = "0.0-fake"  # type: ignore[attr-defined]
    mod.LLM = FakeLLM  # type: ignore[attr-defined]
    mod.SamplingParams = StandInSamplingParams  # type: ignore[attr-defined]
    lora = types.ModuleType("vllm.lora.request")
    lora.LoRARequest = lambda name, i, path: SimpleNamespace(lora_name=name, lora_int_id=i, lora_path=path)  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "vllm", mod)
    monkeypatch.setitem(sys.modules, "vllm.lora", types.ModuleType("vllm.lora"))
    monkeypatch.setitem(sys.modules, "vllm.lora.request", lora)
    FakeLLM.instances.clear()
    return mod


def backend(tmp_path: Path, **options: Any) -> VLLMBackend:
    return VLLMBackend(VLLMOptions(model=str(tmp_path), **options))


def req(key: str, ids: list[int], **sampling: Any) -> GenRequest:
    return GenRequest(key=key, sampling=SamplingParams(**sampling), prompt="x", prompt_ids=ids)


def test_one_generate_call_token_ids_and_every_sampling_field_explicit(fake_vllm: Any, tmp_path: Path) -> None:
    b = backend(tmp_path, max_model_len=64, enforce_eager=True, engine_args={"swap_space": 0})
    results = list(b.generate([req("a", [1, 2, 3]), req("b", [4, 5], temperature=0.8, top_p=0.9, seed=7,
                                                         stop=("\n",), max_new_tokens=5)]))
    llm = FakeLLM.instances[0]
    assert llm.kwargs["disable_log_stats"] is False and llm.kwargs["swap_space"] == 0  # metrics on; passthrough
    assert len(llm.calls) == 1  # one call: vLLM batches everything
    prompts, params, lora = llm.calls[0]
    assert prompts == [{"prompt_token_ids": [1, 2, 3]}, {"prompt_token_ids": [4, 5]}] and lora is None
    assert sent(params[1]) == {"n": 1, "temperature": 0.8, "top_p": 0.9, "top_k": 0, "min_p": 0.0,
                               "repetition_penalty": 1.0, "presence_penalty": 0.0, "frequency_penalty": 0.0,
                               "max_tokens": 5, "seed": 7, "stop": ["\n"]}
    assert [(r.key, r.text, r.prompt_tokens, r.completion_tokens, r.finish_reason) for r in results] == [
        ("a", "answer to 3", 3, 3, "stop"), ("b", "answer to 2", 2, 3, "stop")]
    assert (results[0].timing.ttft_s, results[0].timing.per_token_s, results[0].timing.total_s) == (0.5, 0.5, 1.5)
    s = b.effective_settings()
    assert s["engine_default_sampling"]["temperature"] == 0.7 and len(s["sampling_sent"]) == 2
    json.dumps(s)  # goes to the manifest as is


def test_the_stand_in_rejects_a_field_vllm_does_not_have() -> None:
    with pytest.raises(TypeError, match="temprature"):
        StandInSamplingParams(temprature=0.5)
    assert sent(StandInSamplingParams(temperature=0.5)) == {"temperature": 0.5}


def test_a_bad_request_is_isolated_and_a_too_long_one_never_sent(fake_vllm: Any, tmp_path: Path) -> None:
    b = backend(tmp_path, max_model_len=8)
    results = {r.key: r for r in b.generate([req("ok", [1, 2]), req("bad", [1, 999]), req("long", list(range(8)))])}
    assert results["ok"].ok and results["ok"].text == "answer to 2"
    assert "out of vocabulary" in (results["bad"].error or "")
    assert "max_model_len of 8" in (results["long"].error or "")
    assert all(len(p["prompt_token_ids"]) < 8 for call in FakeLLM.instances[0].calls for p in call[0])


def test_prompt_logprobs_of_the_continuation_with_greedy_from_rank(fake_vllm: Any, tmp_path: Path) -> None:
    b = backend(tmp_path)
    [r] = list(b.logprobs([LogprobRequest("k", context_ids=[10, 11, 12], continuation_ids=[13, 14])]))
    assert r.token_logprobs == [-1.5, -2.0] and r.greedy == [True, False]  # positions 3 and 4; rank 1 = greedy
    _, params, _ = FakeLLM.instances[0].calls[0]
    assert sent(params) == {"max_tokens": 1, "temperature": 0.0, "prompt_logprobs": 1,  # max_tokens=0 is rejected
                            "detokenize": False}
    empty = list(b.logprobs([LogprobRequest("e", context_ids=[], continuation_ids=[1])]))
    assert "empty context" in (empty[0].error or "")


def test_lora_adapter_on_every_request_and_prompt_logprobs_refused(fake_vllm: Any, tmp_path: Path) -> None:
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text(json.dumps({"r": 12, "peft_type": "LORA"}))
    b = backend(tmp_path, lora_path=str(adapter))
    llm = FakeLLM.instances[0]
    assert (llm.kwargs["enable_lora"], llm.kwargs["max_lora_rank"], llm.kwargs["max_loras"]) == (True, 16, 1)
    list(b.generate([req("a", [1, 2])]))
    assert llm.calls[0][2].lora_path == str(adapter.resolve()) and llm.calls[0][2].lora_name == "adapter"
    with pytest.raises(BackendError, match=r"vllm#29955"):
        list(b.logprobs([LogprobRequest("k", [1], [2])]))
    assert engine_lora_rank(8) == 8 and engine_lora_rank(33) == 64 and engine_lora_rank(None) == 16


def test_unsupported_data_parallel_is_one_clear_error(fake_vllm: Any, tmp_path: Path) -> None:
    with pytest.raises(BackendError, match=r"data_parallel_size=2.*--ray local --replicas N.*--backend openai"):
        backend(tmp_path, data_parallel_size=2)


def test_timing_without_metrics_and_from_old_style_metrics() -> None:
    assert timing_from_metrics(None, 5).ttft_s is None  # disable_log_stats=True: no timing, no error
    old = SimpleNamespace(arrival_time=100.0, first_token_time=100.25, last_token_time=101.25)
    t = timing_from_metrics(old, 5)
    assert (t.ttft_s, t.per_token_s, t.total_s) == (0.25, 0.25, 1.25)


def test_without_vllm_installed_one_clear_error(tmp_path: Path) -> None:
    import importlib.util

    if importlib.util.find_spec("vllm") is not None:
        pytest.skip("vllm is installed here")
    (tmp_path / "ckpt").mkdir()
    proc = subprocess.run([sys.executable, "-m", "sfteval.harness.cli", "run", "--backend", "vllm", "--model",
                           str(tmp_path / "ckpt"), "--suite", str(REPO / "suites" / "demo"), "--out", str(tmp_path)],
                          capture_output=True, text=True, cwd=REPO, timeout=300)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr and "pip install 'sfteval[vllm]'" in proc.stderr


def test_cli_lists_every_backend() -> None:
    from click.testing import CliRunner

    from sfteval.harness.cli import main

    help_text = CliRunner().invoke(main, ["run", "--help"]).output
    assert all(name in help_text for name in ("hf (transformers)", "vllm (vLLM", "openai (any"))
    listed = CliRunner().invoke(main, ["backends"]).output
    assert {line.split()[0] for line in listed.splitlines()} >= {"hf", "vllm", "openai"}


def test_engine_progress_bar_follows_quiet_and_tqdm_disable(fake_vllm: Any, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TQDM_DISABLE", raising=False)
    b = backend(tmp_path)
    assert [r.ok for r in b.generate([req("a", [1, 2])])] == [True]
    assert len(FakeLLM.instances[-1].bars) == 1  # vLLM's bar ran (both of its call shapes)
    b.progress = False  # --quiet
    list(b.generate([req("b", [1, 2])]))
    assert FakeLLM.instances[-1].bars == []
    b.progress = True
    monkeypatch.setenv("TQDM_DISABLE", "1")  # a disabled bar would make vLLM divide by a zero elapsed time
    list(b.generate([req("c", [1, 2])]))
    assert FakeLLM.instances[-1].bars == []
    assert backend(tmp_path, engine_progress=False)._engine_bar() is False
