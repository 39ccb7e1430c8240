"""Suite loading and validation: every user mistake names its file, line and field."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sfteval.harness.suite import SuiteError, load_suite

GOOD = {"id": "a1", "task_type": "math/addition", "prompt": "1+1=", "reference": "2"}


def write_jsonl(path: Path, records: list, raw_lines: list[str] | None = None) -> Path:
    lines = [json.dumps(r, ensure_ascii=False) for r in records] + (raw_lines or [])
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def error_of(path: Path) -> SuiteError:
    with pytest.raises(SuiteError) as exc:
        load_suite(path)
    return exc.value


def test_loads_jsonl_with_both_forms(tmp_path: Path) -> None:
    f = write_jsonl(tmp_path / "s.jsonl", [
        GOOD,
        {"id": "c1", "task_type": "逻辑推理/常识推理", "messages": [
            {"role": "system", "content": "你是助手。"}, {"role": "user", "content": "天为什么是蓝的？"}],
         "reference": "因为瑞利散射。", "tags": ["robustness"]},
        {"id": "s1", "task_type": "classification", "prompt": "great!", "choices": ["positive", "negative"], "label": 0},
    ])
    suite = load_suite(f)
    assert [i.id for i in suite.items] == ["a1", "c1", "s1"]
    assert suite.items[2].label == "positive"  # an index label is normalised to the choice text
    assert suite.task_type_counts() == {"classification": 1, "math/addition": 1, "逻辑推理/常识推理": 1}
    assert suite.items[1].task_type_levels == ["逻辑推理", "逻辑推理/常识推理"]
    assert len(suite.content_hash) == 64


U, A, SYS = ({"role": r, "content": "x"} for r in ("user", "assistant", "system"))


@pytest.mark.parametrize(
    "record, field, fragment",
    [
        ({"task_type": "x", "prompt": "p"}, "id", "is required"),
        ({"id": "", "task_type": "x", "prompt": "p"}, "id", "must not be empty"),
        ({"id": "b", "task_type": "a/b/c", "prompt": "p"}, "task_type", "one or two"),
        ({"id": "b", "task_type": "x"}, "prompt", "exactly one of 'prompt' or 'messages' is required"),
        ({"id": "b", "task_type": "x", "prompt": "p", "messages": [U]}, "messages", "not both"),
        ({"id": "b", "task_type": "x", "prompt": "  "}, "prompt", "must not be empty"),
        ({"id": "b", "task_type": "x", "messages": []}, "messages", "must not be empty"),
        ({"id": "b", "task_type": "x", "messages": [SYS]}, "messages", "at least one user turn"),
        ({"id": "b", "task_type": "x", "messages": [{"role": "bot", "content": "hi"}]}, "messages.0.role", "'system', 'user' or 'assistant'"),
        ({"id": "b", "task_type": "x", "messages": [U, A]}, "messages.1.role", "must end with a user turn"),
        ({"id": "b", "task_type": "x", "messages": [SYS, A, U]}, "messages.1.role", "first non-system turn must be 'user'"),
        ({"id": "b", "task_type": "x", "messages": [U, SYS, U]}, "messages.1.role", "may only come first"),
        ({"id": "b", "task_type": "x", "messages": [U, A, A, U]}, "messages.2.role", "two assistant turns in a row"),
        ({"id": "b", "task_type": "x", "messages": [U, {"role": "user", "content": " "}]}, "messages.1.content", "must not be empty"),
        ({"id": "b", "task_type": "x", "prompt": "p", "reference": " "}, "reference", "must not be empty"),
        ({"id": "b", "task_type": "x", "prompt": "p", "choices": ["a", "b"], "label": "c"}, "label", "'c' is not among the choices ['a', 'b']"),
        ({"id": "b", "task_type": "x", "prompt": "p", "choices": ["a", "b"], "label": 5}, "label", "out of range"),
        ({"id": "b", "task_type": "x", "prompt": "p", "choices": ["a", "b"]}, "label", "is required when 'choices' is given"),
        ({"id": "b", "task_type": "x", "prompt": "p", "choices": ["a", "b"], "reference": "c"}, "label",
         "is required when 'choices' is given: 'reference' 'c' matches none of the choices ['a', 'b']"),
        ({"id": "b", "task_type": "x", "prompt": "p", "choices": ["a b", "a  b"], "reference": "a\tb"}, "label",
         "'reference' 'a\\tb' matches more than one of the choices"),
        ({"id": "b", "task_type": "x", "prompt": "p", "label": "a"}, "label", "given without 'choices'"),
        ({"id": "b", "task_type": "x", "prompt": "p", "choices": ["a"], "label": "a"}, "choices", "at least two"),
        ({"id": "b", "task_type": "x", "prompt": "p", "choices": ["a", "b", "a"], "label": "a"}, "choices", "duplicate entries ['a']"),
        ({"id": "b", "task_type": "x", "prompt": 3}, "prompt", "valid string"),
        ({"id": "b", "task_type": "x", "prompt": "p", "tags": "robustness"}, "tags", "valid list"),
        ({"id": "b", "task_type": "x", "prompt": "p", "colour": "red"}, "colour", "not a known field"),
        ({"id": "b", "task_type": "x", "prompt": "p", "checks": {"max_chars": -1}}, "checks.max_chars", "greater than or equal"),
        ({"id": "b", "task_type": "x", "prompt": "p", "checks": {"regex": "("}}, "checks.regex", "invalid regular expression"),
    ],
)
def test_field_errors_name_file_line_and_field(tmp_path: Path, record: dict, field: str, fragment: str) -> None:
    f = write_jsonl(tmp_path / "bad.jsonl", [GOOD, record])
    err = error_of(f)
    assert (err.file, err.line, err.field) == (str(f), 2, field)
    assert str(err).startswith(f"{f}:2: field '{field}': ")
    assert fragment in err.message


def test_reference_equal_to_a_choice_serves_as_the_label(tmp_path: Path) -> None:
    """Data sets often give choices and a reference but no label: the reference is the label when it is one of
    the choices, exactly or up to whitespace; `suites stats` counts those items."""
    f = write_jsonl(tmp_path / "s.jsonl", [
        GOOD,
        {"id": "r1", "task_type": "cls", "prompt": "Great food, rude staff.",
         "choices": ["positive", "negative", "mixed"], "reference": "mixed"},
        {"id": "r2", "task_type": "cls", "prompt": "How was it?", "choices": ["very good", "very bad"],
         "reference": " very\n good "},
        {"id": "r3", "task_type": "cls", "prompt": "Nice!", "choices": ["positive", "negative"], "label": "positive",
         "reference": "positive"},
    ])
    suite = load_suite(f)
    labels = {it.id: it.label for it in suite.items}
    assert (labels["r1"], labels["r2"], labels["r3"]) == ("mixed", "very good", "positive")

    from sfteval.harness.suitetools.stats import stats_text, suite_stats

    stats = suite_stats(suite)
    assert stats["with_choices"] == 3 and stats["label_from_reference"] == 2  # r3 had its own label
    assert "choices 3 (label taken from the reference: 2)" in stats_text(stats)


def test_bad_json_line(tmp_path: Path) -> None:
    f = write_jsonl(tmp_path / "s.jsonl", [GOOD], ['{"id": "x", "task_type": '])
    err = error_of(f)
    assert err.line == 2 and "invalid JSON" in str(err)


def test_not_an_object(tmp_path: Path) -> None:
    f = write_jsonl(tmp_path / "s.jsonl", [GOOD, ["a"]])
    assert "must be an object" in str(error_of(f))


def test_duplicate_ids_point_to_both_places(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "a.jsonl", [GOOD])
    b = write_jsonl(tmp_path / "b.jsonl", [dict(GOOD, prompt="2+2=")])
    err = error_of(tmp_path)
    assert err.file == str(b) and err.line == 1 and err.field == "id"
    assert "a.jsonl:1" in str(err)


def test_non_utf8_names_the_line(tmp_path: Path) -> None:
    f = tmp_path / "s.jsonl"
    f.write_bytes(json.dumps(GOOD).encode() + b"\n" + '{"id": "b", "task_type": "x", "prompt": "caf\u00e9"}'.encode("latin-1") + b"\n")
    err = error_of(f)
    assert err.line == 2 and "UTF-8" in str(err)


def test_bom_and_crlf_are_accepted(tmp_path: Path) -> None:
    f = tmp_path / "s.jsonl"
    body = "\r\n".join(json.dumps(r) for r in [GOOD, dict(GOOD, id="a2")]) + "\r\n"
    f.write_bytes(b"\xef\xbb\xbf" + body.encode())
    assert [i.id for i in load_suite(f).items] == ["a1", "a2"]


def test_yaml_items_report_their_line(tmp_path: Path) -> None:
    f = tmp_path / "s.yaml"
    f.write_text("- id: a1\n  task_type: math\n  prompt: '1+1='\n- id: a2\n  task_type: math\n  prompt: ''\n")
    err = error_of(f)
    assert (err.line, err.field) == (4, "prompt") and "must not be empty" in str(err)


@pytest.mark.parametrize("wrapped", [False, True])
def test_json_array_items_report_the_line_they_start_on(tmp_path: Path, wrapped: bool) -> None:
    bad = {"id": "b", "task_type": "x", "prompt": "p", "choices": ["a", "b"], "label": "c"}
    body = "[\n" + json.dumps(GOOD, indent=2) + ",\n\n  " + json.dumps(bad) + "\n]"
    if wrapped:  # an object with an 'items' list, after other keys whose values span lines
        body = '{"note": "a [bracket], {brace}\\n",\n "meta": {"items": [1,\n 2]},\n "items": ' + body + "}"
    f = tmp_path / "s.json"
    f.write_text(body, encoding="utf-8")
    lines = body.split("\n")
    expected = next(n for n, text in enumerate(lines, 1) if '"id": "b"' in text)
    err = error_of(f)
    assert (err.line, err.field) == (expected, "label")
    assert str(err).startswith(f"{f}:{expected}: field 'label': ")
    f.write_text(body.replace('"label": "c"', '"label": "a"'), encoding="utf-8")
    good_at = next(n for n, text in enumerate(lines, 1) if '"id": "a1"' in text) - 1  # the '{' above it
    assert load_suite(f).sources == {"a1": (str(f), good_at), "b": (str(f), expected)}


def test_folder_with_suite_yaml_settings(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "items.jsonl", [GOOD, dict(GOOD, id="k1", task_type="knowledge")])
    (tmp_path / "suite.yaml").write_text(
        "name: mini\nversion: '2'\ndefaults: {max_new_tokens: 32}\n"
        "task_types:\n  math: {temperature: 0.7}\n  math/addition: {max_new_tokens: 8}\n"
    )
    suite = load_suite(tmp_path)
    assert (suite.name, suite.version) == ("mini", "2")
    add = suite.settings_for("math/addition")
    assert (add.temperature, add.max_new_tokens) == (0.7, 8)
    other = suite.settings_for("knowledge")
    assert (other.temperature, other.max_new_tokens) == (0.0, 32)


def test_suite_yaml_errors(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "items.jsonl", [GOOD])
    (tmp_path / "suite.yaml").write_text("defaults: {temperature: -1}\n")
    err = error_of(tmp_path)
    assert err.file.endswith("suite.yaml") and (err.line, err.field) == (1, "defaults.temperature")
    (tmp_path / "suite.yaml").write_text("name: x\ntask_types:\n  nosuch: {max_new_tokens: 4}\n")
    err = error_of(tmp_path)
    assert (err.line, err.field) == (3, "task_types.nosuch") and "unknown task_type 'nosuch'" in err.message


@pytest.mark.parametrize(
    "yaml_text, field, line",
    [
        ("task_types:\n  math:\n    rules: [exact_match, exakt_match]\n", "task_types.math.rules", 3),
        ("defaults:\n  rules:\n    - choice\n    - exakt_match\n", "defaults.rules", 4),
    ],
)
def test_unknown_rule_is_rejected_at_load_time(tmp_path: Path, yaml_text: str, field: str, line: int) -> None:
    from sfteval.judges.rules import rule_names

    write_jsonl(tmp_path / "items.jsonl", [GOOD])
    (tmp_path / "suite.yaml").write_text(yaml_text)
    err = error_of(tmp_path)
    assert err.file == str(tmp_path / "suite.yaml")
    assert (err.line, err.field) == (line, field)
    assert "unknown rule 'exakt_match'" in err.message
    assert all(name in err.message for name in rule_names())
    (tmp_path / "suite.yaml").write_text(yaml_text.replace("exakt_match", "normalized_match"))
    assert load_suite(tmp_path).settings_for("math/addition").rules is not None


def test_suite_yaml_files_entry_names_its_line(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "items.jsonl", [GOOD])
    (tmp_path / "suite.yaml").write_text("files:\n  - items.jsonl\n  - missing.jsonl\n")
    err = error_of(tmp_path)
    assert (err.line, err.field) == (3, "files") and "missing.jsonl" in err.message


def test_content_hash_tracks_content_not_order(tmp_path: Path) -> None:
    a = write_jsonl(tmp_path / "a.jsonl", [GOOD, dict(GOOD, id="a2")])
    b = write_jsonl(tmp_path / "b.jsonl", [dict(GOOD, id="a2"), GOOD])
    c = write_jsonl(tmp_path / "c.jsonl", [GOOD, dict(GOOD, id="a2", reference="3")])
    assert load_suite(a).content_hash == load_suite(b).content_hash != load_suite(c).content_hash


def test_parquet_items(tmp_path: Path) -> None:
    import pandas as pd

    f = tmp_path / "s.parquet"
    pd.DataFrame([GOOD, dict(GOOD, id="a2", reference=None)]).to_parquet(f)
    items = load_suite(f).items
    assert items[0].reference == "2" and items[1].reference is None


def test_unknown_suite_name_lists_builtins() -> None:
    with pytest.raises(SuiteError) as exc:
        load_suite("no-such-suite")
    assert "built-in" in str(exc.value)


def test_multi_turn_reference_list_must_match_turns(tmp_path: Path) -> None:
    msgs = [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}]
    ok = write_jsonl(tmp_path / "ok.jsonl", [{"id": "m", "task_type": "x", "messages": msgs, "reference": ["A", None]}])
    item = load_suite(ok).items[0]
    assert item.n_answer_turns == 2 and item.final_reference is None
    bad = write_jsonl(tmp_path / "bad.jsonl", [{"id": "m", "task_type": "x", "messages": msgs, "reference": ["A"]}])
    err = error_of(bad)
    assert err.field == "reference" and "has 1 entries but the item has 2 answered turns" in err.message
