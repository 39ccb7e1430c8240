"""Teacher-forced log-probs for the hf backend: exact values, one forward per batch, little wasted work.

Why each step (CPU and GPU alike):

- Requests sharing a context are planned together: a request whose ``context + continuation[:-1]`` is a
  prefix of another's input needs no forward of its own (single-token choices of one question all read the
  logits at the end of the context; a choice that is a prefix of the reference reads the reference's rows).
- Inputs are right-padded and sorted by length; batch cut points minimise padded tokens plus a per-forward
  cost (within a token budget), so padding stays small without many tiny forwards.
  No attention mask is passed: with right padding the causal mask alone keeps every real position exact
  (pads only follow real tokens), and SDPA takes its fast ``is_causal`` path.
- The LM head and log-softmax run only on the positions that are scored (a 49k-150k vocabulary times every
  prompt position is most of the memory traffic otherwise). A one-time self-check falls back to the full
  forward for models whose head is more than ``lm_head(final hidden state)`` (logit soft-capping, scaling).
- Gathers, argmax and the per-request split are vectorised; there is no per-token Python loop.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterator, Optional

import torch

from .base import LogprobRequest, LogprobResult


@dataclass
class Host:
    """One model input (``context + continuation[:-1]`` of its longest member) serving several requests."""

    context: list[int]
    continuation: list[int]
    members: list[LogprobRequest] = field(default_factory=list)

    @property
    def input_ids(self) -> list[int]:
        return self.context + self.continuation[:-1]

    @property
    def n_positions(self) -> int:
        return len(self.continuation)


def plan(requests: list[LogprobRequest], max_length: Optional[int]) -> tuple[list[Host], list[LogprobResult]]:
    """Group requests onto as few model inputs as possible; invalid ones become error results."""
    errors: list[LogprobResult] = []
    groups: dict[tuple[int, ...], list[LogprobRequest]] = {}
    for r in requests:
        n = len(r.context_ids) + len(r.continuation_ids) - 1
        if not r.context_ids:
            errors.append(LogprobResult(key=r.key, error="empty context: the first token has no prediction"))
        elif not r.continuation_ids:
            errors.append(LogprobResult(key=r.key, error="empty continuation: nothing to score"))
        elif max_length is not None and n > max_length:
            errors.append(LogprobResult(key=r.key, error=f"context + continuation is {n + 1} tokens, longer than "
                                                         f"the model's maximum of {max_length}"))
        else:
            groups.setdefault(tuple(r.context_ids), []).append(r)
    hosts: list[Host] = []
    for ctx, group in groups.items():
        group.sort(key=lambda r: -len(r.continuation_ids))
        local: list[Host] = []
        for r in group:
            c = r.continuation_ids
            host = next((h for h in local if len(c) <= len(h.continuation)
                         and h.continuation[: len(c) - 1] == c[:-1]), None)
            if host is None:
                host = Host(list(ctx), list(c))
                local.append(host)
            host.members.append(r)
        hosts += local
    return hosts, errors


def token_batches(hosts: list[Host], max_tokens: int, max_rows: int, overhead: int = 0) -> list[list[Host]]:
    """Longest first; cut into batches that minimise padded tokens + ``overhead`` tokens per forward.

    Sorted by length, a batch is a contiguous run whose width is its first (longest) input. Runs of equal
    length are cut only where the row/token bounds force it, and an exact dynamic programme over the
    remaining cut points picks the rest: a long outlier does not pad a whole batch, and short inputs are
    not split into needlessly many forwards.
    """
    hosts = sorted(hosts, key=lambda h: -len(h.input_ids))
    blocks: list[list[Host]] = []  # equal-length runs, each within the bounds on its own
    for h in hosts:
        b = blocks[-1] if blocks else None
        if b and len(b[0].input_ids) == len(h.input_ids) and len(b) < max_rows \
                and (len(b) + 1) * len(h.input_ids) <= max_tokens:
            b.append(h)
        else:
            blocks.append([h])
    width = [len(b[0].input_ids) for b in blocks]
    size = [len(b) for b in blocks]
    n = len(blocks)
    best, cut = [0.0] + [float("inf")] * n, [0] * (n + 1)
    for j in range(1, n + 1):  # best[j]: cheapest split of blocks[:j]; the last batch is blocks[i:j]
        rows = 0
        for i in range(j - 1, -1, -1):
            rows += size[i]
            if i < j - 1 and (rows > max_rows or rows * width[i] > max_tokens):
                break
            cost = best[i] + rows * width[i] + overhead
            if cost < best[j]:
                best[j], cut[j] = cost, i
    out: list[list[Host]] = []
    while n > 0:
        out.append([h for b in blocks[cut[n]:n] for h in b])
        n = cut[n]
    return out[::-1]


class TeacherForcedScorer:
    """Scores planned hosts with one forward per batch on a loaded causal LM."""

    def __init__(self, model: Any, pad_id: int, device: str, max_tokens: int, max_rows: int):
        self.model, self.pad_id, self.device = model, pad_id, device
        self.max_tokens, self.max_rows = max_tokens, max_rows
        self.max_length: Optional[int] = getattr(model.config, "max_position_embeddings", None)
        self._split: Optional[bool] = None  # True: body + head on scored rows only; False: full forward
        # the fixed cost of one forward, in tokens: per-layer launch/Python overhead against per-token compute
        params = sum(p.numel() for p in model.parameters())
        self.overhead = 512 if device.startswith("cuda") else max(16, int(5e7 / max(params, 1)))

    def score(self, requests: list[LogprobRequest]) -> Iterator[LogprobResult]:
        hosts, errors = plan(requests, self.max_length)
        yield from errors
        for batch in token_batches(hosts, self.max_tokens, self.max_rows, self.overhead):
            yield from self._score_safely(batch)

    @torch.inference_mode()
    def _score_safely(self, batch: list[Host]) -> list[LogprobResult]:
        try:
            return self._score(batch)
        except (RuntimeError, torch.cuda.OutOfMemoryError) as e:  # OOM or a kernel error: halve, then isolate
            if self.device.startswith("cuda"):
                torch.cuda.empty_cache()
            if len(batch) == 1:
                return [LogprobResult(key=r.key, error=f"{type(e).__name__}: {e}") for r in batch[0].members]
            mid = len(batch) // 2
            return self._score_safely(batch[:mid]) + self._score_safely(batch[mid:])

    def _score(self, batch: list[Host]) -> list[LogprobResult]:
        inputs = [h.input_ids for h in batch]
        width = max(len(s) for s in inputs)
        ids = torch.tensor([s + [self.pad_id] * (width - len(s)) for s in inputs], device=self.device)
        # scored positions: host i, positions ctx_len-1 ... ctx_len-2+n_positions (contiguous per host)
        n = torch.tensor([h.n_positions for h in batch])
        first = torch.tensor([len(h.context) - 1 for h in batch])
        offsets = torch.cumsum(n, 0) - n
        rows = torch.repeat_interleave(torch.arange(len(batch)), n)
        cols = torch.repeat_interleave(first - offsets, n) + torch.arange(int(n.sum()))
        logp = self._scored_logprobs(ids, rows.to(self.device), cols.to(self.device))
        best = logp.argmax(dim=-1)
        # every member reads the first len(its continuation) rows of its host
        members = [(m, int(off)) for h, off in zip(batch, offsets.tolist()) for m in h.members]
        lengths = [len(m.continuation_ids) for m, _ in members]
        lens = torch.tensor(lengths)
        starts = torch.tensor([o for _, o in members]) - (torch.cumsum(lens, 0) - lens)
        index = (torch.repeat_interleave(starts, lens) + torch.arange(int(lens.sum()))).to(self.device)
        targets = torch.tensor([t for m, _ in members for t in m.continuation_ids], device=self.device)
        values = logp[index, targets].tolist()
        greedy = (best[index] == targets).tolist()
        out, start = [], 0
        for (m, _), k in zip(members, lengths):
            out.append(LogprobResult(key=m.key, token_logprobs=values[start:start + k], greedy=greedy[start:start + k]))
            start += k
        return out

    def _scored_logprobs(self, ids: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
        """float32 log-softmax at the scored (row, col) positions only."""
        if self._split is None:
            self._split = self._split_matches_full(ids[:1, : min(ids.shape[1], 32)])
        if self._split:
            hidden = self.model.get_decoder()(input_ids=ids, use_cache=False).last_hidden_state
            logits = self.model.get_output_embeddings()(hidden[rows, cols])
        else:
            logits = self.model(input_ids=ids, use_cache=False).logits[rows, cols]
        return torch.log_softmax(logits.float(), dim=-1)

    def _split_matches_full(self, ids: torch.Tensor) -> bool:
        """Does ``head(decoder(x))`` give the model's own logits? (No soft-capping, scaling, ...)."""
        try:
            full = self.model(input_ids=ids, use_cache=False).logits.float()
            hidden = self.model.get_decoder()(input_ids=ids, use_cache=False).last_hidden_state
            split = self.model.get_output_embeddings()(hidden).float()
        except Exception:  # an architecture without the usual decoder/head split
            return False
        scale = max(1.0, float(full.abs().max()))
        return full.shape == split.shape and float((full - split).abs().max()) <= 1e-4 * scale

