"""The run store survives a kill mid-write and keeps one record per key."""

from __future__ import annotations

from pathlib import Path

import pytest

from sfteval.harness.models import Generation
from sfteval.harness.store import RunStore, StoreError, content_key


def gen(key: str, status: str = "ok") -> Generation:
    return Generation(key=key, item_id=key, task_type="t", status=status, output="x")


def test_torn_last_line_is_ignored_and_repaired(tmp_path: Path) -> None:
    store = RunStore(tmp_path / "run")
    store.path.mkdir()
    store.append("generations", gen("a"))
    store.close()
    path = store.path / "generations.jsonl"
    with open(path, "a") as f:
        f.write('{"key": "b", "item_id": "b", "ta')  # what a SIGKILL mid-write leaves
    assert list(RunStore(store.path).read("generations")) == ["a"]
    again = RunStore(store.path)
    again.append("generations", gen("c"))
    again.close()
    assert list(again.read("generations")) == ["a", "c"]
    assert path.read_text().count("\n") == 2


def test_later_record_supersedes(tmp_path: Path) -> None:
    store = RunStore(tmp_path / "run")
    store.path.mkdir()
    store.append("generations", gen("a", "error"))
    store.append("generations", gen("a", "ok"))
    assert store.read("generations")["a"].status == "ok"


def test_one_writer_per_run(tmp_path: Path) -> None:
    a, b = RunStore(tmp_path / "run"), RunStore(tmp_path / "run")
    a.lock()
    with pytest.raises(StoreError, match="another sfteval process"):
        b.lock()
    a.close()
    b.lock()
    b.close()


def test_content_key_is_stable() -> None:
    assert content_key("gen", "abc", 0, {"t": 1, "u": 2}) == content_key("gen", "abc", 0, {"u": 2, "t": 1})
    assert content_key("gen", "abc", 0) != content_key("gen", "abc", 1)


def test_a_folder_left_before_its_manifest_is_unstarted(tmp_path: Path) -> None:
    store = RunStore(tmp_path / "run")
    assert not store.is_unstarted()  # no folder at all
    store.lock()  # what a run does first; a kill while the model loads leaves just this
    store.close()
    assert store.is_unstarted()
    (store.path / "items.jsonl").write_text("{}\n")  # killed between the items snapshot and the manifest
    assert store.is_unstarted()
    (store.path / "generations.jsonl").write_text("{}\n")  # records: not ours to throw away
    assert not store.is_unstarted()
    (store.path / "generations.jsonl").unlink()
    (store.path / "manifest.json").write_text("{}")
    assert not store.is_unstarted() and store.exists()


def test_a_folder_sfteval_did_not_begin_is_not_unstarted(tmp_path: Path) -> None:
    assert not RunStore(tmp_path).is_unstarted()  # an empty folder holds no lock file
