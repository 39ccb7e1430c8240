"""Shards that merge into exactly one run: `sfteval run --shard I/N` (by hand, as a Slurm array task and as a
Kubernetes Indexed Job pod) and `sfteval merge`, through the real CLI, against the same run done in one process.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from clikit import cli
from runkit import assert_same_run, records

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[1]
sfteval = cli()


def one_process(model: Path, suite: str, out: Path, name: str, **kw: object) -> Path:
    from sfteval.harness.probes.options import ProbeOptions
    from sfteval.harness.runner import RunOptions, run_eval

    opts = RunOptions(model=str(model), suite=suite, out=out, run_name=name, progress=False, probes=ProbeOptions(),
                      **kw)  # type: ignore[arg-type]
    return run_eval(opts, log=lambda m: None).path


@pytest.fixture(scope="module")
def runs(demo_checkpoints: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The demo suite on demo v1: once in one process, and as 3 shards run by the CLI (one started by hand,
    one as Slurm array task 2 of --array=1-3, one as pod 2 of a Kubernetes Indexed Job), merged by the CLI."""
    root = tmp_path_factory.mktemp("merge")
    v1 = str(demo_checkpoints["v1"])
    one = one_process(demo_checkpoints["v1"], "demo", root / "one", "v1")
    shards = root / "shards"
    common = ("run", "--model", v1, "--suite", "demo", "--run-name", "v1", "--out", str(shards), "-q")
    sfteval(*common, "--shard", "0/3", check=True)
    slurm = {"SLURM_ARRAY_TASK_ID": "2", "SLURM_ARRAY_TASK_MIN": "1", "SLURM_ARRAY_TASK_MAX": "3",
             "SLURM_ARRAY_TASK_COUNT": "3"}
    sfteval(*common, "--shard", "auto", env=slurm, check=True)
    # the job-array form: --resume PARENT starts the shard the first time and resumes it after a failure
    k8s = [x for x in common if x not in ("--run-name", "v1")]
    sfteval(*k8s, "--resume", "v1", "--shard", "auto", "--shards", "3", env={"JOB_COMPLETION_INDEX": "2"}, check=True)
    proc = sfteval("merge", str(shards / "v1__shard-*"), "--into", "v1", "--results", str(shards), check=True)
    assert "wrote" in proc.stderr + proc.stdout
    return {"one": one, "shards": shards, "merged": shards / "v1", "root": root}


def test_shard_folders_record_their_place(runs: dict[str, Path]) -> None:
    seen: list[str] = []
    for i in range(3):
        m = json.loads((runs["shards"] / f"v1__shard-{i}-of-3" / "manifest.json").read_text())
        assert m["shard"]["index"] == i and m["shard"]["count"] == 3 and m["shard"]["parent_run"] == "v1"
        ids = [json.loads(line)["id"] for line in (runs["shards"] / f"v1__shard-{i}-of-3" / "items.jsonl").open()]
        assert len(ids) == len(m["shard"]["positions"]) and 28 <= len(ids) <= 29
        seen += ids
    whole = [json.loads(line)["id"] for line in (runs["one"] / "items.jsonl").open()]
    assert sorted(seen) == sorted(whole) and len(set(seen)) == len(whole) == 86


def test_merged_shards_equal_the_run_done_in_one_process(runs: dict[str, Path]) -> None:
    assert_same_run(runs["one"], runs["merged"])
    m = json.loads((runs["merged"] / "manifest.json").read_text())
    assert m["shard"] is None and m["status"] == "complete"
    assert m["merged_from"] == [f"v1__shard-{i}-of-3" for i in range(3)]
    assert m["counts"] == json.loads((runs["one"] / "manifest.json").read_text())["counts"]


def test_diff_and_gate_treat_the_merged_run_like_any_run(runs: dict[str, Path]) -> None:
    proc = sfteval("diff", str(runs["one"]), str(runs["merged"]), "--format", "json", check=True)
    diff = json.loads(proc.stdout)
    assert not diff["regressions"] and not diff["improvements"]
    assert sfteval("gate", "--baseline", str(runs["one"]), "--candidate", str(runs["merged"])).returncode == 0
    listing = sfteval("runs", "--out", str(runs["shards"]), check=True).stdout
    assert "v1__shard-0-of-3" in listing and "\nv1 " in "\n" + listing


