"""Plain-text formatting of diff numbers, shared by the markdown, HTML and gate messages.

Why one place: "usable −6.9 pp [−9.8, −4.1], p=0.002" must read the same in the PR comment, the HTML page
and the gate's failure reasons.
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Optional

from ..report import format_value

STATUS_MARK = {"regression": "🔴", "improvement": "🟢", "worse": "🟠", "better": "🔵", "changed": "⚪", "": ""}


def is_rate(metric: str, binary: bool = False) -> bool:
    return binary or format_value(metric, 0.5).endswith("%")


def _nan(v: Any) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


def value(metric: str, v: Optional[float], binary: bool = False) -> str:
    if v is None or _nan(v):
        return "–"
    if binary:
        return f"{100 * v:.1f}%"
    return format_value(metric, float(v))


def delta(metric: str, d: Optional[float], binary: bool = False, mean_a: Optional[float] = None) -> str:
    """Signed change: percentage points for rates, else the metric's unit, plus % of A when ``mean_a`` is
    given (callers pass it for metrics judged relative: latency, lengths -- not for log-probs near 0)."""
    if d is None or _nan(d):
        return "–"
    if is_rate(metric, binary):
        return f"{100 * d:+.1f} pp"
    text = f"{d:+.3g}" if abs(d) < 10 else f"{d:+.1f}"
    if mean_a is not None and not _nan(mean_a) and mean_a != 0:
        text += f" ({100 * d / abs(mean_a):+.0f}%)"
    return text


def interval(metric: str, lo: Optional[float], hi: Optional[float], binary: bool = False) -> str:
    if lo is None or hi is None or _nan(lo) or _nan(hi):
        return "–"
    if is_rate(metric, binary):
        return f"[{100 * lo:+.1f}, {100 * hi:+.1f}]"
    return f"[{lo:+.3g}, {hi:+.3g}]"


def pvalue(p: Optional[float]) -> str:
    if p is None or _nan(p):
        return "–"
    if p < 1e-16:
        return "<1e-16"
    if p < 1e-4:
        return f"{p:.0e}"
    return f"{p:.4f}" if p < 0.01 else f"{p:.3f}"


def rel_base(row: Mapping[str, Any]) -> Optional[float]:
    """The baseline mean to express a delta against, for metrics whose minimum effect is relative."""
    return row.get("mean_a") if row.get("relative") else None


def group_label(group: str, kind: str) -> str:
    return f"[{group}]" if kind in ("overall", "robustness") else group


def describe_cell(row: Mapping[str, Any]) -> str:
    """One line with every number a reviewer needs: where, what, A -> B, delta, CI, p, n, threshold."""
    m, b = row["metric"], bool(row.get("binary"))
    thr = row.get("threshold")
    unit = "pp" if is_rate(m, b) else ""
    if thr is None or _nan(thr):
        thr_txt = ""
    else:
        thr_txt = f", min effect {100 * thr:.1f}{unit}" if unit else f", min effect {thr:.3g}"
    ci = interval(m, row["ci_low"], row["ci_high"], b)
    return (f"{group_label(row['group'], row['kind'])} {m}: {value(m, row['mean_a'], b)} → "
            f"{value(m, row['mean_b'], b)} (delta {delta(m, row['delta'], b, rel_base(row))}, 95% CI {ci}, "
            f"p={pvalue(row['p_value'])}, Holm p={pvalue(row['p_holm'])}, n={int(row['n'])}, {row['test']}{thr_txt})")


def threshold(row: Mapping[str, Any]) -> str:
    """A cell's minimum effect in its unit."""
    thr = row.get("threshold")
    if thr is None or _nan(thr):
        return "–"
    return f"{100 * thr:.1f} pp" if is_rate(row["metric"], bool(row.get("binary"))) else f"{thr:.3g}"


def mde(row: Mapping[str, Any], mark: bool = True) -> str:
    """The cell's minimum detectable effect, marked 🙈 when larger than its minimum effect (a blind cell)."""
    v = row.get("mde")
    if v is None or _nan(v):
        text = "–"
    elif math.isinf(v):
        text = "∞"
    elif is_rate(row["metric"], bool(row.get("binary"))):
        text = f"{100 * v:.1f} pp"
    else:
        text = f"{v:.3g}"
    return f"{text} 🙈" if mark and row.get("blind") else text


def length_adjusted(row: Mapping[str, Any]) -> str:
    """The length-adjusted delta of a judge cell, '–' elsewhere; ⚠ when its sign differs from the raw delta's."""
    v = row.get("length_adjusted_delta")
    if v is None or _nan(v):
        return "–"
    text = delta(row["metric"], v, bool(row.get("binary")))
    return f"{text} ⚠" if row.get("length_sign_flip") else text
