"""Which judge to use, and which judge a run's numbers come from.

Why two things: a :class:`JudgeSpec` is what the user asked for on the command line (config, model,
endpoint; the API key is only ever the *name* of an environment variable). An :class:`ActiveJudge` is
what a run folder records so that aggregation needs no command line: the exact validated config
(``judge_config.json``, so a re-judge hits the cache even if the YAML file moved), the judge model and
k. Old judgments of other judges stay in ``judgments.jsonl`` as a cache but are not aggregated.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

from judges.config import JudgeConfig, JudgeConfigError, load_judge_config

if TYPE_CHECKING:
    from ..models import RunManifest
    from ..store import RunStore

JUDGE_CONFIG_FILE = "judge_config.json"
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
        """What the run manifest records about the judge (never a key, only the variable's name)."""
        return {
            "config": cfg.name, "config_hash": cfg.config_hash(), "config_source": cfg.source, "model": self.model,
            "backend": self.backend, "base_url": self.base_url, "api_key_env": self.api_key_env, "samples": k,
            "options": {k_: v for k_, v in self.options.items() if not _secret(k_)},
        }


def _secret(name: str) -> bool:
    return any(s in name.lower() for s in ("key", "token", "secret", "password"))


def effective_k(cfg: JudgeConfig, samples: Optional[int]) -> int:
    k = samples or cfg.sampling.k
    if k > 1 and cfg.sampling.temperature == 0:
        raise JudgeError(f"judge config {cfg.name!r}: {k} samples need sampling.temperature > 0 "
                         "(greedy repeats are identical); use --judge-samples 1 or another config")
    return k


@dataclass(frozen=True)
class ActiveJudge:
    """The judge whose judgments a run's summary aggregates."""

    config: JudgeConfig
    model: str
    k: int

    @property
    def config_hash(self) -> str:
        return self.config.config_hash()

    def selects(self, judgment: Any) -> bool:
        """True for this judge's records (same config hash and model, sample index below k)."""
        return (judgment.judge_config_hash == self.config_hash and judgment.judge_model == self.model
                and judgment.judge_sample < self.k)


def save_active(store: "RunStore", manifest: "RunManifest", spec: JudgeSpec, cfg: JudgeConfig, k: int) -> None:
    """Record the judge in the manifest and snapshot its validated config beside it."""
    store.write_json(JUDGE_CONFIG_FILE, cfg.model_dump(mode="json"))
    manifest.judge = spec.manifest_entry(cfg, k)
    store.write_manifest(manifest)


def load_active(path: Path, manifest_judge: Optional[dict[str, Any]]) -> Optional[ActiveJudge]:
    """The run's active judge from its manifest entry and config snapshot; None when never judged."""
    if not manifest_judge:
        return None
    cfg = snapshot_config(path)
    if cfg is None or cfg.config_hash() != manifest_judge.get("config_hash"):
        return None
    return ActiveJudge(cfg, manifest_judge["model"], int(manifest_judge.get("samples") or cfg.sampling.k))


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
