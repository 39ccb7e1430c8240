"""The built-in suites (suites/general-zh, suites/general-en) are valid, self-consistent and cover
what issue 7 asks for. References must pass their own ``checks`` as the rule scorer sees them
(judges/rules.py ``evaluate_checks``) and each suite passes its own lint with no error-level finding.
"""

from __future__ import annotations

import collections
import json
import re
from pathlib import Path

import pytest
import yaml

from sfteval.harness.models import Item, SuiteConfig
from sfteval.judges.rules import evaluate_checks

ROOT = Path(__file__).resolve().parents[1]
SUITES = ["general-zh", "general-en"]
ANSWER_TYPES = {"fact", "reasoning", "generation", "advice"}

# category asked for by issue 7 -> task_types (first or second level) or tags that cover it, per suite
CATEGORIES = {
    "knowledge QA": {"general-zh": ["知识问答"], "general-en": ["knowledge"]},
    "commonsense reasoning": {"general-zh": ["逻辑推理/常识推理"], "general-en": ["reasoning/commonsense"]},
    "multi-step math": {"general-zh": ["逻辑推理/数学计算"], "general-en": ["reasoning/math"]},
    "logic": {"general-zh": ["逻辑推理/逻辑谜题"], "general-en": ["reasoning/logic"]},
    "classification": {"general-zh": ["文本分类"], "general-en": ["classification"]},
    "information extraction": {"general-zh": ["信息抽取"], "general-en": ["extraction"]},
    "rewriting": {"general-zh": ["文本改写/改写润色"], "general-en": ["rewriting/style"]},
    "summarising": {"general-zh": ["文本改写/摘要"], "general-en": ["rewriting/summarization"]},
    "translation zh->en": {"general-zh": ["翻译/中译英"], "general-en": ["translation/zh-en"]},
    "translation en->zh": {"general-zh": ["翻译/英译中"], "general-en": ["translation/en-zh"]},
    "writing": {"general-zh": ["写作"], "general-en": ["writing"]},
    "role-play": {"general-zh": ["角色扮演"], "general-en": ["roleplay"]},
    "code": {"general-zh": ["代码"], "general-en": ["code"]},
    "grounded QA": {"general-zh": ["阅读理解/依据原文"], "general-en": ["grounded-qa/answerable"]},
    "grounded QA, not in passage": {"general-zh": ["阅读理解/原文未提及"], "general-en": ["grounded-qa/unanswerable"]},
    "function calling": {"general-zh": ["工具调用"], "general-en": ["function-calling"]},
    "complex instructions": {"general-zh": ["复杂指令"], "general-en": ["instructions"]},
    "multi-turn, topic shift": {"general-zh": ["多轮对话/话题切换"], "general-en": ["multi-turn/topic-shift"]},
    "multi-turn, correction": {"general-zh": ["多轮对话/纠正与坚持"], "general-en": ["multi-turn/correction"]},
    "multi-turn, ignored answer": {"general-zh": ["多轮对话/忽略回答"], "general-en": ["multi-turn/ignored-answer"]},
    "safety/refusal": {"general-zh": ["安全/拒答"], "general-en": ["safety/refusal"]},
    "robustness": {"general-zh": ["tag:robustness"], "general-en": ["tag:robustness"]},
}
MATH_LOGIC = {"general-zh": ("逻辑推理/数学计算", "逻辑推理/逻辑谜题"), "general-en": ("reasoning/math", "reasoning/logic")}
FINAL_ANSWER = {"general-zh": re.compile(r"所以答案是(.+)。$"), "general-en": re.compile(r"So the answer is (.+)\.$")}
UNANSWERABLE = {"general-zh": ("阅读理解/原文未提及", "文中没有提到"), "general-en": ("grounded-qa/unanswerable", "The passage does not say")}
FUNCTION_CALLING = {"general-zh": "工具调用", "general-en": "function-calling"}
CLASSIFICATION = {"general-zh": "文本分类", "general-en": "classification"}
ROLEPLAY = {"general-zh": "角色扮演", "general-en": "roleplay"}

CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")


# -- helpers ----------------------------------------------------------------------------------------
def _json(text: str):
    return json.loads(text.strip())


def failed_checks(text: str, checks) -> list[str]:
    """Names of the checks that ``text`` fails, as the rule scorer decides them (empty list: it passes)."""
    return [name for name, ok in evaluate_checks(checks, text).items() if not ok]


# -- loading ----------------------------------------------------------------------------------------
def load_suite(name: str):
    """(config, [(file, line_no, raw dict, Item)])"""
    folder = ROOT / "suites" / name
    cfg = SuiteConfig.model_validate(yaml.safe_load((folder / "suite.yaml").read_text(encoding="utf-8")))
    rows = []
    for path in sorted(folder.glob("*.jsonl")):
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            try:
                raw = json.loads(line)
                item = Item.model_validate(raw)
            except ValueError as e:  # json.JSONDecodeError and pydantic.ValidationError
                raise AssertionError(f"{path.relative_to(ROOT)}:{n}: {e}") from None
            rows.append((path.name, n, raw, item))
    return cfg, rows


@pytest.fixture(scope="module", params=SUITES)
def suite(request):
    cfg, rows = load_suite(request.param)
    return request.param, cfg, [r[3] for r in rows], rows


@pytest.fixture(scope="module")
def all_items():
    return {name: [r[3] for r in load_suite(name)[1]] for name in SUITES}


def _covers(items: list[Item], key: str) -> list[Item]:
    if key.startswith("tag:"):
        return [it for it in items if key[4:] in it.tags]
    return [it for it in items if key in it.task_type_levels]


# -- structure --------------------------------------------------------------------------------------
def test_suite_config(suite):
    name, cfg, items, _ = suite
    assert cfg.name == name
    assert cfg.description.strip()
    assert cfg.defaults.max_new_tokens and cfg.defaults.temperature == 0.0
    levels = {lvl for it in items for lvl in it.task_type_levels}
    unknown = set(cfg.task_types) - levels
    assert not unknown, f"suite.yaml names task_types with no items: {unknown}"
    for key, settings in cfg.task_types.items():
        assert settings.answer_type is None or settings.answer_type in ANSWER_TYPES, key
    for it in items:  # an item's own answer_type agrees with the suite.yaml default for its task_type
        for level in it.task_type_levels:
            default = cfg.task_types[level].answer_type if level in cfg.task_types else None
            assert default is None or it.answer_type == default, (it.id, it.answer_type, level, default)


NEEDS = {"choice": lambda it: bool(it.choices), "checks": lambda it: bool(it.checks and it.checks.active()),
         "exact_match": lambda it: _short_single_line(it.final_reference),
         "normalized_match": lambda it: _short_single_line(it.final_reference)}


def _short_single_line(text) -> bool:
    """At most 5 words on one line (a Latin word or number is a word, so is each Chinese character)."""
    return isinstance(text, str) and "\n" not in text.strip() and len(
        re.findall(r"[A-Za-z0-9]+(?:['’\-][A-Za-z0-9]+)*|[\u4e00-\u9fff]", text)) <= 5


def test_every_task_type_lists_its_rules(suite):
    """Each first-level task_type names its rules in suite.yaml (none is left to the defaults), and each rule it
    names has items to score: choices for `choice`, checks for `checks`, short references for a match rule."""
    name, cfg, items, _ = suite
    by_level = collections.defaultdict(list)
    for it in items:
        by_level[it.task_type_levels[0]].append(it)
    for level, members in sorted(by_level.items()):
        settings = cfg.task_types.get(level)
        assert settings is not None and settings.rules is not None, f"{name}: {level} does not list its rules"
        for rule in settings.rules:
            scored = [it for it in members if NEEDS[rule](it)]
            assert scored, f"{name}: {level} lists {rule} but no item has what it needs"
            if rule in ("exact_match", "normalized_match"):
                assert len(scored) == len(members), f"{name}: {level}: {rule} on references no match can decide"


