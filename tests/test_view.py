"""`sfteval view` over HTTP: a real server process on synthetic runs whose truth is known (tests/diffkit.py).

Pages and their links, the diff's own cells on the compare page, every filter against an independent count,
search in Chinese, pagination, escaping of untrusted text, the token/Host/CSRF checks, labels written by
concurrent reviewers and surviving a killed server, and `sfteval diff --view-url` links that resolve.
The browser tests on real demo runs are in test_view_browser.py.
"""

from __future__ import annotations

import html
import json
import re
import signal
import threading
from pathlib import Path
from typing import Iterator
from urllib.parse import quote

import markupsafe
import pytest

from clikit import cli
from diffkit import Rec, items, write_run
from sfteval.harness.differ import format as dfmt
from viewkit import ViewServer, form_fields

sfteval = cli(check=True)
XSS = '<script>window.__pwned=1</script><img src=x onerror="window.__pwned=2">'
ODD_ID = 'q?<b>&#x/y "z"'
SECRET = "sk-view-secret-never-on-a-page-9313"
WORSE = {f"knowledge-facts-{i:03d}" for i in range(20)}  # usable 1 -> 0, judge 8 -> 2, exact 1 -> 0
BETTER = {f"math-add-{i:03d}" for i in range(5)}  # judge 5 -> 9 (usable 0 -> 1)


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("view-results")
    its = items({"knowledge/facts": 60, "math/add": 40, "写作/文案": 20}, robustness=2)
    its.append({"id": ODD_ID, "task_type": "math/add", "prompt": "An odd id?", "reference": "yes"})
    a_recs, b_recs = {}, {}
    for it in its:
        i = it["id"]
        a_recs[i] = Rec(answer=f"answer A to {i}", judge=8, exact=1.0)
        b_recs[i] = Rec(answer=f"answer B to {i}", judge=8, exact=1.0)
    for i in WORSE:
        b_recs[i] = Rec(answer=f"wrong B answer to {i}", judge=2, exact=0.0)
    for i in BETTER:
        a_recs[i] = Rec(answer=f"weak A answer to {i}", judge=5, exact=1.0)
        b_recs[i] = Rec(answer=f"strong B answer to {i}", judge=9, exact=1.0)
    b_recs["写作-文案-003"] = Rec(answer="这是一个关于小猫的回答。Mixed CASE English", judge=8, exact=1.0)
    b_recs["写作-文案-004"] = Rec(answer=XSS, judge=8, exact=1.0)
    write_run(root, "v1", its, a_recs, judged=True)
    write_run(root, "v2", its, b_recs, judged=True)
    return root


@pytest.fixture(scope="module")
def server(results: Path) -> Iterator[ViewServer]:
    with ViewServer(results, env={"OPENAI_API_KEY": SECRET}) as srv:
        yield srv


def rows(page: str) -> list[str]:
    """Item ids listed in an items table."""
    return [html.unescape(m) for m in re.findall(r'<a class="item-link" href="[^"]+">([^<]*)</a>', page)]


def count(page: str) -> int:
    return int(re.search(r'<p id="count">(\d+) items', page).group(1))


def test_pages_answer_and_link_to_each_other(server: ViewServer) -> None:
    home = server.get("/")
    assert home.status == 200 and ">v1</a>" in home.body and ">v2</a>" in home.body
    assert "synthetic v1" in home.body  # suite and version
    compare = server.get("/compare?a=v1&b=v2")
    assert compare.status == 303 and compare.headers["location"] == "/compare/v1/v2"
    for path in ("/runs/v2", "/runs/v2/items", "/runs/v2/items?page=3", "/compare/v1/v2", "/compare/v1/v2/items",
                 f"/compare/v1/v2/item/{quote('knowledge-facts-001', safe='')}", "/runs/v1/item/math-add-002",
                 "/review/pair/v1/v2", "/review/single/v2"):
        r = server.get(path)
        assert r.status == 200, (path, r.body[:500])
        assert "text/html" in r.headers["content-type"] and "default-src 'self'" in r.headers[
            "content-security-policy"]
    for path in ("/runs/nope", "/runs/..%2F..%2Fetc", "/runs/.hidden", "/compare/v1/nope",
                 "/compare/v1/v2/item/no-such-item", "/runs/v2/item/no-such-item"):
        assert server.get(path).status == 404, path


