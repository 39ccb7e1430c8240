"""Probes: sum log P(reference | question), choice probes, and the base-model continuation probe.

- :mod:`.core`         reference and choice probes on any backend (``compute_probes`` is the parity hook)
- :mod:`.continuation` base vs SFT: knowledge the SFT model lost (PRACTICE 9)
- :mod:`.stage`        the run stage: resume, progress, graceful skip when a backend cannot score prompts
- :mod:`.metrics`      per-item and per-task_type probe metrics for summary.json and the differ

Nothing here imports torch; the backends do.
"""

from .core import KINDS, PlannedProbe, ProbeConfig, compute_probes, plan_probes, score_texts

__all__ = ["KINDS", "PlannedProbe", "ProbeConfig", "compute_probes", "plan_probes", "score_texts"]