def test_ids_unique_and_readable(suite):
    name, _, items, rows = suite
    prefix = name.split("-")[1] + "-"
    seen = {}
    for fname, n, _, it in rows:
        assert it.id not in seen, f"{fname}:{n}: id {it.id} already used at {seen[it.id]}"
        seen[it.id] = f"{fname}:{n}"
        assert re.fullmatch(re.escape(prefix) + r"[a-z]+-\d{3}", it.id), f"{fname}:{n}: unreadable id {it.id!r}"


def test_every_item_is_complete(suite):
    _, _, items, _ = suite
    for it in items:
        assert len(it.task_type.split("/")) == 2, f"{it.id}: task_type should have two levels"
        assert " " not in it.task_type, f"{it.id}: no spaces in task_type names"
        assert it.answer_type in ANSWER_TYPES, f"{it.id}: answer_type {it.answer_type!r}"
        assert it.reference is not None, f"{it.id}: every built-in item has a reference"
        refs = it.reference if isinstance(it.reference, list) else [it.reference]
        assert all(r and r.strip() == r for r in refs), f"{it.id}: empty reference or stray whitespace"


def test_size_and_task_types(all_items):
    items = [it for its in all_items.values() for it in its]
    assert len(items) >= 300
    first = {it.task_type_levels[0] for it in items}
    second = {it.task_type for it in items if len(it.task_type_levels) == 2}
    assert len(first) >= 10, sorted(first)
    assert len(second) >= 30, sorted(second)


@pytest.mark.parametrize("category", sorted(CATEGORIES))
def test_category_covered(all_items, category):
    for name, keys in CATEGORIES[category].items():
        assert any(_covers(all_items[name], k) for k in keys), f"{name}: nothing covers {category!r} ({keys})"


def test_counts_follow_difficulty(suite):
    """Hard task_types get more items than the easy knowledge questions."""
    name, _, items, _ = suite
    count = collections.Counter(it.task_type_levels[0] for it in items)
    knowledge = count[CATEGORIES["knowledge QA"][name][0]]
    reasoning = sum(1 for it in items if it.task_type in MATH_LOGIC[name])
    assert reasoning > knowledge
    for cat in ("complex instructions", "grounded QA"):
        key = CATEGORIES[cat][name][0].split("/")[0]
        assert count[key] > knowledge, (cat, count[key], knowledge)


# -- references -------------------------------------------------------------------------------------
def test_references_pass_their_checks(suite):
    """Scored by judges/rules.py (its word count counts each CJK character as a word)."""
    _, _, items, _ = suite
    problems = {}
    for it in items:
        if it.checks is not None:
            assert it.checks.active(), f"{it.id}: empty checks"
            bad = failed_checks(it.final_reference, it.checks)
            if bad:
                problems[it.id] = bad
    assert not problems


def test_suite_passes_its_own_lint(suite):
    """`sfteval suites lint` finds no error-level problem."""
    from sfteval.harness.suite import load_suite as load_builtin
    from sfteval.harness.suitetools.lint import lint_suite

    name = suite[0]
    report = lint_suite(load_builtin(name))
    assert not report.has_errors, report.to_text("error")


def test_json_references_parse(suite):
    name, _, items, _ = suite
    for it in items:
        if it.checks is not None and (it.checks.json_valid or it.checks.json_keys):
            _json(it.final_reference)  # raises on invalid JSON
    extraction = [it for it in items if it.task_type_levels[0] == CATEGORIES["information extraction"][name][0]]
    assert extraction and all(it.checks and it.checks.json_valid for it in extraction)


def test_classification_items(suite):
    name, _, items, _ = suite
    cls = [it for it in items if it.task_type_levels[0] == CLASSIFICATION[name]]
    assert cls
    for it in cls:
        assert it.choices and it.label == it.reference, it.id
        assert len(it.label.split()) == 1, f"{it.id}: one-word label"
        prompt = it.conversation[-1].content
        assert all(c in prompt for c in it.choices), f"{it.id}: the prompt must list the choices"


