"""The viewer's web app (Starlette): browsing runs, comparisons and items. Review routes: reviewapp.py.

Handlers are plain functions run in Starlette's thread pool (the work is CPU and file reads); the caches
in data.py are thread-safe. Templates live in templates/ (Jinja2, autoescape on: every value from a run is
escaped; no template marks model text safe).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import numpy as np

from .. import __version__
from ..differ import diff_loaded
from ..differ import format as dfmt
from ..gate import GateConfig, evaluate
from ..report import format_value
from . import compare as cmp
from . import urls
from .data import NotFound, ViewData
from .review import LabelIndex, Leases, label_index, labels_stamp
from .security import new_secret

HERE = Path(__file__).resolve().parent
RUN_SORTS = ("id", "judge", "spread", "usable")


@dataclass
class Settings:
    results: Path
    host: str = "127.0.0.1"
    port: int = 8765
    reviewer: Optional[str] = None  #: every label is by this reviewer (else each browser names itself)
    token: Optional[str] = None
    overlap: int = 1
    seed: int = 0
    gate: GateConfig = field(default_factory=GateConfig)


def make_env() -> Any:
    import jinja2

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(HERE / "templates")), autoescape=True,
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.tests["match_prefix"] = lambda value, prefix: str(value).startswith(prefix)
    env.globals.update(urls=urls, fmt_value=format_value, num=num, pct=pct, version=__version__,
                       describe_cell=dfmt.describe_cell, fmt_delta=dfmt.delta, fmt_interval=dfmt.interval,
                       fmt_p=dfmt.pvalue)
    return env


def num(v: Any, digits: int = 2) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    if isinstance(v, (int, np.integer)) or float(v).is_integer():
        return f"{int(v)}"
    return f"{float(v):.{digits}f}"


def pct(v: Any) -> str:
    return "–" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{100 * float(v):.1f}%"


class Viewer:
    """The app's state: settings, data caches, review leases, templates."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.data = ViewData(settings.results)
        self.env = make_env()
        self.csrf = new_secret()
        self.leases = Leases()

    def render(self, name: str, status: int = 200, **ctx: Any) -> Any:
        from starlette.responses import HTMLResponse

        html = self.env.get_template(name).render(csrf=self.csrf, settings=self.settings, **ctx)
        return HTMLResponse(html, status_code=status)

    # -- shared state ----------------------------------------------------------------------------------------
    def comparison(self, a: str, b: str) -> cmp.Comparison:
        ra, rb = self.data.run(a), self.data.run(b)
        pair = self.data.pair_records(a, b)
        stamp = (ra.stamps, rb.stamps, pair.stamp if pair else None)

        def build() -> cmp.Comparison:
            diff = diff_loaded(ra.loaded, rb.loaded, self.settings.gate, log=lambda m: None)
            return cmp.build(a, b, ra, rb, diff, pair.rows if pair else None)

        return self.data.cached(("compare", a, b), stamp, build)

    def single_labels(self, run: str) -> LabelIndex:
        folder = self.data.folder(run)
        return self.data.cached(("labels", run), labels_stamp(folder.path, folder),
                                lambda: label_index(folder.labels(), "single", folder))

    def pair_labels(self, a: str, b: str) -> LabelIndex:
        fa, fb = self.data.folder(a), self.data.folder(b)
        where = fb.pair_dir(a)

        def build() -> LabelIndex:
            from ..labels.records import LabelFile

            return label_index(LabelFile.of(where).latest(), "pair", fb, fa)

        return self.data.cached(("pair-labels", a, b), labels_stamp(where, fa, fb), build)

    def run_agreement(self, run: str) -> Optional[dict[str, Any]]:
        from ..labels.folders import run_block
        from ..labels.stage import settings

        folder = self.data.folder(run)

        def build() -> Optional[dict[str, Any]]:
            block = run_block(folder)
            return {**settings(), "single": block} if block else None

        return self.data.cached(("agreement", run), labels_stamp(folder.path, folder), build)

    def pair_agreement(self, a: str, b: str) -> Optional[dict[str, Any]]:
        from ..labels.collect import settings
        from ..labels.folders import diff_block

        fa, fb = self.data.folder(a), self.data.folder(b)
        stamp = (labels_stamp(fb.pair_dir(a), fa, fb), labels_stamp(fa.path), labels_stamp(fb.path))
        return self.data.cached(("agreement", a, b), stamp, lambda: diff_block(fa, fb, settings()))

    # -- pages ---------------------------------------------------------------------------------------------
    def runs_page(self, params: Any) -> Any:
        rows = []
        for name in self.data.run_names():
            row = self.data.row(name)
            rows.append(_run_row(row))
        return self.render("runs.html", rows=rows, a=params.get("a", ""), b=params.get("b", ""))

    def run_page(self, run: str) -> Any:
        state = self.data.run(run)
        summary = state.folder.summary()
        manifest = state.loaded.manifest
        from ..scoring import headline_metrics

        metrics = headline_metrics(summary.overall, 10)
        reliability: list[str] = []
        if summary.judge is not None:
            from ..judging.report import reliability_lines

            reliability = [line.lstrip("- ").replace("**", "").replace("`", "")
                           for line in reliability_lines(summary.judge.reliability.model_dump())]
        groups = [(name, g, name in summary.task_types) for name, g in summary.groups()]
        return self.render("run.html", run=run, manifest=manifest, summary=summary, metrics=metrics, groups=groups,
                           reliability=reliability, agreement=self.run_agreement(run),
                           labels=self.single_labels(run), judge=manifest.judge or {})

    def run_items(self, run: str, params: Any) -> Any:
        state = self.data.run(run)
        frame = state.frame
        ids = frame.index.to_numpy().astype(str)
        tt = str(params.get("tt", "") or "")
        mask = np.ones(len(ids), dtype=bool)
        if tt and tt != "overall":
            mask &= (frame["task_type"].to_numpy() == tt) | (frame["level1"].to_numpy() == tt) if tt != "robustness" \
                else frame["robustness"].to_numpy().astype(bool)
        tag = str(params.get("tag", "") or "")
        if tag:
            mask &= np.fromiter((tag in t.split(",") for t in frame["tags"]), dtype=bool, count=len(ids))
        labels = self.single_labels(run)
        labelled = str(params.get("labelled", "") or "")
        if labelled in ("yes", "no"):
            lm = labels.labelled_mask(ids)
            mask &= lm if labelled == "yes" else ~lm
        problems = str(params.get("problems", "")) in ("1", "yes", "on")
        if problems:
            bad = np.zeros(len(ids), dtype=bool)
            for col in ("judge:unparsed", "judge:error", "gen:error"):
                if col in frame.columns:
                    bad |= np.nan_to_num(frame[col].to_numpy(np.float64)) > 0
            mask &= bad
        q = str(params.get("q", "") or "").strip()[:500]
        rows = np.flatnonzero(mask)
        if q:
            rows = rows[state.search().hits(q, rows)]
        sort = str(params.get("sort", "") or "id")
        sort = sort if sort in RUN_SORTS else "id"
        if sort == "judge" and "judge:overall" in frame.columns:
            key = np.nan_to_num(frame["judge:overall"].to_numpy(np.float64)[rows], nan=99)
            rows = rows[np.argsort(key, kind="stable")]
        elif sort == "spread" and "judge:spread" in frame.columns:
            rows = rows[np.argsort(-np.nan_to_num(frame["judge:spread"].to_numpy(np.float64)[rows]), kind="stable")]
        elif sort == "usable" and "usable" in frame.columns:
            rows = rows[np.argsort(np.nan_to_num(frame["usable"].to_numpy(np.float64)[rows], nan=9), kind="stable")]
        try:
            number = int(params.get("page", 1))
        except ValueError:
            number = 1
        shown, pages = cmp.page(rows, number)
        number = min(max(1, number), pages)
        items = [_run_item_row(frame, k, labels) for k in shown]
        query = {"tt": tt, "tag": tag, "labelled": labelled, "problems": "1" if problems else "", "q": q,
                 "sort": "" if sort == "id" else sort}
        groups = sorted(set(frame["task_type"]) | set(frame["level1"]))
        return self.render("run_items.html", run=run, items=items, total=len(rows), page=number, pages=pages,
                           query=query, groups=groups, sorts=RUN_SORTS)

    def compare_page(self, a: str, b: str) -> Any:
        c = self.comparison(a, b)
        heat, verdict, counts = self.data.cached(("compare-page", a, b), id(c), lambda: (
            heatmap(c.diff, a, b), evaluate(c.diff, self.settings.gate),
            {"regressions": len(c.diff.regressions()), "improvements": len(c.diff.improvements())}))
        return self.render("compare.html", a=a, b=b, c=c, diff=c.diff, verdict=verdict, heat=heat, counts=counts,
                           agreement=self.pair_agreement(a, b), pair_labels=self.pair_labels(a, b))

    def compare_items(self, a: str, b: str, params: Any) -> Any:
        c = self.comparison(a, b)
        f = cmp.Filters.parse(params)
        ra, rb = self.data.run(a), self.data.run(b)
        labelled = None
        if f.labelled:
            labelled = (self.single_labels(b).labelled_mask(c.ids) | self.single_labels(a).labelled_mask(c.ids)
                        | self.pair_labels(a, b).labelled_mask(c.ids))

        def search(q: str, rows: np.ndarray) -> np.ndarray:
            return rb.search().hits(q, c.pos_b[rows]) | ra.search().hits(q, c.pos_a[rows], ("answer",))

        rows, change = cmp.select(c, f, labelled, search)
        shown, pages = cmp.page(rows, f.page)
        f.page = min(max(1, f.page), pages)
        pair_l, la, lb = self.pair_labels(a, b), self.single_labels(a), self.single_labels(b)
        items = []
        for k in shown:
            row = cmp.row_values(c, int(k))
            row["change"] = None if change is None or math.isnan(change[k]) else float(change[k])
            row["labels"] = len(pair_l.reviewers(row["id"]) | la.reviewers(row["id"]) | lb.reviewers(row["id"]))
            items.append(row)
        metrics = sorted(set(c.diff.cells["metric"])) if len(c.diff.cells) else []
        return self.render("compare_items.html", a=a, b=b, f=f, items=items, total=len(rows), pages=pages,
                           groups=c.groups, tags=c.tag_names, metrics=metrics)

    def compare_item(self, a: str, b: str, item_id: str) -> Any:
        from .itempage import label_view, pair_view, run_side
        from .textdiff import diff as text_diff

        side_a, side_b = run_side(self.data.folder(a), item_id), run_side(self.data.folder(b), item_id)
        if side_a is None and side_b is None:
            raise NotFound(f"no item {item_id!r} in {a} or {b}")
        segs = None
        if side_a and side_b and side_a["final_answer"] is not None and side_b["final_answer"] is not None:
            segs = text_diff(side_a["final_answer"], side_b["final_answer"])
        pair = self.data.pair_records(a, b)
        pair_info = None
        if pair is not None and side_a and side_b:
            cand_key = _first_final_key(side_b)
            base_key = _first_final_key(side_a)
            pair_info = pair_view(pair.rows.get(item_id, []), pair.judgments(item_id), cand_key, base_key)
        from ..labels.records import LabelFile

        pair_labels = [label_view(j, True) for j in LabelFile.of(self.data.folder(b).pair_dir(a)).latest().values()
                       if j.item_id == item_id]
        c = self.comparison(a, b)
        k = c.index.get(item_id)
        values = cmp.row_values(c, k) if k is not None else None
        reasons = _reasons(c, k)
        same_item = side_a is not None and side_b is not None and side_a["item"] == side_b["item"]
        return self.render("compare_item.html", a=a, b=b, item_id=item_id, A=side_a, B=side_b, segs=segs,
                           pair=pair_info, pair_labels=pair_labels, values=values, reasons=reasons,
                           same_item=same_item)

    def run_item(self, run: str, item_id: str) -> Any:
        from .itempage import run_side

        side = run_side(self.data.folder(run), item_id)
        if side is None:
            raise NotFound(f"no item {item_id!r} in run {run}")
        return self.render("run_item.html", run=run, item_id=item_id, S=side)