def test_merging_again_replaces_the_merged_run_with_the_same_result(runs: dict[str, Path], tmp_path: Path) -> None:
    before = {s: records(runs["merged"], s) for s in ("generations", "judgments", "probes")}
    proc = sfteval("merge", str(runs["shards"] / "v1__shard-2-of-3"), str(runs["shards"] / "v1__shard-0-of-3"),
                   str(runs["shards"] / "v1__shard-1-of-3"), "--into", str(runs["merged"]), "-q", check=True)
    n_items = len((runs["merged"] / "items.jsonl").read_text().splitlines())
    assert proc.stdout == f"merge: replaced {runs['merged']} from 3 shards ({n_items} items)\n"  # -q: the final line
    assert proc.stderr == ""  # and nothing else: no "merging 3 shards" note
    assert {s: records(runs["merged"], s) for s in before} == before
    assert_same_run(runs["one"], runs["merged"])
    assert not [p for p in runs["shards"].iterdir() if p.name.startswith(".")]


def refused(args: list[str], into: Path, *words: str) -> str:
    proc = sfteval("merge", *args, "--into", str(into))
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert proc.stderr.startswith("sfteval: error: ") and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    for w in words:
        assert w in proc.stderr, proc.stderr
    assert not into.exists() and not [p for p in into.parent.iterdir() if p.name.startswith(".")]
    return proc.stderr


def test_a_missing_shard_is_named_with_its_items(runs: dict[str, Path], tmp_path: Path) -> None:
    shards = runs["shards"]
    missing_ids = [json.loads(line)["id"] for line in (shards / "v1__shard-1-of-3" / "items.jsonl").open()]
    msg = refused([str(shards / "v1__shard-0-of-3"), str(shards / "v1__shard-2-of-3")], tmp_path / "m",
                  "missing 1 of 3 shards", "shard 1/3", f"with {len(missing_ids)} items")
    assert missing_ids[0] in msg


def test_shards_of_another_model_or_suite_are_refused(runs: dict[str, Path], demo_checkpoints: dict[str, Path],
                                                      tmp_path: Path) -> None:
    from sfteval.harness.shard import ShardSpec

    shards = runs["shards"]
    other_model = one_process(demo_checkpoints["v2"], "demo", tmp_path / "v2", "v1", shard=ShardSpec(1, 3))
    refused([str(shards / "v1__shard-0-of-3"), str(other_model), str(shards / "v1__shard-2-of-3")],
            tmp_path / "m", "is not a shard of the same run", "model fingerprint")
    suite = tmp_path / "suite"
    shutil.copytree(REPO / "suites" / "demo", suite)
    items = suite / "items.jsonl"
    lines = items.read_text(encoding="utf-8").splitlines()
    first = json.loads(lines[0])
    first["prompt"] += " "  # one changed item: another suite
    items.write_text("\n".join([json.dumps(first)] + lines[1:]) + "\n", encoding="utf-8")
    other_suite = one_process(demo_checkpoints["v1"], str(suite), tmp_path / "s", "v1", shard=ShardSpec(1, 3))
    refused([str(shards / "v1__shard-0-of-3"), str(other_suite), str(shards / "v1__shard-2-of-3")],
            tmp_path / "m", "suite content hash")


def test_unfinished_duplicated_or_unsharded_runs_are_refused(runs: dict[str, Path], tmp_path: Path) -> None:
    shards = runs["shards"]
    copy = tmp_path / "copy" / "v1__shard-1-of-3"
    shutil.copytree(shards / "v1__shard-1-of-3", copy)
    refused([str(shards / "v1__shard-0-of-3"), str(shards / "v1__shard-1-of-3"), str(copy),
             str(shards / "v1__shard-2-of-3")], tmp_path / "m", "shard 1/3 is given twice")
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["status"] = "running"  # what a killed shard leaves behind
    (copy / "manifest.json").write_text(json.dumps(manifest))
    refused([str(shards / "v1__shard-0-of-3"), str(copy), str(shards / "v1__shard-2-of-3")], tmp_path / "m",
            "has not finished", "--resume v1__shard-1-of-3")
    refused([str(shards / "v1__shard-0-of-3"), str(runs["one"])], tmp_path / "m", "is not a shard")
    refused([str(tmp_path / "nothing-*")], tmp_path / "m", "no run folder matches")


