"""Typed records: everything sfteval reads from a suite or writes to a run folder.

Every record written to disk carries ``schema_version`` so that later versions can
read (or refuse, clearly) what older versions wrote.
"""

from __future__ import annotations

from typing import Any, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator

SCHEMA_VERSION = 1

Role = Literal["system", "user", "assistant"]
#: a judgment's status: ``not_judged`` is a judge call that was never sent (``reason`` says why, e.g. ``budget``);
#: like ``error`` it carries no score and is sent again by a later re-judge
Status = Literal["ok", "unparsed", "error", "not_judged"]


class FieldError(ValueError):
    """A cross-field check that belongs to one field: carries its path so the error can name it.

    Pydantic gives model-level checks an empty location; the suite loader reads ``field`` from
    this error instead, so every problem still reads ``FILE:LINE: field 'x': ...``.
    """

    def __init__(self, field: str, message: str):
        self.field, self.message = field, message
        super().__init__(f"field '{field}': {message}")


class Versioned(BaseModel):
    """Base of everything written to a run folder: one ``schema_version``, checked when read back.

    A record from a newer sfteval is refused with a message saying so, instead of being misread.
    """

    schema_version: int = SCHEMA_VERSION

    @field_validator("schema_version")
    @classmethod
    def _readable(cls, v: int) -> int:
        if v > SCHEMA_VERSION:
            raise ValueError(f"schema version {v} was written by a newer sfteval (this one reads up to "
                             f"{SCHEMA_VERSION}): upgrade sfteval to read it")
        return v


class _Strict(BaseModel):
    """Base for input models: unknown fields are an error, not silently ignored."""

    model_config = ConfigDict(extra="forbid")


