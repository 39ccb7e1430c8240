"""The generate stage: turn items into requests, run them, store every result (errors included).

Multi-turn items are generated in waves: turn t of every item is requested once turn t-1 is
stored, and the conversation for turn t carries the model's own earlier answers (MT-Bench
style) unless the item fixes them. Work whose record already exists is never requested again.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Iterable, Optional

from tqdm import tqdm

from .backends.base import Backend, GenRequest, GenResult
from .models import Generation, Item, Message, SamplingParams
from .render import Renderer
from .stages.base import RunContext, RunRecords, Stage, empty_metrics
from .store import RunStore, content_key
from .suite import Suite, item_hash
from .think import ThinkMarkers, split_think

if TYPE_CHECKING:
    import pandas as pd


def with_reasoning(result: GenResult, markers: Optional[ThinkMarkers]) -> str:
    """The whole output: a reasoning part the server returned apart goes in front, between the configured
    markers, so it is split off (or, with --keep-think, scored) exactly like an inline think block."""
    if not result.reasoning:
        return result.text
    m = markers or ThinkMarkers()
    return f"{m.open}{result.reasoning}{m.close}{result.text}"


def sampling_for(suite: Suite, item: Item, sample: int, seed: int, overrides: dict) -> SamplingParams:
    s = suite.settings_for(item.task_type)
    values = dict(temperature=s.temperature, top_p=s.top_p, max_new_tokens=s.max_new_tokens)
    values.update({k: v for k, v in overrides.items() if v is not None})
    return SamplingParams(**values, seed=seed + sample)


def conversation_for_turn(item: Item, turn: int, answers: list[str]) -> list[Message]:
    """Messages up to the user turn whose answer is turn ``turn``, with earlier answers filled in."""
    out: list[Message] = []
    conv = item.conversation
    answered = 0
    for i, m in enumerate(conv):
        out.append(m)
        needs_answer = m.role == "user" and (i + 1 == len(conv) or conv[i + 1].role == "user")
        if needs_answer:
            if answered == turn:
                return out
            out.append(Message(role="assistant", content=answers[answered] or " "))
            answered += 1
    raise ValueError(f"item {item.id} has no turn {turn}")


@dataclass
class Generator:
    """Requests every missing answer (turn by turn) and stores each result the moment it arrives."""

    suite: Suite
    backend: Backend
    store: RunStore
    renderer: Optional[Renderer]
    seed: int = 0
    overrides: dict = field(default_factory=dict)
    think: Optional[ThinkMarkers] = None
    progress: bool = True
    log: Callable[[str], None] = lambda msg: print(msg, file=sys.stderr)

    def samples(self, item: Item) -> int:
        return int(self.suite.settings_for(item.task_type).samples or 1)

    def key(self, item: Item, sample: int, turn: int, sampling: SamplingParams) -> str:
        return content_key("gen", item_hash(item), sample, turn, sampling.model_dump(mode="json"))

    def run(self, items: Iterable[Item]) -> dict[str, Generation]:
        items = list(items)
        done = self.store.read("generations")
        max_turns = max(it.n_answer_turns for it in items)
        for turn in range(max_turns):
            pending: list[tuple[GenRequest, Item, int]] = []
            for item in items:
                if turn >= item.n_answer_turns:
                    continue
                for sample in range(self.samples(item)):
                    req = self._request(item, sample, turn, done)
                    if req is not None:
                        pending.append((req, item, sample))
            if pending:
                self._execute(pending, turn, max_turns)
                done = self.store.read("generations")
        return done

    def _request(self, item: Item, sample: int, turn: int, done: dict[str, Generation]) -> Optional[GenRequest]:
        sampling = sampling_for(self.suite, item, sample, self.seed, self.overrides)
        key = self.key(item, sample, turn, sampling)
        existing = done.get(key)
        if existing is not None and existing.status == "ok":
            return None
        answers = []
        for t in range(turn):  # earlier turns must exist and have succeeded
            prev = done.get(self.key(item, sample, t, sampling))
            if prev is None or prev.status != "ok":
                return None
            answers.append(prev.answer)
        messages = conversation_for_turn(item, turn, answers)
        if self.renderer is None or self.backend.prompt_mode == "chat":
            return GenRequest(key=key, sampling=sampling, messages=[m.model_dump() for m in messages])
        rendered = self.renderer.render(messages)
        return GenRequest(key=key, sampling=sampling, prompt=rendered.text, prompt_ids=rendered.token_ids,
                          messages=rendered.messages)

    def _execute(self, pending: list[tuple[GenRequest, Item, int]], turn: int, max_turns: int) -> None:
        by_key = {req.key: (req, item, sample) for req, item, sample in pending}
        label = "generate" if max_turns == 1 else f"generate turn {turn + 1}/{max_turns}"
        bar = tqdm(total=len(pending), desc=label, unit="req", disable=not self.progress, file=sys.stderr,
                   dynamic_ncols=True)
        failed = 0
        try:
            for result in self.backend.generate([p[0] for p in pending]):
                req, item, sample = by_key.pop(result.key)
                output = with_reasoning(result, self.think)
                answer, think, unclosed = split_think(output, self.think)
                gen = Generation(
                    key=req.key, item_id=item.id, task_type=item.task_type, sample=sample, turn=turn,
                    prompt=req.prompt, prompt_messages=req.messages, prompt_tokens=result.prompt_tokens,
                    output=output, answer=answer, think=think, think_unclosed=unclosed,
                    completion_tokens=result.completion_tokens, finish_reason=result.finish_reason,
                    timing=result.timing, sampling=req.sampling, status="ok" if result.ok else "error",
                    error=result.error, attempts=result.attempts,
                )
                self.store.append("generations", gen)
                failed += not result.ok
                bar.update(1)
                if failed:
                    bar.set_postfix(failed=failed)
        finally:
            bar.close()
        if by_key:  # a backend must answer every request; record any it lost instead of dropping them
            for req, item, sample in by_key.values():
                self.store.append("generations", Generation(
                    key=req.key, item_id=item.id, task_type=item.task_type, sample=sample, turn=turn,
                    prompt=req.prompt, sampling=req.sampling, status="error",
                    error="backend returned no result for this request"))
        if failed:
            self.log(f"{failed} of {len(pending)} requests failed; they are recorded as errors and retried on --resume")


class GenerateStage(Stage):
    """The answers: one record per item, sample and turn; skipped by `sfteval probe` (nothing to generate)."""

    name = "generate"
    order = 100

    def run(self, ctx: RunContext) -> None:
        opts = ctx.options
        if not opts.generate:
            return
        Generator(suite=ctx.suite, backend=ctx.backend, store=ctx.store, renderer=ctx.renderer, seed=opts.seed,
                  overrides=opts.overrides, think=opts.think, progress=opts.progress, log=ctx.log).run(ctx.items)

    def item_metrics(self, records: RunRecords) -> "pd.DataFrame":
        """Answer length, token counts, latency (b = ttft, k = per-token) and failure rates per item."""
        import pandas as pd

        last = {it.id: it.n_answer_turns - 1 for it in records.items}
        rows = []
        for g in records.generations.values():
            if g.item_id not in last:
                continue
            ok = g.status == "ok"
            row: dict[str, Any] = {"item_id": g.item_id, "gen:error": float(not ok)}
            if ok:
                row.update({"gen:ttft_s": g.timing.ttft_s, "gen:per_token_s": g.timing.per_token_s})
                if g.turn == last[g.item_id]:
                    row.update({
                        "gen:answer_chars": float(len(g.answer)), "gen:completion_tokens": g.completion_tokens,
                        "gen:truncated": float(g.finish_reason == "length"),
                    })
            rows.append(row)
        if not rows:
            return empty_metrics()
        return pd.DataFrame(rows).groupby("item_id").mean(numeric_only=True)