def test_the_compare_page_shows_the_diffs_own_cells(server: ViewServer, results: Path) -> None:
    data = json.loads(sfteval("diff", "v1", "v2", "--format", "json", "--results", str(results)).stdout)
    page = html.unescape(server.get("/compare/v1/v2").body)
    assert data["cells"]
    for cell in data["cells"]:
        assert dfmt.describe_cell(cell) in page, cell
    assert f"{data['flipped']['worse_total']} worse" in page and "FAIL" in page


def test_filters_select_exactly_the_planted_items(server: ViewServer) -> None:
    def ids(query: str) -> set[str]:
        out, page = set(), 1
        while True:
            body = server.get(f"/compare/v1/v2/items?{query}&page={page}").body
            got = rows(body)
            out |= set(got)
            if 'rel="next"' not in body:
                return out
            page += 1

    assert ids("flip=worse") == WORSE
    assert ids("flip=worse&on=usable") == WORSE and ids("flip=worse&on=rules") == WORSE
    assert ids("flip=better&on=judge") == BETTER and ids("flip=better") == BETTER
    assert ids("flip=worse&tt=math") == set() and ids("flip=better&tt=math/add") == BETTER
    assert len(ids("tt=knowledge")) == 60 and len(ids("tt=写作")) == 20
    robust = ids("tt=robustness")
    assert robust == ids("tag=robustness") and len(robust) == 6
    assert ids("q=小猫") == {"写作-文案-003"} and ids("q=mixed case") == {"写作-文案-003"}
    assert ids("q=wrong+B+answer&tt=knowledge/facts") == WORSE
    assert ids("metric=judge:overall") == WORSE | BETTER
    first = rows(server.get("/compare/v1/v2/items?metric=judge:overall").body)[0]
    assert first in WORSE  # worst change first
    assert ids("spread=0") == set()  # one judge sample: no spread anywhere
    assert ids("labelled=yes") == set() and len(ids("labelled=no")) == 121
    by_severity = rows(server.get("/compare/v1/v2/items").body)
    assert set(by_severity[:20]) == WORSE and set(by_severity[-5:]) <= set(by_severity)


def test_pagination_is_server_side(server: ViewServer) -> None:
    pages = [server.get(f"/compare/v1/v2/items?sort=id&page={p}").body for p in (1, 2, 3)]
    assert [len(rows(p)) for p in pages] == [50, 50, 21] and count(pages[0]) == 121
    listed = [i for p in pages for i in rows(p)]
    assert listed == sorted(listed) and len(set(listed)) == 121
    assert len(rows(server.get("/runs/v2/items?page=3").body.replace("item-link", "x"))) == 0  # run list: own markup
    assert "page 3 of 3" in server.get("/runs/v2/items?page=99").body


def test_untrusted_text_is_escaped_everywhere(server: ViewServer) -> None:
    assert rows(server.get("/compare/v1/v2/items?q=" + quote("<script>window")).body) == ["写作-文案-004"]
    for path in ("/compare/v1/v2/item/" + quote("写作-文案-004", safe=""), "/runs/v2/item/" + quote("写作-文案-004"),
                 "/review/single/v2?item=" + quote("写作-文案-004")):
        body = server.get(path, headers={"Cookie": "sfteval_reviewer=al"}).body
        assert "window.__pwned" in body, path
        assert "<script>window" not in body and "<img src=x" not in body, path
        assert "&lt;script&gt;window.__pwned=1&lt;/script&gt;" in body, path
    odd = server.get("/compare/v1/v2/item/" + quote(ODD_ID, safe=""))
    assert odd.status == 200 and str(markupsafe.escape(ODD_ID)) in odd.body and "<b>&" not in odd.body
    listing = server.get("/compare/v1/v2/items?q=odd+id").body
    assert f'href="/compare/v1/v2/item/{quote(ODD_ID, safe="")}"' in listing


