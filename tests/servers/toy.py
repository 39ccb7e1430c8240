"""A deterministic stand-in for a served model, with known prompt log-probs.

Generation answers come from a callable (default: a short hash of the prompt). Prompt log-probs
follow ``toy_logprob(prev, tok)`` with top-1 token ``toy_top(prev)``, so tests can compute the
exact expected values. Flags emulate real servers' limits (no ``max_tokens=0``, no echo, no
token-id prompts, a BOS the server prepends) to test the client's fallbacks and errors.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from typing import Any, Callable, Optional

from .protocol import Answer, ReplyLike, Request, bad_request


def toy_top(prev: int) -> int:
    """The greedy next token after ``prev``."""
    return (prev * 7 + 3) % 50


def toy_logprob(prev: int, tok: int) -> float:
    return -0.25 if tok == toy_top(prev) else -(1.0 + ((prev * 31 + tok * 17) % 40) / 10)


def token_str(tok: int) -> str:
    return f"<{tok}>"


def default_answer(req: Request) -> ReplyLike:
    return "ok " + hashlib.sha256(req.prompt_text.encode()).hexdigest()[:8]


@dataclass
class ToyModel:
    answer: Callable[[Request], ReplyLike] = default_answer
    max_tokens_zero: bool = True  #: vLLM versions differ: some reject max_tokens=0 with echo
    echo: bool = True
    token_ids: bool = True
    prompt_logprobs: bool = True
    bos: Optional[int] = None  #: a token the server prepends to every prompt

    def __call__(self, req: Request) -> ReplyLike:
        body = req.body or {}
        if req.is_completion:
            if isinstance(req.prompt, list) and not self.token_ids:
                return bad_request("'prompt' must be a string")
            wants_echo = bool(body.get("echo"))
            wants_plp = body.get("prompt_logprobs") is not None
            if wants_echo and not self.echo:
                return bad_request("echo is not supported with this model")
            if wants_plp and not self.prompt_logprobs:
                return bad_request("Unrecognized request argument supplied: prompt_logprobs")
            if body.get("max_tokens") == 0 and not self.max_tokens_zero:
                return bad_request("max_tokens must be at least 1, got 0.")
            if wants_echo or wants_plp:
                return self.scored(req)
        return self.answer(req)

    def prompt_ids(self, req: Request) -> list[int]:
        p = req.prompt
        ids = list(p) if isinstance(p, list) else list((p or "").encode())
        return ([self.bos] if self.bos is not None else []) + ids

    def scored(self, req: Request) -> dict[str, Any]:
        """A completions body with prompt log-probs (echo and/or vLLM's prompt_logprobs), non-streamed."""
        body = req.body or {}
        ids = self.prompt_ids(req)
        gen: list[int] = []
        for _ in range(int(body.get("max_tokens") or 0)):
            gen.append(toy_top((ids + gen)[-1]))
        seq = ids + gen if body.get("echo") else gen
        start = 0 if body.get("echo") else len(ids)
        full = ids + gen
        lps: list[Optional[float]] = []
        tops: list[Optional[dict[str, float]]] = []
        for i in range(start, len(full)):
            if i == 0:
                lps.append(None)
                tops.append(None)
                continue
            prev, tok = full[i - 1], full[i]
            lps.append(toy_logprob(prev, tok))
            top = toy_top(prev)
            tops.append({token_str(top): toy_logprob(prev, top), token_str(tok): toy_logprob(prev, tok)})
        strs = [token_str(t) for t in seq]
        offsets = [sum(len(s) for s in strs[:i]) for i in range(len(strs))]
        logprobs = None
        if body.get("logprobs") is not None:
            logprobs = {"tokens": strs, "token_logprobs": lps, "top_logprobs": tops, "text_offset": offsets}
        choice: dict[str, Any] = {"index": 0, "text": "".join(strs), "logprobs": logprobs,
                                  "finish_reason": "length"}
        if body.get("prompt_logprobs") is not None:
            plp: list[Optional[dict[str, Any]]] = [None]
            for prev, tok in zip(ids, ids[1:]):
                top = toy_top(prev)
                entry = {str(top): {"logprob": toy_logprob(prev, top), "rank": 1, "decoded_token": token_str(top)}}
                entry[str(tok)] = {"logprob": toy_logprob(prev, tok), "rank": 1 if tok == top else 2,
                                   "decoded_token": token_str(tok)}
                plp.append(entry)
            choice["prompt_logprobs"] = plp
        return {"id": f"cmpl-{req.index}", "object": "text_completion", "created": int(time.time()),
                "model": body.get("model", "test-model"), "choices": [choice],
                "usage": {"prompt_tokens": len(ids), "completion_tokens": len(gen), "total_tokens": len(full)}}


__all__ = ["Answer", "ToyModel", "default_answer", "token_str", "toy_logprob", "toy_top"]
