"""User mistakes with --shard, --ray and merge: one clear line, exit status 2, before any model loads."""

from __future__ import annotations

from pathlib import Path

import pytest

from clikit import cli

sfteval = cli()


def one_line_error(proc, *words: str) -> None:  # type: ignore[no-untyped-def]
    assert proc.returncode == 2, proc.stdout + proc.stderr
    text = proc.stderr.strip()
    for w in words:
        assert w in text, text
    assert "Traceback" not in text


@pytest.mark.parametrize("args, env, words", [
    (["--shard", "3/3"], {}, ["out of range"]),
    (["--shard", "1/2", "--shards", "3"], {}, ["disagree"]),
    (["--shard", "auto"], {}, ["neither", "SLURM_ARRAY_TASK_ID", "JOB_COMPLETION_INDEX"]),
    (["--shard", "auto"], {"JOB_COMPLETION_INDEX": "1"}, ["needs --shards N"]),
    (["--replicas", "2"], {}, ["needs --ray"]),
])
def test_bad_shard_and_ray_options(args: list[str], env: dict[str, str], words: list[str], tmp_path: Path) -> None:
    clean = {"SLURM_ARRAY_TASK_ID": "", "JOB_COMPLETION_INDEX": ""} | env
    proc = sfteval("run", "--model", str(tmp_path / "no-such-ckpt"), "--suite", "demo", "--out", str(tmp_path),
                   *args, env=clean)
    one_line_error(proc, *words)


def test_ray_refuses_server_backends_and_unknown_options(demo_checkpoints: dict[str, Path], tmp_path: Path) -> None:
    proc = sfteval("run", "--model", "some-served-model", "--backend", "openai", "--base-url", "http://127.0.0.1:9/v1",
                   "--tokenizer", str(demo_checkpoints["v1"]), "--suite", "demo", "--out", str(tmp_path),
                   "--ray", "local", env={"OPENAI_API_KEY": "sk-test"})
    one_line_error(proc, "--ray runs model backends that load weights", "openai")
    proc = sfteval("run", "--model", str(demo_checkpoints["v1"]), "--suite", "demo", "--out", str(tmp_path),
                   "--ray", "local", "--ray-option", "replica=2")
    one_line_error(proc, "--ray-option replica: is not a --ray option", "replicas")


def test_merge_of_nothing_is_refused(tmp_path: Path) -> None:
    one_line_error(sfteval("merge", str(tmp_path / "v2__shard-*"), "--into", "v2", "--results", str(tmp_path)),
                   "no run folder matches")
    one_line_error(sfteval("merge", "v2__shard-0-of-2", "--into", "v2", "--results", str(tmp_path)), "no run found")
    assert not list(tmp_path.iterdir())