def test_no_secret_reaches_a_page(server: ViewServer) -> None:
    for path in ("/", "/runs/v1", "/runs/v2/items", "/compare/v1/v2", "/compare/v1/v2/item/math-add-001",
                 "/review/pair/v1/v2", "/review/single/v2"):
        assert SECRET not in server.get(path, headers={"Cookie": "sfteval_reviewer=al"}).body


def _review(server: ViewServer, reviewer: str, mode: str = "pair") -> tuple[str, dict[str, str]]:
    path = "/review/pair/v1/v2" if mode == "pair" else "/review/single/v2?baseline=v1"
    page = server.get(path, headers={"Cookie": f"sfteval_reviewer={quote(reviewer)}"})
    assert page.status == 200 and 'id="review-form"' in page.body, page.body[:500]
    return path, form_fields(page.body)


def test_review_forms_write_labels_and_refuse_forgeries(tmp_path: Path, results: Path) -> None:
    import shutil

    root = tmp_path / "results"
    shutil.copytree(results, root)
    with ViewServer(root) as srv:
        path, fields = _review(srv, "ann")
        labels = root / "v2" / "pairs" / "v1" / "labels.jsonl"
        forged = srv.post(path, {**fields, "csrf": "guess", "verdict": "A"}, {"Cookie": "sfteval_reviewer=ann"})
        assert forged.status == 403 and not labels.exists()
        bad = srv.post(path, {**fields, "verdict": "maybe"}, {"Cookie": "sfteval_reviewer=ann"})
        assert bad.status == 400 and "choose a verdict" in bad.body and not labels.exists()
        stale = srv.post(path, {**fields, "answer_hash": "0" * 64, "verdict": "A"}, {"Cookie": "sfteval_reviewer=ann"})
        assert stale.status == 400 and "the answer changed" in stale.body and not labels.exists()
        ok = srv.post(path, {**fields, "verdict": "A", "comment": XSS}, {"Cookie": "sfteval_reviewer=ann"})
        assert ok.status == 303 and "done=" in ok.headers["location"]
        srv.stop(signal.SIGKILL)  # killed right after answering: the label was fsynced before the answer
    (label,) = [json.loads(line) for line in labels.read_text().splitlines()]
    assert label["scorer"] == "human:ann" and label["mode"] == "pair" and label["rationale"] == XSS
    assert label["item_id"] == fields["item"] and label["order"] == fields["seat"]
    assert label["details"]["preferred"] == ("candidate" if fields["seat"] == "AB" else "baseline")
    with ViewServer(root) as srv:  # the reveal escapes the comment too
        done = srv.get(path + "?done=" + quote(fields["item"]), headers={"Cookie": "sfteval_reviewer=ann"}).body
        assert "&lt;script&gt;" in done and "<script>window" not in done


def test_two_reviewers_submitting_at_once_both_land(tmp_path: Path, results: Path) -> None:
    import shutil

    root = tmp_path / "results"
    shutil.copytree(results, root)
    n_each = 12
    with ViewServer(root) as srv:
        errors: list[str] = []

        def work(name: str) -> None:
            for _ in range(n_each):
                path, fields = _review(srv, name, "single")
                form = {**fields, **{f"dim_{d}": "7" for d in ("factuality", "user_satisfaction", "clarity",
                                                                 "completeness")}, "overall": "7", "usable": "yes",
                        "comment": name * 3000}
                r = srv.post(path, form, {"Cookie": f"sfteval_reviewer={name}"})
                if r.status != 303:
                    errors.append(f"{name}: {r.status} {r.body[:300]}")

        threads = [threading.Thread(target=work, args=(n,)) for n in ("rev1", "rev2")]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors, errors
    lines = (root / "v2" / "labels.jsonl").read_text().splitlines()
    labels = [json.loads(line) for line in lines]  # every line whole: no interleaving
    assert len(labels) == 2 * n_each
    by = {name: [j["item_id"] for j in labels if j["scorer"] == f"human:{name}"] for name in ("rev1", "rev2")}
    assert all(len(v) == n_each == len(set(v)) for v in by.values())  # a reviewer never gets an item twice
    assert not set(by["rev1"]) & set(by["rev2"])  # overlap 1: each item to one reviewer
    assert set(by["rev1"] + by["rev2"]) >= WORSE  # the flipped items come first


