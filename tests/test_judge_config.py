"""Judge configs: the shipped configs, validation errors that name file and field, hashing, the
task_type -> answer type map, and the usability rule."""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from sfteval.judges.aggregate import decide_usability
from sfteval.judges.config import (
    CONFIG_DIR,
    JudgeConfig,
    JudgeConfigError,
    UnknownAnswerTypeError,
    builtin_configs,
    config_hash,
    load_judge_config,
)

ALIGNBENCH_SETS = {
    "事实与解释型": ["事实正确性", "满足用户需求", "清晰度", "完备性"],
    "逻辑推理型": ["事实正确性", "满足用户需求", "逻辑连贯性", "完备性"],
    "生成型": ["事实正确性", "满足用户需求", "逻辑连贯性", "创造性", "丰富度"],
    "建议型": ["事实正确性", "满足用户需求", "公平与可负责程度", "创造性"],
}


def raw(name: str) -> dict[str, Any]:
    return yaml.safe_load((CONFIG_DIR / f"{name}.yaml").read_text(encoding="utf-8"))


def write(tmp_path: Path, data: dict[str, Any], name: str = "judge.yaml") -> Path:
    p = tmp_path / name
    p.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return p


def load_err(tmp_path: Path, data: dict[str, Any]) -> str:
    p = write(tmp_path, data)
    with pytest.raises(JudgeConfigError) as e:
        load_judge_config(p)
    msg = str(e.value)
    assert str(p) in msg, msg  # every error names the file
    return msg


@pytest.fixture(scope="module")
def zh() -> JudgeConfig:
    return load_judge_config("alignbench-zh")


@pytest.fixture(scope="module")
def en() -> JudgeConfig:
    return load_judge_config("default-en")


# -- shipped configs ---------------------------------------------------------------------------
def test_builtins_are_listed_and_load() -> None:
    assert {"alignbench-zh", "default-en"} <= set(builtin_configs())
    for name in builtin_configs():
        cfg = load_judge_config(name)
        assert cfg.name == name
        assert cfg.source and cfg.source.endswith(f"{name}.yaml")


def test_alignbench_zh_answer_types_match_alignbench(zh: JudgeConfig) -> None:
    assert zh.language == "zh"
    got = {at.name: [d.name for d in zh.dimensions_for(at.key)] for at in zh.answer_types}
    assert got == ALIGNBENCH_SETS
    assert zh.overall.name == "综合得分"
    for d in [*zh.dimensions, zh.overall]:
        assert re.fullmatch(r"[a-z][a-z0-9_]*", d.key)
        assert re.search(r"[\u4e00-\u9fff]", d.name), d.name
        assert d.description


def test_default_en_mirrors_the_chinese_config(zh: JudgeConfig, en: JudgeConfig) -> None:
    assert en.language == "en"
    assert [d.key for d in en.dimensions] == [d.key for d in zh.dimensions]
    assert {at.key: [r.key for r in at.dimensions] for at in en.answer_types} == {
        at.key: [r.key for r in at.dimensions] for at in zh.answer_types
    }
    names = {d.key: d.name for d in en.dimensions}
    assert names["factuality"] == "Factual correctness" and names["fairness"] == "Fairness and responsibility"
    assert all(d.name.isascii() for d in en.dimensions)


def test_shipped_prompts_anchor_on_the_reference(zh: JudgeConfig, en: JudgeConfig) -> None:
    assert "{{anchor_score}}" in zh.prompts.single.user and zh.prompts.anchor_score == 8
    assert "[[A]]" in zh.prompts.pair.user and "[[C]]" in zh.prompts.pair.user
    assert "[[A]]" in en.prompts.pair.user and "[[C]]" in en.prompts.pair.user


# -- loading and errors -----------------------------------------------------------------------------
def test_load_by_path_equals_load_by_name(zh: JudgeConfig) -> None:
    by_path = load_judge_config(CONFIG_DIR / "alignbench-zh.yaml")
    assert by_path == zh and by_path.config_hash() == zh.config_hash()
    assert load_judge_config(str(CONFIG_DIR / "alignbench-zh.yaml")).config_hash() == zh.config_hash()


def test_unknown_name_lists_builtins() -> None:
    with pytest.raises(JudgeConfigError, match="alignbench-zh"):
        load_judge_config("no-such-judge")


def test_missing_file() -> None:
    with pytest.raises(JudgeConfigError, match="not found"):
        load_judge_config("/nonexistent/judge.yaml")