class Message(_Strict):
    role: Role
    content: str

    @field_validator("content")
    @classmethod
    def _not_blank(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("must not be empty")
        return v


class Checks(_Strict):
    """Verifiable constraints on an answer; each key present is one check."""

    min_chars: Optional[int] = Field(None, ge=0)
    max_chars: Optional[int] = Field(None, ge=0)
    min_words: Optional[int] = Field(None, ge=0)
    max_words: Optional[int] = Field(None, ge=0)
    max_lines: Optional[int] = Field(None, ge=1)
    must_contain: list[str] = Field(default_factory=list)
    must_not_contain: list[str] = Field(default_factory=list)
    starts_with: Optional[str] = None
    ends_with: Optional[str] = None
    regex: Optional[str] = None
    json_valid: bool = False
    json_keys: list[str] = Field(default_factory=list)
    language: Optional[Literal["zh", "en"]] = None

    @field_validator("regex")
    @classmethod
    def _compiles(cls, v: Optional[str]) -> Optional[str]:
        if v is not None:
            import re

            try:
                re.compile(v)
            except re.error as e:
                raise ValueError(f"invalid regular expression: {e}") from None
        return v

    def active(self) -> dict[str, Any]:
        """The checks that are actually set (defaults mean 'no check')."""
        return {k: v for k, v in self.model_dump().items() if v not in (None, [], False)}


class Item(_Strict):
    """One eval item. ``prompt`` is shorthand for a single user message.

    Consecutive user turns in ``messages`` mean "let the model answer in between"
    (MT-Bench style multi-turn); assistant turns that are present are fixed history.
    ``reference`` is the gold answer of the final turn, or a list with one entry per
    answered turn (``None`` where a turn has no reference). An item with ``choices`` and no
    ``label`` takes its reference as the label when the reference is one of the choices.
    """

    id: str
    task_type: str
    prompt: Optional[str] = None
    messages: Optional[list[Message]] = None
    reference: Optional[Union[str, list[Optional[str]]]] = None
    choices: Optional[list[str]] = None
    label: Optional[Union[str, int]] = None
    checks: Optional[Checks] = None
    answer_type: Optional[str] = None
    tags: list[str] = Field(default_factory=list)
    meta: dict[str, Any] = Field(default_factory=dict)
    #: the label was taken from the reference (not written to disk: the stored item has the label itself)
    _label_from_reference: bool = PrivateAttr(False)

    @field_validator("id")
    @classmethod
    def _id_ok(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("must not be empty")
        if v != v.strip():
            raise ValueError("must not start or end with whitespace")
        return v

    @field_validator("task_type")
    @classmethod
    def _task_type_ok(cls, v: str) -> str:
        parts = v.split("/")
        if not 1 <= len(parts) <= 2 or any(not p.strip() or p != p.strip() for p in parts):
            raise ValueError(
                f"must be one or two non-empty levels separated by '/' (e.g. 'math/addition'), got {v!r}"
            )
        return v

    @model_validator(mode="after")
    def _consistent(self) -> "Item":
        if self.prompt is None and self.messages is None:
            raise FieldError("prompt", "exactly one of 'prompt' or 'messages' is required")
        if self.prompt is not None and self.messages is not None:
            raise FieldError("messages", "exactly one of 'prompt' or 'messages' is allowed, not both")
        if self.prompt is not None and not self.prompt.strip():
            raise FieldError("prompt", "must not be empty")
        if self.messages is not None:
            _check_turns(self.messages)
        if isinstance(self.reference, str) and not self.reference.strip():
            raise FieldError("reference", "must not be empty (omit it instead)")
        if isinstance(self.reference, list):
            n = self.n_answer_turns
            if len(self.reference) != n:
                raise FieldError("reference", f"has {len(self.reference)} entries but the item has {n} answered turns")
        if self.choices is not None:
            if len(self.choices) < 2:
                raise FieldError("choices", "needs at least two entries")
            dups = sorted({c for c in self.choices if self.choices.count(c) > 1})
            if dups:
                raise FieldError("choices", f"has duplicate entries {dups!r}")
            if self.label is None:
                self.label = self._choice_of_reference()
                self._label_from_reference = True
            if isinstance(self.label, int) and not isinstance(self.label, bool):
                if not 0 <= self.label < len(self.choices):
                    raise FieldError("label", f"index {self.label} is out of range for {len(self.choices)} choices")
                self.label = self.choices[self.label]
            elif self.label not in self.choices:
                raise FieldError("label", f"{self.label!r} is not among the choices {self.choices!r}")
        elif self.label is not None:
            raise FieldError("label", "given without 'choices'")
        return self

    def _choice_of_reference(self) -> str:
        """The choice the reference names (exactly, else up to whitespace): the label of an item that has none."""
        ref = self.final_reference
        choices = self.choices or []
        if ref is None:
            raise FieldError("label", "is required when 'choices' is given (or a 'reference' equal to one of them)")
        if ref in choices:
            return ref
        matches = [c for c in choices if _squash(c) == _squash(ref)]
        if len(matches) == 1:
            return matches[0]
        what = "more than one" if matches else "none"
        raise FieldError("label", f"is required when 'choices' is given: 'reference' {ref!r} matches {what} of the "
                                  f"choices {choices!r}")

    @property
    def label_from_reference(self) -> bool:
        """True when the item gave no label and its reference named the choice."""
        return self._label_from_reference

    # -- derived views -------------------------------------------------------------
    @property
    def conversation(self) -> list[Message]:
        return self.messages if self.messages is not None else [Message(role="user", content=self.prompt or "")]

    @property
    def n_answer_turns(self) -> int:
        """How many assistant turns the model must produce (one per user turn not followed by a fixed answer)."""
        if self.messages is None:
            return 1  # a single prompt (and no Message built for it: aggregation asks this of every item)
        conv = self.conversation
        return sum(
            1
            for i, m in enumerate(conv)
            if m.role == "user" and (i + 1 == len(conv) or conv[i + 1].role == "user")
        )

    @property
    def final_reference(self) -> Optional[str]:
        if isinstance(self.reference, list):
            return self.reference[-1]
        return self.reference

    @property
    def task_type_levels(self) -> list[str]:
        """['math', 'math/addition'] for a two-level type, ['math'] for one level."""
        parts = self.task_type.split("/")
        return ["/".join(parts[: i + 1]) for i in range(len(parts))]

    @property
    def is_robustness(self) -> bool:
        return "robustness" in self.tags


def _squash(text: str) -> str:
    return " ".join(text.split())


def _check_turns(messages: list[Message]) -> None:
    if not messages:
        raise FieldError("messages", "must not be empty")
    start = 1 if messages[0].role == "system" else 0
    body = list(enumerate(messages))[start:]
    for i, m in body:
        if m.role == "system":
            raise FieldError(f"messages.{i}.role", "a 'system' message may only come first")
    if not body:
        raise FieldError("messages", "needs at least one user turn")
    first, last = body[0], body[-1]
    if first[1].role != "user":
        raise FieldError(f"messages.{first[0]}.role", f"the first non-system turn must be 'user', got {first[1].role!r}")
    for (_, a), (i, b) in zip(body, body[1:]):
        if a.role == "assistant" and b.role == "assistant":
            raise FieldError(f"messages.{i}.role", "two assistant turns in a row")
    if last[1].role != "user":
        raise FieldError(f"messages.{last[0]}.role", f"'messages' must end with a user turn, got {last[1].role!r}")


class TaskTypeSettings(_Strict):
    """Per-task_type generation and scoring settings (suite.yaml); unset fields inherit."""

    temperature: Optional[float] = Field(None, ge=0)
    top_p: Optional[float] = Field(None, gt=0, le=1)
    max_new_tokens: Optional[int] = Field(None, ge=1)
    samples: Optional[int] = Field(None, ge=1)
    answer_type: Optional[str] = None
    rules: Optional[list[str]] = None
    weight: Optional[float] = Field(None, ge=0)


DEFAULT_SETTINGS = TaskTypeSettings(temperature=0.0, top_p=1.0, max_new_tokens=256, samples=1, rules=None, weight=1.0)


class SuiteConfig(_Strict):
    """Contents of an optional ``suite.yaml`` beside the item files."""

    name: Optional[str] = None
    version: str = "1"
    description: str = ""
    files: Optional[list[str]] = None
    defaults: TaskTypeSettings = Field(default_factory=TaskTypeSettings)
    task_types: dict[str, TaskTypeSettings] = Field(default_factory=dict)


class SamplingParams(BaseModel):
    """What a backend is asked to do for one request; recorded with every generation."""

    model_config = ConfigDict(frozen=True)

    temperature: float = 0.0
    top_p: float = 1.0
    max_new_tokens: int = 256
    seed: int = 0
    stop: tuple[str, ...] = ()

    @property
    def greedy(self) -> bool:
        return self.temperature == 0.0


class Timing(BaseModel):
    """Latency of one request: total ≈ ttft + per_token · completion_tokens (b + k·x)."""

    ttft_s: Optional[float] = None
    per_token_s: Optional[float] = None
    total_s: Optional[float] = None


class Generation(Versioned):
    key: str
    item_id: str
    task_type: str
    sample: int = 0
    turn: int = 0
    prompt: Optional[str] = None
    prompt_messages: Optional[list[dict[str, str]]] = None
    prompt_tokens: Optional[int] = None
    output: str = ""
    answer: str = ""
    think: Optional[str] = None
    think_unclosed: bool = False
    completion_tokens: Optional[int] = None
    finish_reason: Optional[str] = None
    timing: Timing = Field(default_factory=Timing)
    sampling: SamplingParams = Field(default_factory=SamplingParams)
    status: Literal["ok", "error"] = "ok"
    error: Optional[str] = None
    attempts: int = 1


class Judgment(Versioned):
    """One scorer's verdict on one generation (rules and LLM judges write the same record)."""

    key: str
    item_id: str
    task_type: str
    generation_key: Optional[str] = None
    sample: int = 0
    scorer: str
    judge_config_hash: Optional[str] = None
    judge_model: Optional[str] = None
    mode: Literal["rule", "single", "pair"] = "rule"
    order: Optional[Literal["AB", "BA"]] = None
    judge_sample: int = 0
    scores: dict[str, float] = Field(default_factory=dict)
    overall: Optional[float] = None
    verdict: Optional[str] = None
    raw: Optional[str] = None
    rationale: Optional[str] = None
    status: Status = "ok"
    reason: Optional[str] = None
    details: dict[str, Any] = Field(default_factory=dict)


class ProbeResult(Versioned):
    key: str
    item_id: str
    task_type: str
    kind: Literal["reference", "choice", "continuation"]
    sum_logprob: Optional[float] = None
    n_tokens: Optional[int] = None
    mean_logprob: Optional[float] = None
    greedy: Optional[bool] = None
    choices: Optional[dict[str, float]] = None
    choices_normalized: Optional[dict[str, float]] = None
    predicted: Optional[str] = None
    predicted_normalized: Optional[str] = None
    correct: Optional[bool] = None
    details: dict[str, Any] = Field(default_factory=dict)
    status: Literal["ok", "error"] = "ok"
    error: Optional[str] = None


class ModelInfo(BaseModel):
    path: str
    name: str
    fingerprint: Optional[str] = None
    tokenizer: Optional[str] = None
    chat_template_hash: Optional[str] = None


class RunSettings(BaseModel):
    """The run options that decide which records a run holds; ``--resume`` must repeat them exactly.

    Generation keys include the sampling settings and ``items.jsonl`` is written once, so a resume with
    another value would store records next to the old ones instead of finishing the run.
    """

    seed: int = 0
    limit: Optional[int] = None
    prompt_format: Literal["chat", "plain"] = "chat"
    think_markers: Optional[tuple[str, str]] = None  #: None: --keep-think
    temperature: Optional[float] = None  #: --temperature (None: the suite's per task_type values)
    max_new_tokens: Optional[int] = None  #: --max-new-tokens (None: the suite's per task_type values)
    tokenizer: Optional[str] = None
    chat_template_file: Optional[str] = None  #: --chat-template (its content is checked by the template hash)
    generate: bool = True  #: False for `sfteval probe`: the generation settings above were not used


class ShardInfo(BaseModel):
    """The place of a shard run (``--shard I/N``) in its parent run; ``sfteval merge`` reads it."""

    index: int = Field(ge=0)
    count: int = Field(ge=1)
    parent_run: str  #: the run the merged shards become
    assignment: str  #: the rule that assigned items to shards (harness.shard.ASSIGNMENT)
    items_total: int = Field(ge=0)  #: items in the whole selection (all shards together)
    positions: list[int] = Field(default_factory=list)  #: this shard's items' places in the whole selection


class RunManifest(Versioned):
    run_id: str
    sfteval_version: str
    git_revision: Optional[str] = None
    command: list[str] = Field(default_factory=list)
    model: ModelInfo
    backend: str
    backend_settings: dict[str, Any] = Field(default_factory=dict)
    prompt_mode: Literal["rendered", "chat"] = "rendered"
    render_notes: list[str] = Field(default_factory=list)
    chat_template: Optional[str] = None
    suite_name: str
    suite_version: str
    suite_hash: str
    suite_path: str
    seed: int = 0
    sampling_defaults: dict[str, Any] = Field(default_factory=dict)  #: suite defaults with the command-line overrides
    settings: Optional[RunSettings] = None  #: None in runs written before run settings were recorded
    judge: Optional[dict[str, Any]] = None
    started_at: str
    finished_at: Optional[str] = None
    status: Literal["running", "complete", "incomplete", "interrupted"] = "running"
    counts: dict[str, int] = Field(default_factory=dict)
    usage: dict[str, Any] = Field(default_factory=dict)
    shard: Optional[ShardInfo] = None  #: set in a shard run (--shard I/N)
    merged_from: Optional[list[str]] = None  #: set in a run merged from shards (sfteval merge): their run ids