def _first_final_key(side: dict[str, Any]) -> Optional[str]:
    for sample in side["samples"]:
        last = sample[-1]
        if last["status"] == "ok" and last["turn"] == side["item"].n_answer_turns - 1:
            return last["key"]
    return None


def _reasons(c: cmp.Comparison, k: Optional[int]) -> list[str]:
    if k is None:
        return []
    from ..differ.flips import _reasons as flip_reasons

    metrics = [m for m in c.frame_a.columns if m in c.frame_b.columns and (m == "usable" or m.startswith(
        ("judge:overall", "rule:", "probe:ref_sum")) and not m.endswith(":unparsed"))]
    values = {}
    for m in metrics:
        va, vb = c.frame_a[m].iat[k], c.frame_b[m].iat[k]
        values[m] = [None if va != va else float(va), None if vb != vb else float(vb)]
    return flip_reasons({m: v for m, v in values.items() if v != [None, None]})


def _run_row(row: Any) -> dict[str, Any]:
    m, s = row.manifest, row.summary or {}
    out: dict[str, Any] = {"name": row.name, "error": row.error}
    if m is None:
        return out
    overall = (s.get("overall") or {}).get("metrics") or {}
    head_metric = next((x for x in ("usable", "rule:normalized_match", "rule:exact_match", "rule:choice",
                                    "probe:choice_acc") if overall.get(x) is not None), None)
    judge = m.judge or {}
    out.update(model=m.model.name, suite=f"{m.suite_name} v{m.suite_version}", suite_hash=m.suite_hash[:12],
               date=(m.finished_at or m.started_at or "")[:19].replace("T", " "), backend=m.backend,
               judge=f"{judge.get('model')} ({judge.get('config')})" if judge else None, status=m.status,
               n_items=m.counts.get("items"), head_metric=head_metric,
               head_value=overall.get(head_metric) if head_metric else None)
    return out


