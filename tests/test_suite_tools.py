"""`sfteval suites lint | stats | sample`: planted problems are found, clean input stays clean, numbers are right,
samples are deterministic."""

from __future__ import annotations

import json
import random
import time
from collections import Counter
from pathlib import Path

from sfteval.harness.suite import load_suite
from sfteval.harness.suitetools.lint import lint_suite
from sfteval.harness.suitetools.punctuation import check_text
from sfteval.harness.suitetools.sample import sample_items, sample_suite
from sfteval.harness.suitetools.stats import suite_stats
from sfteval.harness.suitetools.textsim import near_duplicates
from clikit import cli

REPO = Path(__file__).resolve().parents[1]
TOOLS = json.dumps([{"name": "get_weather", "description": "Current weather for a city.",
                     "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}},
                    {"name": "convert_currency", "description": "Convert an amount between currencies.",
                     "parameters": {"type": "object", "properties": {"amount": {"type": "number"}}, "required": ["amount"]}}])
FC_SYSTEM = "You can call these tools. Reply with one JSON object {\"name\": ..., \"arguments\": ...}.\n" + TOOLS

CLEAN = [
    {"id": "k1", "task_type": "knowledge/geography", "prompt": "What is the capital of Australia?",
     "reference": "Canberra.", "answer_type": "fact"},
    {"id": "k2", "task_type": "knowledge/geography", "prompt": "Which river flows through Cairo?",
     "reference": "The Nile.", "answer_type": "fact"},
    {"id": "z1", "task_type": "知识问答/科学", "prompt": "水在标准大气压下的沸点是多少摄氏度？",
     "reference": "水在标准大气压下的沸点是 100 摄氏度。", "answer_type": "fact"},
    {"id": "z2", "task_type": "知识问答/科学", "prompt": "光合作用主要发生在植物细胞的哪个结构里？",
     "reference": "光合作用主要发生在叶绿体里，它含有吸收光能的叶绿素。", "answer_type": "fact"},
    {"id": "m1", "task_type": "reasoning/math",
     "prompt": "Tom has 3 boxes of 12 eggs and breaks 5 of them on the way home. How many eggs are left?",
     "reference": "3 boxes hold 3 x 12 = 36 eggs. After 5 break, 36 - 5 = 31 remain. So the answer is 31.",
     "answer_type": "reasoning", "meta": {"final_answer": "31"}},
    {"id": "c1", "task_type": "classification/sentiment", "prompt": "Sentiment (positive or negative): I loved it.",
     "choices": ["positive", "negative"], "label": "positive", "reference": "positive", "answer_type": "fact"},
    {"id": "c2", "task_type": "classification/sentiment", "prompt": "Sentiment (positive or negative): Great value, would buy again.",
     "choices": ["positive", "negative"], "label": "positive", "reference": "positive", "answer_type": "fact"},
    {"id": "f1", "task_type": "function-calling/single-tool", "answer_type": "fact",
     "messages": [{"role": "system", "content": FC_SYSTEM}, {"role": "user", "content": "Is it raining in Oslo right now?"}],
     "reference": '{"name": "get_weather", "arguments": {"city": "Oslo"}}', "checks": {"json_valid": True}},
    {"id": "f2", "task_type": "function-calling/single-tool", "answer_type": "fact",
     "messages": [{"role": "system", "content": FC_SYSTEM}, {"role": "user", "content": "How much is 250 euros in yen?"}],
     "reference": '{"name": "convert_currency", "arguments": {"amount": 250}}', "checks": {"json_valid": True}},
    {"id": "i1", "task_type": "instructions/length", "prompt": "Describe autumn in at most 12 words.",
     "reference": "Crisp air, falling leaves and early dusk.", "checks": {"max_words": 12, "language": "en"},
     "answer_type": "generation"},
    {"id": "t1", "task_type": "multi-turn/topic-shift", "answer_type": "fact",
     "messages": [{"role": "user", "content": "What is 2 + 2?"}, {"role": "user", "content": "And the capital of Peru?"}],
     "reference": ["2 + 2 = 4.", "Lima."]},
    {"id": "r1", "task_type": "robustness/typos", "prompt": "wat is teh capital of australia",
     "reference": "Canberra.", "answer_type": "fact", "tags": ["robustness"], "meta": {"variant_of": "k1"}},
    {"id": "r2", "task_type": "robustness/unfinished", "prompt": "What is the capital of Australia? I mean the",
     "reference": "Canberra.", "answer_type": "fact", "tags": ["robustness"], "meta": {"variant_of": "k1"}},
    {"id": "zc", "task_type": "代码/函数实现", "answer_type": "reasoning",
     "prompt": "用 Python 写一个函数 add(a, b)，返回两数之和。",
     "reference": "可以这样写：\n```python\ndef add(a, b):\n    return a + b\n```\n调用 add(1, 2) 会得到 3。"},
]

PLANTED = [
    # near-duplicate prompt (one word changed) and near-duplicate answer in the same task_type
    {"id": "m1b", "task_type": "reasoning/math",
     "prompt": "Tom has 3 boxes of 12 eggs and breaks 5 of them on the way home. How many eggs are left now?",
     "reference": "He starts with 3 x 12 = 36 eggs and 36 - 5 = 31 are left. So the answer is 31.", "answer_type": "reasoning"},
    {"id": "z2b", "task_type": "知识问答/科学", "prompt": "植物进行光合作用的场所是什么？",
     "reference": "光合作用主要发生在叶绿体里，它含有吸收光能的叶绿素！", "answer_type": "fact"},
    # punctuation
    {"id": "p-zh", "task_type": "知识问答/科学", "prompt": "月球绕地球一圈大约要多久？",
     "reference": "大约 27.3 天,这叫恒星月。", "answer_type": "fact"},
    {"id": "p-en", "task_type": "knowledge/geography", "prompt": "Name the largest ocean.",
     "reference": "The Pacific Ocean，by far.", "answer_type": "fact"},
    {"id": "p-latin", "task_type": "代码/函数实现", "prompt": "列出三种常用的编程语言。",  # clean: after Latin words
     "reference": "常用的有 Python, Java 和 Go，它们各有所长。", "answer_type": "fact"},
    {"id": "p-end", "task_type": "逻辑推理/数学计算", "prompt": "3 乘以 14 等于多少？",
     "reference": "3 × 14 = 42，所以答案是 42.", "answer_type": "reasoning"},
    # references
    {"id": "todo", "task_type": "writing/practical", "prompt": "Write a two-line thank-you note to a neighbour.",
     "reference": "TODO", "answer_type": "generation"},
    {"id": "copy", "task_type": "writing/practical", "prompt": "Repeat after me: good morning.",
     "reference": "Repeat after me: good morning.", "answer_type": "generation"},
    {"id": "cut", "task_type": "writing/practical", "prompt": "Describe a quiet morning in a village.",
     "reference": "Mist lies over the fields, a dog barks once, and", "answer_type": "generation"},
    # checks that the reference itself fails
    {"id": "contra", "task_type": "instructions/length", "prompt": "Say hello in at most 3 words.",
     "reference": "Hello there, my dear friend!", "checks": {"max_words": 3, "must_contain": ["hello"]},
     "answer_type": "generation"},
    # the same item twice
    {"id": "k2-again", "task_type": "knowledge/geography", "prompt": "Which river flows through Cairo?",
     "reference": "The Nile.", "answer_type": "fact"},
]


def write_suite(folder: Path, items: list[dict], config: str = "name: t\ndefaults:\n  max_new_tokens: 64\n") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "items.jsonl").write_text("".join(json.dumps(i, ensure_ascii=False) + "\n" for i in items), encoding="utf-8")
    (folder / "suite.yaml").write_text(config, encoding="utf-8")
    return folder


