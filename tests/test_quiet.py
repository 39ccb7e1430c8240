"""`-q` is quiet: through the real CLI in a subprocess, a run prints its final line and nothing else.

Quiet allows errors, warnings about the run's results (skipped probes, a judge that failed every request) and
one final line on stdout naming the run folder; no progress bars, no library logs (transformers' "Loading
weights", vLLM's start-up log), no notes. These runs have nothing to warn about, so stderr must be empty.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from clikit import cli

REPO = Path(__file__).resolve().parents[1]
DEMO_SUITE = REPO / "suites" / "demo"

sfteval = cli(check=True, drop_env=("TQDM_", "TRANSFORMERS_VERBOSITY", "HF_HUB_DISABLE_PROGRESS_BARS"))


def test_quiet_run_prints_its_final_line_and_nothing_else(demo_checkpoints: dict[str, Path], tmp_path: Path) -> None:
    proc = sfteval("run", "--model", str(demo_checkpoints["v1"]), "--suite", str(DEMO_SUITE), "--out", str(tmp_path),
                   "--run-name", "q", "--limit", "2", "-q")  # generation, rules and probes
    assert proc.stderr == ""
    assert proc.stdout == f"run: {tmp_path / 'q'}  (summary.json, report.md)\n"
    assert (tmp_path / "q" / "summary.json").exists() and (tmp_path / "q" / "probes.jsonl").stat().st_size > 0

    loud = sfteval("run", "--model", str(demo_checkpoints["v1"]), "--suite", str(DEMO_SUITE), "--out",
                   str(tmp_path), "--run-name", "loud", "--limit", "1", "--no-probes")
    assert "Loading weights" in loud.stderr and "run: " in loud.stderr  # what -q takes away
    assert loud.stdout.endswith(f"run: {tmp_path / 'loud'}  (summary.json, report.md)\n")


@pytest.mark.slow
def test_quiet_run_builds_a_demo_checkpoint_silently(tmp_path: Path) -> None:
    """`--model demo:v1` trains the checkpoint on first use; with -q the build says nothing either."""
    proc = sfteval("run", "--model", "demo:v1", "--suite", "demo", "--out", str(tmp_path), "--run-name", "q",
                   "--limit", "1", "--no-probes", "-q", env={"SFTEVAL_CACHE": str(tmp_path / "cache")})
    assert any((tmp_path / "cache").iterdir())  # it was built, not found
    assert proc.stderr == "" and proc.stdout == f"run: {tmp_path / 'q'}  (summary.json, report.md)\n"
