"""Review pages: blind pairwise (``/review/pair/<A>/<B>``) and single grading (``/review/single/<run>``).

GET shows the reviewer's next item from the queue (review.py) -- or ``?item=ID`` to (re)label one item --
and, after a submit, ``?done=ID`` reveals what the LLM judge said about it (never before: the review form
holds no judge score, rationale or run name). POST checks the CSRF value and the answer hashes the form was
made for, appends the label (locked, fsynced) and redirects to the reveal.
"""

from __future__ import annotations

import time
from typing import Any, Optional
from urllib.parse import parse_qsl, quote, unquote, urlencode

import numpy as np

from ..labels.records import LabelError, check_reviewer
from .data import NotFound
from .review import VERDICTS, FormError, Queue, build_queue, next_item, seat_of, submit_pair, submit_single

REVIEWER_COOKIE = "sfteval_reviewer"


def reviewer_of(viewer: Any, request: Any) -> Optional[str]:
    if viewer.settings.reviewer:
        return viewer.settings.reviewer
    raw = request.cookies.get(REVIEWER_COOKIE)
    if not raw:
        return None
    try:
        return check_reviewer(unquote(raw))
    except LabelError:
        return None


def _local(path: str) -> str:
    """Only a path on this server may be a redirect target."""
    return path if path.startswith("/") and not path.startswith("//") and "\\" not in path else "/"


MAX_FORM = 1 << 20  #: bytes: a review form is a few kilobytes


async def _form(request: Any) -> dict[str, str]:
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM:
            return {}  # refused by the CSRF check that follows (no field survives)
    return dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))


