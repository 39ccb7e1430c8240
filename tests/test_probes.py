"""Probes, fast: the context/continuation boundary, exact batched scoring, records, metrics, CLI wiring.

A randomly initialised 2-layer Llama with a real byte-level BPE tokenizer and a ChatML template is built
in a second, so every test here runs real transformers code without training anything.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Iterator

import pytest

from sfteval.harness.backends.base import Backend, BackendError, GenRequest, GenResult, LogprobRequest, LogprobResult
from sfteval.harness.models import Item
from sfteval.harness.probes import ProbeConfig, compute_probes, plan_probes
from sfteval.harness.render import Renderer, context_continuation_batch, context_continuation_ids, move_trailing_whitespace

CHATML = (
    "{%- for m in messages %}{{- '<|im_start|>' + m['role'] + '\\n' + m['content'] + '<|im_end|>\\n' }}{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)
CORPUS = ["The capital of France is Paris.", "positive negative neutral", "What is 2+2? 4", "hello world\n\n",
          "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n", "Answer with one word.", "  indented  text "]


def _tokenizer(bos: bool = False, metaspace: bool = False):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    if metaspace:  # SentencePiece-style: a word-start marker, prepended to the first word of every encode
        tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first")
        tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="first")
    else:
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<s>"]
    trainer = trainers.BpeTrainer(vocab_size=1000, special_tokens=specials, show_progress=False, min_frequency=1,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet() if not metaspace else [])
    tok.train_from_iterator(CORPUS * 3, trainer)
    if bos:
        bos_id = tok.token_to_id("<s>")
        tok.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", bos_id)])
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>",
                                   bos_token="<s>" if bos else None, chat_template=CHATML,
                                   clean_up_tokenization_spaces=False)


@pytest.fixture(scope="module")
def tiny_lm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real HF checkpoint folder with random weights (2 layers, hidden 32)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    path = tmp_path_factory.mktemp("tiny-lm")
    tok = _tokenizer()
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128, bos_token_id=None,
                         eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    model = LlamaForCausalLM(config)
    with torch.no_grad():  # sharper distributions than the default init, so greedy flags vary
        model.lm_head.weight.mul_(40)
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def hf(tiny_lm: Path):
    from sfteval.harness.backends import create_backend

    with create_backend("hf", model=str(tiny_lm), device="cpu", dtype="float32") as backend:
        yield backend


# -- the boundary helper ---------------------------------------------------------------------------------
def test_boundary_is_the_joint_split_when_no_token_straddles_it() -> None:
    r = Renderer(_tokenizer())
    ctx = r.render([{"role": "user", "content": "hi"}]).text
    c_ids, x_ids = context_continuation_ids(r, ctx, "Paris<|im_end|>")
    assert c_ids == r.encode_prompt(ctx)  # the exact generation prompt
    assert c_ids + x_ids == r.tokenizer(ctx + "Paris<|im_end|>", add_special_tokens=False)["input_ids"]
    assert x_ids[-1] == r.tokenizer.convert_tokens_to_ids("<|im_end|>")


def test_boundary_never_merges_across_and_keeps_the_prompt_tokens() -> None:
    r = Renderer(_tokenizer())
    joint = r.tokenizer("hello world\n\n", add_special_tokens=False)["input_ids"]
    c_ids, x_ids = context_continuation_ids(r, "hello world\n", "\n")
    assert c_ids == r.encode_prompt("hello world\n")
    assert x_ids == r.encode_continuation("\n")
    assert c_ids + x_ids != joint  # "\n\n" is one token jointly: the joint split would change the context


def test_boundary_has_no_phantom_space_with_a_sentencepiece_style_tokenizer() -> None:
    r = Renderer(_tokenizer(metaspace=True))
    ctx = r.render([{"role": "user", "content": "hi"}]).text
    alone = r.tokenizer.convert_ids_to_tokens(r.encode_continuation("Paris"))
    c_ids, x_ids = context_continuation_ids(r, ctx, "Paris")
    assert alone[0].startswith("▁")  # tokenized alone, the answer would get a word-start marker it never has
    assert not r.tokenizer.convert_ids_to_tokens(x_ids)[0].startswith("▁")
    assert c_ids + x_ids == r.tokenizer(ctx + "Paris", add_special_tokens=False)["input_ids"]


def test_boundary_puts_exactly_one_bos() -> None:
    r = Renderer(_tokenizer(bos=True))
    bos = r.tokenizer.bos_token_id
    c_ids, x_ids = context_continuation_ids(r, "hello", " world")
    assert c_ids[0] == bos and c_ids.count(bos) == 1 and bos not in x_ids
    c_ids, _ = context_continuation_ids(r, "<s>hello", " world")  # a template that writes BOS itself
    assert c_ids.count(bos) == 1


def test_lm_eval_whitespace_convention() -> None:
    assert move_trailing_whitespace("a\n \n", "b") == ("a", "\n \nb")
    r = Renderer(_tokenizer())
    (c1, x1), = context_continuation_batch(r, [("hello world\n", "Paris")], whitespace="lm-eval")
    assert c1 == r.encode_prompt("hello world") and r.tokenizer.decode(x1) == "\nParis"
    with pytest.raises(ValueError):
        context_continuation_ids(r, "", "x")


# -- exact batched scoring -------------------------------------------------------------------------------
def _naive(model, ctx: list[int], cont: list[int]) -> tuple[list[float], list[bool]]:
    """One unpadded forward per request, full logits: the obvious reference implementation."""
    import torch

    with torch.no_grad():
        logits = model(torch.tensor([ctx + cont])).logits[0].float()
    logp = torch.log_softmax(logits, -1)[len(ctx) - 1: len(ctx) + len(cont) - 1]
    t = torch.tensor(cont)
    return logp[torch.arange(len(cont)), t].tolist(), (logp.argmax(-1) == t).tolist()


def _requests(hf) -> list[LogprobRequest]:
    import torch

    r = Renderer(hf.tokenizer)
    reqs, texts = [], []
    for q, ref, choices in [("What is 2+2?", "4", ["4", "5", "four"]), ("hi", "hello world", ["hello", "hello world"]),
                            ("The capital of France?", "Paris is the capital.", [])]:
        ctx = r.render([{"role": "user", "content": q}]).text
        texts += [(ctx, ref + "<|im_end|>")] + [(ctx, c) for c in choices] + [(ctx, ref + "<|im_end|>")]  # a duplicate
    for i, (c, x) in enumerate(context_continuation_batch(r, texts)):
        reqs.append(LogprobRequest(key=str(i), context_ids=c, continuation_ids=x))
    ctx = reqs[0].context_ids
    out = hf.model.generate(torch.tensor([ctx]), max_new_tokens=3, do_sample=False, pad_token_id=hf.pad_id)
    reqs.append(LogprobRequest(key="greedy", context_ids=ctx, continuation_ids=out[0, len(ctx):].tolist()))
    return reqs


@pytest.mark.parametrize("split", [True, False])
@pytest.mark.parametrize("budget", [16, 8192])
def test_hf_scoring_equals_one_unpadded_forward_per_request(hf, split: bool, budget: int) -> None:
    from sfteval.harness.backends.hf_scoring import TeacherForcedScorer

    scorer = TeacherForcedScorer(hf.model, hf.pad_id, "cpu", max_tokens=budget, max_rows=64)
    scorer._split = split  # both the scored-rows-only head and the full-forward fallback
    reqs = _requests(hf)
    got = {r.key: r for r in scorer.score(reqs)}
    assert set(got) == {r.key for r in reqs}
    greedy_seen = set()
    for r in reqs:
        lp, greedy = _naive(hf.model, r.context_ids, r.continuation_ids)
        assert got[r.key].ok
        assert got[r.key].token_logprobs == pytest.approx(lp, abs=1e-5)
        assert got[r.key].greedy == greedy
        greedy_seen.update(greedy)
    assert greedy_seen == {True, False}


def test_hf_split_head_self_check_accepts_llama(hf) -> None:
    list(hf.logprobs(_requests(hf)[:1]))
    assert hf._scorer._split is True


def test_batches_trade_padding_against_forwards() -> None:
    from sfteval.harness.backends.hf_scoring import Host, token_batches

    hosts = [Host([1] * n, [2]) for n in (100, 20, 19, 18, 17)]
    widths = lambda bs: [[len(h.input_ids) for h in b] for b in bs]  # noqa: E731
    assert widths(token_batches(hosts, 8192, 64, overhead=10)) == [[100], [20, 19, 18, 17]]  # no outlier padding
    assert widths(token_batches(hosts, 8192, 64, overhead=1000)) == [[100, 20, 19, 18, 17]]  # forwards are dear
    assert widths(token_batches(hosts, 8192, 2, overhead=1000)) == [[100], [20, 19], [18, 17]]  # rows bounded
    assert widths(token_batches(hosts, 40, 64, overhead=1000)) == [[100], [20, 19], [18, 17]]  # tokens bounded


def test_plan_shares_one_forward_between_choices_of_one_question() -> None:
    from sfteval.harness.backends.hf_scoring import plan

    ctx = [1, 2, 3]
    reqs = [LogprobRequest("ref", ctx, [7, 8, 9]), LogprobRequest("a", ctx, [7]), LogprobRequest("b", ctx, [5]),
            LogprobRequest("c", ctx, [7, 4]), LogprobRequest("other", [1, 2], [7]), LogprobRequest("bad", [], [1])]
    hosts, errors = plan(reqs, max_length=None)
    assert [e.key for e in errors] == ["bad"]
    assert sorted(len(h.members) for h in hosts) == [1, 4]  # ref hosts a, b (last token differs) and c
    too_long, errors = plan([LogprobRequest("x", [1] * 10, [2] * 10)], max_length=8)
    assert not too_long and "longer than the model's maximum" in (errors[0].error or "")


# -- records -------------------------------------------------------------------------------------------
class FakeBackend(Backend):
    """log P(token) = -token_id / 100 for every continuation token; greedy iff the token id is even."""

    name = "fake"
    supports_prompt_logprobs = True

    def __init__(self, fail_key_suffix: str = "") -> None:
        self.fail = fail_key_suffix
        self.calls = 0

    def generate(self, requests: list[GenRequest]) -> Iterator[GenResult]:
        for r in requests:
            yield GenResult(key=r.key, text="")

    def logprobs(self, requests: list[LogprobRequest]) -> Iterator[LogprobResult]:
        self.calls += len(requests)
        for r in reversed(requests):  # any order
            if self.fail and r.key.endswith(self.fail):
                yield LogprobResult(key=r.key, error="boom")
            else:
                yield LogprobResult(key=r.key, token_logprobs=[-t / 100 for t in r.continuation_ids],
                                    greedy=[t % 2 == 0 for t in r.continuation_ids])


TWO_TURNS = [{"role": "user", "content": "hi"}, {"role": "user", "content": "2+2?"}]
ITEMS = [
    Item(id="q1", task_type="knowledge/geo", prompt="The capital of France?", reference="Paris"),
    Item(id="c1", task_type="cls/sent", prompt="hello world", reference="positive",
         choices=["positive", "negative", "neutral"], label="negative"),
    Item(id="m1", task_type="chat/multi", messages=TWO_TURNS, reference=["hello", "4"]),
    Item(id="m2", task_type="chat/multi", messages=TWO_TURNS, reference="4"),  # earlier answer unknown: no probe
    Item(id="n1", task_type="open/none", prompt="Write a poem."),
]


def test_records_from_any_backend() -> None:
    r = Renderer(_tokenizer())
    recs = {(x.item_id, x.kind): x for x in compute_probes(FakeBackend(), r, ITEMS)}
    assert set(recs) == {("q1", "reference"), ("c1", "reference"), ("c1", "choice"), ("m1", "reference")}
    ref = recs[("q1", "reference")]
    ids = r.tokenizer("Paris<|im_end|>", add_special_tokens=False)["input_ids"]
    assert ref.n_tokens == len(ids) and ref.sum_logprob == pytest.approx(-sum(ids) / 100)
    assert ref.mean_logprob == pytest.approx(ref.sum_logprob / ref.n_tokens)
    assert ref.greedy == all(t % 2 == 0 for t in ids)
    assert ref.details["continuation"] == "Paris<|im_end|>"
    ch = recs[("c1", "choice")]
    sums = {c: -sum(r.tokenizer(c, add_special_tokens=False)["input_ids"]) / 100 for c in ITEMS[1].choices}
    assert ch.choices == pytest.approx(sums)
    assert ch.predicted == max(sums, key=sums.get) and ch.correct == (ch.predicted == "negative")
    norm = {c: sums[c] / ch.details["n_tokens"][c] for c in sums}
    assert ch.predicted_normalized == max(norm, key=norm.get)
    assert ch.details["margin"] == pytest.approx(sums["negative"] - max(sums["positive"], sums["neutral"]))
    m1 = plan_probes([ITEMS[2]], r)[0]
    assert "hello<|im_end|>" in m1.context and m1.context.endswith("2+2?<|im_end|>\n<|im_start|>assistant\n")


def test_config_changes_the_continuation_and_the_key() -> None:
    r = Renderer(_tokenizer())
    default = {p.kind: p for p in plan_probes(ITEMS[:2], r)}
    bare = {p.kind: p for p in plan_probes(ITEMS[:2], r, ProbeConfig(end_of_turn=False, choice_end_of_turn=True))}
    assert default["reference"].continuations == ["positive<|im_end|>"]
    assert bare["reference"].continuations == ["positive"]
    assert default["choice"].continuations[0] == "positive" and bare["choice"].continuations[0] == "positive<|im_end|>"
    assert default["reference"].key != bare["reference"].key


def test_failed_requests_become_error_records_and_resume_skips_done() -> None:
    r = Renderer(_tokenizer())
    recs = list(compute_probes(FakeBackend(fail_key_suffix=":1"), r, ITEMS[:2]))
    bad = [x for x in recs if x.status == "error"]
    assert [(x.item_id, x.kind, x.error) for x in bad] == [("c1", "choice", "boom")]
    backend = FakeBackend()
    again = list(compute_probes(backend, r, ITEMS[:2], done={x.key for x in recs if x.status == "ok"}))
    assert [(x.item_id, x.kind) for x in again] == [("c1", "choice")] and backend.calls == 3


# -- metrics -------------------------------------------------------------------------------------------
def test_per_item_and_per_token_aggregates() -> None:
    from sfteval.harness.models import ProbeResult
    from sfteval.harness.scoring import item_frame, summarize
    from sfteval.harness.stages.base import RunRecords

    items = [Item(id=f"i{k}", task_type="t/a", prompt="p", reference="r") for k in range(2)]
    probes = {
        "a": ProbeResult(key="a", item_id="i0", task_type="t/a", kind="reference", sum_logprob=-1.0, n_tokens=1,
                         mean_logprob=-1.0, greedy=True),
        "b": ProbeResult(key="b", item_id="i1", task_type="t/a", kind="reference", sum_logprob=-9.0, n_tokens=9,
                         mean_logprob=-1.0, greedy=False),
    }
    m = summarize(item_frame(RunRecords(items=items, probes=probes)))["task_types"]["t/a"].metrics
    assert m["probe:ref_sum"] == -5.0 and m["probe:ref_mean"] == -1.0 and m["probe:ref_greedy"] == 0.5
    assert m["probe:ref_token_mean"] == pytest.approx(-1.0) and m["probe:ref_sum_total"] == -10.0
    probes["b"] = probes["b"].model_copy(update={"mean_logprob": -2.0, "sum_logprob": -18.0})
    m = summarize(item_frame(RunRecords(items=items, probes=probes)))["task_types"]["t/a"].metrics
    assert m["probe:ref_mean"] == -1.5 and m["probe:ref_token_mean"] == pytest.approx(-19 / 10)  # per item != per token
    bare = summarize(item_frame(RunRecords(items=items)))["overall"].metrics
    assert not any(k.startswith("probe:") for k in bare)


# -- the stage and the CLI -----------------------------------------------------------------------------
def _sfteval(*args: str, check: bool = True):
    """The real CLI, in-process (no second torch import): exit code, stdout and stderr."""
    from click.testing import CliRunner

    from sfteval.harness.cli import main

    result = CliRunner().invoke(main, list(args))
    if check and result.exit_code != 0:
        raise AssertionError(f"sfteval {' '.join(args)} exited {result.exit_code}\n{result.output}\n{result.stderr}"
                             ) from result.exception
    return SimpleNamespace(returncode=result.exit_code, stdout=result.stdout, stderr=result.stderr)


@pytest.fixture(scope="module")
def suite_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("suite") / "s.jsonl"
    path.write_text("".join(json.dumps(it.model_dump(exclude_none=True)) + "\n" for it in ITEMS[:3]))
    return path


def plain_choice_logprobs(model_dir: Path, prompt: str, choices: list[str]) -> dict[str, float]:
    """sum log P(choice | chat prompt) per choice from one forward pass of plain transformers (no sfteval code)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, torch_dtype=torch.float32).eval()
    context = tok.apply_chat_template([{"role": "user", "content": prompt}], tokenize=False,
                                      add_generation_prompt=True)
    ctx = tok(context, add_special_tokens=False)["input_ids"]
    out = {}
    for choice in choices:
        ids = tok(context + choice, add_special_tokens=False)["input_ids"]
        assert ids[:len(ctx)] == ctx and len(ids) > len(ctx)  # no merge across the boundary
        with torch.no_grad():
            logp = model(torch.tensor([ids])).logits[0].log_softmax(-1)
        out[choice] = sum(logp[i - 1, ids[i]].item() for i in range(len(ctx), len(ids)))
    return out


def test_probe_command_stores_a_run_and_resumes_without_recomputing(tiny_lm: Path, suite_file: Path,
                                                                    tmp_path: Path) -> None:
    args = ["probe", "--model", str(tiny_lm), "--suite", str(suite_file), "--out", str(tmp_path), "--run-name", "p",
            "--device", "cpu"]
    proc = _sfteval(*args)
    assert "probe:ref_mean" in proc.stdout
    run = tmp_path / "p"
    lines = (run / "probes.jsonl").read_text().splitlines()
    assert len(lines) == 4 and not (run / "generations.jsonl").exists()
    summary = json.loads((run / "summary.json").read_text())
    assert summary["task_types"]["knowledge/geo"]["metrics"]["probe:ref_tokens"] >= 1
    # the choice probe's pick, against log-probs computed here with plain transformers
    truth = plain_choice_logprobs(tiny_lm, ITEMS[1].prompt, ITEMS[1].choices)
    [choice] = [json.loads(line) for line in lines if json.loads(line)["kind"] == "choice"]
    assert choice["choices"] == pytest.approx(truth, abs=1e-4)
    expected = float(max(truth, key=truth.get) == ITEMS[1].label)
    assert summary["task_types"]["cls"]["metrics"]["probe:choice_acc"] == expected
    assert summary["probes"]["counts"] == {"reference": {"ok": 3, "error": 0}, "choice": {"ok": 1, "error": 0}}
    assert json.loads((run / "manifest.json").read_text())["status"] == "complete"
    _sfteval(*args, "--resume", "p")
    assert (run / "probes.jsonl").read_text().splitlines() == lines  # nothing recomputed
    changed = _sfteval(*args, "--resume", "p", "--no-eot", check=False)  # records of two settings must not mix
    assert changed.returncode == 2 and "probe settings changed" in changed.stderr