sfteval = cli()


# -- lint ---------------------------------------------------------------------------------------------------
def test_clean_suite_has_no_findings(tmp_path: Path) -> None:
    report = lint_suite(load_suite(write_suite(tmp_path / "clean", CLEAN)))
    assert report.findings == [], report.to_text()


def test_planted_problems_are_found(tmp_path: Path) -> None:
    report = lint_suite(load_suite(write_suite(tmp_path / "planted", CLEAN + PLANTED)))
    found = {(f.item_id, f.code): f for f in report.findings}
    expected = {
        ("m1b", "near-duplicate-prompt"): "warning",
        ("z2b", "near-duplicate-answer"): "warning",
        ("p-zh", "punctuation-half-width-in-zh"): "warning",
        ("p-en", "punctuation-full-width-in-en"): "warning",
        ("p-end", "punctuation-half-width-in-zh"): "warning",
        ("todo", "placeholder-reference"): "error",
        ("copy", "reference-copies-prompt"): "warning",
        ("cut", "unfinished-reference"): "warning",
        ("contra", "checks-contradict-reference"): "error",
        ("k2-again", "duplicate-item"): "error",
    }
    assert {k: found[k].level for k in expected if k in found} == expected
    assert set(found) == set(expected), report.to_text()  # nothing else: the clean items stay clean
    f = found[("m1b", "near-duplicate-prompt")]
    assert f.related == ["m1"] and f.file.endswith("items.jsonl") and f.line == len(CLEAN) + 1
    assert "max_words" in found[("contra", "checks-contradict-reference")].message
    assert report.has_errors and report.counts()["error"] == 3


