"""What a diff produces: typed, complete, and serialisable to JSON for machines (the reports read this)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Optional

import numpy as np
import pandas as pd

SCHEMA_VERSION = 1
CELL_COLUMNS = ["group", "kind", "same_as", "metric", "n", "mean_a", "mean_b", "delta", "ci_low", "ci_high", "p_value",
                "p_holm", "test", "strata", "binary", "direction", "min_effect", "relative", "threshold", "alpha", "gate",
                "effect", "significant", "status", "spread", "mde", "n_needed", "blind", "length_adjusted_delta",
                "length_adjusted_ci_low", "length_adjusted_ci_high", "length_slope", "length_sign_flip"]


@dataclass
class RunInfo:
    """One side of the comparison, with the reliability numbers the gate's guards check."""

    run_id: str
    model: str = ""
    suite_name: str = ""
    suite_version: str = ""
    suite_hash: str = ""
    status: str = ""
    items: int = 0
    judge: Optional[str] = None
    judge_samples: int = 0
    judge_unparsed_rate: Optional[float] = None
    judge_error_rate: Optional[float] = None
    judge_not_judged_rate: Optional[float] = None  #: judge samples the budget kept back
    generations: int = 0
    generation_error_rate: Optional[float] = None
    judge_warnings: list[str] = field(default_factory=list)
    judge_reliability: dict[str, Any] = field(default_factory=dict)


@dataclass
class FlipItem:
    """An item that changed for the worse (severity > 0) or the better, with what it needs to be read."""

    item_id: str
    task_type: str
    severity: float
    reasons: list[str]
    values: dict[str, list[Optional[float]]]  # metric -> [A, B]
    detail: dict[str, Any] = field(default_factory=dict)  # prompt, reference, a/b answers and judge rationales


@dataclass
class Pairwise:
    """Pairwise judge outcomes of B (candidate) against A (baseline), both orders, per group."""

    source: str
    groups: list[dict[str, Any]]  # group, kind, n, decided, win, tie, loss, score, ci_low, ci_high, p_value
    swap_flip_rate: Optional[float]
    reliability: dict[str, Any]
    inverted: bool = False  # read from A/pairs/B and mapped to B's side


@dataclass
class DiffResult:
    run_a: RunInfo
    run_b: RunInfo
    settings: dict[str, Any]
    cells: pd.DataFrame
    paired: int
    only_a: list[str] = field(default_factory=list)
    only_b: list[str] = field(default_factory=list)
    changed_items: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    worse: list[FlipItem] = field(default_factory=list)
    better: list[FlipItem] = field(default_factory=list)
    n_worse: int = 0
    n_better: int = 0
    pairwise: Optional[Pairwise] = None
    distributions: dict[str, Any] = field(default_factory=dict)
    group_sizes: dict[str, int] = field(default_factory=dict)
    training: Optional[dict[str, Any]] = None  # differ/training.py: the training mix and flipped items' neighbours
    agreement: Optional[dict[str, Any]] = None  #: judge-human agreement on the runs' labels (harness/labels)

    @property
    def suite_match(self) -> bool:
        return self.run_a.suite_hash == self.run_b.suite_hash

    @property
    def shown_cells(self) -> pd.DataFrame:
        """The cells people read: a first level that is its only second level (``same_as``) is shown as that one."""
        if not len(self.cells):
            return self.cells
        return self.cells[self.cells["same_as"].isna()]

    def rows(self, status: str) -> list[dict[str, Any]]:
        if not len(self.cells):
            return []
        cells = self.shown_cells
        sel = cells[cells["status"] == status]
        # most specific first within the worst effect: task_types, then first levels, then aggregates
        order = {"task_type": 0, "level1": 1, "robustness": 2, "overall": 3}
        # largest change (in units of the minimum effect) first: most negative for regressions
        sel = sel.assign(_k=sel["kind"].map(order), _e=sel["effect"] / sel["threshold"].where(sel["threshold"] > 0, 1))
        sel = sel.sort_values(["_e", "_k"], ascending=[status not in ("improvement", "better"), True], kind="stable")
        return sel.drop(columns=["_k", "_e"]).to_dict("records")

    def regressions(self) -> list[dict[str, Any]]:
        return self.rows("regression")

    def improvements(self) -> list[dict[str, Any]]:
        return self.rows("improvement")

    def same_as_pairs(self) -> list[tuple[str, str]]:
        """(first level, its only second level) pairs: one test, shown once as the second level."""
        if not len(self.cells):
            return []
        alias = self.cells[self.cells["same_as"].notna()]
        return sorted(set(zip(alias["group"], alias["same_as"])))

    def counts(self) -> dict[str, int]:
        """Cells per status, each test once (a ``same_as`` alias is not counted again)."""
        cells = self.shown_cells
        return {s: int((cells["status"] == s).sum()) if len(cells) else 0
                for s in ("regression", "improvement", "worse", "better", "changed")}

    def headline_metric(self) -> Optional[str]:
        """The release number: usable rate when judged, else the first rule/probe accuracy present."""
        if not len(self.cells):
            return None
        present = set(self.cells["metric"])
        for m in ("usable", "judge:overall", "rule:normalized_match", "rule:exact_match", "rule:choice",
                  "rule:checks", "probe:choice_acc", "probe:ref_greedy"):
            if m in present:
                return m
        return sorted(present)[0]

    def cell(self, group: str, metric: str) -> Optional[dict[str, Any]]:
        if not len(self.cells):
            return None
        sel = self.cells[(self.cells["group"] == group) & (self.cells["metric"] == metric)]
        return sel.iloc[0].to_dict() if len(sel) else None

    def as_dict(self, verdict: Optional[dict[str, Any]] = None) -> dict[str, Any]:
        cells = self.cells[[c for c in CELL_COLUMNS if c in self.cells.columns]] if len(self.cells) else self.cells
        return _clean({
            "schema_version": SCHEMA_VERSION,
            "baseline": asdict(self.run_a), "candidate": asdict(self.run_b),
            "suite_match": self.suite_match, "settings": self.settings, "verdict": verdict,
            "items": {"paired": self.paired, "only_in_baseline": self.only_a, "only_in_candidate": self.only_b,
                      "changed_content": self.changed_items},
            "warnings": self.warnings,
            "counts": self.counts(),
            "group_sizes": self.group_sizes,
            "regressions": self.regressions(), "improvements": self.improvements(),
            "cells": cells.to_dict("records"),
            "flipped": {"worse": [asdict(f) for f in self.worse], "better": [asdict(f) for f in self.better],
                        "worse_total": self.n_worse, "better_total": self.n_better},
            "pairwise": asdict(self.pairwise) if self.pairwise else None,
            "distributions": self.distributions,
            "training": self.training,
            "agreement": self.agreement,
        })


def _clean(x: Any) -> Any:
    """JSON-safe: NaN/inf -> None, numpy scalars -> Python numbers."""
    if isinstance(x, dict):
        return {str(k): _clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_clean(v) for v in x]
    if isinstance(x, (np.floating, float)):
        f = float(x)
        return None if math.isnan(f) or math.isinf(f) else f
    if isinstance(x, np.integer):
        return int(x)
    if isinstance(x, np.bool_):
        return bool(x)
    return x
