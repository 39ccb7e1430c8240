"""The distribution: one top-level import package, `sfteval`, holding every module and data file.

PyPI has unrelated distributions named `harness` and `judges`; a wheel that installed either name would
break them (or be broken by them). The folders keep their names in the repository and are installed as
sfteval.harness, sfteval.judges and sfteval.suites.
"""

from __future__ import annotations

import ast
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
FOLDERS = ("harness", "judges", "suites")


def _source_files() -> list[Path]:
    return sorted(p for folder in FOLDERS for p in (REPO / folder).rglob("*") if p.is_file()
                  and "__pycache__" not in p.parts and p.suffix in (".py", ".yaml", ".jsonl", ".md", ".html",
                                                                      ".css", ".js", ".json", ".j2"))


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> zipfile.ZipFile:
    out = tmp_path_factory.mktemp("wheel")
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--disable-pip-version-check", "-q",
                           "-w", str(out), str(REPO)], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (path,) = out.glob("sfteval-*.whl")
    return zipfile.ZipFile(path)


def test_wheel_has_one_top_level_package(wheel: zipfile.ZipFile) -> None:
    tops = {name.split("/")[0] for name in wheel.namelist()}
    dist_info = {t for t in tops if t.endswith(".dist-info")}
    assert tops - dist_info == {"sfteval"}, sorted(tops)
    top_level = [n for n in wheel.namelist() if n.endswith("top_level.txt")]
    if top_level:
        assert wheel.read(top_level[0]).decode().split() == ["sfteval"]


def test_wheel_holds_every_module_and_data_file(wheel: zipfile.ZipFile) -> None:
    names = set(wheel.namelist())
    expected = {"sfteval/" + p.relative_to(REPO).as_posix() for p in _source_files()}
    missing = sorted(expected - names)
    assert not missing, f"not in the wheel (add the package to [tool.setuptools] packages?): {missing[:10]}"


def test_console_script_points_into_the_namespace(wheel: zipfile.ZipFile) -> None:
    (ep,) = [n for n in wheel.namelist() if n.endswith("entry_points.txt")]
    text = wheel.read(ep).decode()
    assert "sfteval = sfteval.harness.cli:main" in text


def test_no_module_imports_the_bare_folder_names() -> None:
    """`import harness` works only from a checkout's root; an installed sfteval has only `sfteval.*`."""
    offenders = []
    for path in _source_files():
        if path.suffix != ".py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            offenders += [f"{path.relative_to(REPO)}:{node.lineno}: {n}" for n in names
                          if n.split(".")[0] in FOLDERS]
    assert not offenders, offenders


def test_the_published_json_schemas_match_the_models() -> None:
    """docs/schema/ is what users build on: it must be what sfteval writes (regenerate: sfteval schema --out)."""
    from sfteval.harness.schema import PUBLIC, schema_text

    folder = REPO / "docs" / "schema"
    assert sorted(p.name for p in folder.glob("*.schema.json")) == sorted(f"{n}.schema.json" for n in PUBLIC)
    for name in PUBLIC:
        assert (folder / f"{name}.schema.json").read_text(encoding="utf-8") == schema_text(name), (
            f"docs/schema/{name}.schema.json is stale: run `sfteval schema --out docs/schema`")


def test_a_summary_from_a_newer_sfteval_is_refused_with_its_version(tmp_path: Path) -> None:
    import json

    import pytest as _pytest

    from sfteval.harness.models import SCHEMA_VERSION
    from sfteval.harness.runfolder import RunFolder
    from sfteval.harness.store import StoreError

    folder = tmp_path / "run"
    folder.mkdir()
    (folder / "manifest.json").write_text("{}")
    summary = {"schema_version": SCHEMA_VERSION + 1, "run_id": "run", "model": "m",
               "suite": {"name": "s", "version": "1", "hash": "h"}, "overall": {"n": 0}}
    (folder / "summary.json").write_text(json.dumps(summary))
    with _pytest.raises(StoreError, match=rf"schema version {SCHEMA_VERSION + 1} was written by a newer sfteval"):
        RunFolder(folder).stored_summary()
    summary["schema_version"] = SCHEMA_VERSION
    (folder / "summary.json").write_text(json.dumps(summary))
    assert RunFolder(folder).stored_summary().overall.n == 0  # type: ignore[union-attr]