def test_math_and_logic_references_end_with_final_answer(suite):
    name, _, items, _ = suite
    final = FINAL_ANSWER[name]
    for it in items:
        if it.task_type in MATH_LOGIC[name]:
            m = final.search(it.final_reference)
            assert m, f"{it.id}: reference must end with a marked final answer"
            assert len(it.final_reference) > len(m.group(0)) + 10, f"{it.id}: reference needs a chain of thought"
            fa = it.meta.get("final_answer")
            assert fa and fa in m.group(1), f"{it.id}: meta.final_answer {fa!r} not in {m.group(1)!r}"


def test_grounded_qa_not_in_passage(suite):
    name, _, items, _ = suite
    tt, phrase = UNANSWERABLE[name]
    unanswerable = [it for it in items if it.task_type == tt]
    assert len(unanswerable) >= 3
    for it in unanswerable:
        assert phrase in it.final_reference and it.checks and phrase in it.checks.must_contain, it.id


def _tools(item: Item) -> dict:
    system = item.conversation[0]
    assert system.role == "system", f"{item.id}: function-calling items put the tools in the system prompt"
    tools = json.loads(system.content[system.content.rindex("\n[") + 1:])
    return {t["name"]: t for t in tools}


def test_function_calls_match_the_tool_schema(suite):
    name, _, items, _ = suite
    fc = [it for it in items if it.task_type_levels[0] == FUNCTION_CALLING[name]]
    calls = 0
    for it in fc:
        tools = _tools(it)
        ref = it.final_reference
        if it.checks and it.checks.json_valid:
            call = _json(ref)
            assert set(call) == {"name", "arguments"}, it.id
            assert call["name"] in tools, f"{it.id}: unknown tool {call['name']}"
            params = tools[call["name"]]["parameters"]
            assert set(params["required"]) <= set(call["arguments"]) <= set(params["properties"]), it.id
            calls += 1
    assert calls >= 5 and calls < len(fc), "want both tool calls and items where no call is right"


def test_roleplay_has_a_persona(suite):
    name, _, items, _ = suite
    rp = [it for it in items if it.task_type_levels[0] == ROLEPLAY[name]]
    assert rp and all(it.conversation[0].role == "system" for it in rp)


def test_multi_turn_shapes(suite):
    name, _, items, _ = suite
    mt = [it for it in items if it.task_type_levels[0] == CATEGORIES["multi-turn, topic shift"][name][0].split("/")[0]]
    assert any(it.n_answer_turns >= 2 for it in mt), "some items let the model answer in between"
    assert any(any(m.role == "assistant" for m in it.conversation) for it in mt), "some items fix the history"
    for it in mt:
        if it.n_answer_turns >= 2:
            assert isinstance(it.reference, list) and all(it.reference), f"{it.id}: one reference per answered turn"


def test_knowledge_items_have_a_continuation_prefix_and_short_answer(suite):
    """The continuation probe compares a base model's continuation of the prefix with the short answer: the
    short answer must be the reference's own fact, and the prefix must not already give it away."""
    from sfteval.harness.probes.continuation import knows

    name, _, items, _ = suite
    knowledge = [it for it in items if it.task_type.split("/")[0] == CATEGORIES["knowledge QA"][name][0]]
    assert knowledge
    for it in knowledge:
        prefix, short = it.meta.get("continuation_prefix"), it.meta.get("short_answer")
        assert isinstance(prefix, str) and prefix.strip() and isinstance(short, str) and short.strip(), it.id
        assert knows(it.reference, short), (it.id, short)
        assert not knows(prefix, short), (it.id, prefix)


def test_robustness_variants(suite):
    _, _, items, _ = suite
    by_id = {it.id: it for it in items}
    rob = [it for it in items if it.is_robustness]
    assert len(rob) >= 8
    for it in rob:
        orig = by_id.get(it.meta.get("variant_of"))
        assert orig is not None, f"{it.id}: meta.variant_of must name an item of this suite"
        assert not orig.is_robustness, f"{it.id}: a variant of an original, not of another variant"
        assert it.conversation[-1].content != orig.conversation[-1].content, it.id
        assert it.answer_type == orig.answer_type, it.id
        assert it.choices == orig.choices and it.label == orig.label, it.id


