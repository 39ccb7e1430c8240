"""Which judge to use, and which judge a run's numbers come from.

Why two things: a :class:`JudgeSpec` is what the user asked for on the command line (config, model,
endpoint; the API key is only ever the *name* of an environment variable). An :class:`ActiveJudge` is
what a run folder records so that aggregation needs no command line: the exact validated config
(``judge_config.json``, so a re-judge hits the cache even if the YAML file moved), the judge model and
k. Old judgments of other judges stay in ``judgments.jsonl`` as a cache but are not aggregated.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

from sfteval.judges.config import JudgeConfig, JudgeConfigError, load_judge_config

from ..store import JUDGE_CONFIG as JUDGE_CONFIG_FILE
from ..store import RunStore

if TYPE_CHECKING:
    from ..models import RunManifest

DEFAULT_API_KEY_ENV = "OPENAI_API_KEY"


class JudgeError(RuntimeError):
    """A judge problem a user can fix (bad config, unknown answer type, judge unreachable)."""


@dataclass
class JudgeSpec:
    """A judge as asked for: ``config`` is a built-in config name or a YAML path."""

    config: str
    model: str
    backend: str = "openai"
    base_url: Optional[str] = None
    api_key_env: str = DEFAULT_API_KEY_ENV
    samples: Optional[int] = None  #: overrides config.sampling.k (cache keys do not depend on k)
    options: dict[str, Any] = field(default_factory=dict)  #: extra judge-backend options
    progress: bool = True
    #: what identifies the judge in the cache: "endpoint" (model name, endpoint and answer-changing options) or
    #: "model" (the model name alone, for a user who knows another endpoint serves the same model); None: the
    #: run's recorded choice, else "endpoint"
    cache_key: Optional[str] = None
    #: "online" (requests through the backend) or "batch" (the OpenAI Batch API at its discount, or vLLM's offline
    #: batch runner for a local judge); both write the same records
    mode: str = "online"
    #: a tokenizer (local folder) that counts the judge's prompt tokens for --dry-run and --max-cost
    tokenizer: Optional[str] = None
    adaptive: Optional[bool] = None  #: overrides the config's sampling.adaptive (not in the config hash)
    max_cost: Optional[float] = None  #: USD this command may spend on judge calls (cached calls are free)
    max_calls: Optional[int] = None  #: judge requests this command may send

    def load_config(self) -> JudgeConfig:
        try:
            cfg = load_judge_config(self.config)
        except JudgeConfigError as e:
            raise JudgeError(str(e)) from None
        if self.adaptive is not None and cfg.sampling.adaptive != self.adaptive:
            cfg.sampling.adaptive = self.adaptive  # a fresh object per load; the hash leaves it out
        return cfg

    def manifest_entry(self, cfg: JudgeConfig, k: int) -> dict[str, Any]:
        """What the run manifest records about the judge (never a key, only the variable's name).

        Secret options are left out (not masked: a re-judge reuses the recorded options) and the base URL's
        credentials are masked; a re-judge of such a server needs ``--judge-base-url`` again.
        """
        from ..redact import is_secret_name, redact_url, redact_value

        return {
            "config": cfg.name, "config_hash": cfg.config_hash(), "config_source": cfg.source, "model": self.model,
            "backend": self.backend, "base_url": redact_url(self.base_url) if self.base_url else None,
            "api_key_env": self.api_key_env, "samples": k,
            "options": {k_: redact_value(v) for k_, v in self.options.items() if not is_secret_name(k_)},
            "cache_key": self.cache_key or "endpoint", "mode": self.mode,
        }

    def keep_recorded_cache_key(self, recorded: Optional[dict[str, Any]]) -> "JudgeSpec":
        """This spec with the run's recorded ``cache_key`` when it sets none, so re-judges key alike."""
        if self.cache_key is not None or not recorded or not recorded.get("cache_key"):
            return self
        from dataclasses import replace

        return replace(self, cache_key=recorded["cache_key"])


def effective_k(cfg: JudgeConfig, samples: Optional[int]) -> int:
    k = samples or cfg.sampling.k
    if k > 1 and cfg.sampling.temperature == 0:
        raise JudgeError(f"judge config {cfg.name!r}: {k} samples need sampling.temperature > 0 "
                         "(greedy repeats are identical); use --judge-samples 1 or another config")
    return k


#: Judge-backend options that change how requests travel or are paid for, never what the judge answers.
TRANSPORT_OPTIONS = frozenset({
    "api_key_env", "concurrency", "max_retries", "timeout", "backoff_base", "backoff_max", "max_retry_after",
    "stream", "price_per_1k_prompt", "price_per_1k_completion", "http_transport", "logprobs_method",
    "max_tokens_param", "device", "batch_size",
})
#: Judge options sfteval itself reads (batch mode, prices of a local judge); never passed to the backend, never
#: part of the judge's identity.
JUDGE_OPTIONS = frozenset({"batch_discount", "batch_poll_s", "batch_window", "batch_max_requests",
                           "batch_resubmits", "batch_args"})
PRICE_OPTIONS = ("price_per_1k_prompt", "price_per_1k_completion")
JUDGE_MODES = ("online", "batch")
#: the judge options sfteval reads, and the type each must have
_OPTION_TYPES: dict[str, tuple[type, ...]] = {
    "batch_discount": (int, float), "batch_poll_s": (int, float), "batch_max_requests": (int,),
    "batch_resubmits": (int,), "batch_window": (str,), "batch_args": (list,),
    "price_per_1k_prompt": (int, float), "price_per_1k_completion": (int, float),
}


def check_judge_options(spec: "JudgeSpec") -> None:
    """The judge options sfteval itself reads, checked before anything is sent (one error naming the option)."""
    if spec.mode not in JUDGE_MODES:
        raise JudgeError(f"--judge-mode {spec.mode!r}: choose one of {', '.join(JUDGE_MODES)}")
    for name, types in _OPTION_TYPES.items():
        value = spec.options.get(name)
        if value is None:
            continue
        ok = isinstance(value, types) and not isinstance(value, bool)
        if ok and isinstance(value, (int, float)) and not isinstance(value, bool):
            ok = value >= 0 and (name not in ("batch_max_requests", "batch_poll_s") or value > 0)
        if not ok:
            kind = {(int, float): "a number", (int,): "a whole number", (str,): "a string",
                    (list,): "a list (YAML: '[a, b]')"}[types]
            if types in ((int, float), (int,)):
                kind += " above 0" if name in ("batch_max_requests", "batch_poll_s") else " >= 0"
            raise JudgeError(f"--judge-option {name}={value!r}: expected {kind}")
    if spec.tokenizer is not None and not Path(spec.tokenizer).expanduser().exists():
        raise JudgeError(f"--judge-tokenizer {spec.tokenizer}: no such folder")


def backend_options(spec: JudgeSpec) -> dict[str, Any]:
    """The options the judge's backend is created with (the --judge-option values plus the endpoint)."""
    options = {k: v for k, v in spec.options.items() if k not in JUDGE_OPTIONS}
    if spec.backend != "openai":  # prices of a local judge are sfteval's to apply (an hf run costs what you say)
        options = {k: v for k, v in options.items() if k not in PRICE_OPTIONS}
    if spec.backend == "openai":
        if spec.base_url:
            options["base_url"] = spec.base_url
        options.setdefault("api_key_env", spec.api_key_env)
        options.setdefault("api", "chat")  # the server applies the judge's own chat template
        # judge latency is never reported, and some OpenAI-compatible proxies reject stream=true
        options.setdefault("stream", False)
    elif spec.base_url:
        raise JudgeError(f"--judge-base-url is only for --judge-backend openai, not {spec.backend}")
    return options


def judge_identity(spec: JudgeSpec) -> str:
    """The judge in cache keys: the model name, plus a hash of everything else that changes its answers.

    Two endpoints serving the same model name, another ``api``, ``extra_body`` or backend are different
    judges; retries, concurrency, timeouts and credentials are not. A local checkpoint adds its
    fingerprint. The endpoint enters with credentials masked, so the hash names no secret. With
    ``cache_key="model"`` the model name alone is the judge (the user vouches that it is the same model).
    """
    from ..redact import is_secret_name, redact_url

    if spec.cache_key == "model":
        return f"{spec.model}#model"
    options = {k: v for k, v in backend_options(spec).items() if k not in TRANSPORT_OPTIONS and not is_secret_name(k)}
    parts: dict[str, Any] = {"backend": spec.backend, "options": options}
    if spec.backend == "openai":
        from ..backends.openai.backend import resolve_base_url

        parts["base_url"] = redact_url(resolve_base_url(options.pop("base_url", None)))
    else:
        path = Path(spec.model).expanduser()
        if path.exists():
            from ..modelref import fingerprint

            parts["fingerprint"] = fingerprint(path)
    blob = json.dumps(parts, sort_keys=True, ensure_ascii=False, default=str)
    return f"{spec.model}#{hashlib.sha256(blob.encode('utf-8')).hexdigest()[:16]}"


@dataclass(frozen=True)
class ActiveJudge:
    """The judge whose judgments a run's summary aggregates."""

    config: JudgeConfig
    model: str
    k: int
    judge_id: Optional[str] = None  #: None for runs judged before the identity was recorded

    @cached_property
    def config_hash(self) -> str:
        """Computed once: ``selects`` asks for it for every record of a run."""
        return self.config.config_hash()

    def selects(self, judgment: Any) -> bool:
        """True for this judge's records (same config hash, model and identity, sample index below k)."""
        if self.judge_id is not None and judgment.details.get("judge_id") != self.judge_id:
            return False
        return (judgment.judge_config_hash == self.config_hash and judgment.judge_model == self.model
                and judgment.judge_sample < self.k)


def save_active(store: RunStore, manifest: "RunManifest", spec: JudgeSpec, cfg: JudgeConfig, k: int,
                judge_id: str) -> None:
    """Record the judge (and its identity, see :func:`judge_identity`) in the manifest; snapshot its config."""
    store.write_json(JUDGE_CONFIG_FILE, cfg.model_dump(mode="json"))
    manifest.judge = {**spec.manifest_entry(cfg, k), "judge_id": judge_id}
    store.write_manifest(manifest)


def load_active(path: Path, manifest_judge: Optional[dict[str, Any]]) -> Optional[ActiveJudge]:
    """The run's active judge from its manifest entry and config snapshot; None when never judged."""
    if not manifest_judge:
        return None
    cfg = snapshot_config(path)
    if cfg is None or cfg.config_hash() != manifest_judge.get("config_hash"):
        return None
    return ActiveJudge(cfg, manifest_judge["model"], int(manifest_judge.get("samples") or cfg.sampling.k),
                       manifest_judge.get("judge_id"))


def snapshot_config(path: Path) -> Optional[JudgeConfig]:
    f = Path(path) / JUDGE_CONFIG_FILE
    if not f.exists():
        return None
    return JudgeConfig.model_validate(json.loads(f.read_text(encoding="utf-8")))


def spec_from_manifest(path: Path, entry: dict[str, Any], **overrides: Any) -> JudgeSpec:
    """The judge a run recorded, for `sfteval judge RUN` without --judge (command-line values win)."""
    values = {"config": str(Path(path) / JUDGE_CONFIG_FILE), "model": entry["model"],
              "backend": entry.get("backend", "openai"), "base_url": entry.get("base_url"),
              "api_key_env": entry.get("api_key_env") or DEFAULT_API_KEY_ENV, "samples": entry.get("samples"),
              "options": dict(entry.get("options") or {}), "cache_key": entry.get("cache_key"),
              "mode": entry.get("mode") or "online"}
    values.update({k: v for k, v in overrides.items() if v not in (None, {}, ())})
    return JudgeSpec(**values)
