"""Inline SVG charts written as text: a delta heatmap, paired bar charts, histograms.

Why hand-written SVG: the HTML report must be one self-contained file (no scripts or fonts to fetch, no
matplotlib dependency), and these three chart types are a few dozen lines each.
"""

from __future__ import annotations

import html
import math
from typing import Optional, Sequence

WORSE = (214, 96, 77)  # red-orange: B worse
BETTER = (67, 147, 195)  # blue: B better
NEUTRAL = (150, 150, 150)
COLOR_A, COLOR_B = "#9e9e9e", "#3f6fb5"
FONT = "font-family:system-ui,-apple-system,Segoe UI,sans-serif"


def _esc(s: object) -> str:
    return html.escape(str(s), quote=True)


def _open(width: float, height: float, title: str, font_size: int, fit: bool) -> str:
    """The <svg> tag. ``fit``: drawn in a viewBox and shown at most at its natural width, shrinking with the page
    (a heatmap of many metrics would otherwise overflow it); else at its natural size."""
    size = (f'width="100%" style="{FONT};font-size:{font_size}px;max-width:{width:.0f}px;height:auto"' if fit else
            f'width="{width:.0f}" height="{height:.0f}" style="{FONT};font-size:{font_size}px"')
    return (f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width:.0f} {height:.0f}" {size} role="img">'
            f'<title>{_esc(title)}</title>')


def _mix(rgb: tuple[int, int, int], t: float) -> str:
    t = max(0.0, min(1.0, t))
    r, g, b = (round(255 + (c - 255) * t) for c in rgb)
    return f"rgb({r},{g},{b})"


def heat_color(score: Optional[float], neutral: bool = False) -> str:
    """score = direction-aware effect / minimum effect: 0 white, <= -2 full 'worse', >= 2 full 'better'."""
    if score is None or math.isnan(score):
        return "#f3f3f3"
    if neutral:
        return _mix(NEUTRAL, abs(score) / 4)
    return _mix(BETTER if score > 0 else WORSE, abs(score) / 2)


def heatmap(rows: Sequence[str], cols: Sequence[str], scores: Sequence[Sequence[Optional[float]]],
            marks: Sequence[Sequence[str]], tips: Sequence[Sequence[str]], neutral: Sequence[bool]) -> str:
    """A table of colored cells (rows = groups, cols = metrics); ``marks`` are short texts drawn on cells."""
    cw, ch = 46, 20
    left = min(260, 12 + 7 * max((len(r) for r in rows), default=4))
    top = min(220, 12 + 6 * max((len(c) for c in cols), default=4))
    width = left + cw * len(cols) + 10 + int(4.5 * max((len(c) for c in cols), default=4))  # rotated labels
    height = top + ch * len(rows) + 10
    out = [_open(width, height, "delta per task_type and metric", 11, fit=True)]
    for j, c in enumerate(cols):
        x = left + cw * j + cw / 2
        out.append(f'<text transform="translate({x:.0f},{top - 6}) rotate(-50)">{_esc(c)}</text>')
    for i, r in enumerate(rows):
        y = top + ch * i
        out.append(f'<text x="{left - 6}" y="{y + 14}" text-anchor="end">{_esc(r)}</text>')
        for j in range(len(cols)):
            x = left + cw * j
            out.append(f'<g><title>{_esc(tips[i][j])}</title><rect x="{x}" y="{y}" width="{cw - 2}" height="{ch - 2}" '
                       f'fill="{heat_color(scores[i][j], neutral[j])}"/>')
            if marks[i][j]:
                out.append(f'<text x="{x + cw / 2 - 1}" y="{y + 14}" text-anchor="middle" font-weight="bold">'
                           f'{_esc(marks[i][j])}</text>')
            out.append("</g>")
    out.append("</svg>")
    return "".join(out)


