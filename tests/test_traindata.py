"""Training data next to the diff: the demo checkpoints' own training sets (harness.demo_data.sft_examples).

v2 was trained with half of the knowledge/likes answers relabelled: the training comparison must show changed
answers on exactly that task_type, a variant with math/addition rows removed must show a count change on
exactly that one, and every eval item's nearest training example is the training row it came from.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sfteval.harness.demo_data import demo_items, sft_examples
from sfteval.harness.traindata import TrainDataError, TrainingIndex, compare, load_training, prompt_text
from clikit import cli

sfteval = cli(check=False)


def write_training(path: Path, version: str, drop: str = "") -> Path:
    tts = {json.dumps(it.get("messages") or [{"role": "user", "content": it["prompt"]}]): it["task_type"]
           for it in demo_items()}
    with path.open("w") as f:
        for conv, answer in sft_examples(version):
            tt = tts[json.dumps(conv)]
            if tt == drop and len(conv) == 1:
                continue
            f.write(json.dumps({"task_type": tt, "messages": conv + [{"role": "assistant", "content": answer}]}) + "\n")
    return path


def test_relabelled_answers_and_count_changes_on_exactly_the_changed_task_type(tmp_path: Path) -> None:
    v1 = load_training(write_training(tmp_path / "v1.jsonl", "v1"))
    v2 = load_training(write_training(tmp_path / "v2.jsonl", "v2"))
    rows = {r["task_type"]: r for r in compare(v1, v2)}
    relabelled = {tt for tt, r in rows.items() if r["changed_answers"] and "/" in tt}
    assert relabelled == {"knowledge/likes"} and rows["knowledge/likes"]["changed_answers"] == 18
    assert all(r["count_delta"] == 0 for r in rows.values())
    fewer = load_training(write_training(tmp_path / "v3.jsonl", "v1", drop="math/addition"))
    rows = {r["task_type"]: r for r in compare(v1, fewer)}
    moved = {tt for tt, r in rows.items() if r["count_delta"] and tt not in ("overall", "math")}
    assert moved == {"math/addition"} and rows["math/addition"]["count_delta"] == -12
    assert rows["math/addition"]["dropped_prompts"] == 12 and not rows["knowledge/likes"]["changed_answers"]


def test_the_demo_writes_its_training_sets_for_train_data(tmp_path: Path) -> None:
    """``python -m sfteval.harness.demo write-train-data`` (the README's way to try --train-data): the same rows as
    built here from the demo's SFT examples, v3 relabelling exactly the 24 sums; base has no SFT set."""
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-m", "sfteval.harness.demo", "write-train-data", str(tmp_path / "out")],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    for version in ("v1", "v2", "v3"):
        written = (tmp_path / "out" / f"{version}.jsonl").read_text().splitlines()
        expected = write_training(tmp_path / f"{version}.jsonl", version).read_text().splitlines()
        assert [json.loads(line) for line in written] == [json.loads(line) for line in expected]
    rows = {r["task_type"]: r for r in compare(load_training(tmp_path / "out" / "v1.jsonl"),
                                               load_training(tmp_path / "out" / "v3.jsonl"))}
    assert {tt for tt, r in rows.items() if r["changed_answers"] and "/" in tt} == {"math/addition"}
    assert rows["math/addition"]["changed_answers"] == 24
    bad = subprocess.run([sys.executable, "-m", "sfteval.harness.demo", "write-train-data", str(tmp_path / "b"),
                          "base"], capture_output=True, text=True)
    assert bad.returncode == 2 and "known: v1, v2, v3" in bad.stderr and not (tmp_path / "b").exists()


def test_nearest_training_example_of_every_eval_item_is_its_own_row(tmp_path: Path) -> None:
    ts = load_training(write_training(tmp_path / "v2.jsonl", "v2"))
    index = TrainingIndex(ts)
    trained = {prompt_text(conv): answer for conv, answer in sft_examples("v2")}
    for it in demo_items():
        prompt = prompt_text(it.get("messages") or [{"role": "user", "content": it["prompt"]}])
        best = index.query(prompt, 3)[0]
        assert best.exact and best.similarity == 1.0 and ts.prompt(best.row) == prompt
        assert index.membership(prompt) == "exact"
        assert ts.answers_of([best.row])[best.row] == trained[prompt]
    assert index.membership("<tok_1> likes what exactly?") != "exact"


def test_diff_with_training_data_shows_the_mix_and_the_row_behind_a_flipped_item(tmp_path: Path) -> None:
    from diffkit import Rec, write_run

    its = [it for it in demo_items() if it["task_type"] in ("knowledge/likes", "math/addition") and "prompt" in it]
    for it in its:
        it.pop("meta", None)
    refs = {it["id"]: it["reference"] for it in its}
    wrong = {conv_key: ans for conv_key, ans in ((prompt_text(c), a) for c, a in sft_examples("v2"))}
    ra = {i: Rec(answer=r, exact=1.0) for i, r in refs.items()}
    rb = {}
    for it in its:
        ans = wrong[prompt_text(it.get("messages") or [{"role": "user", "content": it["prompt"]}])]
        rb[it["id"]] = Rec(answer=ans, exact=float(ans == it["reference"]))
    write_run(tmp_path, "v1", its, ra)
    write_run(tmp_path, "v2", its, rb)
    t1, t2 = write_training(tmp_path / "t1.jsonl", "v1"), write_training(tmp_path / "t2.jsonl", "v2")
    out = tmp_path / "d.json"
    res = sfteval("diff", "v1", "v2", "--results", str(tmp_path), "--format", "json", "--out", str(out),
                  "--train-data", f"v1={t1}", "--train-data", f"v2={t2}")
    assert res.returncode == 0, res.stderr
    data = json.loads(out.read_text())
    rows = {r["task_type"]: r for r in data["training"]["task_types"]}
    assert rows["knowledge/likes"]["changed_answers"] == 18 and rows["math/addition"]["changed_answers"] == 0
    assert rows["knowledge/likes"]["eval"]["status"] == "regression"
    worse = data["flipped"]["worse"]
    assert worse and all(f["task_type"] == "knowledge/likes" for f in worse)
    for f in worse:
        near = f["detail"]["training"]
        first = near["neighbours"][0]
        assert near["membership"] == "exact" and first["exact"] and first["prompt"] == f["detail"]["prompt"]
        assert first["answer"] == f["detail"]["b"]["answer"]  # the relabelled training answer the model learned
    md = sfteval("diff", "v1", "v2", "--results", str(tmp_path), "--train-data", f"v2={t2}").stdout
    assert "Nearest training examples" in md and "t2.jsonl:" in md


def test_bad_training_data_names_file_line_and_field_and_writes_nothing(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"task_type": "a", "prompt": "p", "answer": "x"}) + "\n"
                   + json.dumps({"task_type": "a", "prompt": "q", "answer": "y"}) + "\n"
                   + json.dumps({"task_type": "", "prompt": "r", "answer": "z"}) + "\n")
    with pytest.raises(TrainDataError) as e:
        load_training(bad)
    assert str(e.value).startswith(f"{bad}:3: field 'task_type'")
    from diffkit import Rec, items, write_run

    its = items({"a/b": 3})
    for name in ("v1", "v2"):
        write_run(tmp_path, name, its, {it["id"]: Rec(exact=1.0) for it in its})
    out = tmp_path / "d.md"
    res = sfteval("diff", "v1", "v2", "--results", str(tmp_path), "--train-data", f"v2={bad}", "--out", str(out))
    assert res.returncode == 2 and f"{bad}:3: field 'task_type'" in res.stderr and not out.exists()
    res = sfteval("diff", "v1", "v2", "--results", str(tmp_path), "--train-data", f"v9={bad}")
    assert res.returncode == 2 and "v9" in res.stderr
    msgs = tmp_path / "m.jsonl"
    msgs.write_text(json.dumps({"task_type": "a", "messages": [{"role": "user", "content": "hi"}]}) + "\n")
    with pytest.raises(TrainDataError, match=r"m.jsonl:1: field 'messages': the last message must be the assistant"):
        load_training(msgs)


def test_parquet_with_mapped_columns(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "t.parquet"
    pq.write_table(pa.table({"category": ["x/y", "x/y", "z"], "instruction": ["a b", "a  B", "c"],
                             "output": ["1", "2", "3"]}), path)
    ts = load_training(path, {"task_type": "category"})
    assert len(ts) == 3 and ts.where(2).endswith("t.parquet:3")
    rows = {r["task_type"]: r for r in compare(None, ts)}
    assert rows["x/y"]["count_b"] == 2 and rows["x/y"]["duplicate_rate_b"] == 0.5 and rows["x"]["count_b"] == 2
    with pytest.raises(TrainDataError, match="no column 'nope'"):
        load_training(path, {"task_type": "nope"})
