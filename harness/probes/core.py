"""Reference and choice probes: log P(answer | question) from any backend that scores prompts.

Why: a checkpoint can be learning a task before its greedy answers flip (PRACTICE 6); the model's own
probability of the reference, summed per task_type, shows it. Everything here talks to the backend only
through ``Backend.logprobs(list[LogprobRequest])``, so hf, vllm and openai plug in unchanged, and the
token boundary is decided once, by :func:`harness.render.context_continuation_batch`.

:func:`compute_probes` is the hook a backend's parity test calls: same items, same renderer, two
backends, compare the records.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator, Optional, Sequence

from ..backends.base import Backend, LogprobRequest, LogprobResult
from ..models import Item, Message, ProbeResult
from ..render import Renderer, Whitespace, context_continuation_batch
from ..store import content_key
from ..suite import item_hash

KINDS = ("reference", "choice")


@dataclass(frozen=True)
class ProbeConfig:
    """How probes are built. The defaults are what `sfteval run` and `sfteval probe` use."""

    #: reference continuation = reference + the template's end-of-turn text (P of the answer *ending* there)
    end_of_turn: bool = True
    #: override the end-of-turn text (default: what the chat template writes after an assistant turn)
    end_of_turn_text: Optional[str] = None
    #: choices are scored bare by default: for single-token choices the prediction is then exactly the greedy
    #: first-token decision, and no end-of-turn term dilutes a one-token answer (PRACTICE 10)
    choice_end_of_turn: bool = False
    #: "exact": the context is the generation prompt as is; "lm-eval": its trailing whitespace moves onto
    #: the continuation (only to compare with lm-evaluation-harness)
    whitespace: Whitespace = "exact"
    kinds: tuple[str, ...] = KINDS
    #: requests sent to the backend per call: bounds memory, and finished items are stored in between
    chunk_requests: int = 1024


@dataclass
class PlannedProbe:
    """One record to compute: an item, a kind, one context and one or more continuations."""

    item: Item
    kind: str
    key: str
    context: str
    continuations: list[str]
    labels: list[str]


def probe_conversation(item: Item) -> Optional[list[Message]]:
    """The final turn's conversation, earlier answers filled with their references (None if one is missing)."""
    n = item.n_answer_turns
    refs: list[Optional[str]] = [None] * n
    refs[-1] = item.final_reference
    if isinstance(item.reference, list):
        refs = list(item.reference)
    out: list[Message] = []
    conv, answered = item.conversation, 0
    for i, m in enumerate(conv):
        out.append(m)
        if m.role == "user" and i + 1 < len(conv) and conv[i + 1].role == "user":
            ref = refs[answered] if answered < len(refs) else None
            if not ref:
                return None
            out.append(Message(role="assistant", content=ref))
            answered += 1
    return out


def end_of_turn_text(renderer: Renderer, config: ProbeConfig) -> str:
    if config.end_of_turn_text is not None:
        return config.end_of_turn_text
    try:
        return renderer.end_of_turn()
    except Exception:  # a template that cannot render an assistant turn: the EOS token closes it
        return renderer.tokenizer.eos_token or ""


def plan_probes(items: Iterable[Item], renderer: Renderer, config: ProbeConfig = ProbeConfig()) -> list[PlannedProbe]:
    """Every probe the items call for: a reference probe per item with a reference, a choice probe per
    item with choices. The key hashes the item and the exact texts, so a changed template, end-of-turn
    or whitespace setting is new work, and unchanged work is never redone."""
    eot = end_of_turn_text(renderer, config) if config.end_of_turn or config.choice_end_of_turn else ""
    plans: list[PlannedProbe] = []
    for item in items:
        conv = probe_conversation(item)
        if conv is None:
            continue
        context = renderer.render(conv).text
        wanted: list[tuple[str, list[str], list[str]]] = []
        if "reference" in config.kinds and item.final_reference:
            wanted.append(("reference", [item.final_reference + (eot if config.end_of_turn else "")], ["reference"]))
        if "choice" in config.kinds and item.choices:
            tail = eot if config.choice_end_of_turn else ""
            wanted.append(("choice", [c + tail for c in item.choices], list(item.choices)))
        for kind, conts, labels in wanted:
            key = content_key("probe", kind, item_hash(item), context, conts, config.whitespace)
            plans.append(PlannedProbe(item, kind, key, context, conts, labels))
    return plans


def score_texts(backend: Backend, renderer: Renderer, pairs: list[tuple[str, str]],
                whitespace: Whitespace = "exact") -> list[LogprobResult]:
    """Log-probs of (context, continuation) text pairs, in order (tests and benchmarks use this)."""
    ids = context_continuation_batch(renderer, pairs, whitespace=whitespace)
    reqs = [LogprobRequest(key=str(i), context_ids=c, continuation_ids=x) for i, (c, x) in enumerate(ids)]
    by_key = {r.key: r for r in backend.logprobs(reqs)}
    missing = "backend returned no result"
    return [by_key.get(str(i), LogprobResult(key=str(i), error=missing)) for i in range(len(pairs))]


