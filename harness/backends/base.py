"""The one small interface every model backend implements.

The runner only ever talks to this interface, so a new backend is a class plus one entry point
(``sfteval.backends``), in sfteval or in a plugin package. Requests carry the harness-rendered prompt (text and token ids) so every
backend scores the identical token sequence; chat-only servers get the messages instead.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar, Iterable, Iterator, Optional

from pydantic import BaseModel, ConfigDict

from ..models import SamplingParams, Timing


class BackendError(RuntimeError):
    """A backend cannot start or cannot do what was asked (missing package, bad model path, ...)."""


@dataclass(frozen=True)
class Dispatch:
    """Run a backend's requests elsewhere: an executor plugin (``sfteval.executors``, e.g. ``ray``) and its options.

    The executor wraps the chosen backend in a :class:`Backend` of its own, so the runner and the stages see one
    backend either way (see :func:`sfteval.harness.backends.create_backend`)."""

    executor: str
    options: dict[str, Any] = field(default_factory=dict)


class BackendOptions(BaseModel):
    """Settings shared by all backends; each backend extends this with its own fields."""

    model_config = ConfigDict(extra="forbid")

    model: str
    tokenizer: Optional[str] = None
    seed: int = 0


@dataclass
class GenRequest:
    key: str
    sampling: SamplingParams
    prompt: Optional[str] = None
    prompt_ids: Optional[list[int]] = None
    messages: Optional[list[dict[str, str]]] = None


@dataclass
class GenResult:
    key: str
    text: str = ""
    prompt_tokens: Optional[int] = None
    completion_tokens: Optional[int] = None
    finish_reason: Optional[str] = None
    timing: Timing = field(default_factory=Timing)
    error: Optional[str] = None
    attempts: int = 1
    usage: dict[str, Any] = field(default_factory=dict)
    reasoning: Optional[str] = None  #: a reasoning part the server returned apart from ``text``

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass
class LogprobRequest:
    """Score ``continuation_ids`` given ``context_ids`` (both already tokenized by the harness)."""

    key: str
    context_ids: list[int]
    continuation_ids: list[int]


@dataclass
class LogprobResult:
    key: str
    token_logprobs: list[float] = field(default_factory=list)
    greedy: list[bool] = field(default_factory=list)
    error: Optional[str] = None

    @property
    def ok(self) -> bool:
        return self.error is None


class Backend(ABC):
    """Generates answers for rendered prompts and, where it can, scores continuations."""

    name: ClassVar[str]
    Options: ClassVar[type[BackendOptions]] = BackendOptions
    supports_prompt_logprobs: ClassVar[bool] = False
    #: loads weights from a local checkpoint folder (hf, vllm): --model must exist; else it may be a served name
    loads_local_weights: ClassVar[bool] = False
    #: "rendered": takes harness-rendered prompts; "chat": needs messages (no tokenizer known)
    prompt_mode: str = "rendered"
    #: the run shows progress (False with --quiet): a backend with a display of its own honours it
    progress: bool = True
    #: generate() takes the next request from its iterable only when it can send it, so a caller may decide
    #: per request whether to send it (the judge's budget); otherwise the caller passes a list
    streams_requests: ClassVar[bool] = False

    def __init__(self, options: BackendOptions):
        self.options = options

    @abstractmethod
    def generate(self, requests: list[GenRequest]) -> Iterator[GenResult]:
        """Yield one result per request as soon as it is done (any order); never drop a request.

        With ``streams_requests`` it may be any iterable, consumed lazily."""

    def logprobs(self, requests: list[LogprobRequest]) -> Iterator[LogprobResult]:
        raise BackendError(
            f"the {self.name} backend cannot compute prompt log-probabilities; "
            "use --no-probes, or a backend that can (hf, vllm, or an openai server with /v1/completions echo)"
        )

    def effective_settings(self) -> dict[str, Any]:
        """What the backend will really apply (recorded in the manifest); never includes secrets."""
        return self.options.model_dump(mode="json")

    def usage(self) -> dict[str, Any]:
        """Token/cost totals of this session (API backends); added to manifest.usage across resumed sessions."""
        return {}

    def close(self) -> None:
        """Release GPU memory, worker processes, HTTP clients."""

    def __enter__(self) -> "Backend":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def batched(seq: Iterable[Any], size: int) -> Iterator[list[Any]]:
    batch: list[Any] = []
    for x in seq:
        batch.append(x)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch
