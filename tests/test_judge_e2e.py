"""The judge end to end through the real CLI, against a scripted judge behind a real OpenAI-compatible HTTP server.

The candidate runs are real runs of the tiny demo checkpoints on the demo suite; the judge is
tests/scripted_judge.py served by tests/servers (so the openai backend, its concurrency and its
retries are the real ones). The scripted judge's truth is known (scores from candidate/reference
overlap), so every number in summary.json can be checked against it.
"""

from __future__ import annotations

import json
import shutil
import statistics
from pathlib import Path
from typing import Any, Iterator

import pytest

from sfteval.harness.models import Item
from sfteval.harness.runfolder import RunFolder
from sfteval.harness.scoring import item_frame
from scripted_judge import ScriptedJudge, overlap, true_score
from servers import OpenAIServer, Request, server_error
from clikit import cli

SECRET = "sk-test-secret-never-stored-4242"
MODELS = ("scripted", "scripted?shapes=1", "scripted?garbage=0.5", "scripted?noise=2", "scripted?bias=0.4",
          "scripted?noise=1")

pytestmark = pytest.mark.slow


sfteval = cli(check=True, env={"OPENAI_API_KEY": SECRET}, timeout=900)


@pytest.fixture(scope="module")
def judge_server() -> Iterator[OpenAIServer]:
    with OpenAIServer(ScriptedJudge(), models=MODELS) as srv:
        yield srv


