"""`sfteval suites import`: real MT-Bench files, hand-made AlignBench / Arena-Hard / chat / table samples,
and broken input that must name file, line and field and leave nothing behind."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from sfteval.harness.importers import ImportOptions, import_suite, importers
from sfteval.harness.suite import SuiteError, load_suite
from clikit import cli

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "tests" / "data" / "importers"
# The real MT-Bench files (FastChat, Apache-2.0; see their NOTICE.md), copied unchanged so the test never skips.
MT_BENCH = REPO / "tests" / "data" / "mt_bench"


sfteval = cli()


def imported_error(fmt: str, src: Path, dest: Path, opts: ImportOptions | None = None) -> SuiteError:
    with pytest.raises(SuiteError) as exc:
        import_suite(fmt, src, dest, opts)
    assert not dest.exists(), "nothing may be written when the import fails"
    assert not [p for p in dest.parent.iterdir() if p.name.startswith(f".{dest.name}.")], "no temporary leftovers"
    return exc.value


def write(path: Path, lines: list) -> Path:
    path.write_text("".join((x if isinstance(x, str) else json.dumps(x, ensure_ascii=False)) + "\n" for x in lines),
                    encoding="utf-8")
    return path


def test_registry_has_every_format() -> None:
    assert {"alignbench", "mt-bench", "arena-hard", "chat-jsonl", "table"} <= set(importers())


# -- MT-Bench, on the real FastChat files ------------------------------------------------------------------


def test_mt_bench_real_files(tmp_path: Path) -> None:
    s = import_suite("mt-bench", MT_BENCH, tmp_path / "mt-bench")
    assert len(s.items) == 80
    assert s.task_type_counts() == {t: 10 for t in (
        "generation/roleplay", "generation/writing", "knowledge/humanities", "knowledge/stem",
        "reasoning/coding", "reasoning/logic", "reasoning/math", "understanding/extraction")}
    by = {it.id: it for it in s.items}
    assert all(it.n_answer_turns == 2 and [m.role for m in it.conversation] == ["user", "user"] for it in s.items)
    # the 30 reference answers (math, reasoning, coding) become per-turn references, merged by question_id
    refs = [json.loads(x) for x in (MT_BENCH / "reference_answer_gpt-4.jsonl").read_text().splitlines() if x.strip()]
    assert len(refs) == 30
    for r in refs:
        item = by[f"mt-bench-{r['question_id']}"]
        assert item.reference == [t.strip() for t in r["choices"][0]["turns"]]
        assert item.task_type.startswith("reasoning/") and item.answer_type == "reasoning"
    # the short inline reference of a question is kept beside the reference-file answer
    assert by["mt-bench-101"].meta["inline_reference"] == ["You are in second place.", "Uncertain."]
    # questions outside the reference file keep their inline reference, with None for an empty turn
    assert by["mt-bench-142"].reference[1] is None and by["mt-bench-142"].reference[0].startswith("The orbital radius")
    assert by["mt-bench-81"].reference is None
    assert Counter(it.answer_type for it in s.items) == {"reasoning": 30, "fact": 30, "generation": 20}
    assert s.config.defaults.max_new_tokens == 1024 and s.config.task_types["reasoning"].answer_type == "reasoning"
    readme = (tmp_path / "mt-bench" / "README.md").read_text()
    assert "**80** items" in readme and "| `reasoning/math` | 10 | reasoning |" in readme
    assert "reference_answer_gpt-4.jsonl" in readme


def test_mt_bench_question_file_with_explicit_references(tmp_path: Path) -> None:
    s = import_suite("mt-bench", MT_BENCH / "question.jsonl", tmp_path / "a",
                     ImportOptions(references=MT_BENCH / "reference_answer_gpt-4.jsonl", id_prefix="q"))
    assert sum(isinstance(it.reference, list) for it in s.items) == 30 + 10  # file + inline-only references
    assert "q-130" in {it.id for it in s.items}


def test_mt_bench_broken_inputs(tmp_path: Path) -> None:
    q = write(tmp_path / "question.jsonl", [{"question_id": 81, "category": "writing", "turns": ["Write.", "Again."]},
                                            {"question_id": 82, "category": "writing", "turns": ["Write.", " "]}])
    err = imported_error("mt-bench", q, tmp_path / "out")
    assert (Path(err.file).name, err.line, err.field) == ("question.jsonl", 2, "turns.1")

    write(q, [{"question_id": 81, "category": "writing", "turns": ["Write.", "Again."]}])
    refs = write(tmp_path / "refs.jsonl", [{"question_id": 81, "choices": [{"turns": ["a", "b", "c"]}]}])
    err = imported_error("mt-bench", q, tmp_path / "out", ImportOptions(references=refs))
    assert (Path(err.file).name, err.line, err.field) == ("refs.jsonl", 1, "choices.0.turns")
    assert "3 turns" in err.message

    write(refs, [{"question_id": 81, "choices": [{"turns": ["a", "b"]}]}, {"question_id": 99, "choices": [{"turns": ["x"]}]}])
    err = imported_error("mt-bench", q, tmp_path / "out", ImportOptions(references=refs))
    assert (err.line, err.field) == (2, "question_id") and "99" in err.message

    write(refs, [{"question_id": 81, "choices": []}])
    err = imported_error("mt-bench", q, tmp_path / "out", ImportOptions(references=refs))
    assert (err.line, err.field) == (1, "choices")


# -- AlignBench --------------------------------------------------------------------------------------------
def test_alignbench_sample(tmp_path: Path) -> None:
    s = import_suite("alignbench", DATA / "alignbench_sample.jsonl", tmp_path / "alignbench")
    by = {it.id: it for it in s.items}
    assert len(s.items) == 11
    assert by["alignbench-3"].task_type == "数学计算/初等数学" and by["alignbench-3"].answer_type == "reasoning"
    assert by["alignbench-1"].answer_type == "fact"
    assert by["alignbench-8"].answer_type == "generation"
    assert by["alignbench-9"].task_type == "角色扮演/（虚拟）恋爱类" and by["alignbench-9"].answer_type == "generation"
    assert by["alignbench-10"].answer_type == "advice"
    assert by["alignbench-11"].answer_type == "fact"  # unknown subcategory: its category's type
    assert by["alignbench-1"].reference == "小提琴的四根空弦从低到高依次是 G、D、A、E。"  # trailing newline stripped
    assert {lvl for it in s.items for lvl in it.task_type_levels if "/" not in lvl} == {
        "专业能力", "数学计算", "基本任务", "逻辑推理", "中文理解", "文本写作", "角色扮演", "综合问答"}
    assert s.config.task_types["综合问答"].answer_type == "advice"
    assert load_suite(tmp_path / "alignbench").content_hash == s.content_hash


def test_alignbench_task_type_map(tmp_path: Path) -> None:
    ttmap = tmp_path / "map.yaml"
    ttmap.write_text("专业能力: knowledge\n数学计算/初等数学: {task_type: math/elementary, answer_type: reasoning}\n"
                     "综合问答: {answer_type: generation}\n", encoding="utf-8")
    proc = sfteval("suites", "import", "--format", "alignbench", str(DATA / "alignbench_sample.jsonl"),
                   str(tmp_path / "ab"), "--task-type-map", str(ttmap))
    assert proc.returncode == 0, proc.stderr
    by = {it.id: it for it in load_suite(tmp_path / "ab").items}
    assert by["alignbench-1"].task_type == "knowledge/音乐"  # the second level is kept
    assert by["alignbench-3"].task_type == "math/elementary"
    assert by["alignbench-4"].task_type == "数学计算/应用数学"
    assert by["alignbench-10"].answer_type == "generation" and by["alignbench-10"].task_type == "综合问答/寻求建议"


def test_alignbench_broken_inputs(tmp_path: Path) -> None:
    good = {"question_id": 1, "category": "专业能力", "subcategory": "音乐", "question": "问题？", "reference": "答案。"}
    src = write(tmp_path / "data.jsonl", [good, {**good, "question_id": 2, "question": None}])
    err = imported_error("alignbench", src, tmp_path / "out")
    assert (err.line, err.field, err.message) == (2, "question", "is required")

    write(src, [good, '{"question_id": 2, "category": "x"'])
    err = imported_error("alignbench", src, tmp_path / "out")
    assert err.line == 2 and "invalid JSON" in err.message

    write(src, [good, good])
    err = imported_error("alignbench", src, tmp_path / "out")
    assert (err.line, err.field) == (2, "id") and "duplicate" in err.message

    write(src, [good, {**good, "question_id": 3, "reference": ["a", "b"]}])
    err = imported_error("alignbench", src, tmp_path / "out")
    assert (err.line, err.field) == (2, "reference")

    err = imported_error("alignbench", DATA / "alignbench_sample.jsonl", tmp_path / "out",
                         ImportOptions(field_map={"promt": "question"}))
    assert "promt" in err.message


# -- Arena-Hard ---------------------------------------------------------------------------------------------
def test_arena_hard_v01_layout(tmp_path: Path) -> None:
    s = import_suite("arena-hard", DATA / "arena_hard_v01_sample.jsonl", tmp_path / "ah")
    assert len(s.items) == 5
    assert s.task_type_counts()["arena-hard/Python Async Programming"] == 2
    by = {it.meta["cluster"]: it for it in s.items}
    assert by["Shell Scripting / Text Tools"].task_type == "arena-hard/Shell Scripting-Text Tools"  # no third level
    assert by["Probability Puzzles & Dice"].answer_type == "reasoning"
    assert by["Startup Strategy Advice"].answer_type == "fact"
    assert all(it.prompt and it.reference is None for it in s.items)
    assert s.items[0].id == "arena-hard-0f3a9c1e5b7d4e2a8c6b1d3e5f7a9b0c"


def test_arena_hard_v2_layout(tmp_path: Path) -> None:
    s = import_suite("arena-hard", DATA / "arena_hard_v2_sample.jsonl", tmp_path / "ah2")
    assert {it.task_type: it.answer_type for it in s.items} == {
        "hard_prompt/coding": "reasoning", "hard_prompt/math": "reasoning",
        "creative_writing/short_story": "generation", "hard_prompt/career": "fact"}
    assert s.config.task_types["creative_writing"].answer_type == "generation"


def test_arena_hard_broken_inputs(tmp_path: Path) -> None:
    src = write(tmp_path / "q.jsonl", [{"uid": "a", "category": "hard_prompt", "prompt": "Hi?"},
                                       {"question_id": "b", "category": "x", "turns": [{"content": ""}]}])
    err = imported_error("arena-hard", src, tmp_path / "out")
    assert (err.line, err.field) == (2, "turns.0.content")
    write(src, [{"category": "hard_prompt", "prompt": "Hi?"}])
    err = imported_error("arena-hard", src, tmp_path / "out")
    assert (err.line, err.field) == (1, "question_id")


# -- chat JSONL and tables -----------------------------------------------------------------------------------
def test_chat_jsonl(tmp_path: Path) -> None:
    s = import_suite("chat-jsonl", DATA / "chat_sample.jsonl", tmp_path / "chat", ImportOptions(task_type="chat"))
    by = {it.id: it for it in s.items}
    assert by["recall-001"].reference == "100 degrees Celsius."
    assert [m.role for m in by["recall-001"].conversation] == ["system", "user"]
    assert by["recall-002"].task_type == "recall/math" and by["recall-002"].tags == ["train-set"]
    third = by["chat_sample-00003"]  # no id: file stem + record number; no task_type: --task-type
    assert third.task_type == "chat" and third.reference == "Blue."
    assert [m.role for m in third.conversation] == ["user", "assistant", "user"]  # earlier answer stays fixed history
    assert third.n_answer_turns == 1

    s = import_suite("chat-jsonl", DATA / "sharegpt_sample.jsonl", tmp_path / "sg",
                     ImportOptions(task_type="chat", field_map={"messages": "conversations"}))
    assert [(it.prompt or it.conversation[-1].content, it.reference) for it in s.items] == [
        ("Say hello in French.", "Bonjour."), ("Capital of Italy?", "Rome.")]


def test_chat_jsonl_errors(tmp_path: Path) -> None:
    err = imported_error("chat-jsonl", DATA / "chat_sample.jsonl", tmp_path / "out")
    assert (err.line, err.field) == (3, "task_type")
    src = write(tmp_path / "c.jsonl", [{"messages": [{"role": "robot", "content": "x"}]}])
    err = imported_error("chat-jsonl", src, tmp_path / "out", ImportOptions(task_type="t"))
    assert (err.line, err.field) == (1, "messages.0.role")


TABLE_MAP = {"prompt": "question", "reference": "answer", "task_type": "category", "choices": "options",
             "label": "gold", "meta.difficulty": "difficulty"}


def _check_table(s) -> None:
    by = {it.prompt: it for it in s.items}
    assert len(s.items) == 4
    assert by["What is the capital of Japan?"].reference == "Tokyo."
    assert by["What is the capital of Japan?"].meta == {"difficulty": "easy"}
    assert by["How many sides does a hexagon have?"].reference == "6"
    mammal = by["Pick the mammal."]
    assert mammal.choices == ["shark", "whale", "trout"] and mammal.label == "whale"
    assert s.task_type_counts() == {"astronomy": 1, "biology": 1, "geography": 1, "math": 1}


def test_table_csv_via_cli(tmp_path: Path) -> None:
    args = [a for k, v in TABLE_MAP.items() for a in ("--map", f"{k}={v}")]
    proc = sfteval("suites", "import", "--format", "table", str(DATA / "table_sample.csv"), str(tmp_path / "t"), *args)
    assert proc.returncode == 0, proc.stderr
    _check_table(load_suite(tmp_path / "t"))


def test_table_parquet_and_json(tmp_path: Path) -> None:
    import pandas as pd

    frame = pd.read_csv(DATA / "table_sample.csv")
    frame["options"] = [None, None, None, ["shark", "whale", "trout"]]  # Parquet holds real lists
    frame["gold"] = [None, None, None, 1]
    frame["answer"] = frame["answer"].astype(str)
    frame.to_parquet(tmp_path / "train.parquet")
    _check_table(import_suite("table", tmp_path / "train.parquet", tmp_path / "p", ImportOptions(field_map=TABLE_MAP)))
    ds = tmp_path / "dataset"  # a Hugging Face dataset folder: data/*.parquet plus metadata that is not rows
    (ds / "data").mkdir(parents=True)
    frame.to_parquet(ds / "data" / "train-00000-of-00001.parquet")
    (ds / "dataset_info.json").write_text('{"description": ""}')
    _check_table(import_suite("table", ds, tmp_path / "d", ImportOptions(field_map=TABLE_MAP)))
    frame.to_json(tmp_path / "train.json", orient="records", lines=True, force_ascii=False)  # `datasets` style
    _check_table(import_suite("table", tmp_path / "train.json", tmp_path / "j", ImportOptions(field_map=TABLE_MAP)))


def test_table_errors(tmp_path: Path) -> None:
    err = imported_error("table", DATA / "table_sample.csv", tmp_path / "out", ImportOptions(field_map={"prompt": "nope"}))
    assert err.field == "nope" and "question" in err.message
    src = write(tmp_path / "rows.jsonl", [{"q": "Why?", "a": "Because.", "c": "t"}, {"q": "How?", "a": {"x": 1}, "c": "t"}])
    err = imported_error("table", src, tmp_path / "out", ImportOptions(field_map={"prompt": "q", "reference": "a", "task_type": "c"}))
    assert (err.line, err.field) == (2, "a") and "dict" in err.message


# -- writing -----------------------------------------------------------------------------------------------
def test_existing_destination_needs_force(tmp_path: Path) -> None:
    dest = tmp_path / "ab"
    import_suite("alignbench", DATA / "alignbench_sample.jsonl", dest)
    with pytest.raises(SuiteError, match="--force"):
        import_suite("alignbench", DATA / "alignbench_sample.jsonl", dest)
    (dest / "stale.jsonl").write_text('{"id": "x", "task_type": "t", "prompt": "p"}\n')
    s = import_suite("arena-hard", DATA / "arena_hard_v2_sample.jsonl", dest, force=True)
    assert not (dest / "stale.jsonl").exists() and len(load_suite(dest).items) == len(s.items) == 4


def test_failure_while_writing_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from sfteval.harness.suitetools import writer

    def boom(path):
        raise SuiteError(path, "simulated failure after the files were written")

    monkeypatch.setattr(writer, "load_suite", boom)
    dest = tmp_path / "out"
    with pytest.raises(SuiteError, match="simulated"):
        import_suite("alignbench", DATA / "alignbench_sample.jsonl", dest)
    assert list(tmp_path.iterdir()) == []


def test_cli_error_is_one_line_with_location(tmp_path: Path) -> None:
    src = write(tmp_path / "bad.jsonl", [{"question_id": 1, "category": "专业能力", "question": ""}])
    proc = sfteval("suites", "import", "--format", "alignbench", str(src), str(tmp_path / "out"))
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"sfteval: error: {src}:1: field 'question': must not be empty"
    assert not (tmp_path / "out").exists()