class Reviews:
    def __init__(self, viewer: Any):
        self.v = viewer

    # -- queues ------------------------------------------------------------------------------------------------
    def queue(self, mode: str, run: str, baseline: Optional[str]) -> tuple[Queue, Any]:
        data = self.v.data
        if baseline is not None:
            c = self.v.comparison(baseline, run)
            eligible = ~np.isnan(c.chars_b) & ~np.isnan(c.chars_a)
            if mode == "pair":  # two identical answers are a tie with nothing to review (as for the judge)
                sa, sb = data.run(baseline).search().answer_key, data.run(run).search().answer_key
                eligible &= np.fromiter((sa[i] != sb[j] for i, j in zip(c.pos_a, c.pos_b)), dtype=bool,
                                        count=len(c.ids))
            stamp = (data.run(baseline).stamps, data.run(run).stamps)
            queue = data.cached(("queue", mode, run, baseline), stamp,
                                lambda: build_queue(c.ids, eligible, c.spread, self.v.settings.seed, c))
        else:
            state = data.run(run)
            frame = state.frame
            col = (lambda n: frame[n].to_numpy(np.float64) if n in frame.columns else np.full(len(frame), np.nan))
            eligible = ~np.isnan(col("gen:answer_chars"))
            queue = data.cached(("queue", mode, run, None), state.stamps, lambda: build_queue(
                frame.index.to_numpy().astype(str), eligible, col("judge:spread"), self.v.settings.seed))
        return queue, self.labels(mode, run, baseline)

    def labels(self, mode: str, run: str, baseline: Optional[str]) -> Any:
        """The queue's current labels (re-read when the label file changed)."""
        return self.v.pair_labels(baseline, run) if mode == "pair" else self.v.single_labels(run)

    # -- pages -------------------------------------------------------------------------------------------------
    def page(self, request: Any, mode: str, run: str, baseline: Optional[str], error: Optional[str] = None,
             form: Optional[dict[str, str]] = None) -> Any:
        v = self.v
        v.data.folder(run)
        if baseline is not None:
            v.data.folder(baseline)
        reviewer = reviewer_of(v, request)
        here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        if reviewer is None:
            return v.render("reviewer.html", next=here, error=None)
        qp = request.query_params
        key = (mode, run, baseline)
        if qp.get("done"):
            return self.reveal(mode, run, baseline, qp["done"], reviewer, *self.queue(mode, run, baseline))
        item_id = (form or {}).get("item") or qp.get("item")
        queue, _ = self.queue(mode, run, baseline)
        with v.leases.choosing:
            # the labels are read under the lock: a submission releases its lease only after its label is
            # written, so an item is always either leased or labelled to whoever chooses next
            index = self.labels(mode, run, baseline)
            chosen, done, open_ = next_item(queue, index, v.leases, key, reviewer, v.settings.overlap)
            item_id = item_id or chosen
            if item_id is not None:
                v.leases.take(key, item_id, reviewer)
        progress = {"done": done, "open": open_, "total": len(queue.order), "overlap": v.settings.overlap}
        if item_id is None:
            return v.render("review_empty.html", mode=mode, run=run, baseline=baseline, progress=progress,
                            reviewer=reviewer)
        from .itempage import run_side

        cand = run_side(v.data.folder(run), item_id)
        if cand is None or cand["final_answer"] is None:
            raise NotFound(f"no answer to item {item_id!r} in run {run}")
        ctx: dict[str, Any] = {"mode": mode, "run": run, "baseline": baseline, "item_id": item_id, "C": cand,
                               "reviewer": reviewer, "progress": progress, "reason": queue.reason.get(item_id),
                               "error": error, "form": form or {}, "shown_at": f"{time.time():.1f}",
                               "verdicts": VERDICTS}
        mine = index.by_item.get(item_id, {}).get(reviewer)
        if mode == "pair":
            base = run_side(v.data.folder(baseline), item_id)  # type: ignore[arg-type]
            if base is None or base["final_answer"] is None:
                raise NotFound(f"no answer to item {item_id!r} in run {baseline}")
            seat = seat_of(v.settings.seed, baseline, run, item_id)  # type: ignore[arg-type]
            first, second = (cand, base) if seat == "AB" else (base, cand)
            ctx.update(seat=seat, seat_a=_answers(first), seat_b=_answers(second),
                       answer_hash=cand["answer_hash"], baseline_answer_hash=base["answer_hash"],
                       previous=_seat_verdict(mine, seat) if mine is not None else None)
            return v.render("review_pair.html", status=400 if error else 200, **ctx)
        dims, names, lo, hi, cfg_hash, answer_type = self.dimensions(run, cand)
        ctx.update(dims=dims, names=names, lo=lo, hi=hi, answer=_answers(cand), answer_hash=cand["answer_hash"],
                   previous=mine)
        return v.render("review_single.html", status=400 if error else 200, **ctx)

    def dimensions(self, run: str, side: dict[str, Any]) -> tuple[list[str], dict[str, str], int, int, Any, Any]:
        from ..judging.spec import load_active

        folder = self.v.data.folder(run)
        judge = load_active(folder.path, folder.manifest().judge)
        if judge is not None:
            cfg = judge.config
        else:
            from sfteval.judges.config import load_judge_config

            cfg = load_judge_config("default-en")
        item = side["item"]
        judged = next((g["judge"] for s in side["samples"] for g in s if g.get("judge")), None)
        at = (judged or {}).get("answer_type") or cfg.answer_type_for(item.task_type, item.answer_type)
        dims = [d.key for d in cfg.dimensions_for(at)]
        return (dims, {d: cfg.display_name(d) for d in dims + [cfg.overall.key]}, int(cfg.parser.score_min),
                int(cfg.parser.score_max), cfg.config_hash() if judge is not None else None, at)

    def reveal(self, mode: str, run: str, baseline: Optional[str], item_id: str, reviewer: str, queue: Queue,
               index: Any) -> Any:
        from .itempage import label_view, pair_view, run_side

        v = self.v
        mine = index.by_item.get(item_id, {}).get(reviewer)
        cand = run_side(v.data.folder(run), item_id)
        if cand is None:
            raise NotFound(f"no item {item_id!r} in run {run}")
        ctx: dict[str, Any] = {"mode": mode, "run": run, "baseline": baseline, "item_id": item_id, "C": cand,
                               "reviewer": reviewer, "mine": label_view(mine, True) if mine else None,
                               "reason": queue.reason.get(item_id), "verdicts": VERDICTS}
        if mode == "pair":
            base = run_side(v.data.folder(baseline), item_id)  # type: ignore[arg-type]
            seat = seat_of(v.settings.seed, baseline, run, item_id)  # type: ignore[arg-type]
            pair = v.data.pair_records(baseline, run)  # type: ignore[arg-type]
            judge = None
            if pair is not None and base is not None:
                view = pair_view(pair.rows.get(item_id, []), pair.judgments(item_id),
                                 _final_key(cand), _final_key(base))
                judge = _judge_by_seat(view, seat)
            ctx.update(seat=seat, judge=judge, mine_seat=_seat_verdict(mine, seat) if mine else None)
            return v.render("review_done.html", **ctx)
        judged = next((g["judge"] for s in cand["samples"][:1] for g in s if g.get("judge")), None)
        ctx.update(judge_single=judged, names=judged["names"] if judged else {})
        return v.render("review_done.html", **ctx)

    async def submit(self, request: Any, mode: str, run: str, baseline: Optional[str]) -> Any:
        from starlette.concurrency import run_in_threadpool
        from starlette.responses import RedirectResponse

        from .security import csrf_ok

        form = await _form(request)
        if not csrf_ok(form, self.v.csrf):
            return self.v.render("error.html", status=403, title="Refused",
                                 message="this form did not come from this viewer (CSRF check failed): reload the page")
        reviewer = reviewer_of(self.v, request)
        if reviewer is None:
            return RedirectResponse(request.url.path, status_code=303)

        def work() -> Any:
            v = self.v
            try:
                if mode == "pair":
                    submit_pair(form, reviewer, v.data.folder(baseline), v.data.folder(run), v.settings.seed)
                else:
                    side_folder = v.data.folder(run)
                    from .itempage import run_side

                    side = run_side(side_folder, form.get("item", ""))
                    if side is None:
                        raise FormError(f"no item {form.get('item')!r} in run {run}")
                    dims, _names, lo, hi, cfg_hash, at = self.dimensions(run, side)
                    submit_single(form, reviewer, side_folder, dims, lo, hi, cfg_hash, at)
            except FormError as e:
                return self.page(request, mode, run, baseline, error=str(e), form=form)
            v.leases.release((mode, run, baseline), form.get("item", ""), reviewer)
            query = {"done": form.get("item", "")}
            if baseline is not None and mode == "single":
                query["baseline"] = baseline
            return RedirectResponse(request.url.path + "?" + urlencode(query), status_code=303)

        try:
            return await run_in_threadpool(work)
        except NotFound as e:
            return self.v.render("error.html", status=404, title="Not found", message=str(e))


