"""What judge calls cost: prices, prompt-token counting, and the estimate `--dry-run` prints.

Why counting here and not asking the server: an estimate must come before anything is sent. Prompt tokens are
counted with the judge's own tokenizer when it is known (a local judge checkpoint, ``--judge-tokenizer``, or the
openai backend's ``tokenizer`` option), by ``tiktoken`` for OpenAI model names when it is installed, and
otherwise estimated (:func:`estimate_tokens`; the estimate says so). Completion tokens are bounded by the
config's ``sampling.max_tokens``; once this judge has answered before, its observed mean is shown too.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

from .spec import JudgeError, JudgeSpec

#: OpenAI's batch API bills half the online price (override with --judge-option batch_discount=...)
DEFAULT_BATCH_DISCOUNT = 0.5
#: tokens a chat format adds around each message (role, separators) and before the reply, for estimates and
#: for the worst case a cost cap reserves (OpenAI's documented count is 3 per message plus 3)
MESSAGE_OVERHEAD, REPLY_OVERHEAD = 4, 3

Messages = list[dict[str, str]]


@dataclass(frozen=True)
class Prices:
    """USD per 1000 prompt / completion tokens, and the share of that a batch request pays."""

    prompt_per_1k: float = 0.0
    completion_per_1k: float = 0.0
    batch_discount: float = DEFAULT_BATCH_DISCOUNT

    @classmethod
    def of(cls, spec: JudgeSpec) -> "Prices":
        o = spec.options
        try:
            prices = cls(float(o.get("price_per_1k_prompt") or 0), float(o.get("price_per_1k_completion") or 0),
                         float(o.get("batch_discount", DEFAULT_BATCH_DISCOUNT)))
        except (TypeError, ValueError) as e:
            raise JudgeError(f"--judge-option price_per_1k_prompt / price_per_1k_completion / batch_discount: "
                             f"a number is needed ({e})") from None
        if min(prices.prompt_per_1k, prices.completion_per_1k) < 0 or not 0 < prices.batch_discount <= 1:
            raise JudgeError("--judge-option prices must be >= 0 and batch_discount in (0, 1]")
        return prices

    @property
    def known(self) -> bool:
        return bool(self.prompt_per_1k or self.completion_per_1k)

    def cost(self, prompt_tokens: float, completion_tokens: float, batch: bool = False) -> float:
        usd = (prompt_tokens * self.prompt_per_1k + completion_tokens * self.completion_per_1k) / 1000
        return usd * (self.batch_discount if batch else 1.0)


def estimate_tokens(text: str) -> int:
    """The documented estimate without a tokenizer: a token per 4 ASCII characters, one per other character
    (CJK text is about a token per character in the common tokenizers)."""
    ascii_chars = sum(1 for ch in text if ord(ch) < 128)
    return math.ceil(ascii_chars / 4) + (len(text) - ascii_chars)


@dataclass
class TokenCounter:
    """Counts the prompt tokens of a chat request; ``method`` says how (shown with every estimate)."""

    method: str
    exact: bool
    _count: Callable[[Messages], int] = field(repr=False)

    def count(self, messages: Messages) -> int:
        return self._count(messages)

    def upper(self, messages: Messages) -> int:
        """At least what the judge will count: what a cost cap reserves before it sends a request.

        Without a tokenizer, a message's UTF-8 bytes bound its tokens (a byte-level token covers at least one
        byte); with one, the count plus the chat format's overhead.
        """
        overhead = MESSAGE_OVERHEAD * len(messages) + REPLY_OVERHEAD
        if self.exact:
            return self.count(messages) + overhead
        return sum(len(m.get("content", "").encode("utf-8")) for m in messages) + overhead


def _hf_counter(path: str) -> TokenCounter:
    from transformers import AutoTokenizer

    try:
        tok = AutoTokenizer.from_pretrained(path)
    except (OSError, ValueError) as e:
        raise JudgeError(f"--judge-tokenizer {path}: cannot load a tokenizer there ({e})") from None
    if not getattr(tok, "chat_template", None):
        def plain(messages: Messages) -> int:
            body = sum(len(tok(m.get("content", ""), add_special_tokens=False)["input_ids"]) for m in messages)
            return body + MESSAGE_OVERHEAD * len(messages) + REPLY_OVERHEAD

        return TokenCounter(f"tokenizer {path} (no chat template: +{MESSAGE_OVERHEAD} per message)", False, plain)

    def chat(messages: Messages) -> int:
        # what an OpenAI-compatible server (vLLM) counts: the template's text, tokenized without added specials
        text = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        return len(tok(text, add_special_tokens=False)["input_ids"])

    return TokenCounter(f"tokenizer {path}", True, chat)


def _tiktoken_counter(model: str) -> Optional[TokenCounter]:
    """OpenAI's count for chat requests (3 tokens per message, 3 before the reply), if tiktoken knows the model
    and its encoding file can be loaded (it is downloaded once; offline and never cached, this falls back)."""
    try:
        import tiktoken
    except ImportError:
        return None
    try:
        enc = tiktoken.encoding_for_model(model)
        enc.encode("probe")
    except Exception:  # unknown model name, or the encoding file cannot be fetched
        return None

    def count(messages: Messages) -> int:
        return sum(3 + len(enc.encode(m.get("role", ""))) + len(enc.encode(m.get("content", "")))
                   for m in messages) + 3

    return TokenCounter(f"tiktoken {enc.name}", True, count)


def _estimate_counter() -> TokenCounter:
    def count(messages: Messages) -> int:
        return sum(estimate_tokens(m.get("content", "")) + MESSAGE_OVERHEAD for m in messages) + REPLY_OVERHEAD

    return TokenCounter("estimate (no tokenizer: 4 ASCII characters or 1 other character per token; pass "
                        "--judge-tokenizer for exact counts)", False, count)


def counter_for(spec: JudgeSpec) -> TokenCounter:
    """The best counter for this judge: its tokenizer, tiktoken, or the estimate."""
    path = spec.tokenizer or spec.options.get("tokenizer")
    if path is None and spec.backend != "openai" and Path(spec.model).expanduser().exists():
        path = spec.model
    if path is not None:
        if not Path(str(path)).expanduser().exists():
            raise JudgeError(f"--judge-tokenizer {path}: no such folder")
        return _hf_counter(str(Path(str(path)).expanduser()))
    return _tiktoken_counter(spec.model) or _estimate_counter()


def observed_completion_mean(records: Any, cfg_hash: str, model: str) -> Optional[float]:
    """Mean completion tokens per request of this judge's earlier answers (records with usage), None before any."""
    tokens = requests = 0
    for j in records:
        u = j.details.get("usage") or {}
        if (j.judge_config_hash == cfg_hash and j.judge_model == model and j.status in ("ok", "unparsed")
                and isinstance(u.get("completion_tokens"), int) and u.get("requests")):
            tokens += u["completion_tokens"]
            requests += u["requests"]
    return tokens / requests if requests else None