def test_run_probes_by_default_and_not_with_no_probes(tiny_lm: Path, suite_file: Path, tmp_path: Path) -> None:
    base = ["run", "--model", str(tiny_lm), "--suite", str(suite_file), "--out", str(tmp_path), "--device", "cpu",
            "--max-new-tokens", "2", "-q"]
    _sfteval(*base, "--run-name", "a")
    assert len((tmp_path / "a" / "probes.jsonl").read_text().splitlines()) == 4
    _sfteval(*base, "--run-name", "b", "--no-probes")
    assert not (tmp_path / "b" / "probes.jsonl").exists()
    metrics = json.loads((tmp_path / "b" / "summary.json").read_text())["overall"]["metrics"]
    assert not any(k.startswith("probe:") for k in metrics)


def test_a_backend_without_prompt_logprobs_is_skipped_in_run_and_an_error_in_probe(tmp_path: Path) -> None:
    from sfteval.harness.probes.options import ProbeOptions
    from sfteval.harness.probes.stage import run_probe_stage
    from sfteval.harness.store import RunStore

    class NoScores(FakeBackend):
        supports_prompt_logprobs = False

    class ChatOnlyServer(FakeBackend):  # claims support, finds out on the first request (openai backend)
        def logprobs(self, requests: list[LogprobRequest]) -> Iterator[LogprobResult]:
            raise BackendError("the server has no /v1/completions")
            yield  # pragma: no cover

    notes: list[str] = []
    ctx = SimpleNamespace(backend=NoScores(), renderer=Renderer(_tokenizer()), log=notes.append, items=ITEMS,
                          store=RunStore(tmp_path), options=SimpleNamespace(progress=False))
    run_probe_stage(ctx, ProbeOptions())  # type: ignore[arg-type]
    assert notes == ["warning: probes skipped: the fake backend cannot score prompt tokens "
                     "(pass --no-probes to silence this)"]
    with pytest.raises(BackendError, match="cannot probe"):
        run_probe_stage(ctx, ProbeOptions(required=True))  # type: ignore[arg-type]
    ctx.backend = ChatOnlyServer()
    run_probe_stage(ctx, ProbeOptions())  # type: ignore[arg-type]
    assert notes[-1] == "warning: probes skipped: the server has no /v1/completions"
    assert not (tmp_path / "probes.jsonl").exists()
    with pytest.raises(BackendError, match="no /v1/completions"):
        run_probe_stage(ctx, ProbeOptions(required=True))  # type: ignore[arg-type]


