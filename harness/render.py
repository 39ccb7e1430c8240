"""Chat-template rendering, done once by the harness so every backend sees identical tokens.

The rendered text and token ids are stored with each generation. The module also holds the
single helper that tokenizes a (context, continuation) pair with an exact boundary, which
the probes use.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any, Literal, Optional, Sequence

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
    _uses_bos: Optional[bool] = None

    def __post_init__(self) -> None:
        if not self.plain and not getattr(self.tokenizer, "chat_template", None):
            raise RenderError(
                "the tokenizer has no chat template; pass --prompt-format plain to send the user text as is "
                "(for base models), or `sfteval run --chat-template FILE` to supply one"
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
        return self.with_bos(list(self.tokenizer(text, add_special_tokens=False)["input_ids"]))

    def with_bos(self, ids: list[int]) -> list[int]:
        """``ids`` (tokenized without special tokens) with exactly one leading BOS if the model uses one."""
        if self._uses_bos is None:
            self._uses_bos = _adds_bos(self.tokenizer)
        bos = getattr(self.tokenizer, "bos_token_id", None)
        if bos is not None and self._uses_bos:
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


Whitespace = Literal["exact", "lm-eval"]


def move_trailing_whitespace(context: str, continuation: str) -> tuple[str, str]:
    """lm-evaluation-harness's convention: trailing whitespace of the context starts the continuation."""
    stripped = context.rstrip()
    return stripped, context[len(stripped):] + continuation


def context_continuation_ids(renderer: Renderer, context: str, continuation: str,
                             *, whitespace: Whitespace = "exact") -> tuple[list[int], list[int]]:
    """Token ids of one (context, continuation) pair; see :func:`context_continuation_batch`."""
    return context_continuation_batch(renderer, [(context, continuation)], whitespace=whitespace)[0]


def context_continuation_batch(renderer: Renderer, pairs: Sequence[tuple[str, str]],
                               *, whitespace: Whitespace = "exact") -> list[tuple[list[int], list[int]]]:
    """The one place that decides where context ends and continuation begins, in token ids.

    The context is tokenized exactly as a generation prompt (:meth:`Renderer.encode_prompt`: one BOS
    where the model uses one, never two). The continuation is the tail of the joint tokenization of
    ``context + continuation`` when that joint tokenization starts with the context's own tokens: those
    are the tokens the model would emit after this prompt (a SentencePiece tokenizer gives no phantom
    leading space there). When BPE would merge across the boundary (e.g. a context ending in "\n" and a
    continuation starting with "\n"), the joint split would score a different context; the continuation
    is then tokenized on its own, so the context tokens stay exactly the generation prompt's.

    ``whitespace="lm-eval"`` first moves trailing whitespace of the context onto the continuation
    (lm-evaluation-harness's convention; only for comparing with it). Raises ValueError for an empty side.
    """
    if whitespace == "lm-eval":
        pairs = [move_trailing_whitespace(c, x) for c, x in pairs]
    for c, x in pairs:
        if not c or not x:
            raise ValueError(f"empty {'context' if not c else 'continuation'} in a (context, continuation) pair")
    contexts = list(dict.fromkeys(c for c, _ in pairs))  # choices share their context: tokenize it once
    ctx_raw = dict(zip(contexts, _encode_many(renderer.tokenizer, contexts)))
    joint = _encode_many(renderer.tokenizer, [c + x for c, x in pairs])
    out = []
    for (c, x), both in zip(pairs, joint):
        raw = list(ctx_raw[c])
        if len(both) > len(raw) and both[: len(raw)] == raw:
            cont = list(both[len(raw):])
        else:  # a token straddles the boundary: keep the prompt's tokens, tokenize the continuation alone
            cont = renderer.encode_continuation(x)
        out.append((renderer.with_bos(raw), cont))
    return out


def _encode_many(tokenizer: Any, texts: list[str]) -> list[list[int]]:
    """Token ids without special tokens; straight through the Rust tokenizer when the wrapper adds nothing."""
    backend = getattr(tokenizer, "backend_tokenizer", None) if getattr(tokenizer, "is_fast", False) else None
    if backend is not None and not getattr(tokenizer, "split_special_tokens", False):
        encode = getattr(backend, "encode_batch_fast", backend.encode_batch)
        return [e.ids for e in encode(texts, add_special_tokens=False)]
    return [list(ids) for ids in tokenizer(texts, add_special_tokens=False)["input_ids"]]
