"""Plugins: a package from outside sfteval adds a backend, a rule, a judge config, a stage and an importer
through entry points, and the real CLI uses all of them; sfteval's own built-ins go through the same groups.

The plugin is a real distribution: built from a pyproject.toml in a temporary folder and installed with pip
into a folder of its own, which the CLI subprocess sees on PYTHONPATH (the project's venv stays untouched).
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

import pytest

from clikit import cli

sfteval = cli()

REPO = Path(__file__).resolve().parents[1]

PLUGIN_PYPROJECT = """\
[build-system]
requires = ["setuptools>=77"]
build-backend = "setuptools.build_meta"

[project]
name = "sfteval-canned"
version = "0.1.0"
description = "Canned answers and a constant judge for sfteval"

[project.entry-points."sfteval.backends"]
canned = "sfteval_canned:CannedBackend"

[project.entry-points."sfteval.rules"]
ends_with_period = "sfteval_canned:ends_with_period"

[project.entry-points."sfteval.judge_configs"]
canned = "sfteval_canned.judge_configs"

[project.entry-points."sfteval.stages"]
answer_words = "sfteval_canned:AnswerWordsStage"

[project.entry-points."sfteval.importers"]
lines = "sfteval_canned:IMPORTER"
"""

PLUGIN_MODULE = '''
"""A third-party sfteval plugin: every extension point, implemented against sfteval's public interfaces."""

import re
from pathlib import Path

from sfteval.harness.backends.base import Backend, BackendOptions, GenResult
from sfteval.harness.importers.base import Draft, Importer
from sfteval.harness.stages.base import Stage
from sfteval.judges.rules import RuleOutcome


class CannedOptions(BackendOptions):
    reply: str = "canned"
    score: int = 7


class CannedBackend(Backend):
    """Answers every prompt with ``reply``; a judge prompt gets its score dictionary filled with ``score``."""

    name = "canned"
    Options = CannedOptions
    prompt_mode = "chat"

    def generate(self, requests):
        for r in requests:
            text = "\\n".join(m["content"] for m in r.messages or [])
            template = re.search(r"\\{[^{}]*<score>[^{}]*\\}", text)
            answer = template.group(0).replace("<score>", str(self.options.score)) if template else self.options.reply
            yield GenResult(key=r.key, text=answer, completion_tokens=len(answer.split()), finish_reason="stop")


def ends_with_period(item, answer):
    return RuleOutcome(1.0 if answer.rstrip().endswith((".", "\\u3002")) else 0.0)


class AnswerWordsStage(Stage):
    name = "answer_words"
    order = 250

    def item_metrics(self, records):
        import pandas as pd

        words = {g.item_id: float(len(g.answer.split())) for g in records.generations.values() if g.status == "ok"}
        return pd.DataFrame({"words:answer": words}).rename_axis("item_id")

    def summary_block(self, records, manifest, groups):
        total = sum(len(g.answer.split()) for g in records.generations.values() if g.status == "ok")
        return {"answer_words": {"total": total}}

    def report_section(self, summary):
        return "\\n## Answer words\\n\\n- total: %d\\n" % summary.model_extra["answer_words"]["total"]


def read_lines(src, opts):
    lines = Path(src).read_text(encoding="utf-8").splitlines()
    return [Draft(file=Path(src), line=n, data={"id": f"line-{n}", "task_type": "lines", "prompt": text})
            for n, text in enumerate(lines, start=1) if text.strip()]