def test_continuation_probe_pieces() -> None:
    from sfteval.harness.probes.continuation import ContinuationConfig, Side, base_pair, build_record, knows, selected

    cfg = ContinuationConfig()
    fact = Item(id="f", task_type="misc", prompt="<t1> likes?", reference="<t2>",
                meta={"continuation_prefix": "<t1> likes "})
    qa = Item(id="q", task_type="knowledge/geo", prompt="Capital of Australia?", reference="Canberra")
    assert [it.id for it in selected([fact, qa] + ITEMS, cfg)] == ["f", "q", "q1"]  # m1 is multi-turn, c1 not knowledge
    assert base_pair(fact, cfg) == ("<t1> likes ", "<t2>")
    assert base_pair(qa, cfg) == ("Question: Capital of Australia?\nAnswer:", " Canberra")
    assert knows("7", "7") and not knows("17", "7") and knows("答案是北京。", "北京")
    assert knows(" Canberra.\nQuestion: ...", "Canberra", first_line=True)
    assert not knows("\n\nx\nCanberra", "Canberra", first_line=True)
    rec = build_record(qa, "k", "prefix", Side(" Canberra.", -1.0, 2, True), Side("Sydney", -5.0, 2, False), "base")
    d = rec.details
    assert d["lost"] and d["base_knows"] and not d["sft_correct"] and d["weaker"] and d["logprob_gap"] == -4.0
    err = build_record(qa, "k", "prefix", Side(error="boom"), Side("x", -1.0, 1, True), "base")
    assert err.status == "error" and "boom" in (err.error or "")