def compute_probes(backend: Backend, renderer: Renderer, items: Iterable[Item], config: ProbeConfig = ProbeConfig(),
                   *, done: frozenset[str] | set[str] = frozenset(),
                   on_progress: Optional[Callable[[int], None]] = None) -> Iterator[ProbeResult]:
    """ProbeResult records for ``items`` on any backend, each yielded as soon as all its requests are back.

    ``done`` holds keys already stored (they are skipped: resume). Errors become ``status="error"``
    records, never missing ones. ``on_progress(n)`` is called with the number of records just finished.
    """
    plans = [p for p in plan_probes(items, renderer, config) if p.key not in done]
    chunk: list[PlannedProbe] = []
    size = 0
    for plan in plans:
        chunk.append(plan)
        size += len(plan.continuations)
        if size >= config.chunk_requests:
            yield from _run_chunk(backend, renderer, chunk, config, on_progress)
            chunk, size = [], 0
    if chunk:
        yield from _run_chunk(backend, renderer, chunk, config, on_progress)


def _run_chunk(backend: Backend, renderer: Renderer, plans: list[PlannedProbe], config: ProbeConfig,
               on_progress: Optional[Callable[[int], None]]) -> Iterator[ProbeResult]:
    results: dict[int, list[Optional[LogprobResult]]] = {}
    keys: list[str] = []
    pairs: list[tuple[str, str]] = []
    for i, plan in enumerate(plans):
        if not all(plan.continuations):  # e.g. an empty choice: nothing to score
            yield _record(plan, [LogprobResult(key="", error="empty continuation: nothing to score")])
            continue
        results[i] = [None] * len(plan.continuations)
        keys += [f"{i}:{j}" for j in range(len(plan.continuations))]
        pairs += [(plan.context, c) for c in plan.continuations]
    ids = context_continuation_batch(renderer, pairs, whitespace=config.whitespace)  # one tokenizer call per side
    requests = [LogprobRequest(key=k, context_ids=c, continuation_ids=x) for k, (c, x) in zip(keys, ids)]
    missing = {i: len(v) for i, v in results.items()}
    for res in backend.logprobs(requests):
        i, j = (int(x) for x in res.key.split(":"))
        if results[i][j] is not None:  # a backend answering twice: keep the first
            continue
        results[i][j] = res
        missing[i] -= 1
        if missing[i] == 0:
            yield _record(plans[i], results[i])
            if on_progress:
                on_progress(1)
    for i, left in missing.items():  # a backend must answer every request; never drop the record
        if left:
            filled = [r or LogprobResult(key="", error="backend returned no result") for r in results[i]]
            yield _record(plans[i], filled)


def _record(plan: PlannedProbe, results: Sequence[Optional[LogprobResult]]) -> ProbeResult:
    item = plan.item
    base: dict[str, Any] = dict(key=plan.key, item_id=item.id, task_type=item.task_type, kind=plan.kind)
    failed = [r for r in results if r is None or not r.ok]
    if failed:
        first = failed[0]
        return ProbeResult(**base, status="error", error=first.error if first else "missing result")
    ok = [r for r in results if r is not None]
    sums = [float(sum(r.token_logprobs)) for r in ok]
    counts = [len(r.token_logprobs) for r in ok]
    greedy = [all(r.greedy) for r in ok]
    if plan.kind == "reference":
        r = ok[0]
        return ProbeResult(**base, sum_logprob=sums[0], n_tokens=counts[0], mean_logprob=sums[0] / counts[0],
                           greedy=greedy[0], details={"continuation": plan.continuations[0],
                                                      "token_logprobs": r.token_logprobs})
    norm = [s / n for s, n in zip(sums, counts)]
    raw_pick = plan.labels[max(range(len(sums)), key=sums.__getitem__)]
    norm_pick = plan.labels[max(range(len(norm)), key=norm.__getitem__)]
    label = str(item.label)
    li = plan.labels.index(label)
    margin = sums[li] - max(s for k, s in enumerate(sums) if k != li)
    return ProbeResult(
        **base, choices=dict(zip(plan.labels, sums)), choices_normalized=dict(zip(plan.labels, norm)),
        predicted=raw_pick, predicted_normalized=norm_pick, correct=raw_pick == label,
        sum_logprob=sums[li], n_tokens=counts[li], mean_logprob=norm[li], greedy=greedy[li],
        details={"label": label, "correct_normalized": norm_pick == label, "margin": margin,
                 "n_tokens": dict(zip(plan.labels, counts)), "greedy": dict(zip(plan.labels, greedy)),
                 "continuations": plan.continuations},
    )
