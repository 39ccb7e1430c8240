"""What a run's probe stage is asked to do (``sfteval run`` uses the defaults; ``sfteval probe`` sets them)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from .continuation import ContinuationConfig
from .core import ProbeConfig


@dataclass
class ProbeOptions:
    config: ProbeConfig = field(default_factory=ProbeConfig)
    #: base model for the continuation probe (a path or demo:base); None = no continuation probe
    base: Optional[str] = None
    continuation: ContinuationConfig = field(default_factory=ContinuationConfig)
    #: True for `sfteval probe`: a backend without prompt log-probs is an error, not a skipped stage
    required: bool = False