@pytest.mark.parametrize("name, knowledge, first", [
    ("general-en", "knowledge", ("en-know-001", "Ice floats on water because it is", " less dense")),
    ("general-zh", "知识问答", ("zh-know-001", "水的化学式是", "H2O")),
])
def test_continuation_probe_selects_the_builtin_knowledge_items(name: str, knowledge: str, first: tuple) -> None:
    """By default both built-in suites' knowledge items are probed, each with its own prefix and short answer."""
    from sfteval.harness.probes.continuation import ContinuationConfig, base_pair, selected
    from sfteval.harness.suite import load_suite

    suite = load_suite(name)
    chosen = selected(suite.items, ContinuationConfig(), suite.sources)
    assert len(chosen) >= 10 and {it.task_type.split("/")[0] for it in chosen} == {knowledge}
    assert len(chosen) == sum(it.task_type.split("/")[0] == knowledge for it in suite.items)
    pairs = {it.id: base_pair(it, ContinuationConfig()) for it in chosen}
    assert pairs[first[0]] == first[1:]
    for it in chosen:  # the suite's prefix, continued by the short answer (not the long reference)
        prefix, answer = pairs[it.id]
        assert prefix == it.meta["continuation_prefix"] and answer.strip() == it.meta["short_answer"]


def test_continuation_prefix_joins_and_templates() -> None:
    from sfteval.harness.probes.continuation import ContinuationConfig, base_pair

    cfg = ContinuationConfig()
    zh = Item(id="z", task_type="知识问答/地理", prompt="中国的首都是哪座城市？", reference="北京。北京是中国的首都。",
              meta={"short_answer": "北京"})
    assert base_pair(zh, cfg) == ("问题：中国的首都是哪座城市？\n答案：", "北京")  # Chinese template, no space
    en = Item(id="e", task_type="knowledge", prompt="Capital of Japan?", reference="Tokyo.",
              meta={"continuation_prefix": "The capital of Japan is", "short_answer": "Tokyo"})
    assert base_pair(en, cfg) == ("The capital of Japan is", " Tokyo")  # a word needs a space after it
    add = Item(id="a", task_type="math", prompt="3+4=", reference="7", meta={"continuation_prefix": "3+4="})
    assert base_pair(add, cfg) == ("3+4=", "7")  # verbatim after a symbol
    assert base_pair(add, ContinuationConfig(task_types=("nothing",))) == ("3+4=", "7")