def _answers(side: dict[str, Any]) -> list[dict[str, Any]]:
    """The first answer sample's turns: what the reviewer reads."""
    return side["samples"][0] if side["samples"] else []


def _final_key(side: dict[str, Any]) -> Optional[str]:
    for sample in side["samples"]:
        last = sample[-1]
        if last["status"] == "ok" and last["turn"] == side["item"].n_answer_turns - 1:
            return last["key"]
    return None


def _seat_verdict(label: Any, seat: str) -> Optional[str]:
    preferred = label.details.get("preferred")
    if preferred in ("tie", "both_bad"):
        return preferred
    if preferred not in ("candidate", "baseline"):
        return None
    return "A" if (preferred == "candidate") == (seat == "AB") else "B"


def _judge_by_seat(view: dict[str, Any], seat: str) -> dict[str, Any]:
    """The pair judge's verdicts in the reviewer's seats (A = the answer shown on the left)."""
    def to_seat(side: Optional[str]) -> Optional[str]:
        if side is None:
            return None
        return "A" if (side == "candidate") == (seat == "AB") else "B"

    row = view.get("row") or {}
    outcome = row.get("corrected_outcome", row.get("outcome"))
    combined = {"win": to_seat("candidate"), "loss": to_seat("baseline"), "tie": "tie"}.get(outcome) if outcome else None
    return {"combined": combined, "identical": row.get("identical"), "flipped": row.get("flipped"),
            "samples": [{**s, "seat": to_seat(s["prefers"]) if s["prefers"] else ("tie" if s["verdict"] == "tie"
                                                                                    else None)}
                        for s in view.get("samples", [])]}


def review_routes(viewer: Any) -> list[Any]:
    from starlette.responses import RedirectResponse
    from starlette.routing import Route

    from .routes import guarded
    from .security import csrf_ok

    reviews = Reviews(viewer)

    def pair_get(r: Any) -> Any:
        return reviews.page(r, "pair", r.path_params["b"], r.path_params["a"])

    def single_get(r: Any) -> Any:
        return reviews.page(r, "single", r.path_params["run"], r.query_params.get("baseline") or None)

    async def pair_post(r: Any) -> Any:
        return await reviews.submit(r, "pair", r.path_params["b"], r.path_params["a"])

    async def single_post(r: Any) -> Any:
        return await reviews.submit(r, "single", r.path_params["run"], r.query_params.get("baseline") or None)

    def reviewer_get(r: Any) -> Any:
        return viewer.render("reviewer.html", next=_local(r.query_params.get("next", "/")), error=None)

    async def reviewer_post(r: Any) -> Any:
        form = await _form(r)
        target = _local(form.get("next", "/"))
        if not csrf_ok(form, viewer.csrf):
            return viewer.render("error.html", status=403, title="Refused", message="CSRF check failed: reload")
        try:
            name = check_reviewer(form.get("name", "").strip())
        except LabelError as e:
            return viewer.render("reviewer.html", status=400, next=target, error=str(e))
        response = RedirectResponse(target, status_code=303)
        response.set_cookie(REVIEWER_COOKIE, quote(name), max_age=365 * 86400, httponly=True, samesite="strict")
        return response

    return [
        Route("/review/pair/{a}/{b}", guarded(viewer, pair_get), methods=["GET"]),
        Route("/review/pair/{a}/{b}", pair_post, methods=["POST"]),
        Route("/review/single/{run}", guarded(viewer, single_get), methods=["GET"]),
        Route("/review/single/{run}", single_post, methods=["POST"]),
        Route("/reviewer", reviewer_get, methods=["GET"]),
        Route("/reviewer", reviewer_post, methods=["POST"]),
    ]

