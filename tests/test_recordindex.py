"""Reading a run a part at a time gives exactly what reading it whole gives (records, item frame, run facts)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from diffkit import Rec, items, write_run
from sfteval.harness.differ import diff_runs
from sfteval.harness.differ.load import RecordTexts, load_run
from sfteval.harness.runfolder import RunFolder
from sfteval.harness.scoring import item_frame


def _run(tmp_path: Path, name: str = "r", shift: int = 0) -> RunFolder:
    its = items({"math/add": 9, "text": 5, "knowledge/likes": 4}, robustness=1)
    recs = {it["id"]: Rec(answer=f"answer {i} ünïcödé 中文 {name}", exact=float((i + shift) % 2),
                          judge=1 + (i + 3 * shift) % 10,
                          judge_status="unparsed" if i % 7 == 3 else "ok", probe=-1.0 * i,
                          gen_error=i == 5) for i, it in enumerate(its)}
    write_run(tmp_path, name, its, recs, judged=True)
    return RunFolder(tmp_path / name)


def test_chunks_and_single_items_hold_the_same_records_as_the_whole_run(tmp_path: Path) -> None:
    folder = _run(tmp_path)
    whole = folder.records()
    chunks = list(folder.record_chunks(4))
    assert len(chunks) == 5 and [it.id for c in chunks for it in c.items] == [it.id for it in whole.items]
    for stream in ("generations", "judgments", "probes"):
        merged = {k: v for c in chunks for k, v in getattr(c, stream).items()}
        assert merged == getattr(whole, stream)
    one = folder.item_records(["text-002"])
    assert [it.id for it in one.items] == ["text-002"]
    assert one.generations == {k: g for k, g in whole.generations.items() if g.item_id == "text-002"}
    assert one.judge == whole.judge


def test_a_superseding_record_and_a_torn_last_line_read_as_in_the_whole_run(tmp_path: Path) -> None:
    folder = _run(tmp_path)
    old = next(g for g in folder.records().generations.values() if g.item_id == "math-add-001")
    path = folder.path / "generations.jsonl"
    with open(path, "a", encoding="utf-8") as f:  # a retried answer supersedes the first, then a kill mid-line
        f.write(old.model_copy(update={"answer": "retried"}).model_dump_json() + "\n")
        f.write('{"schema_version": 1, "key": "torn", "item_id": "math-add-00')
    assert folder.item_records(["math-add-001"]).generations[old.key].answer == "retried"
    assert folder.records().generations[old.key].answer == "retried"
    assert "torn" not in {k for c in folder.record_chunks(3) for k in c.generations}


def test_the_differs_frame_and_facts_do_not_depend_on_the_chunk_size(tmp_path: Path) -> None:
    folder = _run(tmp_path)
    whole = item_frame(folder.records())
    for size in (1, 4, 1000):
        loaded = load_run(folder, chunk_items=size)
        pd.testing.assert_frame_equal(loaded.frame[whole.columns], whole, check_like=False)
        assert set(loaded.frame.columns) == set(whole.columns)
        assert loaded.info == load_run(folder, chunk_items=1000).info
    info = load_run(folder, chunk_items=2).info
    assert info.items == 18 and info.generations == 18 and info.generation_error_rate == 1 / 18
    assert info.judge_unparsed_rate is not None and info.judge_unparsed_rate > 0


def test_flipped_item_texts_are_read_back_from_the_folder(tmp_path: Path) -> None:
    a, b = _run(tmp_path, "a"), _run(tmp_path, "b", shift=1)
    diff = diff_runs(a, b, log=lambda m: None)
    flips = diff.worse + diff.better
    assert len(flips) >= 5
    texts_a, texts_b = RecordTexts(a.records()), RecordTexts(b.records())
    for flip in flips:
        assert flip.detail["a"] == {k: texts_a.detail(flip.item_id).get(k) for k in flip.detail["a"]}
        assert flip.detail["b"]["answer"] == texts_b.detail(flip.item_id)["answer"]
        assert flip.detail["b"]["answer"].endswith(" b") and flip.detail["b"]["judge"]["rationale"]