@pytest.fixture(scope="module")
def demo_runs(demo_checkpoints: dict[str, Path], demo_suite_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Unjudged runs 'v1' and 'v2' of the demo checkpoints on the demo suite (copied per test before judging)."""
    out = tmp_path_factory.mktemp("runs")
    for v in ("v1", "v2"):
        sfteval("run", "--model", str(demo_checkpoints[v]), "--suite", str(demo_suite_dir), "--out", str(out),
                "--run-name", v, "--batch-size", "16", "--quiet")
    return out


@pytest.fixture
def runs(demo_runs: Path, tmp_path: Path) -> Path:
    out = tmp_path / "results"
    shutil.copytree(demo_runs, out)
    return out


def requests_during(srv: OpenAIServer, fn: Any) -> int:
    before = len(srv.generation_requests())
    fn()
    return len(srv.generation_requests()) - before


def judge_args(srv: OpenAIServer, model: str = "scripted", config: str = "default-en", k: int = 1) -> list[str]:
    return ["--judge", config, "--judge-model", model, "--judge-base-url", srv.base_url, "--judge-samples", str(k),
            "--quiet"]


def truths(run: Path) -> dict[str, float]:
    """The scripted judge's noise-free score of each item's final answer."""
    items = {i["id"]: Item.model_validate(i) for i in map(json.loads, (run / "items.jsonl").read_text().splitlines())}
    out = {}
    for g in map(json.loads, (run / "generations.jsonl").read_text().splitlines()):
        item = items[g["item_id"]]
        out[item.id] = true_score(g["answer"], item.final_reference)
    return out


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def frame(run: Path) -> Any:
    return item_frame(RunFolder(run).records())


def assert_secret_not_stored(root: Path) -> None:
    for f in root.rglob("*"):
        if f.is_file():
            assert SECRET not in f.read_text(errors="replace"), f


# ------------------------------------------------------------------------------------------------------

def test_run_with_judge(judge_server: OpenAIServer, demo_checkpoints: dict[str, Path], demo_suite_dir: Path,
                        tmp_path: Path) -> None:
    args = ["run", "--model", str(demo_checkpoints["v1"]), "--suite", str(demo_suite_dir), "--out", str(tmp_path),
            "--run-name", "judged", "--limit", "2", "--batch-size", "16"]
    n = requests_during(judge_server, lambda: sfteval(*args, *judge_args(judge_server, config="alignbench-zh", k=2)))
    run = tmp_path / "judged"
    n_items = len((run / "items.jsonl").read_text().splitlines())
    assert n == 2 * n_items  # k=2 samples per answer, all through the server
    summary = json.loads((run / "summary.json").read_text())
    assert summary["headline"]["metric"] == "usable" and summary["headline"]["overall"] is not None
    assert set(summary["headline"]["task_types"]) >= {"knowledge", "knowledge/likes", "math/addition"}
    metrics = summary["task_types"]["knowledge/likes"]["metrics"]
    assert {"usable", "usable_score", "judge:factuality", "judge:overall", "judge:unparsed"} <= set(metrics)
    judge = summary["judge"]
    assert judge["config"] == "alignbench-zh" and judge["samples"] == 2 and judge["reliability"]["samples"] == n
    report = (run / "report.md").read_text()
    assert "## LLM judge" in report and "事实正确性" in report and "Judge reliability" in report
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["judge"]["api_key_env"] == "OPENAI_API_KEY" and manifest["status"] == "complete"
    assert_secret_not_stored(run)
    again = requests_during(judge_server, lambda: sfteval(*args, "--resume", "judged",
                                                         *judge_args(judge_server, config="alignbench-zh", k=2)))
    assert again == 0  # resumed: answers and judgments are all stored


def test_scores_follow_the_truth_in_every_output_shape(judge_server: OpenAIServer, runs: Path) -> None:
    for v in ("v1", "v2"):
        sfteval("judge", str(runs / v), *judge_args(judge_server, model="scripted?shapes=1", k=2))
    per_item = {v: frame(runs / v) for v in ("v1", "v2")}
    for v in ("v1", "v2"):
        truth = truths(runs / v)
        got = per_item[v]["judge:overall"]
        assert got.notna().all()  # every real-world output shape parsed
        for item_id, value in got.items():
            assert value == min(10, max(1, round(truth[item_id]))), (v, item_id)
        assert json.loads((runs / v / "summary.json").read_text())["judge"]["reliability"]["unparsed"] == 0
    s1, s2 = (json.loads((runs / v / "summary.json").read_text())["task_types"] for v in ("v1", "v2"))
    assert s2["knowledge/likes"]["metrics"]["usable"] < s1["knowledge/likes"]["metrics"]["usable"]


def test_rejudge_is_cached(judge_server: OpenAIServer, runs: Path) -> None:
    run = runs / "v1"
    first = requests_during(judge_server, lambda: sfteval("judge", str(run), *judge_args(judge_server, k=2)))
    summary = (run / "summary.json").read_text()
    assert first == 2 * len((run / "items.jsonl").read_text().splitlines())
    second = requests_during(judge_server, lambda: sfteval("judge", str(run), "--quiet"))  # the recorded judge
    assert second == 0
    assert json.loads((run / "summary.json").read_text()) == json.loads(summary)


def test_unparsed_outputs_are_counted_and_excluded_never_zero(judge_server: OpenAIServer, runs: Path) -> None:
    run = runs / "v1"
    sfteval("judge", str(run), *judge_args(judge_server, model="scripted?garbage=0.5", k=1))
    records = [json.loads(line) for line in (run / "judgments.jsonl").read_text().splitlines()]
    judged = [r for r in records if r["mode"] == "single"]
    unparsed = [r for r in judged if r["status"] == "unparsed"]
    retried = [r for r in judged if r["details"].get("attempts") == 2]
    assert unparsed and len(unparsed) < len(judged) and len(retried) > len(unparsed)
    assert all(r["scores"] == {} and r["overall"] is None and r["raw"] and r["reason"] for r in unparsed)
    summary = json.loads((run / "summary.json").read_text())
    rel = summary["judge"]["reliability"]
    assert rel["unparsed"] == len(unparsed) and rel["unparsed_rate"] == pytest.approx(len(unparsed) / len(judged))
    truth = truths(run)
    parsed = {r["item_id"]: r["overall"] for r in judged if r["status"] == "ok"}
    assert summary["overall"]["metrics"]["judge:overall"] == pytest.approx(statistics.mean(parsed.values()), abs=1e-5)
    assert summary["overall"]["metrics"]["judge:overall"] == pytest.approx(
        statistics.mean(min(10, round(truth[i])) for i in parsed), abs=1e-5)  # not dragged down by the unparsed
    f = frame(run)
    for r in unparsed:
        assert f.loc[r["item_id"], "usable"] != f.loc[r["item_id"], "usable"]  # NaN, not 0
    assert summary["overall"]["metrics"]["judge:unparsed"] == pytest.approx(len(unparsed) / len(judged))
    assert "unparsed" in (run / "report.md").read_text()


def test_repeated_sampling_reduces_error(judge_server: OpenAIServer, runs: Path) -> None:
    run = runs / "v1"
    truth = truths(run)
    errors, spread = {}, {}
    for k in (1, 5):
        args = judge_args(judge_server, model="scripted?noise=2", k=k)
        n = requests_during(judge_server, lambda: sfteval("judge", str(run), *args))  # noqa: B023
        if k == 5:
            assert n == 4 * len(truth)  # judge sample 0 came from the cache
        overall = frame(run)["judge:overall"]
        errors[k] = statistics.mean(abs(overall[i] - truth[i]) for i in truth)
        spread[k] = json.loads((run / "summary.json").read_text())["judge"]["reliability"]["mean_repeat_std"]
    assert errors[5] < 0.8 * errors[1]
    assert spread[1] is None and spread[5] > 0.5


def test_pairwise_swap_detects_the_planted_position_bias(judge_server: OpenAIServer, runs: Path) -> None:
    args = ["judge", "--pair", "v1", "v2", "--out", str(runs),
            *judge_args(judge_server, model="scripted?bias=0.4", k=3)]
    sfteval(*args)
    folder = runs / "v2" / "pairs" / "v1"
    summary = json.loads((folder / "pair_summary.json").read_text())
    assert summary["candidate_run"] == "v2" and summary["baseline_run"] == "v1"
    assert not summary["suite"]["hash_mismatch"]
    rel = summary["reliability"]
    assert rel["swap_flip_rate"] > 0 and rel["first_position_rate"] > 0.6
    # truth: the scripted judge without bias prefers the answer with more reference overlap
    answers = {v: {g["item_id"]: g["answer"] for g in read_jsonl(runs / v / "generations.jsonl")} for v in ("v1", "v2")}
    refs = {i["id"]: Item.model_validate(i).final_reference
            for i in map(json.loads, (runs / "v2" / "items.jsonl").read_text().splitlines())}
    points = []
    for item_id, ref in refs.items():
        c, b = 10 * overlap(answers["v2"][item_id], ref), 10 * overlap(answers["v1"][item_id], ref)
        points.append(0.5 if abs(c - b) < 0.5 else float(c > b))
    truth = statistics.mean(points)
    records = [json.loads(line) for line in (folder / "judgments.jsonl").read_text().splitlines()]
    naive = statistics.mean({"A": 1.0, "B": 0.0, "tie": 0.5}[r["verdict"]] for r in records
                            if r["order"] == "AB" and r["judge_sample"] == 0)
    swapped, corrected = summary["overall"]["score"], summary["headline"]["overall"]
    assert abs(swapped - truth) < abs(naive - truth) and abs(naive - truth) > 0.1
    assert corrected == summary["overall"]["corrected_score"] and abs(corrected - truth) < abs(naive - truth)
    assert summary["task_types"]["knowledge/likes"]["loss"] > 0.3
    rows = [json.loads(line) for line in (folder / "pair_items.jsonl").read_text().splitlines()]
    assert len(rows) == len(refs) and {"outcome", "flipped", "ab", "ba"} <= set(rows[0])
    assert "| win" in (folder / "pair_report.md").read_text()
    assert requests_during(judge_server, lambda: sfteval(*args)) == 0  # cached
    quiet = sfteval(*args)  # judge_args ask for --quiet
    n = sum(len(r["ab_samples"]) + len(r["ba_samples"]) for r in rows)
    assert quiet.stdout == f"judged: {n} judge samples, 0 unparsed, 0 failed, 0 not judged (budget); pair: {folder}\n"
    assert_secret_not_stored(folder)


def test_unreachable_judge_is_one_clear_error(runs: Path) -> None:
    run = runs / "v1"
    proc = sfteval("judge", str(run), "--judge", "default-en", "--judge-model", "m", "--judge-base-url",
                   "http://127.0.0.1:9/v1", "--quiet", check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.startswith("sfteval: error:") and "127.0.0.1:9" in proc.stderr
    assert not any(json.loads(line)["mode"] == "single" for line in (run / "judgments.jsonl").read_text().splitlines())


def test_judge_outage_during_a_run_keeps_the_run_and_its_summary(tmp_path: Path) -> None:
    """Every judge request fails (HTTP 500): answers and rule scores are kept, the judge errors are stored and
    counted, the summary and report are written, exit status 3 names the retry; `sfteval judge` retries them."""
    suite = tmp_path / "s.jsonl"
    suite.write_text("".join(json.dumps({"id": f"q{i}", "task_type": ["qa", "math/sums"][i % 2],
                                         "prompt": f"question {i}?", "reference": f"answer {i}"}) + "\n"
                             for i in range(6)))
    judge_down = {"on": True}
    scripted = ScriptedJudge()

    def judge(req: Request) -> Any:
        return server_error(500, "judge overloaded") if judge_down["on"] else scripted(req)

    with OpenAIServer(lambda req: "answer " + req.prompt_text.split()[-1].rstrip("?")) as gen, \
            OpenAIServer(judge, models=("judge",)) as jsrv:
        proc = sfteval("run", "--backend", "openai", "--model", "test-model", "--base-url", gen.base_url,
                       "--suite", str(suite), "--out", str(tmp_path), "--run-name", "r", "--no-probes",
                       "--judge", "default-en", "--judge-model", "judge", "--judge-base-url", jsrv.base_url,
                       "--judge-samples", "2", "--judge-option", "max_retries=0", "--quiet", check=False)
        assert proc.returncode == 3, proc.stderr
        assert "12 of 12 judge requests failed" in proc.stderr and "`sfteval judge r` retries them" in proc.stderr
        assert "Traceback" not in proc.stderr and "judge overloaded" in proc.stderr
        run = tmp_path / "r"
        manifest = json.loads((run / "manifest.json").read_text())
        assert manifest["status"] == "complete" and manifest["counts"]["judge_errors"] == 12
        summary = json.loads((run / "summary.json").read_text())
        assert summary["overall"]["metrics"]["rule:normalized_match"] == 1.0  # the rules finished
        assert summary["overall"]["metrics"]["judge:error"] == 1.0 and summary["task_types"]["qa"]["metrics"][
            "judge:error"] == 1.0
        assert summary["overall"]["metrics"].get("usable") is None  # failed requests are not scores
        rel = summary["judge"]["reliability"]
        assert rel["errors"] == 12 and rel["error_rate"] == 1.0
        assert "errors: 100.0%" in (run / "report.md").read_text()
        errors = [r for r in read_jsonl(run / "judgments.jsonl") if r["mode"] == "single"]
        assert len(errors) == 12 and all(r["status"] == "error" and "500" in r["reason"] for r in errors)

        judge_down["on"] = False
        answers = len(jsrv.generation_requests())
        again = sfteval("judge", str(run), "--quiet")  # the recorded judge: only the failed requests again
        assert again.returncode == 0, again.stderr
        assert len(jsrv.generation_requests()) - answers == 12
    summary = json.loads((run / "summary.json").read_text())
    assert summary["judge"]["reliability"]["errors"] == 0 and summary["overall"]["metrics"]["usable"] is not None


def test_bad_judge_settings_fail_before_any_model_loads(tmp_path: Path) -> None:
    proc = sfteval("run", "--model", "/nonexistent", "--suite", "demo", "--judge", "no-such-config",
                   "--judge-model", "m", check=False)
    assert proc.returncode == 2 and "no-such-config" in proc.stderr and "Traceback" not in proc.stderr
    proc = sfteval("judge", str(tmp_path), "--judge", "default-en", check=False)
    assert proc.returncode == 2 and "--judge-model" in proc.stderr
