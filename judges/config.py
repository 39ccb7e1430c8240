"""Judge configs: prompts, dimensions, answer types, usability rule, sampling and parser, as YAML data.

Why data and not code: an SFT team changes dimensions, weights and thresholds far more often than the
judging machinery, and a new config must not need a code change. Every field is validated (unknown
fields are errors, cross-references are checked), errors name the file and the field, and the validated
content is hashed so cached judgments are keyed by the exact rules that produced them.
"""

from __future__ import annotations

import hashlib
import json
import re
from functools import cached_property
from pathlib import Path
from typing import Any, Literal, Optional, Union

import yaml
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator, model_validator

from sfteval.judges.text import norm_key

CONFIG_DIR = Path(__file__).resolve().parent / "configs"
_KEY_RE = re.compile(r"^[a-z][a-z0-9_]*$")
PLACEHOLDER_RE = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")

_COMMON_FIELDS = {"question", "reference_block", "scale_min", "scale_max", "anchor_score", "answer_start", "answer_end"}
SINGLE_FIELDS = _COMMON_FIELDS | {"answer", "answer_type", "dimensions", "score_format"}
PAIR_FIELDS = _COMMON_FIELDS | {"answer_a", "answer_b"}


class JudgeConfigError(ValueError):
    """A judge config that cannot be used; the message names the file and the field."""


