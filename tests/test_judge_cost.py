"""Judge cost: --dry-run's numbers against what a real run then sends, and the --max-judge-calls / --max-cost caps.

The judge is the scripted judge behind the loopback OpenAI server (tests/judge_server.py); its request log is
the truth. Token counts are computed here from the logged requests with a real (tiny, locally trained) tokenizer,
and the server reports usage with that same tokenizer, as a vLLM server would.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from judge_server import JudgeServer, judge, prompt_of  # noqa: F401 (fixture)
from scripted_judge import ScriptedJudge
from servers import Answer, Request
from sfteval.harness.judging.spec import JudgeError
from sfteval.harness.runfolder import RunFolder
from sfteval.harness.runner import estimate_rejudge, rejudge
from test_judge_stage import ITEMS, V1, make_run

PRICE_IN, PRICE_OUT = 0.5, 0.1  # USD per 1000 tokens: large, so a few requests make a visible cost
CORPUS = ["<tok_1> likes <tok_5>", "the red fox runs fast", "2+3=5", "Please act as an impartial judge",
          "Evaluate the answer with the reference answer", "factuality", "overall", "score"] * 20


@pytest.fixture(scope="module")
def tokenizer_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A byte-level BPE tokenizer with a ChatML template, trained here in a second (no hub, no checkpoint)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    tok.train_from_iterator(CORPUS, trainers.BpeTrainer(vocab_size=400, special_tokens=["<|im_start|>", "<|im_end|>"],
                                                        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    hf = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|im_end|>")
    hf.chat_template = ("{% for m in messages %}{{ '<|im_start|>' + m['role'] + '\\n' + m['content'] + '<|im_end|>\\n' }}"
                        "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}")
    out = tmp_path_factory.mktemp("tok")
    hf.save_pretrained(out)
    return out


def hand_count(tokenizer_dir: Path, messages: list[dict[str, str]]) -> int:
    """The prompt tokens of a logged request, counted here: the chat template applied to the sent messages."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    ids = tok.apply_chat_template(messages, tokenize=True, add_generation_prompt=True)
    return len(ids["input_ids"] if hasattr(ids, "keys") else ids)


class CountingJudge:
    """The scripted judge, reporting usage as a server with this tokenizer would (prompt tokens by the template)."""

    def __init__(self, tokenizer_dir: Path):
        self.tokenizer_dir, self.scripted = tokenizer_dir, ScriptedJudge()
        self.completion: list[int] = []

    def __call__(self, req: Request) -> Answer:
        answer = Answer(self.scripted(req), prompt_tokens=hand_count(self.tokenizer_dir, req.messages))
        self.completion.append(len(answer.pieces()))
        return answer


def priced(judge: JudgeServer, tokenizer_dir: Path, **kw: Any) -> Any:
    spec = judge.spec(price_per_1k_prompt=PRICE_IN, price_per_1k_completion=PRICE_OUT, **kw.pop("options", {}))
    spec.tokenizer = str(tokenizer_dir)
    for k, v in kw.items():
        setattr(spec, k, v)
    return spec