def paired_bars(labels: Sequence[str], a: Sequence[Optional[float]], b: Sequence[Optional[float]], *,
                title: str, names: tuple[str, str] = ("A", "B"), percent: bool = True) -> str:
    """Horizontal bars, one pair (A grey, B blue) per label; values in [0, 1] when ``percent``."""
    vals = [v for v in list(a) + list(b) if v is not None and not math.isnan(v)]
    vmax = 1.0 if percent else (max(vals) if vals else 1.0) or 1.0
    bw, bh = 320, 9
    left = min(260, 12 + 7 * max((len(x) for x in labels), default=4))
    height = 34 + len(labels) * (2 * bh + 8)
    out = [_open(left + bw + 80, height, title, 11, fit=True),
           f'<text x="4" y="14" font-weight="bold">{_esc(title)}</text>',
           f'<rect x="{left}" y="20" width="10" height="8" fill="{COLOR_A}"/>'
           f'<text x="{left + 14}" y="28">{_esc(names[0])}</text>',
           f'<rect x="{left + 130}" y="20" width="10" height="8" fill="{COLOR_B}"/>'
           f'<text x="{left + 144}" y="28">{_esc(names[1])}</text>']
    for i, label in enumerate(labels):
        y = 34 + i * (2 * bh + 8)
        out.append(f'<text x="{left - 6}" y="{y + bh + 4}" text-anchor="end">{_esc(label)}</text>')
        for k, (v, color) in enumerate(((a[i], COLOR_A), (b[i], COLOR_B))):
            if v is None or math.isnan(v):
                continue
            w = max(0.0, bw * v / vmax)
            text = f"{100 * v:.1f}%" if percent else f"{v:.3g}"
            out.append(f'<rect x="{left}" y="{y + k * bh}" width="{w:.1f}" height="{bh - 1}" fill="{color}">'
                       f'<title>{_esc(names[k])}: {text}</title></rect>'
                       f'<text x="{left + w + 3:.1f}" y="{y + k * bh + 8}" font-size="9">{text}</text>')
    out.append("</svg>")
    return "".join(out)


def histogram(title: str, labels: Sequence[str], a: Sequence[int], b: Optional[Sequence[int]] = None,
              names: tuple[str, str] = ("A", "B")) -> str:
    """Vertical bars per bin, A and B side by side as shares of their totals (so run sizes do not matter)."""
    ta, tb = sum(a) or 1, (sum(b) or 1) if b is not None else 1
    shares = [x / ta for x in a] + ([x / tb for x in b] if b is not None else [])
    vmax = max(shares, default=1.0) or 1.0
    n = len(labels)
    gw = max(10, min(48, 480 // max(n, 1)))
    left, top, h_plot = 44, 40, 120
    w_plot = max(200, gw * n)
    x_start = left + (w_plot - gw * n) / 2
    out = [_open(left + w_plot + 12, top + h_plot + 44, title, 10, fit=False),
           f'<text x="4" y="13" font-weight="bold" font-size="11">{_esc(title)}</text>',
           f'<line x1="{left}" y1="{top + h_plot}" x2="{left + w_plot}" y2="{top + h_plot}" stroke="#888"/>',
           f'<line x1="{left}" y1="{top}" x2="{left}" y2="{top + h_plot}" stroke="#888"/>',
           f'<text x="{left - 4}" y="{top + 4}" text-anchor="end">{100 * vmax:.0f}%</text>',
           f'<text x="{left - 4}" y="{top + h_plot}" text-anchor="end">0</text>']
    series = [(a, ta, COLOR_A, names[0])] + ([(b, tb, COLOR_B, names[1])] if b is not None else [])
    for k, (_, _, color, name) in enumerate(series):
        out.append(f'<rect x="{left + 110 * k}" y="21" width="10" height="8" fill="{color}"/>'
                   f'<text x="{left + 14 + 110 * k}" y="29">{_esc(name)}</text>')
    bar = (gw - 2) / len(series)
    step = max(1, n // 10)
    for i, label in enumerate(labels):
        x0 = x_start + i * gw
        for k, (counts, total, color, name) in enumerate(series):
            h = h_plot * counts[i] / total / vmax
            out.append(f'<rect x="{x0 + k * bar:.1f}" y="{top + h_plot - h:.1f}" width="{bar:.1f}" height="{h:.1f}" '
                       f'fill="{color}"><title>{_esc(name)} {_esc(label)}: {counts[i]} ({100 * counts[i] / total:.1f}%)'
                       f'</title></rect>')
        if i % step == 0:
            out.append(f'<text transform="translate({x0 + gw / 2:.0f},{top + h_plot + 12}) rotate(35)">'
                       f'{_esc(label)}</text>')
    out.append("</svg>")
    return "".join(out)


def bin_labels(dist: dict) -> list[str]:
    if "values" in dist:
        return [f"{v:.3g}" for v in dist["values"]]
    edges = dist["edges"]
    return [f"{edges[i]:.3g}" for i in range(len(edges) - 1)]