def _run_item_row(frame: Any, k: int, labels: LabelIndex) -> dict[str, Any]:
    def v(name: str) -> Optional[float]:
        if name not in frame.columns:
            return None
        x = frame[name].iat[k]
        return None if x != x else float(x)

    rules = [m for m in frame.columns if m.startswith("rule:") and not m.endswith(":unparsed")]
    item_id = str(frame.index[k])
    return {"id": item_id, "task_type": str(frame["task_type"].iat[k]), "usable": v("usable"),
            "judge": v("judge:overall"), "rule": (rules[0], v(rules[0])) if rules else None,
            "chars": v("gen:answer_chars"), "spread": v("judge:spread"),
            "problems": any((v(c) or 0) > 0 for c in ("judge:unparsed", "judge:error", "gen:error")),
            "labels": len(labels.reviewers(item_id)), "robustness": bool(frame["robustness"].iat[k])}


def heatmap(diff: Any, a: str, b: str) -> dict[str, Any]:
    """Rows (groups in report order) x columns (metrics) of cells with a colour class and a link."""
    cells = diff.cells
    if not len(cells):
        return {"groups": [], "metrics": [], "cells": {}}
    order = {"overall": 0, "level1": 1, "task_type": 1, "robustness": 2}
    seen = cells[["group", "kind"]].drop_duplicates().itertuples(index=False)
    groups = sorted(((g, k) for g, k in seen), key=lambda gk: (order[gk[1]], gk[0].split("/")[0], gk[1] == "task_type",
                                                               gk[0]))
    metrics = list(dict.fromkeys(cells["metric"]))
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for r in cells.to_dict("records"):
        thr = r["threshold"] if r["threshold"] and r["threshold"] > 0 else None
        if r["n"] == 0 or thr is None:
            cls = "h-none"
        else:
            raw = r["effect"] if r["direction"] != "none" else abs(r["delta"])
            score = 0.0 if raw != raw else raw / thr
            bucket = int(np.clip(np.sign(score) * math.ceil(abs(score)), -3, 3)) if score else 0
            sign = "" if bucket == 0 else ("p" if bucket > 0 else "m")
            cls = ("h-n" if r["direction"] == "none" else "h") + f"{sign}{abs(bucket)}"
            if not r["significant"]:
                cls += " faint"
        mark = {"regression": "▼", "improvement": "▲", "worse": "▽", "better": "△", "changed": "•"}.get(r["status"], "")
        out[(r["group"], r["metric"])] = {"cls": cls, "mark": mark, "tip": dfmt.describe_cell(r),
                                          "href": urls.compare_items_url(a, b, tt=r["group"], metric=r["metric"]),
                                          "delta": dfmt.delta(r["metric"], r["delta"], bool(r["binary"]),
                                                              dfmt.rel_base(r)), "n": int(r["n"])}
    return {"groups": groups, "metrics": metrics, "cells": out}


def create_app(settings: Settings) -> Any:
    """The ASGI app: routes, static files, the token/Host guard."""
    from starlette.applications import Starlette
    from starlette.routing import Mount
    from starlette.staticfiles import StaticFiles

    from .reviewapp import review_routes
    from .routes import page_routes
    from .security import Guard

    viewer = Viewer(settings)
    routes = page_routes(viewer) + review_routes(viewer) + [
        Mount("/static", app=StaticFiles(directory=str(HERE / "static")), name="static")]
    app = Starlette(routes=routes)
    app.state.viewer = viewer
    return Guard(app, host=settings.host, port=settings.port, token=settings.token)