def test_a_failed_shard_resumed_alone_then_merged_again(runs: dict[str, Path], demo_checkpoints: dict[str, Path],
                                                        tmp_path: Path) -> None:
    """A shard killed during generation (its folder as such a kill leaves it: some answers, no scores, status
    running) is refused by merge, finished alone by the job's own command (--resume PARENT --shard I/N), and the
    merge then equals the one-process run."""
    shards = tmp_path / "shards"
    for i in range(3):
        shutil.copytree(runs["shards"] / f"v1__shard-{i}-of-3", shards / f"v1__shard-{i}-of-3")
    killed = shards / "v1__shard-1-of-3"
    kept = (killed / "generations.jsonl").read_text().splitlines()[:10]
    (killed / "generations.jsonl").write_text("\n".join(kept) + "\n")
    for name in ("judgments.jsonl", "probes.jsonl", "summary.json", "report.md"):
        (killed / name).unlink()
    manifest = json.loads((killed / "manifest.json").read_text())
    manifest["status"] = "running"
    (killed / "manifest.json").write_text(json.dumps(manifest))
    refused([str(shards / "v1__shard-*")], shards / "v1", "has not finished")
    sfteval("run", "--model", str(demo_checkpoints["v1"]), "--suite", "demo", "--out", str(shards), "--resume", "v1",
            "--shard", "1/3", "-q", check=True)
    lines = (killed / "generations.jsonl").read_text().splitlines()
    assert lines[:10] == kept and len({json.loads(x)["key"] for x in lines}) == len(lines)  # none redone
    sfteval("merge", str(shards / "v1__shard-*"), "--into", "v1", "--results", str(shards), check=True)
    assert_same_run(runs["one"], shards / "v1")


def test_judging_the_merged_run_and_merging_again_keeps_the_judgments(runs: dict[str, Path], tmp_path: Path) -> None:
    """`sfteval judge` on the merged run gives what it gives on the one-process run; a later merge of the same
    shards keeps those judgments (and the judge) instead of dropping them."""
    from scripted_judge import ScriptedJudge
    from servers import OpenAIServer

    one, shards = tmp_path / "one" / "v1", tmp_path / "shards"
    shutil.copytree(runs["one"], one)
    for i in range(3):
        shutil.copytree(runs["shards"] / f"v1__shard-{i}-of-3", shards / f"v1__shard-{i}-of-3")
    quiet = sfteval("merge", str(shards / "v1__shard-*"), "--into", "v1", "--results", str(shards), "-q", check=True)
    merged = shards / "v1"
    n_items = len((merged / "items.jsonl").read_text().splitlines())
    assert quiet.stdout == f"merge: wrote {merged} from 3 shards ({n_items} items)\n"  # -q: the final line only
    with OpenAIServer(ScriptedJudge(), models=("scripted",)) as srv:
        args = ["--judge", "default-en", "--judge-model", "scripted", "--judge-base-url", srv.base_url,
                "--judge-samples", "1", "--quiet"]
        env = {"OPENAI_API_KEY": "sk-test-merge"}
        for run in (one, merged):
            sfteval("judge", str(run), *args, env=env, check=True)
    assert_same_run(one, merged)
    judged = records(merged, "judgments")
    assert any(j["mode"] == "single" for j in judged.values())
    sfteval("merge", str(shards / "v1__shard-*"), "--into", "v1", "--results", str(shards), "-q", check=True)
    assert records(merged, "judgments") == judged
    assert json.loads((merged / "manifest.json").read_text())["judge"]["model"] == "scripted"
    assert_same_run(one, merged)


def test_probe_shards_merge_into_the_probe_run(demo_checkpoints: dict[str, Path], tmp_path: Path) -> None:
    """`sfteval probe --shard I/N` (2 items per task_type), merged, equals the probe run done in one process."""
    from sfteval.harness.probes.options import ProbeOptions
    from sfteval.harness.runner import RunOptions, run_eval

    v1 = str(demo_checkpoints["v1"])
    one = run_eval(RunOptions(model=v1, suite="demo", out=tmp_path / "one", run_name="p", progress=False, limit=2,
                              generate=False, probes=ProbeOptions(required=True)), log=lambda m: None).path
    for i in range(2):
        sfteval("probe", "--model", v1, "--suite", "demo", "--limit", "2", "--out", str(tmp_path / "shards"),
                "--run-name", "p", "--shard", f"{i}/2", "-q", check=True)
    sfteval("merge", str(tmp_path / "shards" / "p__shard-*"), "--into", "p", "--results", str(tmp_path / "shards"),
            check=True)
    assert_same_run(one, tmp_path / "shards" / "p")
    assert records(one, "probes") and not records(one, "generations")
