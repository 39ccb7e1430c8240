"""A line chart as inline SVG (one line per task_type across runs), in the style of :mod:`.svg`."""

from __future__ import annotations

import math
from typing import Optional, Sequence

from .svg import _esc, _open

PALETTE = ["#3f6fb5", "#d6604d", "#4daf4a", "#984ea3", "#ff7f00", "#a65628", "#f781bf", "#666666", "#1b9e77",
           "#e7298a", "#66a61e", "#e6ab02", "#7570b3", "#17becf"]


def line_chart(series: Sequence[tuple[str, Sequence[Optional[float]]]], xs: Sequence[float], xlabels: Sequence[str], *,
               title: str, percent: bool = False) -> str:
    """``series``: (name, one value per run); x positions ``xs`` (steps, or run positions), labelled ``xlabels``."""
    vals = [v for _, ys in series for v in ys if v is not None and not math.isnan(v)]
    lo, hi = (min(vals), max(vals)) if vals else (0.0, 1.0)
    if percent:
        lo, hi = min(lo, 0.0), max(hi, 1.0)
    if hi <= lo:
        hi = lo + 1.0
    x0, x1 = min(xs), max(xs)
    if x1 <= x0:
        x1 = x0 + 1.0
    left, top, w, h = 56, 28, 460, 200
    legend = 14 * len(series)
    out = [_open(left + w + 220, top + max(h, legend) + 56, title, 11, fit=True),
           f'<text x="4" y="14" font-weight="bold">{_esc(title)}</text>',
           f'<line x1="{left}" y1="{top + h}" x2="{left + w}" y2="{top + h}" stroke="#888"/>',
           f'<line x1="{left}" y1="{top}" x2="{left}" y2="{top + h}" stroke="#888"/>']
    fmt = (lambda v: f"{100 * v:.0f}%") if percent else (lambda v: f"{v:.3g}")
    for frac in (0.0, 0.5, 1.0):
        v = lo + frac * (hi - lo)
        y = top + h - frac * h
        out.append(f'<text x="{left - 4}" y="{y + 4:.0f}" text-anchor="end">{fmt(v)}</text>')

    def px(x: float) -> float:
        return left + (x - x0) / (x1 - x0) * w

    def py(v: float) -> float:
        return top + h - (v - lo) / (hi - lo) * h

    for x, lab in zip(xs, xlabels):
        out.append(f'<text transform="translate({px(x):.0f},{top + h + 12}) rotate(25)">{_esc(lab)}</text>')
    for k, (name, ys) in enumerate(series):
        color = PALETTE[k % len(PALETTE)]
        pts = [(px(x), py(v), v) for x, v in zip(xs, ys) if v is not None and not math.isnan(v)]
        if len(pts) > 1:
            out.append(f'<polyline fill="none" stroke="{color}" stroke-width="2" points="'
                       + " ".join(f"{a:.1f},{b:.1f}" for a, b, _ in pts) + '"/>')
        for (a, b, v), lab in zip(pts, xlabels):
            out.append(f'<circle cx="{a:.1f}" cy="{b:.1f}" r="3" fill="{color}"><title>{_esc(name)} · {_esc(lab)}: '
                       f'{fmt(v)}</title></circle>')
        ly = top + 10 + 14 * k
        out.append(f'<rect x="{left + w + 12}" y="{ly - 8}" width="10" height="8" fill="{color}"/>'
                   f'<text x="{left + w + 26}" y="{ly}">{_esc(name)}</text>')
    out.append("</svg>")
    return "".join(out)