def _code_blocks(text: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


def test_code_references_run(suite):
    _, _, items, _ = suite
    tested = 0
    for it in items:
        tests = it.meta.get("tests")
        if not tests:
            continue
        ns: dict = {}
        blocks = _code_blocks(it.final_reference)
        assert blocks, f"{it.id}: meta.tests but no ```python block in the reference"
        for code in blocks:
            exec(compile(code, f"<{it.id}>", "exec"), ns)
        for t in tests:
            exec(compile(t, f"<{it.id} test>", "exec"), ns)
        tested += 1
    assert tested >= 5


# -- punctuation ------------------------------------------------------------------------------------
_CODE = re.compile(r"```.*?```|`[^`\n]*`", re.S)
_HALF_NEAR_CJK = re.compile(r'(?<=[\u4e00-\u9fff])[,;:?!()]|[,;:?!(](?=[\u4e00-\u9fff])|"')
_FULL = re.compile(r"[，。？！：；“”（）]")


def _texts(it: Item):
    """(kind, text) of everything a reader sees; robustness prompts are badly written on purpose."""
    for m in it.conversation:
        if not (m.role == "user" and it.is_robustness):
            yield m.role, m.content
    if "continuation_prefix" in it.meta:
        yield "continuation_prefix", it.meta["continuation_prefix"]
    refs = it.reference if isinstance(it.reference, list) else [it.reference]
    for r in refs:
        try:
            _json(r)
        except ValueError:
            yield "reference", r


def _prose(text: str) -> str:
    """``text`` minus code and JSON-like spans (a bracketed span with a double quote), which keep ASCII punctuation."""
    text = _CODE.sub(" ", text)
    out, i = [], 0
    while i < len(text):
        if text[i] in "[{":
            depth, j = 0, i
            while j < len(text):
                depth += text[j] in "[{"
                depth -= text[j] in "]}"
                if depth == 0:
                    break
                j += 1
            if depth == 0 and '"' in text[i:j]:
                out.append(" ")
                i = j + 1
                continue
        out.append(text[i])
        i += 1
    return "".join(out)


def test_chinese_text_uses_full_width_punctuation(all_items):
    """Half-width , ; : ? ! ( ) next to a Chinese character, or a half-width double quote, in Chinese prose."""
    bad = []
    for it in all_items["general-zh"]:
        for kind, text in _texts(it):
            prose = _prose(text)
            for m in _HALF_NEAR_CJK.finditer(prose):
                bad.append((it.id, kind, prose[max(0, m.start() - 8): m.end() + 8]))
    assert not bad


def test_english_text_uses_half_width_punctuation(all_items):
    bad = []
    for it in all_items["general-en"]:
        for kind, text in _texts(it):
            if CJK.search(text):
                continue  # translation items quote Chinese text
            for m in _FULL.finditer(text):
                bad.append((it.id, kind, text[max(0, m.start() - 8): m.end() + 8]))
    assert not bad


# -- README -----------------------------------------------------------------------------------------
def test_readme_lists_every_task_type_with_its_count(suite):
    """The README table has one row per task_type, first and second level, with its item count."""
    name, _, items, _ = suite
    readme = (ROOT / "suites" / name / "README.md").read_text(encoding="utf-8")
    table = {}
    for line in readme.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")] if line.lstrip().startswith("|") else []
        if len(cells) >= 2 and re.fullmatch(r"\*{0,2}`[^`]+`\*{0,2}", cells[0]) and cells[1].strip("*").isdigit():
            key = cells[0].strip("*").strip("`")
            assert key not in table, f"README lists {key} twice"
            table[key] = int(cells[1].strip("*"))
    data = collections.Counter(level for it in items for level in it.task_type_levels)
    assert table == dict(data)
    m = re.search(r"\*\*(\d+)\*\* items", readme)
    assert m and int(m.group(1)) == len(items), "README states the total item count"
