"""The continuation probe: did SFT lose knowledge the base model had? (narrow hallucination, PRACTICE 9)

For each knowledge item the *base* model continues a plain-text prefix (no chat template) and the *SFT*
model answers the question through its chat template. Both are compared with the item's answer, and each
model's log P(answer) is recorded (the SFT one without the end-of-turn, so the two are comparable).
The answer is ``meta.short_answer`` when the item gives one (the fact itself: "Canberra", "H2O"), else the
reference; a base model states a fact in a few words and then runs on, so a long reference is rarely
found whole in its continuation. An item is ``lost`` when the first line of the base's greedy
continuation contains the answer and the SFT answer does not; ``weaker`` when the base gives the answer
more probability than the SFT model does.

Items are probed when they carry ``meta.continuation_prefix`` or when either level of their task_type is
listed in ``task_types`` (by default the knowledge types of the built-in suites, English and Chinese).
The prefix is ``meta.continuation_prefix`` when given, else a question/answer template in the prompt's
language. The answer follows the prefix directly, after one space when the prefix ends in a Latin letter,
a digit or ``,:;.!?`` ("... is" + "Au" -> "... is Au"; "3+4=" + "7" and "水的化学式是" + "H2O" stay joined).
Both sides go through the Backend interface only.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Any, Iterable, Optional

from ..backends.base import Backend, GenRequest, LogprobRequest
from ..models import Item, ProbeResult, SamplingParams
from ..render import Renderer, Whitespace, context_continuation_batch
from ..store import content_key
from ..suite import SuiteError, item_hash
from .core import probe_conversation

#: first-level knowledge task_types of the built-in suites (general-en, general-zh)
KNOWLEDGE_TASK_TYPES = ("knowledge", "知识问答")
META_FIELDS = ("continuation_prefix", "short_answer")


@dataclass(frozen=True)
class ContinuationConfig:
    #: items whose task_type (either level) is listed are probed, besides any item with meta.continuation_prefix
    task_types: tuple[str, ...] = KNOWLEDGE_TASK_TYPES
    prefix_format: str = "Question: {prompt}\nAnswer:"
    #: the template for prompts that are mostly Chinese
    prefix_format_zh: str = "问题：{prompt}\n答案："
    max_new_tokens: int = 32
    whitespace: Whitespace = "exact"


@dataclass
class Side:
    """What one model did on one item: its text and its log P(reference)."""

    text: str = ""
    sum_logprob: Optional[float] = None
    n_tokens: Optional[int] = None
    greedy: Optional[bool] = None
    error: Optional[str] = None


def selected(items: Iterable[Item], config: ContinuationConfig,
             sources: Optional[dict[str, tuple[str, int]]] = None) -> list[Item]:
    """Single-answer items with a text reference that are knowledge items (by meta or by task_type).

    A selected item whose meta.continuation_prefix or meta.short_answer is not a non-empty string is an
    error located by ``sources`` (item id -> (file, line), as :class:`harness.suite.Suite` keeps them)."""
    out = []
    for it in items:
        if not isinstance(it.reference, str) or it.n_answer_turns != 1:
            continue
        if "continuation_prefix" in it.meta or set(it.task_type_levels) & set(config.task_types):
            _check_meta(it, sources or {})
            out.append(it)
    return out


def _check_meta(item: Item, sources: dict[str, tuple[str, int]]) -> None:
    for name in META_FIELDS:
        value = item.meta.get(name)
        if name in item.meta and not (isinstance(value, str) and value.strip()):
            file, line = sources.get(item.id, (f"item {item.id!r}", None))
            raise SuiteError(file, f"must be a non-empty string, got {value!r} (item {item.id!r})", line=line,
                             field=f"meta.{name}")


def answer_text(item: Item) -> str:
    """What both models are checked and scored on: meta.short_answer, else the reference."""
    return str(item.meta.get("short_answer") or item.reference)


def base_pair(item: Item, config: ContinuationConfig) -> tuple[str, str]:
    """(plain-text prefix, continuation that is the answer) for the base model."""
    from sfteval.judges.rules import detect_language

    if "continuation_prefix" in item.meta:
        prefix = str(item.meta["continuation_prefix"])
    else:
        prompt = item.conversation[-1].content
        template = config.prefix_format_zh if detect_language(prompt) == "zh" else config.prefix_format
        prefix = template.format(prompt=prompt)
    answer = answer_text(item)
    return prefix, (" " + answer if _space_between(prefix, answer) else answer)


def _space_between(prefix: str, answer: str) -> bool:
    """English puts a space after a word or after ,:;.!? ; nothing goes after whitespace, CJK or a symbol."""
    last = prefix[-1:]
    return bool(last) and (last.isascii() and (last.isalnum() or last in ",:;.!?")) and not answer[:1].isspace()


def record_key(item: Item, base_fingerprint: Optional[str], sft_context: str, config: ContinuationConfig) -> str:
    prefix, cont = base_pair(item, config)
    return content_key("probe", "continuation", item_hash(item), base_fingerprint, prefix, cont, sft_context,
                       config.max_new_tokens, config.whitespace)


def sft_context(item: Item, renderer: Renderer) -> str:
    conv = probe_conversation(item)
    assert conv is not None  # selected() keeps single-answer items only
    return renderer.render(conv).text


def run_side(backend: Backend, renderer: Renderer, jobs: list[tuple[str, str, Optional[str]]],
             max_new_tokens: int, whitespace: Whitespace) -> list[Side]:
    """For (context, reference continuation, known answer or None): greedy text (generated when not known)
    and log P(reference | context), batched through the backend."""
    sides = [Side(text=known or "") for _, _, known in jobs]
    sampling = SamplingParams(temperature=0.0, max_new_tokens=max_new_tokens)
    gen = [GenRequest(key=str(i), sampling=sampling, prompt=ctx, prompt_ids=renderer.encode_prompt(ctx))
           for i, (ctx, _, known) in enumerate(jobs) if known is None]
    for out in backend.generate(gen) if gen else []:
        side = sides[int(out.key)]
        side.text, side.error = out.text, out.error
    ids = context_continuation_batch(renderer, [(c, x) for c, x, _ in jobs], whitespace=whitespace)
    reqs = [LogprobRequest(key=str(i), context_ids=c, continuation_ids=x) for i, (c, x) in enumerate(ids)]
    for res in backend.logprobs(reqs):
        side = sides[int(res.key)]
        if res.ok:
            side.sum_logprob, side.n_tokens = sum(res.token_logprobs), len(res.token_logprobs)
            side.greedy = all(res.greedy)
        else:
            side.error = side.error or res.error
    return sides


_CJK = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_SPACE_AT_CJK = re.compile(rf"(?<=[{_CJK}])\s+|\s+(?=[{_CJK}])")
_KEPT = "+-*/=<>%$"  # the punctuation judges.rules.normalize keeps


def _norm(text: str) -> str:
    """judges.rules.normalize, with punctuation read as a word boundary ("峰。2020" is "峰 2020", not "峰2020")
    and no spaces next to a Chinese character ("30 万" is "30万")."""
    from sfteval.judges.rules import normalize

    text = _SPACE_AT_CJK.sub("", unicodedata.normalize("NFKC", text))
    return normalize("".join(" " if unicodedata.category(ch).startswith("P") and ch not in _KEPT else ch
                             for ch in text))


def knows(text: str, answer: str, first_line: bool = False) -> bool:
    """The answer (normalized: case, width, punctuation, spacing) occurs in ``text`` (in its first line
    only for a base model's continuation, which runs on into unrelated text)."""
    if first_line:
        text = text.strip().split("\n", 1)[0]
    ref = _norm(answer)
    if not ref:
        return False
    # not inside a longer Latin word or number ("7" is not in "17"); next to CJK text nothing is required
    before = "(?<![0-9a-z])" if re.match("[0-9a-z]", ref) else ""
    after = "(?![0-9a-z])" if re.search("[0-9a-z]$", ref) else ""
    return re.search(before + re.escape(ref) + after, _norm(text)) is not None


def build_record(item: Item, key: str, prefix: str, base: Side, sft: Side, base_model: str) -> ProbeResult:
    common: dict[str, Any] = dict(key=key, item_id=item.id, task_type=item.task_type, kind="continuation")
    if base.error or sft.error or base.sum_logprob is None or sft.sum_logprob is None:
        return ProbeResult(**common, status="error", error=f"base: {base.error}; sft: {sft.error}")
    ref = answer_text(item)
    base_knows, sft_correct = knows(base.text, ref, first_line=True), knows(sft.text, ref)
    return ProbeResult(
        **common, sum_logprob=sft.sum_logprob, n_tokens=sft.n_tokens, greedy=sft.greedy,
        mean_logprob=sft.sum_logprob / max(sft.n_tokens or 1, 1), correct=sft_correct,
        details={
            "base_model": base_model, "prefix": prefix, "answer": ref, "base_continuation": base.text, "sft_answer": sft.text,
            "base_knows": base_knows, "sft_correct": sft_correct, "lost": base_knows and not sft_correct,
            "base_logprob": base.sum_logprob, "base_tokens": base.n_tokens, "base_greedy": base.greedy,
            "sft_logprob": sft.sum_logprob, "logprob_gap": sft.sum_logprob - base.sum_logprob,
            "weaker": base.sum_logprob > sft.sum_logprob,
        },
    )