def test_unknown_field_is_named(tmp_path: Path) -> None:
    data = raw("alignbench-zh")
    data["usability"]["thresold"] = 5
    msg = load_err(tmp_path, data)
    assert "usability.thresold" in msg and "Extra inputs" in msg


def test_bad_dimension_key_is_named(tmp_path: Path) -> None:
    data = raw("alignbench-zh")
    data["dimensions"][1]["key"] = "满足用户需求"
    assert "dimensions[1].key" in load_err(tmp_path, data)


def test_unknown_dimension_in_answer_type(tmp_path: Path) -> None:
    data = raw("alignbench-zh")
    data["answer_types"][2]["dimensions"].append("humour")
    msg = load_err(tmp_path, data)
    assert "answer_types[2].dimensions" in msg and "'humour'" in msg


def test_task_type_map_to_unknown_answer_type(tmp_path: Path) -> None:
    data = raw("default-en")
    data["task_types"]["map"]["poetry"] = "poem"
    assert "task_types.map.poetry" in load_err(tmp_path, data)


def test_floor_on_unknown_dimension(tmp_path: Path) -> None:
    data = raw("default-en")
    data["usability"]["floors"]["safety"] = 5
    assert "usability.floors.safety" in load_err(tmp_path, data)


def test_threshold_outside_scale(tmp_path: Path) -> None:
    data = raw("default-en")
    data["usability"]["threshold"] = 60
    assert "usability.threshold" in load_err(tmp_path, data)


def test_unknown_placeholder(tmp_path: Path) -> None:
    data = raw("alignbench-zh")
    data["prompts"]["single"]["user"] += "\n{{answr}}"
    msg = load_err(tmp_path, data)
    assert "prompts.single.user" in msg and "answr" in msg


def test_missing_required_placeholder(tmp_path: Path) -> None:
    data = raw("default-en")
    data["prompts"]["pair"]["user"] = data["prompts"]["pair"]["user"].replace("{{answer_b}}", "")
    msg = load_err(tmp_path, data)
    assert "prompts.pair" in msg and "answer_b" in msg


def test_alias_collision(tmp_path: Path) -> None:
    data = raw("alignbench-zh")
    data["dimensions"][2]["aliases"].append("完备性")  # clarity claims completeness' name
    msg = load_err(tmp_path, data)
    assert "'clarity'" in msg and "完备性" in msg


def test_repeats_need_temperature(tmp_path: Path) -> None:
    data = raw("default-en")
    data["sampling"] = {"k": 3, "temperature": 0}
    assert "sampling" in load_err(tmp_path, data)


def test_missing_section(tmp_path: Path) -> None:
    data = raw("default-en")
    del data["overall"]
    msg = load_err(tmp_path, data)
    assert "overall" in msg and "Field required" in msg


def test_yaml_syntax_error_names_line(tmp_path: Path) -> None:
    p = tmp_path / "broken.yaml"
    p.write_text("name: x\nlanguage: en\ndimensions: [a, b\n", encoding="utf-8")
    with pytest.raises(JudgeConfigError, match=re.escape(str(p)) + r":\d+: invalid YAML"):
        load_judge_config(p)


def test_duplicate_yaml_key_is_an_error(tmp_path: Path) -> None:
    text = (CONFIG_DIR / "default-en.yaml").read_text(encoding="utf-8")
    text = text.replace("usability:\n", "usability:\n  threshold: 2\n", 1)
    p = tmp_path / "dup.yaml"
    p.write_text(text, encoding="utf-8")
    with pytest.raises(JudgeConfigError, match="duplicate key 'threshold'"):
        load_judge_config(p)


def test_not_a_mapping(tmp_path: Path) -> None:
    p = tmp_path / "list.yaml"
    p.write_text("- a\n- b\n", encoding="utf-8")
    with pytest.raises(JudgeConfigError, match="mapping"):
        load_judge_config(p)


# -- hashing ----------------------------------------------------------------------------------------
def test_hash_ignores_layout_but_not_content(tmp_path: Path, zh: JudgeConfig) -> None:
    data = raw("alignbench-zh")
    reordered = dict(reversed(list(data.items())))
    same = load_judge_config(write(tmp_path, reordered, "reordered.yaml"))
    assert same.config_hash() == zh.config_hash() == config_hash(zh)
    assert re.fullmatch(r"[0-9a-f]{64}", zh.config_hash())

    changed = copy.deepcopy(data)
    changed["dimensions"][0]["weight"] = 3
    assert load_judge_config(write(tmp_path, changed, "w.yaml")).config_hash() != zh.config_hash()
    changed = copy.deepcopy(data)
    changed["prompts"]["single"]["user"] += "。"
    assert load_judge_config(write(tmp_path, changed, "p.yaml")).config_hash() != zh.config_hash()


