"""The continuation probe: did SFT lose knowledge the base model had? (narrow hallucination, PRACTICE 9)

For each knowledge item the *base* model continues a plain-text prefix (no chat template) and the *SFT*
model answers the question through its chat template. Both are compared with the reference, and each
model's log P(reference) is recorded (the SFT one without the end-of-turn, so the two are comparable).
An item is ``lost`` when the first line of the base's greedy continuation contains the reference and
the SFT answer does not; ``weaker`` when the base gives the reference more probability than the SFT model does.

The prefix is ``meta.continuation_prefix`` when the suite gives one (used verbatim, the reference follows
it directly), else ``prefix_format`` filled with the question (the reference follows after one space).
Both sides go through the Backend interface only.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Iterable, Optional

from ..backends.base import Backend, GenRequest, LogprobRequest
from ..models import Item, ProbeResult, SamplingParams
from ..render import Renderer, Whitespace, context_continuation_batch
from ..store import content_key
from ..suite import item_hash
from .core import probe_conversation


@dataclass(frozen=True)
class ContinuationConfig:
    #: items whose task_type (either level) is listed are probed, besides any item with meta.continuation_prefix
    task_types: tuple[str, ...] = ("knowledge",)
    prefix_format: str = "Question: {prompt}\nAnswer:"
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


def selected(items: Iterable[Item], config: ContinuationConfig) -> list[Item]:
    """Single-answer items with a text reference that are knowledge items (by meta or by task_type)."""
    out = []
    for it in items:
        if not isinstance(it.reference, str) or it.n_answer_turns != 1:
            continue
        if "continuation_prefix" in it.meta or set(it.task_type_levels) & set(config.task_types):
            out.append(it)
    return out


def base_pair(item: Item, config: ContinuationConfig) -> tuple[str, str]:
    """(plain-text prefix, continuation that is the reference) for the base model."""
    ref = str(item.reference)
    if "continuation_prefix" in item.meta:
        return str(item.meta["continuation_prefix"]), ref
    prompt = item.conversation[-1].content
    prefix = config.prefix_format.format(prompt=prompt)
    return prefix, ref if prefix[-1:].isspace() else " " + ref


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


def knows(text: str, reference: str, first_line: bool = False) -> bool:
    """The reference (normalized: case, width, punctuation, spacing) occurs in ``text`` (in its first line
    only for a base model's continuation, which runs on into unrelated text)."""
    from judges.rules import normalize

    if first_line:
        text = text.strip().split("\n", 1)[0]
    ref = normalize(reference)
    # not inside a longer Latin word or number ("7" is not in "17"); CJK text has no spaces to require
    return bool(ref) and re.search(rf"(?<![0-9a-z]){re.escape(ref)}(?![0-9a-z])", normalize(text)) is not None


def build_record(item: Item, key: str, prefix: str, base: Side, sft: Side, base_model: str) -> ProbeResult:
    common: dict[str, Any] = dict(key=key, item_id=item.id, task_type=item.task_type, kind="continuation")
    if base.error or sft.error or base.sum_logprob is None or sft.sum_logprob is None:
        return ProbeResult(**common, status="error", error=f"base: {base.error}; sft: {sft.error}")
    ref = str(item.reference)
    base_knows, sft_correct = knows(base.text, ref, first_line=True), knows(sft.text, ref)
    return ProbeResult(
        **common, sum_logprob=sft.sum_logprob, n_tokens=sft.n_tokens, greedy=sft.greedy,
        mean_logprob=sft.sum_logprob / max(sft.n_tokens or 1, 1), correct=sft_correct,
        details={
            "base_model": base_model, "prefix": prefix, "base_continuation": base.text, "sft_answer": sft.text,
            "base_knows": base_knows, "sft_correct": sft_correct, "lost": base_knows and not sft_correct,
            "base_logprob": base.sum_logprob, "base_tokens": base.n_tokens, "base_greedy": base.greedy,
            "sft_logprob": sft.sum_logprob, "logprob_gap": sft.sum_logprob - base.sum_logprob,
            "weaker": base.sum_logprob > sft.sum_logprob,
        },
    )
