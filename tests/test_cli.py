"""The command line as a user meets it: fast help without heavy imports, and one clear line (exit 2, no
traceback, no model loaded) for every mistake a user can make before any work starts."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from sfteval.harness.cli import main

HEAVY = ("torch", "transformers", "pandas", "openai", "scipy", "vllm")


@pytest.mark.parametrize("args", [["--help"], ["run", "--help"], ["judge", "--help"], ["diff", "--help"],
                                  ["gate", "--help"], ["suites", "--help"], ["probe", "--help"]])
def test_help_imports_no_heavy_package(args: list[str]) -> None:
    code = ("import sys; from click.testing import CliRunner; from sfteval.harness.cli import main; "
            f"r = CliRunner().invoke(main, {args!r}); assert r.exit_code == 0, r.output; "
            f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def test_run_help_teaches_with_examples() -> None:
    out = CliRunner().invoke(main, ["run", "--help"]).output
    assert "Examples:" in out and "sfteval run --model demo:v1 --suite demo" in out
    assert "--resume" in out and "--judge" in out and "--no-probes" in out


def _fails_cleanly(args: list[str], *needles: str) -> str:
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 2, (r.exit_code, r.output)
    assert "Traceback" not in r.output
    for n in needles:
        assert n in r.output, r.output
    return r.output


def test_missing_model_path_is_one_clear_error(tmp_path: Path) -> None:
    _fails_cleanly(["run", "--model", str(tmp_path / "no-such-ckpt"), "--suite", "demo", "--out", str(tmp_path)],
                   "no-such-ckpt")
    assert not any(tmp_path.iterdir())  # nothing half-written


def test_unknown_suite_is_one_clear_error(tmp_path: Path) -> None:
    _fails_cleanly(["run", "--model", "demo:v1", "--suite", "no-such-suite", "--out", str(tmp_path)],
                   "no-such-suite", "general-zh")


def test_bad_suite_fails_before_any_model_is_loaded(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "a", "task_type": "t", "prompt": "hi"}\n{"id": "a", "task_type": "t", "prompt": "x"}\n')
    # the model path does not exist either: the suite error must come first (validation precedes loading)
    out = _fails_cleanly(["run", "--model", str(tmp_path / "no-such-ckpt"), "--suite", str(bad),
                          "--out", str(tmp_path / "results")], "bad.jsonl:2", "id")
    assert "no-such-ckpt" not in out
    assert not (tmp_path / "results").exists()


def test_suites_validate_show_and_list(tmp_path: Path) -> None:
    good = tmp_path / "s.jsonl"
    good.write_text("".join(json.dumps({"id": f"i{i}", "task_type": tt, "prompt": "p", "reference": "r"}) + "\n"
                            for i, tt in enumerate(["math/add", "math/add", "math/sub", "qa"])))
    r = CliRunner().invoke(main, ["suites", "validate", str(good)])
    assert r.exit_code == 0 and "4 items" in r.output, r.output
    r = CliRunner().invoke(main, ["suites", "show", str(good)])
    assert r.exit_code == 0
    rows = {line.split()[0]: line.split() for line in r.output.splitlines() if line.strip()}
    assert "math" in rows and "3" in rows["math"] and "1" in rows["qa"], r.output
    lines = [line.split() for line in r.output.splitlines()]
    math_at = lines.index(rows["math"])  # its second levels follow it, marked (a table strips indentation)
    assert lines[math_at + 1][:3] == ["└", "add", "2"] and lines[math_at + 2][:3] == ["└", "sub", "1"], r.output
    r = CliRunner().invoke(main, ["suites", "list"])
    assert r.exit_code == 0 and all(name in r.output for name in ("demo", "general-zh", "general-en"))
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "x", "task_type": "t"}\n')
    _fails_cleanly(["suites", "validate", str(bad)], "bad.jsonl:1")


def test_runs_lists_broken_run_folders_instead_of_hiding_them(tmp_path: Path) -> None:
    broken = tmp_path / "broken-run"
    broken.mkdir()
    (broken / "manifest.json").write_text("{not json")
    r = CliRunner().invoke(main, ["runs", "--out", str(tmp_path)])
    assert r.exit_code == 0
    line = next(line for line in r.output.splitlines() if "broken-run" in line)
    assert "unreadable" in line