def test_the_token_guards_every_request_and_a_public_host_needs_one(results: Path) -> None:
    token = "t0ken-for-the-view-test-123456"
    with ViewServer(results, ("--token", token)) as srv:
        assert srv.get("/").status == 401 and srv.get("/runs/v2", headers={"Authorization": "Bearer nope"}).status == 401
        assert srv.get("/", headers={"Authorization": f"Bearer {token}"}).status == 200
        assert srv.get("/compare/v1/v2", headers={"X-Sfteval-Token": token}).status == 200
        first = srv.get(f"/runs/v2?token={token}&x=1")
        assert first.status == 303 and first.headers["location"] == "/runs/v2?x=1"
        assert first.cookie("sfteval_token") == token and "HttpOnly" in first.headers["set-cookie"]
        assert srv.get("/runs/v2", headers={"Cookie": f"sfteval_token={token}"}).status == 200
        assert srv.get("/?token=wrong").status == 401
        assert srv.get("/static/app.js").status == 401
    with ViewServer(results) as srv:  # loopback: a page elsewhere cannot reach it under another name
        assert srv.get("/", headers={"Host": "evil.example:80"}).status == 421
    proc = cli()("view", "--results", str(results), "--host", "0.0.0.0", "--port", "0")
    assert proc.returncode == 2 and "--token" in proc.stderr
    proc = cli()("view", "--results", str(results), "--token", "short")
    assert proc.returncode == 2 and "16-200 characters" in proc.stderr


def test_diff_view_url_links_flipped_items_to_their_pages(server: ViewServer, results: Path) -> None:
    md = sfteval("diff", "v1", "v2", "--results", str(results), "--view-url", server.base,
                 "--max-chars", "1000000").stdout  # room for every flipped item's block
    links = re.findall(r"\[Open in sfteval view\]\((http://[^)]+)\)", md)
    assert len(links) == 10 + len(BETTER)  # the top 10 worse and every better item
    for link in links:
        path = link[len(server.base):]
        assert path.startswith("/compare/v1/v2/item/")
        assert server.get(path).status == 200
    bad = cli()("diff", "v1", "v2", "--results", str(results), "--view-url", "javascript:alert(1)")
    assert bad.returncode == 2


def test_runs_without_a_judge_or_any_runs(tmp_path: Path) -> None:
    its = items({"math/add": 12})
    write_run(tmp_path, "r1", its, {it["id"]: Rec(answer="1", exact=1.0) for it in its})
    write_run(tmp_path, "r2", its, {it["id"]: Rec(answer="2", exact=0.0) for it in its})
    with ViewServer(tmp_path) as srv:
        for path in ("/", "/runs/r2", "/compare/r1/r2", "/compare/r1/r2/items?flip=worse", "/compare/r1/r2/item/math-add-000",
                     "/review/pair/r1/r2"):
            assert srv.get(path, headers={"Cookie": "sfteval_reviewer=al"}).status == 200, path
        assert len(rows(srv.get("/compare/r1/r2/items?flip=worse&on=rules").body)) == 12
        path, fields = "/review/single/r2", form_fields(srv.get("/review/single/r2",
                                                                 headers={"Cookie": "sfteval_reviewer=al"}).body)
        page = srv.get(path, headers={"Cookie": "sfteval_reviewer=al"}).body
        from sfteval.judges.config import load_judge_config

        cfg = load_judge_config("default-en")  # no judge in the run: the built-in default-en dimensions
        dims = [d.key for d in cfg.dimensions_for(cfg.answer_type_for("math/add"))]
        assert re.findall(r'name="dim_([^"]+)"', page) == dims
        form = {**fields, **{f"dim_{d}": "3" for d in dims}, "overall": "3", "usable": "no"}
        assert srv.post(path, form, {"Cookie": "sfteval_reviewer=al"}).status == 303
        done = srv.get(path + "?done=" + quote(fields["item"]), headers={"Cookie": "sfteval_reviewer=al"}).body
        assert "no LLM judge verdict" in done
        assert "no LLM judge in this run" in sfteval("agreement", "r2", "--results", str(tmp_path)).stdout
    empty = tmp_path / "empty"
    empty.mkdir()
    with ViewServer(empty) as srv:
        assert "No runs in" in srv.get("/").body
