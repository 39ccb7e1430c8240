"""Chat-template rendering, done once by the harness so every backend sees identical tokens.

The rendered text and token ids are stored with each generation. The module also holds the
single helper that tokenizes a (context, continuation) pair with an exact boundary, which
the probes use.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any, Optional, Sequence

from .models import Message


class RenderError(ValueError):
    """The checkpoint's tokenizer cannot render this conversation."""


@dataclass
class Rendered:
    text: str
    token_ids: list[int]
    messages: list[dict[str, str]]


@dataclass
class Renderer:
    """Applies a tokenizer's chat template and guards against its known pitfalls.

    ``notes`` collects what the renderer had to work around (a folded system prompt,
    a removed duplicate BOS) so the run manifest can say so.
    """

    tokenizer: Any
    template_kwargs: dict[str, Any] = field(default_factory=dict)
    plain: bool = False
    notes: list[str] = field(default_factory=list)
    _system_supported: Optional[bool] = None

    def __post_init__(self) -> None:
        if not self.plain and not getattr(self.tokenizer, "chat_template", None):
            raise RenderError(
                "the tokenizer has no chat template; pass --prompt-format plain to send the user text as is "
                "(for base models), or --chat-template FILE to supply one"
            )

    @property
    def chat_template(self) -> Optional[str]:
        return None if self.plain else self.tokenizer.chat_template

    @property
    def template_hash(self) -> Optional[str]:
        t = self.chat_template
        return hashlib.sha256(t.encode()).hexdigest()[:16] if t else None

    def _note(self, text: str) -> None:
        if text not in self.notes:
            self.notes.append(text)

    def render(self, messages: Sequence[Message | dict[str, str]]) -> Rendered:
        """Render a conversation that ends with a user turn, up to the assistant generation prompt."""
        msgs = [m.model_dump() if isinstance(m, Message) else dict(m) for m in messages]
        if self.plain:
            text = "\n\n".join(m["content"] for m in msgs)
        else:
            msgs = self._fit_roles(msgs)
            text = self._apply(msgs)
        return Rendered(text=text, token_ids=self.encode_prompt(text), messages=msgs)

    def _apply(self, msgs: list[dict[str, str]]) -> str:
        return self.tokenizer.apply_chat_template(
            msgs, tokenize=False, add_generation_prompt=True, **self.template_kwargs
        )

    def _fit_roles(self, msgs: list[dict[str, str]]) -> list[dict[str, str]]:
        """Fold a system prompt into the first user turn when the template rejects the system role."""
        if not msgs or msgs[0]["role"] != "system":
            return msgs
        if self._system_supported is None:
            try:
                self._apply(msgs)
                self._system_supported = True
            except Exception as e:  # jinja raises TemplateError via raise_exception()
                if "system" not in str(e).lower():
                    raise RenderError(f"chat template failed: {e}") from e
                self._system_supported = False
                self._note(f"chat template rejects the system role ({e}); system prompts are folded into the first user turn")
        if self._system_supported:
            return msgs
        system, rest = msgs[0], [dict(m) for m in msgs[1:]]
        rest[0]["content"] = f"{system['content']}\n\n{rest[0]['content']}"
        return rest

    def encode_prompt(self, text: str) -> list[int]:
        """Token ids of a rendered prompt, with exactly one BOS where the model expects one."""
        ids = list(self.tokenizer(text, add_special_tokens=False)["input_ids"])
        bos = getattr(self.tokenizer, "bos_token_id", None)
        if bos is not None and _adds_bos(self.tokenizer):
            if not ids or ids[0] != bos:
                ids = [bos] + ids
            elif len(ids) > 1 and ids[1] == bos:
                ids = ids[1:]
                self._note("removed a duplicated BOS token")
        return ids

    def encode_continuation(self, text: str) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def end_of_turn(self) -> str:
        """The text that closes an assistant turn in this template (e.g. '<|im_end|>')."""
        if self.plain:
            return self.tokenizer.eos_token or ""
        probe = "\x00PROBE\x00"
        full = self.tokenizer.apply_chat_template(
            [{"role": "user", "content": "hi"}, {"role": "assistant", "content": probe}],
            tokenize=False, **self.template_kwargs,
        )
        tail = full.split(probe, 1)[1] if probe in full else ""
        eos = self.tokenizer.eos_token or ""
        if eos and eos in tail:
            return tail[: tail.index(eos) + len(eos)]
        return tail.rstrip("\n") or eos


def _adds_bos(tokenizer: Any) -> bool:
    """Does this tokenizer put a BOS in front when asked for special tokens?"""
    bos = getattr(tokenizer, "bos_token_id", None)
    if bos is None:
        return False
    try:
        ids = tokenizer("a", add_special_tokens=True)["input_ids"]
    except Exception:
        return False
    return bool(ids) and ids[0] == bos


def context_continuation_ids(renderer: Renderer, context: str, continuation: str) -> tuple[list[int], list[int]]:
    """Tokenize context and continuation separately so no token straddles the boundary.

    Tokenizing ``context + continuation`` as one string lets BPE merge across the boundary,
    which silently scores a different continuation; this is the one place that decides it.
    """
    return renderer.encode_prompt(context), renderer.encode_continuation(continuation)
