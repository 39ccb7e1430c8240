"""URL routes of the browsing pages, and how errors become pages (404 for an unknown run or item)."""

from __future__ import annotations

from typing import Any, Callable

from .data import NotFound


def guarded(viewer: Any, fn: Callable[..., Any]) -> Callable[..., Any]:
    """A thread-pool endpoint that turns NotFound into the 404 page."""

    def endpoint(request: Any) -> Any:
        try:
            return fn(request)
        except NotFound as e:
            return viewer.render("error.html", status=404, title="Not found", message=str(e))

    return endpoint


def page_routes(viewer: Any) -> list[Any]:
    from starlette.responses import PlainTextResponse, RedirectResponse
    from starlette.routing import Route

    from . import urls

    def p(request: Any, name: str) -> str:
        return request.path_params[name]

    def compare_form(request: Any) -> Any:
        a, b = request.query_params.get("a", ""), request.query_params.get("b", "")
        if not a or not b:
            return RedirectResponse("/", status_code=303)
        return RedirectResponse(urls.compare_url(a, b), status_code=303)

    table = [
        ("/", lambda r: viewer.runs_page(r.query_params)),
        ("/compare", compare_form),
        ("/runs/{run}", lambda r: viewer.run_page(p(r, "run"))),
        ("/runs/{run}/items", lambda r: viewer.run_items(p(r, "run"), r.query_params)),
        ("/runs/{run}/item/{item_id:path}", lambda r: viewer.run_item(p(r, "run"), p(r, "item_id"))),
        ("/compare/{a}/{b}", lambda r: viewer.compare_page(p(r, "a"), p(r, "b"))),
        ("/compare/{a}/{b}/items", lambda r: viewer.compare_items(p(r, "a"), p(r, "b"), r.query_params)),
        ("/compare/{a}/{b}/item/{item_id:path}", lambda r: viewer.compare_item(p(r, "a"), p(r, "b"), p(r, "item_id"))),
    ]
    routes = [Route(path, guarded(viewer, fn), methods=["GET"]) for path, fn in table]
    routes.append(Route("/healthz", lambda r: PlainTextResponse("ok\n"), methods=["GET"]))
    routes.append(Route("/favicon.ico", lambda r: PlainTextResponse("", status_code=204), methods=["GET"]))
    return routes