#: The built-in configs' hashes as computed by sfteval before ``parser.verdict_labels`` existed (commit 67fd125).
#: Every cached judgment and run snapshot is keyed by them: a change to a built-in config, or to how configs are
#: hashed, must update these digests deliberately (and says goodbye to every cached judgment of that config).
PINNED_HASHES = {
    "alignbench-zh": "24ee07c42067ac0b6adb04ef7e8332ee10752078b5e3e9065ab6a0f1c7f82150",
    "default-en": "40c4cf5682c842ce22307b9677b4645da4c4b7c2a400cb06de3c096a0ca5cdb6",
}


@pytest.mark.parametrize("name", sorted(PINNED_HASHES))
def test_builtin_config_hashes_are_pinned(name: str) -> None:
    assert load_judge_config(name).config_hash() == PINNED_HASHES[name]


def test_verdict_labels_keep_the_hash_of_configs_written_before_them(tmp_path: Path, zh: JudgeConfig) -> None:
    """A run's config snapshot from before ``parser.verdict_labels`` existed keeps its hash (and cache)."""
    old = zh.model_dump(mode="json")
    del old["parser"]["verdict_labels"]
    assert JudgeConfig.model_validate(old).config_hash() == PINNED_HASHES["alignbench-zh"]
    changed = raw("alignbench-zh")
    changed["parser"]["verdict_labels"] = {"A>B": "A", "A<B": "B"}
    assert load_judge_config(write(tmp_path, changed)).config_hash() != zh.config_hash()


def test_verdict_labels_are_validated(tmp_path: Path) -> None:
    data = raw("default-en")
    data["parser"]["verdict_labels"] = {"A>B": "first"}
    msg = load_err(tmp_path, data)
    assert "parser.verdict_labels.A>B" in msg
    data["parser"]["verdict_labels"] = {"A=B": "A"}  # tie_labels say nothing of it, but A=B reads as...
    assert load_judge_config(write(tmp_path, data)).parser.verdict_table()["a=b"] == "A"  # ... what the config says
    data["parser"]["verdict_labels"] = {"C": "A"}  # C is a tie label
    assert "label 'C' means 'A' here but 'tie'" in load_err(tmp_path, data)
    data["parser"]["verdict_labels"] = {" a ": "B"}  # the built-in [[A]]
    assert "label ' a ' means 'B' here but 'A'" in load_err(tmp_path, data)


def test_builtin_configs_hash_differently(zh: JudgeConfig, en: JudgeConfig) -> None:
    assert zh.config_hash() != en.config_hash()


# -- task_type -> answer type --------------------------------------------------------------------------
@pytest.mark.parametrize(
    "task_type, override, expected",
    [
        ("逻辑推理/常识推理", None, "reasoning"),  # first level
        ("基本任务/翻译", None, "generation"),  # full name beats first level
        ("基本任务/信息抽取", None, "fact"),
        ("综合问答", None, "advice"),
        ("Reasoning/commonsense", None, "reasoning"),  # case-insensitive
        ("something/else", None, "fact"),  # default
        ("逻辑推理/常识推理", "生成型", "generation"),  # item/suite override by display name
        ("逻辑推理/常识推理", "advice", "advice"),  # ... by key
        ("逻辑推理/常识推理", "建议型回答", "advice"),  # ... by alias
    ],
)
def test_answer_type_for(zh: JudgeConfig, task_type: str, override: str | None, expected: str) -> None:
    assert zh.answer_type_for(task_type, override) == expected


def test_unknown_answer_type_override(zh: JudgeConfig) -> None:
    with pytest.raises(UnknownAnswerTypeError, match="poetry"):
        zh.answer_type_for("x", "poetry")


def test_per_answer_type_weight_override(tmp_path: Path) -> None:
    data = raw("default-en")
    data["answer_types"][0]["dimensions"][2] = {"key": "clarity", "weight": 5}
    cfg = load_judge_config(write(tmp_path, data))
    weights = {d.key: d.weight for d in cfg.dimensions_for("fact")}
    assert weights == {"factuality": 2, "user_satisfaction": 2, "clarity": 5, "completeness": 1}
    assert {d.key: d.weight for d in cfg.dimensions_for("reasoning")}["factuality"] == 2
    assert next(d for d in cfg.dimensions if d.key == "clarity").weight == 1  # catalog untouched