def test_threshold_and_variant_links(tmp_path: Path) -> None:
    items = CLEAN + [{"id": "k1c", "task_type": "robustness/typos", "prompt": "What is the capital of Australia ?",
                      "reference": "Canberra.", "tags": ["robustness"], "meta": {"variant_of": "k1"}}]
    suite = load_suite(write_suite(tmp_path / "v", items))
    assert lint_suite(suite).findings == []  # a variant is never a duplicate of its original
    loose = {(f.item_id, f.code) for f in lint_suite(suite, threshold=0.5).findings}
    assert ("k1c", "near-duplicate-prompt") not in loose and ("z2", "near-duplicate-answer") not in loose


def test_lint_cli_exit_codes_and_json(tmp_path: Path) -> None:
    clean = write_suite(tmp_path / "clean", CLEAN)
    proc = sfteval("suites", "lint", str(clean))
    assert proc.returncode == 0 and "0 errors, 0 warnings" in proc.stdout
    planted = write_suite(tmp_path / "planted", CLEAN + PLANTED)
    proc = sfteval("suites", "lint", str(planted), "--format", "json")
    assert proc.returncode == 1
    data = json.loads(proc.stdout)
    assert data["counts"]["error"] == 3 and data["items"] == len(CLEAN + PLANTED)
    assert {"level", "code", "item_id", "message", "file", "line", "related"} <= set(data["findings"][0])
    proc = sfteval("suites", "lint", str(planted), "--min-level", "error")
    assert f"{planted / 'items.jsonl'}:{len(CLEAN) + 7}: error: placeholder-reference: todo" in proc.stdout
    assert "warning:" not in proc.stdout


def test_lint_and_validate_take_several_suites(tmp_path: Path) -> None:
    """`sfteval suites lint suites/*`: one report per suite (JSON: an array), exit 1 if any has an error."""
    clean = write_suite(tmp_path / "clean", CLEAN)
    planted = write_suite(tmp_path / "planted", CLEAN + PLANTED)
    proc = sfteval("suites", "lint", str(clean), str(planted))
    assert proc.returncode == 1
    summaries = [line for line in proc.stdout.splitlines() if " items: " in line and line.endswith(" s)")]
    assert len(summaries) == 2 and "0 errors, 0 warnings" in summaries[0] and "3 errors" in summaries[1]
    reports = json.loads(sfteval("suites", "lint", str(clean), str(planted), "--format", "json").stdout)
    assert [r["counts"]["error"] for r in reports] == [0, 3]
    assert sfteval("suites", "lint", str(clean), str(clean)).returncode == 0
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "items.jsonl").write_text('{"id": "a", "task_type": "t"}\n')
    proc = sfteval("suites", "validate", str(clean), str(broken), str(planted))
    assert proc.returncode == 2 and proc.stdout.count("ok: ") == 2  # every suite is checked, the bad one named
    assert f"{broken / 'items.jsonl'}:1" in proc.stderr


def test_punctuation_rules() -> None:
    assert check_text("所以答案是 42。") == []
    assert check_text("代码如下：`print(1, 2)`，输出 1 2。") == []
    assert check_text('调用结果是 {"city": "Oslo", "days": 3}。') == []
    assert check_text("步骤：\n1. 打开设置。\n2. 点击“关于”。") == []
    assert check_text("访问 https://example.com/a,b?x=1 查看。") == []
    assert check_text("Translate: 今天天气很好。") == []  # quoted Chinese keeps its own marks
    assert check_text("Version 3.14 costs $2,000.") == []
    assert [i.code for i in check_text("你好,世界。")] == ["half-width-in-zh"]
    assert [i.code for i in check_text("这是结果.")] == ["half-width-in-zh"]
    assert [i.code for i in check_text("Hello， world.")] == ["full-width-in-en"]


