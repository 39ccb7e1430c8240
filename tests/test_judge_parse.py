"""Judge output parsing and aggregation, on the shapes real judges produce.

Shapes follow public benchmarks' judge outputs (AlignBench's Chinese analysis ending in a Python dict,
MT-Bench's 'Rating: [[8]]' and '[[A]]' verdicts, JSON in code fences) and the ways judges deviate from
them (full-width punctuation, curly quotes, trailing commas, extra keys, truncation, ...).
The texts are written for these tests.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from sfteval.harness.models import Judgment
from sfteval.judges.aggregate import (
    aggregate_samples,
    balanced_outcome,
    candidate_points,
    combine_orders,
    combine_pair_samples,
    debiased_mean,
    majority,
    majority_verdict,
    position_advantage,
)
from sfteval.judges.config import CONFIG_DIR, JudgeConfig, load_judge_config
from sfteval.judges.parse import ParsedScores, ParsedVerdict, Unparsed, judgment_fields, parse_scores, parse_verdict


@pytest.fixture(scope="module")
def zh() -> JudgeConfig:
    return load_judge_config("alignbench-zh")


@pytest.fixture(scope="module")
def en() -> JudgeConfig:
    return load_judge_config("default-en")


@pytest.fixture(scope="module")
def overall_only(tmp_path_factory: pytest.TempPathFactory) -> JudgeConfig:
    """A user-made MT-Bench-like config: one answer type scored on the overall score only."""
    data = yaml.safe_load((CONFIG_DIR / "default-en.yaml").read_text(encoding="utf-8"))
    data["name"] = "mtbench-like"
    data["answer_types"] = [{"key": "general", "name": "general", "dimensions": []}]
    data["task_types"] = {"default": "general", "map": {}}
    data["usability"] = {"threshold": 6, "floors": {}}
    p = tmp_path_factory.mktemp("cfg") / "mtbench-like.yaml"
    p.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return load_judge_config(p)


def ok(result: object) -> ParsedScores:
    assert isinstance(result, ParsedScores), f"expected scores, got {result!r}"
    return result


def unparsed(result: object) -> str:
    assert isinstance(result, Unparsed), f"expected unparsed, got {result!r}"
    return result.reason


FACT = {"factuality": 9.0, "user_satisfaction": 8.0, "clarity": 8.0, "completeness": 7.0}

ALIGNBENCH_FACT = """AI助手的回答与参考答案相比，结论一致，但遗漏了一个关键的历史背景。
1. 事实正确性：助手对事件时间和人物的描述准确，没有明显错误。得分：9
2. 满足用户需求：回答解释了原因，但对用户追问的影响部分着墨不多。得分：8
3. 清晰度：条理清楚，分点说明，易于理解。得分：8
4. 完备性：缺少参考答案中提到的背景信息。得分：7
综合来看，助手的回答质量与参考答案接近，略有遗漏。
{'事实正确性': 9, '满足用户需求': 8, '清晰度': 8, '完备性': 7, '综合得分': 8}"""


# -- single grading: shapes that must parse -----------------------------------------------------
def test_alignbench_style_chinese_analysis_then_dict(zh: JudgeConfig) -> None:
    r = ok(parse_scores(ALIGNBENCH_FACT, zh, "fact"))
    assert r.scores == FACT
    assert r.overall == 8.0
    assert r.answer_type == "fact"
    assert r.ignored_keys == []


@pytest.mark.parametrize(
    "name, text",
    [
        (
            "json code fence, ascii keys",
            'Scores below.\n```json\n{"factuality": 9, "user_satisfaction": 8, "clarity": 8, "completeness": 7, "overall": 8}\n```',
        ),
        (
            "full-width braces, colons, commas, quotes and digits",
            "综上所述：\n｛＇事实正确性＇：９，＇满足用户需求＇：８，＇清晰度＇：８，＇完备性＇：７，＇综合得分＇：８｝",
        ),
        (
            "chinese curly quotes",
            "最终打分：{“事实正确性”: 9, “满足用户需求”: 8, “清晰度”: 8, “完备性”: 7, “综合得分”: 8}",
        ),
        (
            "single curly quotes and full-width colon",
            "{‘事实正确性’：9, ‘满足用户需求’：8, ‘清晰度’：8, ‘完备性’：7, ‘综合得分’：8}",
        ),
        (
            "dict split over lines with trailing comma",
            "打分结果如下：\n{\n    '事实正确性': 9,\n    '满足用户需求': 8,\n    '清晰度': 8,\n    '完备性': 7,\n    '综合得分': 8,\n}\n",
        ),
        (
            "chinese keys with stray spaces",
            "{'事实 正确性': 9, ' 满足用户需求 ': 8, '清晰度 ': 8, '完 备 性': 7, '综合得分': 8}",
        ),
        (
            "numeric strings",
            "{'事实正确性': '9', '满足用户需求': \"8\", '清晰度': '8', '完备性': '7', '综合得分': '8'}",
        ),
        (
            "'8/10' and '8分' style values",
            "{'事实正确性': '9/10', '满足用户需求': 8/10, '清晰度': '8分', '完备性': 7 / 10, '综合得分': 8分}",
        ),
        (
            "mixed display names and ascii keys, any case",
            "{'FACTUALITY': 9, '满足用户需求': 8, 'Clarity': 8, '完备性': 7, 'Overall': 8}",
        ),
        (
            "english display names of the other language (aliases)",
            "{'factual correctness': 9, 'user satisfaction': 8, '清晰度': 8, '完备性': 7, '综合得分': 8}",
        ),
        (
            "key with english gloss in parentheses",
            "{'事实正确性 (factuality)': 9, '满足用户需求（user satisfaction）': 8, '清晰度': 8, '完备性': 7, '综合得分': 8}",
        ),
        (
            "unquoted keys",
            "{事实正确性: 9, 满足用户需求: 8, 清晰度: 8, 完备性: 7, 综合得分: 8}",
        ),
        (
            "dicts before the final one: template echo and a draft",
            "按照要求的格式 {'维度一': 打分, '维度二': 打分, ..., '综合得分': 打分} 输出。\n"
            "初步打分：{'事实正确性': 6, '满足用户需求': 5, '清晰度': 8, '完备性': 7, '综合得分': 5}\n"
            "重新核对参考答案后，我发现助手的结论其实是正确的，修正如下：\n"
            "{'事实正确性': 9, '满足用户需求': 8, '清晰度': 8, '完备性': 7, '综合得分': 8}",
        ),
        (
            "latex braces after the dict do not count as a dict",
            "{'事实正确性': 9, '满足用户需求': 8, '清晰度': 8, '完备性': 7, '综合得分': 8}\n注：正确结果应为 $\\frac{1}{2}$。",
        ),
        (
            "nested json",
            '```json\n{"scores": {"factuality": 9, "user_satisfaction": 8, "clarity": 8, "completeness": 7}, "overall": 8}\n```',
        ),
        (
            "numbered keys, a scale note in a key, a comment in a value, python fence",
            '分析完毕。\n```python\n{"1. 事实正确性": 9, "2. 满足用户需求": 8, "3. 清晰度": 8, "4. 完备性": 7, '
            '"综合得分(满分10分)": "8（良好）"}\n```',
        ),
        (
            "markdown bold keys and a chinese enumeration comma separator",
            "{'**事实正确性**': 9、'**满足用户需求**': 8、'**清晰度**': 8、'**完备性**': 7、'**综合得分**': 8}",
        ),
    ],
)
def test_tolerated_shapes_give_the_same_scores(zh: JudgeConfig, name: str, text: str) -> None:
    r = ok(parse_scores(text, zh, "fact"))
    assert (r.scores, r.overall) == (FACT, 8.0), name


def test_last_dict_counts_and_is_noted(zh: JudgeConfig) -> None:
    text = (
        "{'事实正确性': 2, '满足用户需求': 2, '清晰度': 2, '完备性': 2, '综合得分': 2}\n再次评估：\n"
        "{'事实正确性': 7, '满足用户需求': 7, '清晰度': 7, '完备性': 7, '综合得分': 7}"
    )
    r = ok(parse_scores(text, zh, "fact"))
    assert r.overall == 7.0
    assert any("last of 2" in n for n in r.notes)


def test_decimal_scores_are_kept(zh: JudgeConfig) -> None:
    r = ok(parse_scores("{'事实正确性': 7.5, '满足用户需求': 8, '清晰度': 6.5, '完备性': 7, '综合得分': 7.5}", zh, "fact"))
    assert r.scores["factuality"] == 7.5 and r.scores["clarity"] == 6.5 and r.overall == 7.5


def test_unknown_and_other_type_keys_are_ignored_but_noted(zh: JudgeConfig) -> None:
    text = "{'事实正确性': 9, '满足用户需求': 8, '清晰度': 8, '完备性': 7, '创造性': 3, '安全性': 10, '综合得分': 8}"
    r = ok(parse_scores(text, zh, "fact"))
    assert r.scores == FACT  # creativity is not a fact-type dimension: not scored
    assert r.ignored_keys == ["创造性", "安全性"]
    assert any("ignored keys" in n for n in r.notes)
    assert judgment_fields(r)["details"]["ignored_keys"] == ["创造性", "安全性"]


def test_english_config_english_keys(en: JudgeConfig) -> None:
    text = (
        "The answer matches the reference on the key steps but skips the final check.\n"
        'Final scores: {"Factual Correctness": 8, "LOGICAL COHERENCE": 7, "user_satisfaction": 7, '
        '"Completeness": 6, "Overall Score": 7}'
    )
    r = ok(parse_scores(text, en, "reasoning"))
    assert r.scores == {"factuality": 8, "logical_coherence": 7, "user_satisfaction": 7, "completeness": 6}
    assert r.overall == 7


def test_answer_type_given_by_display_name(zh: JudgeConfig) -> None:
    text = "{'事实正确性': 8, '满足用户需求': 8, '公平与可负责程度': 9, '创造性': 6, '综合得分': 8}"
    r = ok(parse_scores(text, zh, "建议型"))
    assert r.answer_type == "advice"
    assert r.scores["fairness"] == 9


# -- single grading: shapes that must be unparsed, with a specific reason, never 0 ---------------
@pytest.mark.parametrize(
    "text, answer_type, reason_part",
    [
        ("", "fact", "empty"),
        ("   \n\t ", "fact", "empty"),
        ("The answer is decent but not great. I would give it a 6.", "fact", "no score dict"),
        ("{'事实正确性': 9, '满足用户需求': 8, '完备性': 7, '综合得分': 8}", "fact", "清晰度 (clarity)"),
        ("{'事实正确性': 9, '满足用户需求': 8, '清晰度': 8, '完备性': 7}", "fact", "missing overall score (综合得分)"),
        ("{'事实正确性': 11, '满足用户需求': 8, '清晰度': 8, '完备性': 7, '综合得分': 8}", "fact", "事实正确性=11"),
        ("{'事实正确性': 0, '满足用户需求': 8, '清晰度': 8, '完备性': 7, '综合得分': 0}", "fact", "out of range 1-10"),
        ("{'事实正确性': -3, '满足用户需求': 8, '清晰度': 8, '完备性': 7, '综合得分': 5}", "fact", "out of range"),
        ("{'事实正确性': 9, '满足用户需求': 8, '清晰度': 8, '完备性': 7, '综合得分': 85}", "fact", "综合得分=85"),
        ("{'维度一': 打分, '事实正确性': 打分, '满足用户需求': 打分, '清晰度': 打分, '完备性': 打分, '综合得分': 打分}", "fact", "non-numeric"),
        ("{'事实正确性': 9, '满足用户需求': 6, ..., '综合得分': 7}", "fact", "missing dimension"),
        ("{'事实正确性': 'N/A', '满足用户需求': 8, '清晰度': 8, '完备性': 7, '综合得分': 8}", "fact", "non-numeric"),
        ("{'事实正确性': '8/100', '满足用户需求': 8, '清晰度': 8, '完备性': 7, '综合得分': 8}", "fact", "fraction of 100"),
        ("{'factuality': 8, '事实正确性': 6, '满足用户需求': 8, '清晰度': 8, '完备性': 7, '综合得分': 8}", "fact", "conflicting values for 事实正确性"),
        # fact-type keys for a reasoning item: logical coherence is missing
        ("{'事实正确性': 9, '满足用户需求': 8, '清晰度': 8, '完备性': 7, '综合得分': 8}", "reasoning", "逻辑连贯性"),
        # MT-Bench bare rating where dimensions are required
        ("The response is accurate and helpful.\n\nRating: [[8]]", "fact", "bare rating"),
    ],
)
def test_unparsed_with_reason(zh: JudgeConfig, text: str, answer_type: str, reason_part: str) -> None:
    r = parse_scores(text, zh, answer_type)
    assert reason_part in unparsed(r)
    fields = judgment_fields(r)
    assert fields["status"] == "unparsed" and fields["overall"] is None and fields["scores"] == {}


def test_truncated_output_does_not_fall_back_to_an_earlier_dict(zh: JudgeConfig) -> None:
    text = (
        "初步打分：{'事实正确性': 3, '满足用户需求': 3, '清晰度': 3, '完备性': 3, '综合得分': 3}\n"
        "但考虑到参考答案……最终打分：\n{'事实正确性': 9, '满足用户需求': 8, '清"
    )
    assert "truncated" in unparsed(parse_scores(text, zh, "fact"))


def test_truncated_json_in_an_unclosed_code_fence(en: JudgeConfig) -> None:
    text = 'Scores:\n```json\n{"factuality": 9, "user_satisfaction": 8, "clarity": 8'
    assert "truncated" in unparsed(parse_scores(text, en, "fact"))


def test_bare_rating_accepted_only_for_overall_only_config(overall_only: JudgeConfig, zh: JudgeConfig) -> None:
    mt = "The assistant correctly computes the total and explains each step.\n\nRating: [[8]]"
    r = ok(parse_scores(mt, overall_only, "general"))
    assert r.overall == 8 and r.scores == {}
    assert ok(parse_scores("Rating: [[7.5]]", overall_only, "general")).overall == 7.5
    assert "out of range" in unparsed(parse_scores("Rating: [[0]]", overall_only, "general"))
    assert ok(parse_scores('{"overall": 6}', overall_only, "general")).overall == 6
    assert "bare rating" in unparsed(parse_scores(mt, zh, "fact"))


def test_bare_rating_switch_off(overall_only: JudgeConfig) -> None:
    cfg = overall_only.model_copy(update={"parser": overall_only.parser.model_copy(update={"accept_bare_rating": False})})
    assert "no score dict" in unparsed(parse_scores("Rating: [[8]]", cfg, "general"))


def test_score_range_comes_from_config(zh: JudgeConfig) -> None:
    five = zh.model_copy(update={"parser": zh.parser.model_copy(update={"score_max": 5})})
    text = "{'事实正确性': 5, '满足用户需求': 4, '清晰度': 4, '完备性': 3, '综合得分': 4}"
    assert ok(parse_scores(text, five, "fact")).overall == 4
    assert "out of range 1-5" in unparsed(parse_scores(text.replace("5", "6"), five, "fact"))


# -- pairwise verdicts ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    "text, verdict",
    [
        ("Assistant A follows the reference closely; B misses the second step.\n\n[[A]]", "A"),
        ("After comparing both answers with the reference, my final verdict is: [[B]]", "B"),
        ("Both answers are equally correct and complete. [[C]]", "tie"),
        ("Both are fine. Final verdict: [[Tie]]", "tie"),
        ("final verdict: [[tie]]", "tie"),
        ("综合比较，助手A的回答更准确。\n【【A】】", "A"),
        ("助手B更好。［［B］］", "B"),
        ("两者质量相当。最终结论：[[平局]]", "tie"),
        ("Verdict: [[ A ]]", "A"),
        ("At first glance [[A]] seems right, but A's arithmetic is wrong. Final verdict: [[B]]", "B"),
        ('{"reason": "B is closer to the reference", "answer": "[[B]]"}', "B"),
        ("Answer B is better overall. [[B]]\n\nRating: [[7]]", "B"),
    ],
)
def test_verdicts(zh: JudgeConfig, text: str, verdict: str) -> None:
    r = parse_verdict(text, zh)
    assert isinstance(r, ParsedVerdict), r
    assert r.verdict == verdict


@pytest.mark.parametrize(
    "text, reason_part",
    [
        ("", "empty"),
        ("Assistant A is better because it is more accurate.", "no verdict"),
        ("Rating: [[8]]", "no verdict"),
        ("My verdict: [[A or B]]", "no verdict"),
    ],
)
def test_verdict_unparsed(text: str, reason_part: str) -> None:
    assert reason_part in unparsed(parse_verdict(text))


@pytest.mark.parametrize(
    "text, verdict, strength",
    [
        ("My final verdict is: [[A>B]]", "A", "weak"),
        ("My final verdict is: Assistant A is significantly better: [[A>>B]]", "A", "strong"),
        ("My final verdict is tie: [[A=B]]", "tie", None),
        ("My final verdict is: [[B>A]]", "B", "weak"),
        ("My final verdict is: [[B>>A]]", "B", "strong"),
        ("最终结论：【【B＞＞A】】", "B", "strong"),  # full-width brackets and signs
        ("My final verdict is: [[ A > B ]]", "A", "weak"),
        ("First I thought [[A>>B]], but on reflection [[B>A]]", "B", "weak"),
        ("[[A]]", "A", None),
    ],
)
def test_arena_hard_verdicts(en: JudgeConfig, text: str, verdict: str, strength: object) -> None:
    for cfg in (en, None):  # the config's labels, and the defaults
        r = parse_verdict(text, cfg)
        assert isinstance(r, ParsedVerdict), r
        assert (r.verdict, r.strength) == (verdict, strength)
    fields = judgment_fields(parse_verdict(text, en))
    assert fields["verdict"] == verdict and fields["details"]["verdict_label"]
    assert fields["details"].get("strength") == strength


def test_verdict_labels_come_from_the_config(en: JudgeConfig) -> None:
    cfg = en.model_copy(update={"parser": en.parser.model_copy(update={"verdict_labels": {"first": "A", "second": "B"}})})
    assert parse_verdict("Verdict: [[second]]", cfg).verdict == "B"  # type: ignore[union-attr]
    assert "no verdict" in unparsed(parse_verdict("My final verdict is: [[A>B]]", cfg))  # not configured here
    assert "no verdict" in unparsed(parse_verdict("Verdict: [[second]]", en))


def test_json_mode_objects_per_dimension(en: JudgeConfig, zh: JudgeConfig) -> None:
    text = ('{"factuality": {"score": 9, "reason": "accurate"}, "user_satisfaction": {"rating": "8/10"}, '
            '"clarity": {"score": 8, "reason": "clear, well structured"}, "completeness": {"score": 7}, '
            '"overall": {"score": 8, "reason": "good"}}')
    r = ok(parse_scores(text, en, "fact"))
    assert (r.scores, r.overall) == (FACT, 8.0)
    zh_text = ("```json\n{\"事实正确性\": {\"得分\": 9, \"理由\": \"准确\"}, \"满足用户需求\": {\"得分\": 8}, "
               "\"清晰度\": {\"得分\": 8}, \"完备性\": {\"得分\": 7}, \"综合得分\": {\"得分\": 8}}\n```")
    assert ok(parse_scores(zh_text, zh, "fact")).scores == FACT
    no_score = text.replace('{"score": 7}', '{"reason": "misses a point"}')
    assert "完备性" not in unparsed(parse_scores(no_score, en, "fact"))  # English config: named in English
    assert "Completeness" in unparsed(parse_scores(no_score, en, "fact"))
    assert "out of range" in unparsed(parse_scores(text.replace('"score": 9', '"score": 11'), en, "fact"))


# -- published output formats (tests/data/judge_outputs) ---------------------------------------------
CASES = yaml.safe_load((Path(__file__).parent / "data" / "judge_outputs" / "cases.yaml").read_text(encoding="utf-8"))


def test_fixture_covers_the_published_formats() -> None:
    formats = " ".join(c["format"] for c in CASES)
    for name in ("MT-Bench single", "MT-Bench pairwise", "AlignBench", "Arena-Hard", "JSON mode"):
        assert name in formats
    assert {c["expect"].get("verdict") for c in CASES} >= {"A", "B", "tie"}


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_published_formats_parse_as_expected(case: dict, zh: JudgeConfig, en: JudgeConfig,
                                             overall_only: JudgeConfig) -> None:
    cfg = {"alignbench-zh": zh, "default-en": en, "overall-only": overall_only}[case["config"]]
    expect = case["expect"]
    if "verdict" in expect:
        r = parse_verdict(case["text"], cfg)
        assert isinstance(r, ParsedVerdict), r
        assert (r.verdict, r.strength) == (expect["verdict"], expect.get("strength"))
    elif "unparsed" in expect:
        assert expect["unparsed"] in unparsed(parse_scores(case["text"], cfg, case["answer_type"]))
    else:
        r = ok(parse_scores(case["text"], cfg, case["answer_type"]))
        assert r.scores == {k: float(v) for k, v in expect.get("scores", {}).items()}
        assert r.overall == float(expect["overall"])


# -- aggregation over repeated samples ------------------------------------------------------------
def _sample(overall: float, f: float) -> ParsedScores:
    return ParsedScores({"factuality": f, "user_satisfaction": 7.0}, overall, "fact")


def test_median_and_spread_over_three_samples() -> None:
    agg = aggregate_samples([_sample(3, 4), _sample(5, 9), _sample(4, 6)])
    assert agg.overall == 4 and agg.scores["factuality"] == 6 and agg.scores["user_satisfaction"] == 7
    assert agg.spread["overall"].range == 2
    assert agg.spread["overall"].std == pytest.approx((2 / 3) ** 0.5)
    assert agg.spread["factuality"].range == 5
    assert agg.spread["user_satisfaction"].range == 0 and agg.spread["user_satisfaction"].std == 0
    assert (agg.n_parsed, agg.n_unparsed, agg.ok) == (3, 0, True)


def test_median_resists_one_wild_sample() -> None:
    agg = aggregate_samples([_sample(4, 7), _sample(10, 1), _sample(5, 7)])
    assert (agg.overall, agg.scores["factuality"]) == (5, 7)  # means would be 6.33 and 5
    assert agg.spread["overall"].range == 6 and agg.spread["factuality"].range == 6


def test_unparsed_samples_are_excluded_not_zero() -> None:
    agg = aggregate_samples([_sample(6, 6), Unparsed("missing overall score"), _sample(8, 8), None])
    assert agg.overall == 7  # median of 6 and 8; a 0 for the unparsed ones would give 3
    assert (agg.n_parsed, agg.n_unparsed) == (2, 2)


def test_all_unparsed_gives_no_score() -> None:
    agg = aggregate_samples([Unparsed("empty judge output"), Unparsed("truncated output")])
    assert agg.overall is None and agg.scores == {} and not agg.ok and agg.n_unparsed == 2


def test_aggregate_stored_judgment_records() -> None:
    def j(status: str, overall: float | None, f: float | None) -> Judgment:
        return Judgment(key="k", item_id="i", task_type="t", scorer="llm", mode="single", status=status,  # type: ignore[arg-type]
                        overall=overall, scores={"factuality": f} if f is not None else {})

    agg = aggregate_samples([j("ok", 7, 7), j("unparsed", None, None), j("ok", 9, 5), j("error", None, None), j("ok", 8, 6)])
    assert (agg.overall, agg.scores["factuality"], agg.n_parsed, agg.n_unparsed) == (8, 6, 3, 2)


def test_end_to_end_text_to_median(zh: JudgeConfig) -> None:
    texts = [
        ALIGNBENCH_FACT,
        ALIGNBENCH_FACT.replace("'综合得分': 8", "'综合得分': 6"),
        "评审被截断：{'事实正确性': 9, '满足",
    ]
    agg = aggregate_samples([parse_scores(t, zh, "fact") for t in texts])
    assert agg.overall == 7 and agg.n_unparsed == 1 and agg.spread["overall"].range == 2


# -- verdict majority and position swap -----------------------------------------------------------
@pytest.mark.parametrize(
    "labels, expected",
    [
        (["A", "A", "B"], "A"),
        (["A", "B"], "tie"),
        (["A", "B", "tie"], "tie"),
        (["B", None, None], "B"),
        ([None, None], None),
        ([], None),
        (["tie", "tie", "A"], "tie"),
    ],
)
def test_majority(labels: list, expected: object) -> None:
    assert majority(labels) == expected


def test_majority_verdict_from_parse_results() -> None:
    samples = [parse_verdict("[[B]]"), parse_verdict("no verdict here"), parse_verdict("【【B】】"), parse_verdict("[[A]]")]
    assert majority_verdict(samples) == "B"


@pytest.mark.parametrize(
    "ab, ba, outcome, flipped, bias",
    [
        ("A", "B", "win", False, None),  # candidate preferred in both positions
        ("B", "A", "loss", False, None),  # baseline preferred in both positions
        ("tie", "tie", "tie", False, None),
        ("A", "A", "tie", True, "A"),  # always the first position: pure position bias
        ("B", "B", "tie", True, "B"),
        ("A", "tie", "tie", True, None),
        ("tie", "A", "tie", True, None),
    ],
)
def test_combine_orders(ab: str, ba: str, outcome: str, flipped: bool, bias: object) -> None:
    r = combine_orders(ab, ba)
    assert (r.outcome, r.flipped, r.position_bias) == (outcome, flipped, bias)


def test_combine_orders_missing_order_is_excluded() -> None:
    r = combine_orders("A", None)
    assert r.outcome is None and "BA" in r.reason
    with pytest.raises(ValueError):
        combine_orders("A", "X")


def test_combine_pair_samples_majority_then_swap() -> None:
    ab = [parse_verdict("[[A]]"), parse_verdict("[[A]]"), parse_verdict("[[B]]")]
    ba = [parse_verdict("[[B]]"), parse_verdict(""), parse_verdict("[[B]]")]
    r = combine_pair_samples(ab, ba)
    assert r.outcome == "win" and not r.flipped and (r.ab, r.ba) == ("A", "B")


def test_candidate_points_by_order() -> None:
    samples = [parse_verdict("[[A]]"), parse_verdict("[[C]]"), parse_verdict("garbage"), parse_verdict("[[B]]")]
    assert candidate_points(samples, "AB") == [1.0, 0.5, 0.0]  # unparsed samples do not count
    assert candidate_points(samples, "BA") == [0.0, 0.5, 1.0]


@pytest.mark.parametrize(
    "ab, ba, outcome",
    [
        ([1, 1, 1], [1, 1, 0], "win"),  # the candidate wins 5 of 6 votes
        ([1, 1, 1], [0, 0, 0], "tie"),  # every verdict by position: no evidence either way
        ([1, 1, 0], [0, 0, 0], "loss"),  # a first-position judge that still prefers the baseline once
        ([1, 0.5, 0.5], [0.5, 0.5, 0], "tie"),
        ([1], [1, 0, 0, 0], "win"),  # each order weighs one half (all 5 samples pooled would say loss)
        ([1, 1], [], None),  # one order only: cannot be corrected
    ],
)
def test_balanced_outcome(ab: list, ba: list, outcome: object) -> None:
    assert balanced_outcome([float(x) for x in ab], [float(x) for x in ba]) == outcome


def test_balanced_outcome_keeps_a_win_that_the_tie_rule_loses_to_position_bias() -> None:
    # a judge preferring the candidate, but answering "A" (first position) now and then whatever the answers:
    # AB: A, A, A (win x3); BA: A, A, B (loss, loss, win) -- the BA majority is the bias, not the answers
    ab, ba = ["A", "A", "A"], ["A", "A", "B"]
    assert combine_pair_samples(ab, ba).outcome == "tie"  # majority per order disagrees: a flip, a tie
    assert balanced_outcome(candidate_points(ab, "AB"), candidate_points(ba, "BA")) == "win"  # m = 2/3
    ab, ba = ["A", "A", "B"], ["A", "A", "B"]  # the same split in both orders: no evidence either way
    assert balanced_outcome(candidate_points(ab, "AB"), candidate_points(ba, "BA")) == "tie"


def test_position_advantage_and_debiased_mean_recover_the_model() -> None:
    # expected points with a first-position bias p = 0.4 and a fair score s = 0.25: AB = p + (1-p)s, BA = (1-p)s
    p, s_ = 0.4, 0.25
    ab, ba = [p + (1 - p) * s_] * 4, [(1 - p) * s_] * 4
    assert position_advantage(ab, ba) == pytest.approx(p)
    assert debiased_mean(ab, ba) == pytest.approx(s_)
    assert debiased_mean(ba, ab) == pytest.approx(s_)  # a second-position bias: the same correction
    assert debiased_mean([1.0, 1.0], [0.0, 0.0]) is None  # every verdict by position: undefined
    assert debiased_mean([1.0], [0.95]) == 1.0  # clamped to [0, 1]
    assert position_advantage([], [1.0]) is None


def test_config_file_in_use_is_the_one_parsed(tmp_path: Path, zh: JudgeConfig) -> None:
    """Renaming a dimension in YAML is enough for the parser to accept the new name (no code)."""
    data = yaml.safe_load((CONFIG_DIR / "alignbench-zh.yaml").read_text(encoding="utf-8"))
    data["dimensions"][2]["name"] = "表达清晰度"
    p = tmp_path / "mine.yaml"
    p.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    cfg = load_judge_config(p)
    text = "{'事实正确性': 9, '满足用户需求': 8, '表达清晰度': 8, '完备性': 7, '综合得分': 8}"
    assert ok(parse_scores(text, cfg, "fact")).scores["clarity"] == 8
    assert "清晰度" in unparsed(parse_scores(text, zh, "fact"))