def files_of(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_dry_run_numbers_equal_what_the_run_then_sends(tmp_path: Path, judge: JudgeServer, tokenizer_dir: Path) -> None:
    counting = CountingJudge(tokenizer_dir)
    judge.use(counting)
    store = make_run(tmp_path, "v1", V1, samples=2)  # two answer samples with the same text: one call each
    folder = RunFolder(store.path)
    spec = priced(judge, tokenizer_dir, samples=3)
    before = files_of(store.path)
    est = estimate_rejudge(folder, spec).as_dict()
    assert judge.srv.requests == [] and files_of(store.path) == before  # nothing sent, nothing written

    rejudge(folder, spec, log=lambda m: None)
    sent = judge.requests
    prompt_tokens = sum(hand_count(tokenizer_dir, r.messages) for r in sent)
    assert est["calls"] == len(sent) == 3 * len(ITEMS)
    assert est["samples"] == 2 * 3 * len(ITEMS) and est["cached"] == 0 and est["stored"] == 0
    assert est["prompt_tokens"] == prompt_tokens and est["prompt_tokens_exact"]
    assert est["max_completion_tokens"] == sum(r.body["max_tokens"] for r in sent)
    assert est["max_cost"] == pytest.approx((prompt_tokens * PRICE_IN + est["max_completion_tokens"] * PRICE_OUT)
                                            / 1000)
    per_tt = {tt: sum(hand_count(tokenizer_dir, r.messages) for r in sent if tt in prompt_of(r))
              for tt in ("<tok_1> likes?", "2+3=")}
    assert est["task_types"]["knowledge"]["calls"] == 6 and est["task_types"]["math/addition"]["calls"] == 3
    assert est["task_types"]["math/addition"]["prompt_tokens"] == per_tt["2+3="]

    usage = folder.manifest().usage["judge"]  # what the server reported, summed from the records
    completion = sum(counting.completion)
    assert (usage["calls"], usage["prompt_tokens"], usage["completion_tokens"]) == (len(sent), prompt_tokens,
                                                                                    completion)
    assert usage["cost"] == pytest.approx((prompt_tokens * PRICE_IN + completion * PRICE_OUT) / 1000)
    assert usage["cached"] == 3 * len(ITEMS)  # the second answer sample of every item: the same prompt, no call
    assert usage["task_types"]["math/addition"]["calls"] == 3
    report = (store.path / "report.md").read_text()
    assert "### Judge cost" in report and f"{len(sent)} judge calls" in report

    again = estimate_rejudge(folder, spec, overrides={}).as_dict()
    assert again["calls"] == 0 and again["stored"] == 2 * 3 * len(ITEMS)
    more = estimate_rejudge(folder, priced(judge, tokenizer_dir, samples=4)).as_dict()
    assert more["calls"] == len(ITEMS) and more["observed_completion_mean"] == pytest.approx(completion / len(sent))
    assert len(judge.requests) == len(sent)


def test_max_judge_calls_stops_dispatch_and_a_later_run_continues(tmp_path: Path, judge: JudgeServer) -> None:
    store = make_run(tmp_path, "v1", V1)
    folder = RunFolder(store.path)
    spec = judge.spec(k=3, concurrency=8)
    spec.max_calls = 4
    counts = rejudge(folder, spec, log=lambda m: None)
    assert len(judge.requests) == 4
    assert counts["not_judged"] == 3 * len(ITEMS) - 4 and counts["samples"] == 3 * len(ITEMS)
    skipped = [j for j in store.read("judgments").values() if j.status == "not_judged"]
    assert len(skipped) == 11 and all(j.reason == "budget" and j.scores == {} and j.overall is None for j in skipped)
    summary = json.loads((store.path / "summary.json").read_text())
    assert summary["judge"]["reliability"]["not_judged"] == 11
    assert summary["judge"]["usage"]["not_judged"] == 11 and summary["judge"]["usage"]["calls"] == 4
    assert "not judged (the budget ran out" in (store.path / "report.md").read_text()
    assert any("not judged" in w for w in summary["judge"]["reliability"]["warnings"])

    spec.max_calls = 5
    rejudge(folder, spec, log=lambda m: None)
    assert len(judge.requests) == 9
    spec.max_calls = None
    counts = rejudge(folder, spec, log=lambda m: None)
    sent = [(prompt_of(r), r.body["seed"]) for r in judge.requests]
    assert len(sent) == 15 and len(set(sent)) == 15  # every judge call exactly once over the three runs
    assert counts["not_judged"] == 0 and counts["samples"] == 15
    assert all(j.status == "ok" for j in store.read("judgments").values())


def test_max_cost_is_never_passed(tmp_path: Path, judge: JudgeServer, tokenizer_dir: Path) -> None:
    counting = CountingJudge(tokenizer_dir)
    judge.use(counting)
    store = make_run(tmp_path, "v1", V1)
    folder = RunFolder(store.path)
    cap = 3.0
    spec = priced(judge, tokenizer_dir, samples=3, max_cost=cap, options={"concurrency": 4})
    rejudge(folder, spec, log=lambda m: None)
    n = len(judge.requests)
    spent = sum(hand_count(tokenizer_dir, r.messages) * PRICE_IN for r in judge.requests) / 1000 \
        + sum(counting.completion) * PRICE_OUT / 1000
    assert 0 < n < 15 and spent <= cap
    records = store.read("judgments").values()
    assert sum(j.status == "not_judged" for j in records) == 15 - n
    assert folder.manifest().usage["judge"]["cost"] == pytest.approx(spent)
    spec.max_cost = 100.0
    rejudge(folder, spec, log=lambda m: None)
    sent = [(prompt_of(r), r.body["seed"]) for r in judge.requests]
    assert len(sent) == 15 and len(set(sent)) == 15
    assert not any(j.status == "not_judged" for j in store.read("judgments").values())


def test_max_cost_needs_prices(tmp_path: Path, judge: JudgeServer) -> None:
    store = make_run(tmp_path, "v1", V1)
    spec = judge.spec(k=1)
    spec.max_cost = 1.0
    with pytest.raises(JudgeError, match="--max-cost needs the judge's prices"):
        rejudge(RunFolder(store.path), spec, log=lambda m: None)
    assert judge.srv.requests == [] and not store.read("judgments")


def test_cli_dry_runs_send_and_write_nothing(tmp_path: Path, judge: JudgeServer) -> None:
    from clikit import REPO, cli

    sfteval = cli(timeout=300)
    store = make_run(tmp_path, "v1", V1)
    before = files_of(store.path)
    proc = sfteval("judge", str(store.path), "--judge", "default-en", "--judge-model", "scripted-judge",
                   "--judge-base-url", judge.base_url, "--judge-option", "price_per_1k_prompt=0.001",
                   "--judge-option", "price_per_1k_completion=0.002", "--dry-run")
    assert proc.returncode == 0, proc.stderr
    assert "nothing was sent" in proc.stdout and f"judge calls: {3 * len(ITEMS)} to send" in proc.stdout
    assert "estimate (no tokenizer" in proc.stdout and "cost: at most $" in proc.stdout
    assert judge.srv.requests == [] and files_of(store.path) == before  # not even connected; nothing written

    demo = REPO / "suites" / "demo"
    n_items = sum(1 for f in demo.glob("*.jsonl") for line in f.read_text().splitlines() if line.strip())
    out = tmp_path / "results"
    proc = sfteval("run", "--model", str(tmp_path / "no-such-checkpoint"), "--suite", str(demo), "--out", str(out),
                   "--judge", "default-en", "--judge-model", "scripted-judge", "--judge-base-url", judge.base_url,
                   "--judge-samples", "2", "--dry-run")
    assert proc.returncode == 0, proc.stderr
    assert f"judge calls: {2 * n_items} to send" in proc.stdout and "do not exist yet" in proc.stdout
    assert judge.srv.requests == [] and not out.exists()  # no model loaded, no run folder

    bad = sfteval("judge", str(store.path), "--judge", "default-en", "--judge-model", "scripted-judge",
                  "--judge-base-url", judge.base_url, "--max-cost", "2")
    assert bad.returncode == 2 and "--max-cost needs the judge's prices" in bad.stderr
    assert files_of(store.path) == before


def test_gate_guards_not_judged_like_judge_errors(tmp_path: Path) -> None:
    from diffkit import Rec, items, write_run
    from sfteval.harness.differ import diff_runs
    from sfteval.harness.gate import GateConfig, Guards, evaluate

    its = items({"chat": 100})

    def run(name: str, n_skipped: int) -> Any:
        recs = {it["id"]: Rec(exact=1.0, judge=8, **({"judge_status": "not_judged"} if i < n_skipped else {}))
                for i, it in enumerate(its)}
        return write_run(tmp_path, name, its, recs, judged=True)

    clean, five, six = run("clean", 0), run("five", 5), run("six", 6)
    diff = diff_runs(clean, six, log=lambda m: None)
    assert diff.run_b.judge_not_judged_rate == pytest.approx(0.06) and diff.run_b.judge_error_rate == 0
    verdict = evaluate(diff, GateConfig())
    reasons = [r for r in verdict.reasons if r.startswith("guard ")]
    assert len(reasons) == 1 and "max_judge_not_judged_rate (candidate six)" in reasons[0]
    assert "6.0% (> 5.0% allowed)" in reasons[0]
    assert evaluate(diff_runs(clean, five, log=lambda m: None), GateConfig()).passed  # at the limit: allowed
    assert evaluate(diff, GateConfig(guards=Guards(max_judge_not_judged_rate=None))).passed
    summary = json.loads((six.path / "summary.json").read_text())
    assert summary["overall"]["metrics"]["judge:not_judged"] == pytest.approx(0.06)
    assert summary["judge"]["reliability"]["not_judged"] == 6  # excluded from the scores, counted


def test_budget_rounds_wait_for_requests_in_flight_and_always_end() -> None:
    from sfteval.harness.judging.budget import Budget, dispatch_rounds

    costs = {"a": 1.0, "b": 1.0, "c": 1.0, "d": 1.0}  # each really costs 1, its worst case is 3
    budget = Budget(max_cost=5.0)
    rounds: list[list[str]] = []

    def send(admitted: Any) -> Any:
        batch = list(admitted)
        rounds.append(batch)
        for key in batch:
            yield key
            budget.settle(key, costs[key])  # the caller settles each result before asking for the next

    refused: set[str] = set()
    got = list(dispatch_rounds(list(costs), budget, lambda k: k, send, lambda k: 3.0, refused))
    # round 1: a (0+3 <= 5), b refused while a is in flight; round 2 (spent 1): b; round 3 (spent 2): c;
    # round 4 (spent 3): d would reserve 6 > 5 with nothing in flight: stopped for good
    assert [r for r in rounds if r] == [["a"], ["b"], ["c"]] and got == ["a", "b", "c"] and refused == {"d"}
    assert budget.stopped and budget.spent == 3.0

    lost = Budget(max_cost=5.0)
    refused = set()

    def lose(admitted: Any) -> Any:
        list(admitted)  # sent, but no result ever comes back (and nothing is settled)
        return iter(())

    assert list(dispatch_rounds(["x", "y"], lost, lambda k: k, lose, lambda k: 3.0, refused)) == []
    assert refused == {"y"} and lost.spent == 3.0  # the lost request's worst case counts; no endless retry

    calls = Budget(max_calls=2)
    refused = set()
    assert list(dispatch_rounds(["p", "q", "r"], calls, lambda k: k, lambda a: iter(list(a)), lambda k: 0.0,
                                refused)) == ["p", "q"]
    assert refused == {"r"}


@pytest.mark.parametrize("options, message", [
    ({"batch_poll_s": "abc"}, "batch_poll_s='abc': expected a number above 0"),
    ({"batch_max_requests": 0}, "batch_max_requests=0: expected a whole number above 0"),
    ({"batch_args": "--x"}, "batch_args='--x': expected a list"),
    ({"price_per_1k_prompt": -1}, "price_per_1k_prompt=-1: expected a number >= 0"),
])
def test_bad_judge_options_are_one_error_naming_the_option(tmp_path: Path, judge: JudgeServer,
                                                           options: dict[str, Any], message: str) -> None:
    store = make_run(tmp_path, "v1", V1)
    spec = judge.spec(k=1, **options)
    with pytest.raises(JudgeError, match=message.replace("[", r"\[")):
        rejudge(RunFolder(store.path), spec, log=lambda m: None)
    assert judge.srv.requests == [] and not store.read("judgments")