IMPORTER = Importer(name="lines", description="One prompt per line of a text file.", read=read_lines)
'''


@pytest.fixture(scope="module")
def plugin_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The plugin distribution built and installed (pip --target) into a folder of its own."""
    root = tmp_path_factory.mktemp("plugin")
    src = root / "src"
    (src / "sfteval_canned" / "judge_configs").mkdir(parents=True)
    pyproject = PLUGIN_PYPROJECT + textwrap.dedent("""
        [tool.setuptools]
        packages = ["sfteval_canned", "sfteval_canned.judge_configs"]

        [tool.setuptools.package-data]
        "sfteval_canned.judge_configs" = ["*.yaml"]
        """)
    (src / "pyproject.toml").write_text(pyproject)
    (src / "sfteval_canned" / "__init__.py").write_text(PLUGIN_MODULE)
    (src / "sfteval_canned" / "judge_configs" / "__init__.py").write_text("")
    config = (REPO / "judges" / "configs" / "default-en.yaml").read_text(encoding="utf-8")
    assert "\nname: default-en\n" in config
    (src / "sfteval_canned" / "judge_configs" / "canned-judge.yaml").write_text(
        config.replace("\nname: default-en\n", "\nname: canned-judge\n"), encoding="utf-8")
    site = root / "site"
    proc = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--disable-pip-version-check", "-q",
                           "--target", str(site), str(src)], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert list(site.glob("sfteval_canned-0.1.0.dist-info/entry_points.txt"))
    return site


def with_plugin(site: Path) -> dict[str, str]:
    return {"PYTHONPATH": str(site)}


def test_builtins_are_registered_through_the_entry_points_sfteval_declares() -> None:
    """What `sfteval plugins` lists as built-in is exactly pyproject.toml's entry points (read here with tomllib)."""
    declared = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["entry-points"]
    proc = sfteval("plugins")
    assert proc.returncode == 0, proc.stderr
    listed = {}
    for line in proc.stdout.splitlines()[2:]:
        kind, name, target, dist = line.split()[:4]
        assert dist == "sfteval"
        listed.setdefault(f"sfteval.{kind}", {})[name] = target
    assert listed == declared
    assert set(declared) == {"sfteval.backends", "sfteval.importers", "sfteval.rules", "sfteval.judge_configs",
                             "sfteval.stages", "sfteval.executors"}


def test_a_plugin_package_is_listed(plugin_site: Path) -> None:
    proc = sfteval("plugins", env=with_plugin(plugin_site))
    assert proc.returncode == 0, proc.stderr
    rows = {tuple(line.split()[:2]): line for line in proc.stdout.splitlines()[2:]}
    for kind, name in (("backends", "canned"), ("rules", "ends_with_period"), ("judge_configs", "canned"),
                       ("stages", "answer_words"), ("importers", "lines")):
        assert rows[(kind, name)].split()[3] == "sfteval-canned"
    backends = sfteval("backends", env=with_plugin(plugin_site)).stdout
    assert "canned" in backends and "Canned answers and a constant judge for sfteval" in backends
    assert "canned" not in sfteval("backends").stdout  # not installed there: not there


def test_a_run_uses_the_plugins_backend_rule_judge_config_and_stage(plugin_site: Path, tmp_path: Path) -> None:
    suite = tmp_path / "suite"
    suite.mkdir()
    items = [{"id": "a", "task_type": "knowledge/capitals", "prompt": "Capital of France?", "reference": "Paris."},
             {"id": "b", "task_type": "knowledge/capitals", "prompt": "Capital of Italy?", "reference": "Rome."}]
    (suite / "items.jsonl").write_text("".join(json.dumps(i) + "\n" for i in items))
    (suite / "suite.yaml").write_text("name: plugin-suite\ndefaults: {rules: [exact_match, ends_with_period]}\n")
    proc = sfteval("run", "--backend", "canned", "--model", "canned-model", "-o", "reply=Paris.", "--suite", str(suite),
               "--out", str(tmp_path / "runs"), "--run-name", "r", "--no-probes", "-q",
               "--judge", "canned-judge", "--judge-backend", "canned", "--judge-model", "constant",
               "--judge-option", "score=6", env=with_plugin(plugin_site))
    assert proc.returncode == 0, proc.stderr
    run = tmp_path / "runs" / "r"
    summary = json.loads((run / "summary.json").read_text())
    overall = summary["overall"]["metrics"]
    assert overall["rule:ends_with_period"] == 1.0  # "Paris." ends with a period
    assert overall["rule:exact_match"] == 0.5  # right for France, wrong for Italy
    assert summary["judge"]["config"] == "canned-judge"
    assert overall["judge:overall"] == 6.0 and summary["judge"]["reliability"]["unparsed"] == 0
    assert overall["words:answer"] == 1.0 and summary["answer_words"] == {"total": 2}
    assert "## Answer words\n\n- total: 2" in (run / "report.md").read_text()
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["backend"] == "canned" and manifest["judge"]["config"] == "canned-judge"
    # the same run is readable without the plugin installed: its block is kept, its metric is gone
    proc = sfteval("report", str(run), "--format", "json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["summary"]["answer_words"] == {"total": 2}


def test_an_importer_from_a_plugin(plugin_site: Path, tmp_path: Path) -> None:
    src = tmp_path / "prompts.txt"
    src.write_text("What is 2+2?\n\nName a prime.\n")
    proc = sfteval("suites", "import", "--format", "lines", str(src), str(tmp_path / "imported"),
               env=with_plugin(plugin_site))
    assert proc.returncode == 0, proc.stderr
    rows = [json.loads(line) for line in (tmp_path / "imported" / "items.jsonl").read_text().splitlines()]
    assert [(r["id"], r["prompt"]) for r in rows] == [("line-1", "What is 2+2?"), ("line-3", "Name a prime.")]


def test_an_unknown_or_broken_plugin_is_one_clear_error(plugin_site: Path, tmp_path: Path) -> None:
    proc = sfteval("run", "--backend", "nope", "--model", "m", "--suite", "demo", "--out", str(tmp_path))
    assert proc.returncode == 2 and "unknown backend 'nope'" in proc.stderr and "Traceback" not in proc.stderr
    broken = tmp_path / "broken-site"
    broken.mkdir()
    dist = broken / "sfteval_broken-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: sfteval-broken\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[sfteval.backends]\nbroken = sfteval_missing_module:Backend\n")
    proc = sfteval("run", "--backend", "broken", "--model", "m", "--suite", "demo", "--out", str(tmp_path / "r"),
               env={"PYTHONPATH": str(broken)})
    assert proc.returncode == 2, proc.stderr
    assert "broken" in proc.stderr and "sfteval-broken" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "r").exists()  # nothing half-written
