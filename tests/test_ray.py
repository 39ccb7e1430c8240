"""`sfteval run --ray` with the hf backend on real Ray: a 2-node cluster (ray.cluster_utils.Cluster), a worker killed
mid-run, a driver killed with SIGKILL and resumed. Each run must equal the run done in one process, with every
item stored exactly once. (The vllm backend on Ray Data LLM is tested in tests/test_vllm.py, in the vLLM venv.)
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator, Optional

import pytest

from clikit import REPO, cli
from runkit import assert_same_records, keys_in_file

pytestmark = pytest.mark.slow
sfteval = cli()
N_ITEMS = 86  # the demo suite: one greedy answer per item
#: answers are identical; log-probs scored in other batches (per replica) agree to float rounding (~1e-7 seen)
PROBE_TOL = 1e-5


@pytest.fixture(scope="module")
def one_process(demo_checkpoints: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    from sfteval.harness.probes.options import ProbeOptions
    from sfteval.harness.runner import RunOptions, run_eval

    opts = RunOptions(model=str(demo_checkpoints["v1"]), suite="demo", out=tmp_path_factory.mktemp("one"),
                      run_name="v1", progress=False, probes=ProbeOptions())
    return run_eval(opts, log=lambda m: None).path


@pytest.fixture(scope="module")
def two_nodes() -> Iterator[str]:
    """A real 2-node Ray cluster on this machine (a head and a worker node, 1 CPU each)."""
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    try:
        cluster.add_node(num_cpus=1)
        cluster.wait_for_nodes()
        yield cluster.address
    finally:
        cluster.shutdown()


def test_ray_on_a_two_node_cluster_equals_one_process(demo_checkpoints: dict[str, Path], one_process: Path,
                                                       two_nodes: str, tmp_path: Path) -> None:
    proc = sfteval("run", "--model", str(demo_checkpoints["v1"]), "--suite", "demo", "--out", str(tmp_path),
                   "--run-name", "v1", "--ray", two_nodes, "--replicas", "2", "--ray-option", "num_cpus=1",
                   "--ray-option", "batch_size=8", "-q", check=True)
    run = tmp_path / "v1"
    assert_same_records(one_process, run, probe_tol=PROBE_TOL)
    summary = json.loads((run / "summary.json").read_text())
    assert summary["overall"] == {**summary["overall"], "n": N_ITEMS}
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["backend"] == "hf"  # the model backend; Ray is how its requests ran
    dispatch = manifest["backend_settings"]["dispatch"]
    assert dispatch["executor"] == "ray" and dispatch["replicas"] == 2
    assert dispatch["cluster_nodes"] == 2 and dispatch["nodes_used"] == 2, dispatch  # one model copy per node
    assert max(keys_in_file(run).values()) == 1
    assert "Traceback" not in proc.stderr


# -- failures --------------------------------------------------------------------------------------------------
def children(pid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(entry.name))
    return out


def descendants(pid: int) -> list[int]:
    todo, seen = [pid], []
    while todo:
        for c in children(todo.pop()):
            seen.append(c)
            todo.append(c)
    return seen


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def start_run(args: list[str], log: Path) -> subprocess.Popen:
    """The CLI in its own session (so that everything it starts, Ray included, can be stopped with it)."""
    env = {**os.environ, "TQDM_DISABLE": "1"}
    with open(log, "wb") as f:
        return subprocess.Popen([sys.executable, "-m", "sfteval.harness.cli", *args], cwd=REPO, env=env, stdout=f,
                                stderr=subprocess.STDOUT, start_new_session=True)


def wait_for_lines(path: Path, n: int, proc: subprocess.Popen, log: Path, timeout: float = 300) -> int:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        have = sum(1 for _ in path.open()) if path.exists() else 0
        if have >= n:
            return have
        if proc.poll() is not None:
            raise AssertionError(f"the run ended (exit {proc.returncode}) before {n} answers:\n{log.read_text()[-3000:]}")
        time.sleep(0.2)
    raise AssertionError(f"fewer than {n} answers after {timeout} s:\n{log.read_text()[-3000:]}")


def stop_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait(30)


def worker_pid(driver: int, timeout: float = 120) -> Optional[int]:
    """A Ray worker process (started under this driver) that holds a model: `ray::BackendWorker...`."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        for pid in descendants(driver):
            if cmdline(pid).startswith("ray::BackendWorker"):
                return pid
        time.sleep(0.2)
    return None


def test_a_killed_ray_worker_is_restarted_and_every_item_stored_once(demo_checkpoints: dict[str, Path],
                                                                     one_process: Path, tmp_path: Path) -> None:
    log = tmp_path / "run.log"
    proc = start_run(["run", "--model", str(demo_checkpoints["v1"]), "--suite", "demo", "--out", str(tmp_path),
                      "--run-name", "v1", "--ray", "local", "--replicas", "2", "--ray-option", "num_cpus=1",
                      "--ray-option", "batch_size=2", "-q"], log)
    try:
        gens = tmp_path / "v1" / "generations.jsonl"
        victim = worker_pid(proc.pid)  # found while the models load, so the kill below lands mid-generation
        assert victim is not None, log.read_text()[-3000:]
        wait_for_lines(gens, 6, proc, log)
        os.kill(victim, signal.SIGKILL)
        stored_at_kill = sum(1 for _ in gens.open())
        assert stored_at_kill < N_ITEMS, "the run finished before the worker was killed: nothing was tested"
        assert proc.wait(600) == 0, log.read_text()[-4000:]
    finally:
        stop_group(proc)
    # Ray's own account (the pinned Ray's wording): the batch the dead worker held was retried
    assert "will be retried" in log.read_text(), log.read_text()[-3000:]
    run = tmp_path / "v1"
    counts = keys_in_file(run)
    assert len(counts) == N_ITEMS and max(counts.values()) == 1, "an answer is missing or stored twice"
    assert_same_records(one_process, run, probe_tol=PROBE_TOL)
    assert json.loads((run / "manifest.json").read_text())["status"] == "complete"


def test_a_sigkilled_driver_resumes_without_repeating_finished_answers(demo_checkpoints: dict[str, Path],
                                                                        one_process: Path, tmp_path: Path) -> None:
    args = ["run", "--model", str(demo_checkpoints["v1"]), "--suite", "demo", "--out", str(tmp_path), "--ray",
            "local", "--ray-option", "batch_size=2", "-q"]
    log = tmp_path / "run.log"
    proc = start_run(args + ["--run-name", "v1"], log)
    gens = tmp_path / "v1" / "generations.jsonl"
    try:
        wait_for_lines(gens, 10, proc, log)
        proc.send_signal(signal.SIGKILL)  # the driver only; Ray's processes follow it (then the rest of its group)
        proc.wait(30)
    finally:
        stop_group(proc)
    before = keys_in_file(tmp_path / "v1")
    assert 10 <= len(before) < N_ITEMS, "the kill came too late: nothing was left to resume"
    sfteval(*args, "--resume", "v1", check=True)
    after = keys_in_file(tmp_path / "v1")
    assert len(after) == N_ITEMS and max(after.values()) == 1  # finished answers were not generated again
    assert set(before) <= set(after)
    assert_same_records(one_process, tmp_path / "v1", probe_tol=PROBE_TOL)