class UnknownAnswerTypeError(ValueError):
    """An answer type (from an item, a suite or a call) that the judge config does not define."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _ascii_key(v: str) -> str:
    if not _KEY_RE.match(v):
        raise ValueError(f"must be a lower-case ASCII identifier like 'factuality', got {v!r}")
    return v


class Dimension(_Strict):
    """One scored aspect. ``key`` is stable ASCII (stored in records); ``name`` is what the judge sees."""

    key: str
    name: str = Field(min_length=1)
    description: str = ""
    weight: float = Field(1.0, ge=0)
    aliases: list[str] = Field(default_factory=list)

    @field_validator("key")
    @classmethod
    def _key_ok(cls, v: str) -> str:
        return _ascii_key(v)


class DimensionRef(_Strict):
    """A dimension used by an answer type, optionally with its own weight."""

    key: str
    weight: Optional[float] = Field(None, ge=0)


class AnswerType(_Strict):
    """An answer type and the dimensions its answers are scored on (empty: overall score only)."""

    key: str
    name: str = Field(min_length=1)
    description: str = ""
    aliases: list[str] = Field(default_factory=list)
    dimensions: list[DimensionRef] = Field(default_factory=list)

    @field_validator("key")
    @classmethod
    def _key_ok(cls, v: str) -> str:
        return _ascii_key(v)

    @field_validator("dimensions", mode="before")
    @classmethod
    def _refs(cls, v: Any) -> Any:
        if isinstance(v, list):
            return [{"key": x} if isinstance(x, str) else x for x in v]
        return v


class TaskTypeMap(_Strict):
    """task_type -> answer type key; the full two-level name wins over its first level, then ``default``."""

    default: str
    map: dict[str, str] = Field(default_factory=dict)


class UsabilityRule(_Strict):
    """usable = weighted mean of the dimension scores >= threshold and every floor met."""

    threshold: float
    overall_weight: float = Field(0.0, ge=0)
    floors: dict[str, float] = Field(default_factory=dict)


class Sampling(_Strict):
    k: int = Field(3, ge=1)
    temperature: float = Field(0.7, ge=0)
    top_p: float = Field(1.0, gt=0, le=1)
    max_tokens: int = Field(2048, ge=1)
    seed: int = 0
    #: adaptive repeats: draw samples one round at a time and stop once the first ones agree (two samples with
    #: the same overall score; the same verdict in both orders of a pair), up to k. Not part of the config
    #: hash: it decides how many samples are drawn, never what a sample says, so cached judgments stay valid.
    adaptive: bool = False

    @model_validator(mode="after")
    def _k_needs_temperature(self) -> "Sampling":
        if self.k > 1 and self.temperature == 0:
            raise ValueError("k > 1 needs temperature > 0 (greedy repeats are identical)")
        return self


#: Arena-Hard's five verdict labels (">>": much better, ">": slightly better, "=": tie), by position.
ARENA_HARD_LABELS: dict[str, str] = {"A>>B": "A", "A>B": "A", "A=B": "tie", "B>A": "B", "B>>A": "B"}


class ParserOptions(_Strict):
    score_min: float = 1
    score_max: float = 10
    retry_unparsed: bool = True
    accept_bare_rating: bool = True
    tie_labels: list[str] = Field(default_factory=lambda: ["C", "tie", "平局", "平手"])
    #: more [[label]] verdicts -> 'A' | 'B' | 'tie' (by position); [[A]] and [[B]] are always known
    verdict_labels: dict[str, Literal["A", "B", "tie"]] = Field(default_factory=lambda: dict(ARENA_HARD_LABELS))

    @model_validator(mode="after")
    def _range(self) -> "ParserOptions":
        if self.score_min >= self.score_max:
            raise ValueError(f"score_min ({self.score_min}) must be below score_max ({self.score_max})")
        return self

    def _label_entries(self) -> list[tuple[str, str, str]]:
        """(label, verdict, where it is configured) for every verdict label, the built-in A and B first."""
        entries = [("A", "A", "built-in"), ("B", "B", "built-in")]
        entries += [(t, "tie", "tie_labels") for t in self.tie_labels]
        return entries + [(label, v, f"verdict_labels.{label}") for label, v in self.verdict_labels.items()]

    @model_validator(mode="after")
    def _labels(self) -> "ParserOptions":
        table: dict[str, tuple[str, str]] = {}
        for label, verdict, where in self._label_entries():
            n = norm_key(label)
            if not n:
                raise ValueError(f"{where}: empty label")
            known = table.setdefault(n, (verdict, label))
            if known[0] != verdict:
                raise ValueError(f"{where}: label {label!r} means {verdict!r} here but {known[0]!r} as {known[1]!r}")
        return self

    def verdict_table(self) -> dict[str, str]:
        """norm_key(label) -> 'A' | 'B' | 'tie' for every verdict label this parser accepts (no conflicts:
        the validator refused them)."""
        return {norm_key(label): verdict for label, verdict, _ in self._label_entries()}


class Template(_Strict):
    system: str = ""
    user: str = Field(min_length=1)


class Labels(_Strict):
    """Headings for conversation turns when the question has more than one turn or a system prompt."""

    system: str
    user: str
    assistant: str
    candidate: str
    candidate_a: str
    candidate_b: str


class Prompts(_Strict):
    single: Template
    pair: Template
    reference_present: str = Field(min_length=1)
    reference_absent: str = ""
    anchor_score: float = 8
    score_placeholder: str = "<score>"
    labels: Labels


class Markers(_Strict):
    """Delimiters around untrusted answers; look-alikes of these (and of ``lookalikes``) are neutralised."""

    answer_start: str = "<<<ANSWER_START>>>"
    answer_end: str = "<<<ANSWER_END>>>"
    replacement: str = "[delimiter removed]"
    lookalikes: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _distinct(self) -> "Markers":
        for f in ("answer_start", "answer_end"):
            v = getattr(self, f)
            if not re.search(r"\w", v):
                raise ValueError(f"{f} must contain a word (letters or digits), got {v!r}")
            if v in self.replacement:
                raise ValueError(f"replacement must not contain {f} {v!r}")
        if norm_key(self.answer_start) == norm_key(self.answer_end):
            raise ValueError("answer_start and answer_end must differ")
        return self


class Injection(_Strict):
    extra_patterns: list[str] = Field(default_factory=list)

    @field_validator("extra_patterns")
    @classmethod
    def _compile(cls, v: list[str]) -> list[str]:
        for p in v:
            try:
                re.compile(p)
            except re.error as e:
                raise ValueError(f"invalid regular expression {p!r}: {e}") from None
        return v


class JudgeConfig(_Strict):
    """A complete judge config. Load with :func:`load_judge_config`."""

    schema_version: Literal[1] = 1
    name: str = Field(min_length=1)
    language: str = Field(pattern=r"^[a-z]{2}(-[A-Za-z]+)?$")
    description: str = ""
    prompts: Prompts
    markers: Markers = Field(default_factory=Markers)
    dimensions: list[Dimension]
    overall: Dimension
    answer_types: list[AnswerType] = Field(min_length=1)
    task_types: TaskTypeMap
    usability: UsabilityRule
    sampling: Sampling = Field(default_factory=Sampling)
    parser: ParserOptions = Field(default_factory=ParserOptions)
    injection: Injection = Field(default_factory=Injection)

    _source: Optional[str] = PrivateAttr(None)

    @model_validator(mode="after")
    def _cross_refs(self) -> "JudgeConfig":
        dims = {d.key for d in self.dimensions}
        if len(dims) != len(self.dimensions):
            raise ValueError("dimensions: duplicate key")
        if self.overall.key in dims:
            raise ValueError(f"overall.key: {self.overall.key!r} is also a dimension key")
        seen: dict[str, str] = {}
        for d in [*self.dimensions, self.overall]:
            for label in {d.key, d.name, *d.aliases}:
                n = norm_key(label)
                if not n:
                    raise ValueError(f"dimension {d.key!r}: empty name or alias")
                if seen.setdefault(n, d.key) != d.key:
                    raise ValueError(f"dimension {d.key!r}: name or alias {label!r} is also used by {seen[n]!r}")
        at_seen: dict[str, str] = {}
        for i, at in enumerate(self.answer_types):
            for label in {at.key, at.name, *at.aliases}:
                if at_seen.setdefault(norm_key(label), at.key) != at.key:
                    raise ValueError(f"answer_types[{i}]: name {label!r} is also used by {at_seen[norm_key(label)]!r}")
            refs = [r.key for r in at.dimensions]
            for r in refs:
                if r not in dims:
                    raise ValueError(f"answer_types[{i}].dimensions: unknown dimension {r!r} (known: {sorted(dims)})")
            if len(set(refs)) != len(refs):
                raise ValueError(f"answer_types[{i}].dimensions: duplicate dimension")
        at_keys = {at.key for at in self.answer_types}
        if self.task_types.default not in at_keys:
            raise ValueError(f"task_types.default: unknown answer type {self.task_types.default!r} (known: {sorted(at_keys)})")
        tt_seen: set[str] = set()
        for tt, at in self.task_types.map.items():
            if at not in at_keys:
                raise ValueError(f"task_types.map.{tt}: unknown answer type {at!r} (known: {sorted(at_keys)})")
            if _tt_norm(tt) in tt_seen:
                raise ValueError(f"task_types.map.{tt}: listed twice (names are compared ignoring case and spaces)")
            tt_seen.add(_tt_norm(tt))
        lo, hi = self.parser.score_min, self.parser.score_max
        for k, v in self.usability.floors.items():
            if k not in dims and k != self.overall.key:
                raise ValueError(f"usability.floors.{k}: unknown dimension (known: {sorted(dims | {self.overall.key})})")
            if not lo <= v <= hi:
                raise ValueError(f"usability.floors.{k}: {v} is outside the score range {lo}-{hi}")
        if not lo <= self.usability.threshold <= hi:
            raise ValueError(f"usability.threshold: {self.usability.threshold} is outside the score range {lo}-{hi}")
        if not lo <= self.prompts.anchor_score <= hi:
            raise ValueError(f"prompts.anchor_score: {self.prompts.anchor_score} is outside the score range {lo}-{hi}")
        _check_placeholders("prompts.single", self.prompts.single, SINGLE_FIELDS, {"question", "answer"})
        _check_placeholders("prompts.pair", self.prompts.pair, PAIR_FIELDS, {"question", "answer_a", "answer_b"})
        for f, required in (("reference_present", {"reference"}), ("reference_absent", set())):
            found = set(PLACEHOLDER_RE.findall(getattr(self.prompts, f)))
            if found - {"reference"} or required - found:
                raise ValueError(f"prompts.{f}: may only use {{{{reference}}}} and must use {sorted(required) or 'nothing'}")
        return self

    # -- lookups ---------------------------------------------------------------------------------
    def answer_type(self, key_or_name: str) -> AnswerType:
        """The answer type by key, display name or alias (case/width/spacing ignored)."""
        found = self._answer_type_index.get(norm_key(key_or_name))
        if found is not None:
            return found
        raise UnknownAnswerTypeError(
            f"judge config {self.name!r}: unknown answer type {key_or_name!r} "
            f"(known: {', '.join(f'{a.key} ({a.name})' for a in self.answer_types)})"
        )

    @cached_property
    def _answer_type_index(self) -> dict[str, "AnswerType"]:
        """norm_key(key | name | alias) -> answer type, built once (usability is decided per item); not a field,
        so it takes no part in equality, dumps or the config hash."""
        index: dict[str, AnswerType] = {}
        for at in self.answer_types:
            for x in (at.key, at.name, *at.aliases):
                index.setdefault(norm_key(x), at)
        return index

    def answer_type_for(self, task_type: str, override: Optional[str] = None) -> str:
        """Answer type key for an item: explicit override (item/suite), else full task_type, first level, default."""
        if override:
            return self.answer_type(override).key
        table = {_tt_norm(k): v for k, v in self.task_types.map.items()}
        parts = task_type.split("/")
        for cand in ("/".join(parts), parts[0]):
            if _tt_norm(cand) in table:
                return table[_tt_norm(cand)]
        return self.task_types.default

    def dimensions_for(self, answer_type: str) -> list[Dimension]:
        """The dimensions scored for an answer type, in order, with that type's effective weights."""
        at = self.answer_type(answer_type)
        by_key = {d.key: d for d in self.dimensions}
        out = []
        for ref in at.dimensions:
            d = by_key[ref.key]
            out.append(d if ref.weight is None else d.model_copy(update={"weight": ref.weight}))
        return out

    def name_index(self) -> dict[str, str]:
        """norm_key(key | name | alias) -> dimension key, over every dimension and the overall score."""
        return {norm_key(label): d.key for d in [*self.dimensions, self.overall] for label in (d.key, d.name, *d.aliases)}

    def display_name(self, key: str) -> str:
        for d in [*self.dimensions, self.overall]:
            if d.key == key:
                return d.name
        return key

    @property
    def source(self) -> Optional[str]:
        """The file this config was loaded from (not part of the hash)."""
        return self._source

    def config_hash(self) -> str:
        """sha256 of the canonical JSON of the validated content: equal rules give equal hashes."""
        return config_hash(self)


