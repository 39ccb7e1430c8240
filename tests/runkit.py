"""Comparing two run folders as "the same run": what shard + merge and --ray must reproduce of one process.

Independent of how either run was made: the records are read back from the files and compared field by field;
only timing (latency depends on the machine and the moment) is left out, from the records, the summary and
the report.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

from sfteval.harness.store import RunStore

TIMING_METRICS = ("gen:ttft_s", "gen:per_token_s")
STREAMS = ("generations", "judgments", "probes")


def records(run: Path, stream: str) -> dict[str, dict[str, Any]]:
    return {k: r.model_dump(mode="json", exclude={"timing"}) for k, r in RunStore(run).read(stream).items()}


def keys_in_file(run: Path, stream: str = "generations") -> Counter:
    """How often each record key occurs in the stream file (a record stored twice shows up here)."""
    path = run / f"{stream}.jsonl"
    return Counter(json.loads(line)["key"] for line in path.read_text(encoding="utf-8").splitlines() if line.strip())


def without_timing(summary: Any) -> Any:
    if isinstance(summary, dict):
        return {k: without_timing(v) for k, v in summary.items() if k not in TIMING_METRICS}
    if isinstance(summary, list):
        return [without_timing(v) for v in summary]
    return summary


def report_without_timing(text: str) -> list[str]:
    """report.md with the latency columns of its tables removed."""
    out, drop = [], set()
    for line in text.splitlines():
        if line.startswith("|"):
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if any(c in TIMING_METRICS for c in cells):
                drop = {i for i, c in enumerate(cells) if c in TIMING_METRICS}
            out.append("|".join(c for i, c in enumerate(cells) if i not in drop))
        else:
            drop = set() if not line.strip() else drop
            out.append(line)
    return out


def close(x: Any, y: Any, tol: float) -> bool:
    """Equal, floats within ``tol`` (0: exactly equal)."""
    if isinstance(x, float) and isinstance(y, float):
        return abs(x - y) <= tol
    if isinstance(x, dict) and isinstance(y, dict):
        return x.keys() == y.keys() and all(close(x[k], y[k], tol) for k in x)
    if isinstance(x, list) and isinstance(y, list):
        return len(x) == len(y) and all(close(a, b, tol) for a, b in zip(x, y))
    return x == y


def assert_same_records(a: Path, b: Path, probe_tol: float = 0.0) -> None:
    """Every record equal, timing aside. ``probe_tol``: log-probs computed in other batches (other replicas,
    another batch shape) agree to float rounding only, so they may differ by this much."""
    for stream in STREAMS:
        ra, rb = records(a, stream), records(b, stream)
        assert set(ra) == set(rb), f"{stream}: {len(set(ra) - set(rb))} only in {a}, {len(set(rb) - set(ra))} only in {b}"
        tol = probe_tol if stream == "probes" else 0.0
        differ = [k for k in ra if not close(ra[k], rb[k], tol)]
        if differ:
            k = differ[0]
            fields = {f: (ra[k][f], rb[k][f]) for f in ra[k] if not close(ra[k][f], rb[k][f], tol)}
            raise AssertionError(f"{stream}: {len(differ)} of {len(ra)} records differ, e.g. {k}: {fields}")


def assert_same_run(a: Path, b: Path) -> None:
    """Items (in order), every record, summary.json and report.md equal, timing aside."""
    items_a = (a / "items.jsonl").read_text(encoding="utf-8")
    assert items_a == (b / "items.jsonl").read_text(encoding="utf-8"), "items.jsonl differs"
    assert_same_records(a, b)
    sa = json.loads((a / "summary.json").read_text())
    sb = json.loads((b / "summary.json").read_text())
    assert without_timing(sa) == without_timing(sb), "summary.json differs"
    ra = report_without_timing((a / "report.md").read_text(encoding="utf-8"))
    rb = report_without_timing((b / "report.md").read_text(encoding="utf-8"))
    assert ra == rb, "report.md differs"