# -- usability --------------------------------------------------------------------------------------------
def test_usable_when_all_good(zh: JudgeConfig) -> None:
    u = decide_usability({"factuality": 8, "user_satisfaction": 8, "clarity": 8, "completeness": 8}, 8, zh, "fact")
    assert u.usable and u.weighted_score == 8 and u.failed_floors == [] and u.threshold == 6


def test_weights_decide_at_the_threshold(zh: JudgeConfig) -> None:
    # weights: factuality 2, user_satisfaction 2, clarity 1, completeness 1
    at = decide_usability({"factuality": 4, "user_satisfaction": 4, "clarity": 10, "completeness": 10}, 6, zh, "fact")
    assert at.usable and at.weighted_score == pytest.approx(6.0)  # (8+8+10+10)/6 = 6.0 >= 6
    below = decide_usability({"factuality": 4, "user_satisfaction": 4, "clarity": 10, "completeness": 9}, 6, zh, "fact")
    assert not below.usable and below.weighted_score == pytest.approx(35 / 6)  # unweighted mean would be 6.75
    assert below.failed_floors == [] and "weighted score" in below.reason


def test_floor_fails_despite_high_mean(zh: JudgeConfig) -> None:
    u = decide_usability({"factuality": 3, "user_satisfaction": 10, "clarity": 10, "completeness": 10}, 7, zh, "fact")
    assert u.weighted_score == pytest.approx(46 / 6) and u.weighted_score > 6
    assert not u.usable and u.failed_floors == ["factuality"] and "factuality 3 < floor 4" in u.reason


def test_floor_on_dimension_outside_answer_type_does_not_apply(tmp_path: Path) -> None:
    data = raw("default-en")
    data["usability"]["floors"] = {"fairness": 9, "overall": 5}
    cfg = load_judge_config(write(tmp_path, data))
    good = {"factuality": 8, "user_satisfaction": 8, "clarity": 8, "completeness": 8}
    assert decide_usability(good, 8, cfg, "fact").usable  # fairness is not scored for fact answers
    low_overall = decide_usability(good, 4, cfg, "fact")
    assert not low_overall.usable and low_overall.failed_floors == ["overall"]
    advice = {"factuality": 8, "user_satisfaction": 8, "fairness": 7, "creativity": 8}
    assert decide_usability(advice, 8, cfg, "advice").failed_floors == ["fairness"]


def test_overall_weight(tmp_path: Path) -> None:
    data = raw("default-en")
    data["usability"]["overall_weight"] = 6
    cfg = load_judge_config(write(tmp_path, data))
    u = decide_usability({"factuality": 8, "user_satisfaction": 8, "clarity": 8, "completeness": 8}, 2, cfg, "fact")
    assert u.weighted_score == pytest.approx(5.0) and not u.usable  # (48 + 12) / 12


def test_missing_scores_are_not_usable(zh: JudgeConfig) -> None:
    u = decide_usability({"factuality": 9, "user_satisfaction": 9}, 9, zh, "fact")
    assert not u.usable and u.weighted_score is None and "clarity" in u.reason
    assert not decide_usability({}, None, zh, "fact").usable


def test_user_added_config_without_code(tmp_path: Path) -> None:
    """A new config (own dimensions, answer type, threshold) works from YAML alone."""
    data = raw("default-en")
    data["name"] = "support-bot"
    data["dimensions"].append({"key": "politeness", "name": "Politeness", "description": "Polite and calm?", "weight": 1})
    data["answer_types"].append({"key": "support", "name": "customer support", "dimensions": ["factuality", "politeness"]})
    data["task_types"]["map"]["support"] = "support"
    data["usability"] = {"threshold": 7, "floors": {"politeness": 5}}
    cfg = load_judge_config(write(tmp_path, data, "support-bot.yaml"))
    assert cfg.answer_type_for("support/refund") == "support"
    assert [d.key for d in cfg.dimensions_for("support")] == ["factuality", "politeness"]
    u = decide_usability({"factuality": 9, "politeness": 4}, 8, cfg, "support")
    assert not u.usable and u.failed_floors == ["politeness"]
