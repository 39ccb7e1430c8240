"""AlignBench (THUDM/AlignBench ``data/data_release.jsonl``): one Chinese question per line with
``question_id``, ``category``, ``subcategory``, ``question`` and ``reference``.

Task types keep AlignBench's own two levels (``category/subcategory``, e.g. ``数学计算/初等数学``) so
per-task_type results line up with AlignBench's published tables. The answer type decides which
judge dimensions apply; AlignBench assigns it per subcategory (config/subcategory_question_mapping.json),
with its four types 事实与解释型 / 逻辑推理型 / 生成型 / 建议型 -> fact / reasoning / generation / advice.
An unknown subcategory falls back to its category's usual type.
"""

from __future__ import annotations

from pathlib import Path

from ..models import SuiteConfig, TaskTypeSettings
from .base import (
    Draft,
    Importer,
    ImportOptions,
    get,
    label_part,
    make_id,
    need_text,
    opt_text,
    read_jsonl,
)

CATEGORY_ANSWER_TYPE = {
    "专业能力": "fact",
    "数学计算": "reasoning",
    "基本任务": "fact",
    "逻辑推理": "reasoning",
    "中文理解": "fact",
    "文本写作": "generation",
    "角色扮演": "generation",
    "综合问答": "advice",
}

SUBCATEGORY_ANSWER_TYPE = {
    **dict.fromkeys(["常识知识", "阅读理解", "文本分类", "信息抽取", "字词理解", "文化理解"], "fact"),
    **dict.fromkeys(["物理", "化学", "计算机", "生物医学", "经济", "天文", "历史", "音乐", "法律", "体育",
                     "地理", "文学", "其他"], "fact"),
    **dict.fromkeys(["观点表达", "寻求建议"], "advice"),
    **dict.fromkeys(["翻译", "实用文体写作", "创意文体写作", "专业文体写作", "其他写作类"], "generation"),
    **dict.fromkeys(["现实生活类", "游戏娱乐类", "功能类", "现实名人类", "（虚拟）恋爱类"], "generation"),
    **dict.fromkeys(["证明", "推理", "初等数学", "高等数学", "应用数学"], "reasoning"),
}


def read(src: Path, opts: ImportOptions) -> list[Draft]:
    prefix = "alignbench" if opts.id_prefix is None else opts.id_prefix
    drafts = []
    for line, rec in read_jsonl(src):
        qid = need_text(rec, "question_id", opts, src, line)
        category = label_part(need_text(rec, "category", opts, src, line))
        sub = get(rec, "subcategory", opts)
        sub = label_part(sub) if isinstance(sub, str) and sub.strip() else None
        answer_type = SUBCATEGORY_ANSWER_TYPE.get(sub or "") or CATEGORY_ANSWER_TYPE.get(category)
        task_type = f"{category}/{sub}" if sub else category
        data = {
            "id": make_id(prefix, qid),
            "task_type": task_type,
            "prompt": need_text(rec, "question", opts, src, line),
            "reference": opt_text(rec, "reference", opts, src, line),
            "answer_type": answer_type,
            "meta": {"source": "alignbench", "question_id": get(rec, "question_id", opts)},
        }
        drafts.append(Draft(src, line, data, source_label=task_type))
    return drafts


def config() -> SuiteConfig:
    """Greedy decoding keeps checkpoints comparable (AlignBench itself samples at 0.1-0.7 per category)."""
    return SuiteConfig(
        description="AlignBench (Chinese alignment benchmark), imported: category/subcategory task_types, "
                    "reference answers for reference-guided judging.",
        defaults=TaskTypeSettings(temperature=0.0, max_new_tokens=2048),
    )


IMPORTER = Importer(
    name="alignbench",
    description="AlignBench JSONL (question_id, category, subcategory, question, reference): task_type "
                "`category/subcategory`, answer types per subcategory as AlignBench assigns them.",
    read=read, fields=("question_id", "category", "subcategory", "question", "reference"), config=config,
)
