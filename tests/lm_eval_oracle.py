"""lm-evaluation-harness as an independent oracle for probe values (tests and bench/probes.py share it).

lm-eval's ``HFLM.loglikelihood`` tokenizes ``context + continuation`` jointly, splits at the context's
length, and moves trailing whitespace of the context onto the continuation first; sfteval's probes are
compared with it under that same convention (``whitespace="lm-eval"``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Optional

from sfteval.harness.probes import ProbeConfig, plan_probes
from sfteval.harness.render import Renderer
from sfteval.harness.suite import load_suite


def probe_pairs(suite: str | Path, renderer: Renderer, items: Optional[int] = None,
                config: ProbeConfig = ProbeConfig()) -> list[tuple[str, str]]:
    """The (context, continuation) text pairs the probes of ``suite`` score (references and every choice);
    with ``items``, of that many items spread evenly over the suite (every task_type represented)."""
    pool = load_suite(str(suite)).items
    if items and items < len(pool):
        pool = [pool[round(k * len(pool) / items)] for k in range(items)]
    return [(p.context, c) for p in plan_probes(pool, renderer, config) for c in p.continuations]


def lm_eval_model(model_dir: str | Path, batch_size: int = 8) -> Any:
    """lm-eval's HF model on CPU in float32, offline."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from lm_eval.models.huggingface import HFLM

    return HFLM(pretrained=str(model_dir), device="cpu", dtype="float32", batch_size=batch_size)


def lm_eval_loglikelihood(lm: Any, pairs: list[tuple[str, str]]) -> list[tuple[float, bool]]:
    from lm_eval.api.instance import Instance

    reqs = [Instance("loglikelihood", {}, (c, x), i) for i, (c, x) in enumerate(pairs)]
    return [(float(s), bool(g)) for s, g in lm.loglikelihood(reqs, disable_tqdm=True)]