def _tt_norm(task_type: str) -> str:
    return "/".join(p.strip().casefold() for p in task_type.split("/"))


def _check_placeholders(where: str, t: Template, allowed: set[str], required: set[str]) -> None:
    found: set[str] = set()
    for part in ("system", "user"):
        names = set(PLACEHOLDER_RE.findall(getattr(t, part)))
        bad = names - allowed
        if bad:
            raise ValueError(f"{where}.{part}: unknown placeholder(s) {sorted(bad)} (allowed: {sorted(allowed)})")
        found |= names
    missing = required - found
    if missing:
        raise ValueError(f"{where}: missing placeholder(s) {sorted('{{' + m + '}}' for m in missing)}")


#: Fields added after the first release, left out of the hash while at their default: a config written
#: before they existed keeps its hash, so its runs' snapshots and cached judgments stay valid.
_LATER_FIELDS = {"parser": {"verdict_labels": ParserOptions().verdict_labels}}
#: Fields that never enter the hash: they change how many judge calls are made, not what a call answers.
_UNHASHED = {"sampling": ("adaptive",)}


def config_hash(config: JudgeConfig) -> str:
    """sha256 hex of the canonical JSON of a validated config (key order and YAML layout do not matter)."""
    data = config.model_dump(mode="json")
    for section, fields in _LATER_FIELDS.items():
        for name, default in fields.items():
            if data[section].get(name) == default:
                del data[section][name]
    for section, names in _UNHASHED.items():
        for name in names:
            data[section].pop(name, None)
    blob = json.dumps(data, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


# -- loading ------------------------------------------------------------------------------------------
class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that rejects duplicate mapping keys (PyYAML silently keeps the last one)."""


def _construct_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark
            )
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def config_folders() -> list[Path]:
    """Folders of named judge configs: the ``sfteval.judge_configs`` entry points (judges/configs/ is one).

    An entry point names a folder (a path) or a module (its own folder); the first folder with a name wins.
    """
    from types import ModuleType

    from sfteval.harness import plugins

    folders = []
    for obj in plugins.load_all("judge_configs").values():
        folders.append(Path(obj.__file__).parent if isinstance(obj, ModuleType) else Path(obj))
    return folders


def _named_configs() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for folder in config_folders():
        for p in sorted(folder.glob("*.yaml")):
            found.setdefault(p.stem, p)
    return found


def builtin_configs() -> list[str]:
    """Names usable as ``--judge NAME``: judges/configs/*.yaml and the configs that plugins add."""
    return sorted(_named_configs())


def resolve_config_path(path_or_name: Union[str, Path]) -> Path:
    """A config name ('alignbench-zh') -> its YAML file in a config folder; anything path-like -> that file."""
    s = str(path_or_name)
    p = Path(s)
    looks_like_path = isinstance(path_or_name, Path) or s.endswith((".yaml", ".yml")) or "/" in s or "\\" in s
    if looks_like_path or p.is_file():
        if not p.is_file():
            raise JudgeConfigError(f"{s}: judge config file not found")
        return p
    named = _named_configs()
    if s not in named:
        raise JudgeConfigError(
            f"{s}: no such judge config (named configs: {', '.join(sorted(named)) or 'none'}; or give a path to a "
            ".yaml file)"
        )
    return named[s]


def _loc(loc: tuple[Union[int, str], ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def load_judge_config(path_or_name: Union[str, Path]) -> JudgeConfig:
    """Load and validate a judge config by built-in name or file path; raises :class:`JudgeConfigError`."""
    path = resolve_config_path(path_or_name)
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=_UniqueKeyLoader)  # noqa: S506 (safe loader)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None) or getattr(e, "context_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        problem = getattr(e, "problem", None) or str(e)
        raise JudgeConfigError(f"{where}: invalid YAML: {problem}") from None
    except (OSError, UnicodeDecodeError) as e:
        raise JudgeConfigError(f"{path}: cannot read: {e}") from None
    if not isinstance(data, dict):
        raise JudgeConfigError(f"{path}: a judge config must be a YAML mapping, got {type(data).__name__}")
    try:
        cfg = JudgeConfig.model_validate(data)
    except ValidationError as e:
        lines = []
        for err in e.errors():
            msg = err["msg"].removeprefix("Value error, ")
            loc = _loc(tuple(err["loc"]))
            lines.append(f"{path}: {loc}: {msg}" if loc else f"{path}: {msg}")
        raise JudgeConfigError("\n".join(lines)) from None
    cfg._source = str(path)
    return cfg