# AlignBench-style Chinese answers: list markers, code, URLs, times, decimals, English terms before ':', quoted
# English and Latin, option letters, Japanese. Each keeps ASCII punctuation by nature: nothing to flag.
CLEAN_ZH = [
    "要提高睡眠质量，可以从以下几个方面入手：\n1.保持规律作息，每天固定时间上床。\n2.睡前一小时不看手机。\n"
    "3.白天适量运动，但睡前两小时内不要剧烈运动。",
    "解题步骤如下：\n1. 先把 6 升的水壶装满。\n2) 再倒进 4 升的水壶，剩下 2 升。\n  a. 倒掉 4 升壶里的水。",
    "正确的穿衣顺序是：4.起床 2.穿袜子 1.穿鞋 3.出门。",
    "问题是：54.某中学体检时，发现近视的学生占 35%。",
    "注意以下几点： \u00a0 \u00a01.管制 \u00a0 \u00a02.罚款",
    "（1）先算括号里的；(2)再算乘除；（3）最后算加减。",
    "圆的面积公式是 S = πr²，当 r = 2 时，面积约为 3.14 × 4 = 12.56 平方厘米。",
    "会议将于上午10:30开始，12:00前结束，下午 2:15 继续。",
    "可以到 https://www.python.org/downloads/ 下载安装包，常见问题见 www.example.com/faq?id=3,4。",
    "在 Python 中可以用 `sorted(nums, reverse=True)` 对列表降序排序，用 `nums.sort()` 原地排序。",
    "下面是一个示例：\n```python\ndef add(a, b):\n    # 返回两数之和: a + b\n    return a + b\n\nprint(add(1, 2))\n```\n"
    "运行后输出 3。",
    "常见的排序算法有以下几种：\nQuick Sort:平均时间复杂度为 O(n log n)。\nBubble Sort: 实现简单，但效率较低。",
    "Python:一种解释型语言；JavaScript:主要用于网页开发。",
    "设集合A,B和C,其中A的基数为a；方程组Ax = b,其中A是一个n×n矩阵。",
    "向量的叉积为 (y1z2-z1y2,z1x2-x1z2,x1y2-y1x2),则三角形面积是它的模的一半。",
    "笛卡尔的名言“我思故我在”（Cogito, ergo sum）出自《方法论》。",
    "问路时可以说“Excuse me, where is the station?”，意思是“请问车站在哪里？”",
    "参考文献：Mangan, J., Lalwani, C. Global Logistics. Wiley, 2016.",
    "（A）（B）（C）（D）",
    "In Japanese: ありがとう。 In French: merci.",
]
FLAGGED_ZH = [
    "你好,世界。",  # a half-width comma between Chinese characters
    "根据费马小定理,如果 p 是质数，那么 a^p ≡ a (mod p)。",
    "今天的日期是:2023 年 6 月 1 日。",  # a half-width colon after a Chinese character
    "除以 9 的商是 66,余数是 6。",  # a number is part of the Chinese sentence
    "它是如何工作的? 请简要说明。",
    "所以答案是 42.",
    "这是结果.",
    "步骤如下：\n1. 首先,将水壶装满。",  # a list item with a real defect
    "用 `print()` 输出结果,然后换行。",
    "详见 https://example.com,该页面有说明。",
    "圆周率约为 3.14,通常取两位小数。",
    "会议在 10:30 开始,请准时参加。",
    "我们需要：苹果,香蕉和梨。",
]


def test_punctuation_rules_on_realistic_chinese_text() -> None:
    for text in CLEAN_ZH:
        assert check_text(text) == [], text
    for text in FLAGGED_ZH:
        assert [i.code for i in check_text(text)] == ["half-width-in-zh"], text
    issue = check_text("根据费马小定理,如果 p 是质数,那么结论成立。")[0]
    assert "(2x)" in issue.message and "小定理,如果" in issue.excerpt