def test_knows_uses_the_short_answer() -> None:
    from sfteval.harness.probes.continuation import Side, build_record, knows

    item = Item(id="k", task_type="knowledge/geography", prompt="What is the capital of Australia?",
                reference="Canberra. Sydney is the largest city, but Canberra is the seat of government.",
                meta={"continuation_prefix": "The capital of Australia is", "short_answer": "Canberra"})
    base = Side(" Canberra, which was chosen as a compromise.\nThe capital of", -0.5, 3, True)
    rec = build_record(item, "k", "The capital of Australia is", base, Side("It is Sydney.", -4.0, 3, False), "b")
    assert rec.details["base_knows"] and rec.details["lost"] and rec.details["answer"] == "Canberra"
    right = build_record(item, "k", "p", base, Side("The capital is Canberra.", -1.0, 3, True), "b")
    assert right.details["sft_correct"] and not right.details["lost"]
    # without a short answer the whole reference must appear, which a base continuation never does
    bare = item.model_copy(update={"meta": {"continuation_prefix": "The capital of Australia is"}})
    assert not build_record(bare, "k", "p", base, Side("Sydney", -4.0, 3, False), "b").details["base_knows"]
    # spacing next to Chinese characters does not matter; a longer number is not the answer
    assert knows("约为每秒30万公里。", "30 万") and knows("光速约 30 万千米每秒", "30万千米")
    assert not knows("约为每秒130万公里", "30 万") and not knows("1989年", "198")
    # punctuation is a boundary, not nothing
    assert knows("珠穆朗玛峰。2020 年测得", "珠穆朗玛峰") and knows("Jefferson's draft", "Jefferson")


def test_bad_continuation_meta_names_file_line_and_field(tmp_path: Path) -> None:
    from sfteval.harness.probes.continuation import ContinuationConfig, selected
    from sfteval.harness.suite import SuiteError, load_suite

    path = tmp_path / "s.jsonl"
    rows = [{"id": "ok", "task_type": "knowledge", "prompt": "Q?", "reference": "A"},
            {"id": "bad", "task_type": "knowledge", "prompt": "Q2?", "reference": "B", "meta": {"short_answer": 5}}]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    suite = load_suite(str(path))
    with pytest.raises(SuiteError) as err:
        selected(suite.items, ContinuationConfig(), suite.sources)
    assert f"{path}:2" in str(err.value) and "meta.short_answer" in str(err.value) and "'bad'" in str(err.value)
    assert [it.id for it in selected(suite.items, ContinuationConfig(task_types=("other",)), suite.sources)] == []
