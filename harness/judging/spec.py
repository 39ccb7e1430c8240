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

    def load_config(self) -> JudgeConfig:
        try:
            cfg = load_judge_config(self.config)
        except JudgeConfigError as e:
            raise JudgeError(str(e)) from None
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
        }


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


def backend_options(spec: JudgeSpec) -> dict[str, Any]:
    """The options the judge's backend is created with (the --judge-option values plus the endpoint)."""
    options = dict(spec.options)
    if spec.backend == "openai":
        if spec.base_url:
            options["base_url"] = spec.base_url
        options.setdefault("api_key_env", spec.api_key_env)
        options.setdefault("api", "chat")  # the server applies the judge's own chat template
    elif spec.base_url:
        raise JudgeError(f"--judge-base-url is only for --judge-backend openai, not {spec.backend}")
    return options


def judge_identity(spec: JudgeSpec) -> str:
    """The judge in cache keys: the model name, plus a hash of everything else that changes its answers.

    Two endpoints serving the same model name, another ``api``, ``extra_body`` or backend are different
    judges; retries, concurrency, timeouts and credentials are not. A local checkpoint adds its
    fingerprint. The endpoint enters with credentials masked, so the hash names no secret.
    """
    from ..redact import is_secret_name, redact_url

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
              "options": dict(entry.get("options") or {})}
    values.update({k: v for k, v in overrides.items() if v not in (None, {}, ())})
    return JudgeSpec(**values)