def test_lint_of_an_imported_alignbench_file_flags_only_real_defects(tmp_path: Path) -> None:
    """AlignBench records (`suites import --format alignbench`) whose references are the realistic lines above."""
    records = [{"question_id": i, "category": "专业能力", "subcategory": "综合", "question": "请回答下面的问题。",
                "reference": text} for i, text in enumerate(CLEAN_ZH + FLAGGED_ZH, start=1)]
    src = tmp_path / "data_release.jsonl"
    src.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    assert sfteval("suites", "import", "--format", "alignbench", str(src), str(tmp_path / "ab")).returncode == 0
    proc = sfteval("suites", "lint", str(tmp_path / "ab"), "--format", "json")
    flagged = {f["item_id"] for f in json.loads(proc.stdout)["findings"] if f["code"].startswith("punctuation-")}
    assert flagged == {f"alignbench-{i}" for i in range(len(CLEAN_ZH) + 1, len(records) + 1)}


def test_near_duplicates_exact_and_linked() -> None:
    texts = [("a", "The quick brown fox jumps over the lazy dog near the river bank."),
             ("b", "The quick brown fox jumps over the lazy dog near the river bank!"),
             ("c", "the quick brown fox jumps over the lazy dog near the river banks"),
             ("d", "Completely different sentence about quantum chromodynamics.")]
    found = near_duplicates(texts, 0.9)
    assert found["b"][:2] == ("a", 1.0) and found["c"][0] in ("a", "b") and "d" not in found and "a" not in found
    found = near_duplicates(texts, 0.9, exclude=lambda x, y: {x, y} == {"a", "b"})
    assert "b" not in found or found["b"][0] != "a"


def _synthetic(n: int, seed: int = 0) -> tuple[list[dict], set[str]]:
    """Zipfian pseudo-words and Chinese, a shared long template, and planted near-duplicates."""
    rng = random.Random(seed)
    syl = ["ka", "to", "re", "mi", "an", "el", "or", "str", "ing", "ed", "un", "pro", "ti", "on", "la", "be"]
    vocab = sorted({"".join(rng.choices(syl, k=rng.randint(1, 4))) for _ in range(20000)})
    weights = [1 / (i + 1) for i in range(len(vocab))]
    zh = [chr(0x4E00 + 5 * i) for i in range(3000)]

    def en(k: int) -> str:
        return " ".join(rng.choices(vocab, weights, k=k))

    template = "Read the passage and answer.\nPassage: " + en(120) + "\nQuestion: "
    items, planted = [], set()
    for i in range(n):
        kind = i % 10
        if kind < 6:
            prompt, ref = en(rng.randint(10, 200)) + "?", en(rng.randint(5, 150)) + "."
        elif kind < 9:
            prompt, ref = "请回答：" + "".join(rng.choices(zh, k=rng.randint(20, 400))) + "？", "答案是" + "".join(rng.choices(zh, k=40)) + "。"
        else:
            prompt, ref = template + en(rng.randint(40, 60)) + "?", en(20) + "."
        items.append({"id": f"s{i:05d}", "task_type": f"t{i % 7}/s{i % 21}", "prompt": prompt, "reference": ref})
    for k in range(20):
        src = items[k * 13]
        if len(src["prompt"]) > 200:
            items.append({"id": f"dup{k}", "task_type": "planted/x", "prompt": src["prompt"] + " ok", "reference": en(30) + "."})
            planted.add(f"dup{k}")
    return items, planted


def test_lint_scales(tmp_path: Path) -> None:
    items, planted = _synthetic(3000)
    suite = load_suite(write_suite(tmp_path / "big", items))
    t0 = time.perf_counter()
    report = lint_suite(suite)
    elapsed = time.perf_counter() - t0
    dups = {f.item_id for f in report.findings if f.code == "near-duplicate-prompt"}
    assert planted <= dups
    assert elapsed < 120, f"lint took {elapsed:.1f} s for {len(items)} items"


# -- stats ----------------------------------------------------------------------------------------------------
def test_stats_on_a_known_suite(tmp_path: Path) -> None:
    s = load_suite(write_suite(tmp_path / "clean", CLEAN))
    st = suite_stats(s)
    assert st["items"] == 14 and st["first_level_task_types"] == 9 and st["second_level_task_types"] == 10
    assert st["task_types"]["knowledge"]["items"] == 2 and st["task_types"]["knowledge/geography"]["items"] == 2
    rob_prompts = sorted(len(i["prompt"]) for i in CLEAN if "robustness" in i.get("tags", []))
    assert st["task_types"]["robustness"] == {"items": 2, "multi_turn": 0, "robustness": 2, "with_reference": 2,
                                              "prompt_median": sum(rob_prompts) / 2, "reference_median": 9}
    assert st["multi_turn"] == 1 and st["fixed_history"] == 0 and st["with_system_prompt"] == 2
    assert (st["with_reference"], st["with_choices"], st["with_checks"], st["robustness"]) == (14, 2, 3, 2)
    assert st["tags"] == {"robustness": 2}
    assert st["answer_types"] == {"fact": 11, "reasoning": 2, "generation": 1}
    prompts = [i.get("prompt") or "\n".join(m["content"] for m in i["messages"]) for i in CLEAN]
    assert (st["prompt_chars"]["min"], st["prompt_chars"]["max"]) == (min(map(len, prompts)), max(map(len, prompts)))
    assert st["reference_chars"]["max"] == max(len(i["reference"] if isinstance(i["reference"], str) else i["reference"][-1])
                                               for i in CLEAN)
    proc = sfteval("suites", "stats", str(tmp_path / "clean"), "--format", "json")
    assert proc.returncode == 0 and json.loads(proc.stdout)["items"] == 14
    proc = sfteval("suites", "stats", str(tmp_path / "clean"))
    assert proc.returncode == 0 and "robustness" in proc.stdout and "14 items" in proc.stdout
    lines = [line.split() for line in proc.stdout.splitlines()]
    knowledge_at = next(i for i, cells in enumerate(lines) if cells[:1] == ["knowledge"])
    assert lines[knowledge_at + 1][:3] == ["└", "geography", "2"]  # a second level, marked under its first


# -- sample ---------------------------------------------------------------------------------------------------
def test_sample_is_deterministic_and_keeps_originals(tmp_path: Path) -> None:
    items = list(CLEAN)
    for i in range(12):
        items.append({"id": f"g{i:02d}", "task_type": "knowledge/general", "prompt": f"Question number {i} about {i * 7}?",
                      "reference": f"Answer {i}."})
        items.append({"id": f"g{i:02d}-typo", "task_type": "robustness/typos", "prompt": f"qestion numbr {i} abot {i * 7}",
                      "reference": f"Answer {i}.", "tags": ["robustness"], "meta": {"variant_of": f"g{i:02d}"}})
    config = "name: big\ndefaults:\n  max_new_tokens: 64\ntask_types:\n  knowledge:\n    answer_type: fact\n  multi-turn:\n    max_new_tokens: 99\n"
    suite = load_suite(write_suite(tmp_path / "big", items, config))
    a = [it.id for it in sample_items(suite, 2, seed=1)]
    assert a == [it.id for it in sample_items(suite, 2, seed=1)]
    assert a != [it.id for it in sample_items(suite, 2, seed=2)] or a != [it.id for it in sample_items(suite, 2, seed=3)]
    chosen = {it.id: it for it in suite.items if it.id in a}
    for it in chosen.values():  # every sampled variant has its original in the sample
        if "variant_of" in it.meta:
            assert it.meta["variant_of"] in chosen
    counts = Counter(it.task_type for it in chosen.values())
    assert counts["robustness/typos"] == 2 and counts["knowledge/general"] == 2  # drawn originals are preferred
    assert all(n <= 2 for n in counts.values())

    out = sample_suite(suite, tmp_path / "small", 2, seed=1)
    assert [it.id for it in out.items] == a
    assert out.config.defaults.max_new_tokens == 64 and out.config.task_types["knowledge"].answer_type == "fact"
    assert out.config.task_types["multi-turn"].max_new_tokens == 99
    again = tmp_path / "again" / "small"  # same name, so the same suite hash
    proc = sfteval("suites", "sample", str(tmp_path / "big"), str(again), "--per-task-type", "2", "--seed", "1")
    assert proc.returncode == 0, proc.stderr
    assert (again / "items.jsonl").read_bytes() == (tmp_path / "small" / "items.jsonl").read_bytes()
    assert load_suite(again).content_hash == out.content_hash


def test_sample_builtin_suite_keeps_file_layout(tmp_path: Path) -> None:
    full = load_suite("general-en")
    out = sample_suite(full, tmp_path / "en-small", 1, seed=0)
    assert set(out.task_type_counts()) == set(full.task_type_counts())
    assert {p.name for p in (tmp_path / "en-small").glob("*.jsonl")} <= {p.name for p in full.path.glob("*.jsonl")}
    by = {it.id: it for it in out.items}
    assert all(it.meta["variant_of"] in by for it in out.items if it.is_robustness)
    assert lint_suite(out).counts()["error"] == 0
