"""`sfteval view` in a real browser (Debian's chromium driven by Playwright) on REAL runs of the demo checkpoints.

v1 and v2 are runs of the tiny demo checkpoints on the demo suite (v2 learned half of the knowledge/likes facts
wrong), judged by the scripted judge behind a real OpenAI-compatible server (3 noisy samples per answer, and
pairwise in both orders). The truth is known: an answer is right iff it equals the reference. Reviewers here
label by that truth, so the labels on disk, the seat bookkeeping and the agreement numbers can all be checked
against an independent computation (scikit-learn, scipy).
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pytest
from scipy.stats import spearmanr
from sklearn.metrics import cohen_kappa_score

from clikit import cli
from sfteval.harness.models import Generation
from sfteval.harness.runfolder import RunFolder
from sfteval.harness.scoring import item_frame
from viewkit import BROWSER_ARGS, CHROMIUM, ViewServer

pytestmark = pytest.mark.slow

SECRET = "sk-test-browser-secret-5150"
sfteval = cli(check=True, env={"OPENAI_API_KEY": SECRET}, timeout=900)
XSS = '<script>window.__pwned=1</script><img src=x onerror="window.__pwned=2">'
JUDGE_MODEL = "scripted?noise=1"


@pytest.fixture(scope="module")
def judged(demo_results: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str]]:
    """(results root, the item whose v2 answer tries to run script)."""
    from scripted_judge import ScriptedJudge
    from servers import OpenAIServer

    out = tmp_path_factory.mktemp("view-browser")
    for v in ("v1", "v2"):
        shutil.copytree(demo_results / v, out / v)
    # an answer that tries to run script in the viewer, superseding a wrong v2 answer (so it stays wrong)
    records = RunFolder(out / "v2").records()
    refs = {it.id: it.final_reference for it in records.items}
    gen = next(g for g in sorted(records.generations.values(), key=lambda g: g.item_id)
               if g.item_id.startswith("likes-") and g.answer != refs[g.item_id])
    with open(out / "v2" / "generations.jsonl", "a", encoding="utf-8") as f:
        f.write(Generation(**{**gen.model_dump(), "answer": XSS, "output": XSS}).model_dump_json() + "\n")
    with OpenAIServer(ScriptedJudge(), models=(JUDGE_MODEL,)) as srv:
        judge = ["--judge", "default-en", "--judge-model", JUDGE_MODEL, "--judge-base-url", srv.base_url,
                 "--judge-samples", "3", "--quiet"]
        for v in ("v1", "v2"):
            sfteval("judge", str(out / v), *judge)
        sfteval("judge", "--pair", "v1", "v2", "--out", str(out), *judge)
    yield out, gen.item_id


@pytest.fixture(scope="module")
def results(judged: tuple[Path, str]) -> Path:
    return judged[0]


@pytest.fixture(scope="module")
def xss_item(judged: tuple[Path, str]) -> str:
    return judged[1]


@pytest.fixture(scope="module")
def server(results: Path) -> Iterator[ViewServer]:
    with ViewServer(results, ("--overlap", "2"), env={"OPENAI_API_KEY": SECRET}) as srv:
        yield srv


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=BROWSER_ARGS)
        yield b
        b.close()


@pytest.fixture(scope="module")
def truth(results: Path) -> dict[str, Any]:
    """Per item: the reference and both runs' answers (sample 0, final turn)."""
    out: dict[str, Any] = {}
    for v in ("v1", "v2"):
        records = RunFolder(results / v).records()
        for it in records.items:
            out.setdefault(it.id, {"reference": it.final_reference})
        for g in records.generations.values():
            if g.sample == 0:
                out[g.item_id][v] = g.answer
    return out


def new_page(browser: Any, base: str) -> Any:
    """A page in a fresh browser context (its own cookies); uncaught page errors collect in ``page.errors``."""
    context = browser.new_context()
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.errors = errors  # type: ignore[attr-defined]
    return page


def right(truth: dict[str, Any], item_id: str, run: str) -> bool:
    return truth[item_id][run] == truth[item_id]["reference"]


def test_runs_compare_flipped_items_and_an_item_page(server: ViewServer, browser: Any, results: Path,
                                                     truth: dict[str, Any]) -> None:
    from sfteval.harness.differ import diff_runs

    page = new_page(browser, server.base)
    page.goto(server.base + "/")
    assert page.locator("#runs").inner_text().count("demo v1") == 2
    page.click("#compare")
    page.wait_for_url(re.compile(r"/compare/v1/v2$"))
    assert "FAIL" in page.inner_text("#verdict")
    diff = diff_runs(RunFolder(results / "v1"), RunFolder(results / "v2"), log=lambda m: None)
    wrong = {i for i in truth if i.startswith("likes-") and not right(truth, i, "v2")}
    assert len(wrong) >= 10
    # a heatmap cell lists its items: usable on knowledge/likes, changed items only
    cell = page.locator("#heatmap a[href$='tt=knowledge%2Flikes&metric=usable']")
    assert "▼" in cell.inner_text() and "hm" in cell.locator("xpath=..").get_attribute("class")
    cell.click()
    frame_a = item_frame(RunFolder(results / "v1").records())
    frame_b = item_frame(RunFolder(results / "v2").records())
    likes = [i for i in frame_b.index if i.startswith("likes-")]
    changed = {i for i in likes if frame_a.loc[i, "usable"] != frame_b.loc[i, "usable"]}
    assert int(re.search(r"(\d+) items", page.inner_text("#count")).group(1)) == len(changed)
    # the flipped items, then only the rule flips: exactly the facts v2 answers wrong
    page.goto(server.base + "/compare/v1/v2")
    page.click(f"text={diff.n_worse} worse")
    assert int(re.search(r"(\d+) items", page.inner_text("#count")).group(1)) == diff.n_worse
    listed = set(page.locator("a.item-link").all_inner_texts())
    assert wrong <= listed or len(listed) == 50
    page.select_option("select[name=on]", "rules")
    page.click("#filters button[type=submit]")
    assert set(page.locator("a.item-link").all_inner_texts()) == wrong
    first = page.locator("a.item-link").first
    item_id = first.inner_text()
    first.click()
    page.wait_for_url(re.compile(r"/compare/v1/v2/item/"))
    body = page.inner_text("main")
    assert truth[item_id]["reference"] in body and "rule:exact_match 1 → 0" in page.inner_text("#reasons")
    answers = page.locator("#answers pre").all_inner_texts()
    assert answers == [truth[item_id]["v1"], truth[item_id]["v2"]]
    assert page.locator("#answers del").count() and page.locator("#answers ins").count()
    assert page.locator("details:has-text('exact rendered prompt')").count() == 2
    assert "Pairwise judge (both orders)" in body and SECRET not in page.content()
    assert not page.errors


def _pair_verdict(truth: dict[str, Any], item_id: str, seat_a: str, seat_b: str) -> tuple[str, str]:
    """(key to press, the verdict from the runs' side the label must record), by the known truth."""
    ref = truth[item_id]["reference"]
    a_ok, b_ok = seat_a == ref, seat_b == ref
    cand_in_a = seat_a == truth[item_id]["v2"] and (seat_b == truth[item_id]["v1"])
    if a_ok and b_ok:
        return "t", "tie"
    if not a_ok and not b_ok:
        return "x", "both_bad"
    seat_winner = "A" if a_ok else "B"
    candidate_won = (seat_winner == "A") == cand_in_a
    return ("a" if seat_winner == "A" else "b"), ("candidate" if candidate_won else "baseline")


def test_blind_pairwise_review_with_the_keyboard(server: ViewServer, browser: Any, results: Path,
                                                 truth: dict[str, Any]) -> None:
    page = new_page(browser, server.base)
    page.goto(server.base + "/review/pair/v1/v2")
    page.fill("#reviewer-name", "alice")
    page.keyboard.press("Enter")
    expected: dict[str, str] = {}
    reasons = []
    for _ in range(10):
        page.wait_for_selector("#review-form")
        page.wait_for_load_state()  # the keyboard shortcuts' script has run
        text = page.inner_text("main")
        item_id = page.locator("#progress code").inner_text()
        reasons.append(text)
        # blind: no run name, no judge verdict or rationale before the submit
        assert "v1" not in text.replace(item_id, "") and "v2" not in text.replace(item_id, "")
        assert "[[" not in text and "Final verdict" not in text and "rationale" not in text.lower()
        assert "median" not in text and "Comparing both answers" not in text
        seat_a = page.locator("#seat-a pre.answer-text").inner_text()
        seat_b = page.locator("#seat-b pre.answer-text").inner_text()
        if truth[item_id]["v1"] == truth[item_id]["v2"]:
            cand_in_a = None  # the same answer in both seats
        else:
            cand_in_a = seat_a == truth[item_id]["v2"]
        key, verdict = _pair_verdict(truth, item_id, seat_a, seat_b)
        expected[item_id] = verdict
        page.keyboard.press(key)
        page.keyboard.press("Enter")
        page.wait_for_url(re.compile(r"done="))
        page.wait_for_load_state()
        revealed = page.inner_text("main")
        assert "The LLM judge on the same two answers" in revealed and item_id in revealed
        if cand_in_a is not None:
            assert "combined over both orders" in revealed
        page.keyboard.press("n")
    assert "flipped" in reasons[0]  # the items that flipped come first
    labels = [json.loads(line) for line in (results / "v2" / "pairs" / "v1" / "labels.jsonl").read_text().splitlines()]
    mine = {j["item_id"]: j for j in labels if j["scorer"] == "human:alice"}
    assert len(mine) == 10
    assert {i: j["details"]["preferred"] for i, j in mine.items()} == expected
    assert {j["order"] for j in mine.values()} == {"AB", "BA"}  # seats shuffled per item, and recorded
    assert all(j["mode"] == "pair" and j["details"]["answer_hash"] for j in mine.values())
    assert not page.errors


def test_single_grading_review_and_agreement_everywhere(server: ViewServer, browser: Any, results: Path,
                                                         truth: dict[str, Any]) -> None:
    page = new_page(browser, server.base)
    page.goto(server.base + "/review/single/v2")  # judge-disagreement items, then a random audit sample
    page.fill("#reviewer-name", "bob")
    page.keyboard.press("Enter")
    graded: dict[str, int] = {}
    for _ in range(10):
        page.wait_for_selector("#review-form")
        page.wait_for_load_state()
        item_id = page.locator("#progress code").inner_text()
        assert "median" not in page.inner_text("main") and "rationale" not in page.inner_text("main")
        score = 9 if right(truth, item_id, "v2") else 2
        graded[item_id] = score
        for box in page.locator("input[type=number]").all():  # type a score, Tab to the next
            box.focus()
            page.keyboard.type(str(score))
        page.keyboard.press("y" if score > 5 else "n")
        page.keyboard.press("Enter")
        page.wait_for_url(re.compile(r"done="))
        page.wait_for_load_state()
        assert "LLM judge (median)" in page.inner_text("#compare-grades")
        page.keyboard.press("n")
    labels = [json.loads(line) for line in (results / "v2" / "labels.jsonl").read_text().splitlines()]
    assert {j["item_id"]: j["overall"] for j in labels if j["scorer"] == "human:bob"} == graded
    assert all(j["details"]["usable"] == (j["overall"] > 5) for j in labels)
    # agreement, checked against scikit-learn and scipy on the judge's own medians
    frame = item_frame(RunFolder(results / "v2").records())
    ids = sorted(graded)
    judge = [float(frame.loc[i, "judge:overall"]) for i in ids]
    human = [graded[i] for i in ids]
    assert set(human) == {2, 9}  # right and wrong answers among them: the statistics are defined
    block = json.loads(sfteval("agreement", "v2", "--format", "json", "--results", str(results)).stdout)
    overall = block["candidate"]["judge_vs_human"]["overall"]
    assert overall["n"] == 10
    assert overall["kappa_w"]["value"] == pytest.approx(cohen_kappa_score(
        [int(np.floor(x + 0.5)) for x in judge], human, labels=list(range(1, 11)), weights="quadratic"))
    assert overall["spearman"]["value"] == pytest.approx(spearmanr(judge, human).statistic)
    summary = json.loads((results / "v2" / "summary.json").read_text())
    assert summary["agreement"]["single"]["labels"] == 10  # stored for machines
    md = sfteval("diff", "v1", "v2", "--results", str(results)).stdout
    assert "judge-human agreement" in md and "κw" in md and "(n=10)" in md
    page.goto(server.base + "/compare/v1/v2")
    section = page.inner_text("main")
    assert "Candidate v2: single grading" in section and "10 labels on 10 items by bob" in section
    report = sfteval("agreement", "v2", "--pair", "v1", "v2", "--results", str(results)).stdout
    assert "10 labels on 10 items by bob" in report and "Pairwise (blind)" in report


def test_two_reviewers_submitting_at_once_both_land(server: ViewServer, browser: Any, results: Path) -> None:
    pages = []
    for name in ("carol", "dave"):
        page = new_page(browser, server.base)
        page.context.add_cookies([{"name": "sfteval_reviewer", "value": name, "url": server.base}])
        page.goto(server.base + "/review/pair/v1/v2")
        page.wait_for_selector("#review-form")
        page.wait_for_load_state()
        page.keyboard.press("t")
        pages.append(page)
    items = [p.locator("#progress code").inner_text() for p in pages]
    for p in pages:  # both submits leave before either answer comes back
        p.evaluate("document.getElementById('review-form').requestSubmit()")
    for p in pages:
        p.wait_for_url(re.compile(r"done="))
    labels = [json.loads(line) for line in (results / "v2" / "pairs" / "v1" / "labels.jsonl").read_text().splitlines()]
    got = {(j["scorer"], j["item_id"]) for j in labels}
    assert {("human:carol", items[0]), ("human:dave", items[1])} <= got


def test_an_answer_with_script_stays_text(server: ViewServer, browser: Any, xss_item: str) -> None:
    page = new_page(browser, server.base)
    page.context.add_cookies([{"name": "sfteval_reviewer", "value": "erin", "url": server.base}])
    for path in (f"/compare/v1/v2/item/{xss_item}", f"/runs/v2/item/{xss_item}",
                 f"/review/single/v2?item={xss_item}", f"/review/pair/v1/v2?item={xss_item}"):
        page.goto(server.base + path)
        assert XSS in page.inner_text("main"), path  # shown as the text it is
        assert page.evaluate("() => window.__pwned === undefined"), path
        assert page.locator("main script").count() == 0 and page.locator("img[src='x']").count() == 0, path
    assert not page.errors


def test_the_token_in_a_browser(results: Path, browser: Any) -> None:
    with ViewServer(results, ("--token", "auto")) as srv:
        page = new_page(browser, srv.base)
        response = page.goto(srv.base + "/compare/v1/v2")
        assert response.status == 401 and "needs its token" in page.inner_text("body")
        page.goto(srv.url)  # the printed URL: ?token=... sets the cookie, then the token leaves the address bar
        assert "token=" not in page.url and page.locator("#runs").count() == 1
        assert page.goto(srv.base + "/compare/v1/v2").status == 200
        assert srv.token not in page.content()
        other = new_page(browser, srv.base)
        assert other.goto(srv.base + "/runs/v2").status == 401


def test_labels_export_import_round_trip(results: Path, tmp_path: Path) -> None:
    single = tmp_path / "single.jsonl"
    pair = tmp_path / "pair.jsonl"
    sfteval("labels", "export", "v2", "--results", str(results), "--out", str(single))
    sfteval("labels", "export", "--pair", "v1", "v2", "--results", str(results), "--out", str(pair))
    assert len(single.read_text().splitlines()) >= 10 and len(pair.read_text().splitlines()) >= 12
    fresh = tmp_path / "fresh"
    for v in ("v1", "v2"):
        shutil.copytree(results / v, fresh / v, ignore=shutil.ignore_patterns("labels.jsonl"))
    for f in (single, pair):
        out = sfteval("labels", "import", "v2", str(f), "--results", str(fresh))
        assert "imported" in out.stdout
    for rel in ("v2/labels.jsonl", "v2/pairs/v1/labels.jsonl"):
        def latest(root: Path) -> dict[str, tuple]:
            rows = [json.loads(line) for line in (root / rel).read_text().splitlines()]
            return {r["key"]: (r["scores"], r["overall"], r["verdict"], r["order"], r["rationale"],
                               r["details"].get("preferred"), r["details"].get("usable")) for r in rows}

        assert latest(fresh) == latest(results)
    again = sfteval("labels", "import", "v2", str(single), "--results", str(fresh))
    assert "imported 0 label(s)" in again.stdout


def test_gate_guard_on_real_labels(results: Path, tmp_path: Path) -> None:
    def gate(base: str, cand: str, **cal: Any) -> Any:
        cfg = tmp_path / "gate.yaml"
        cfg.write_text("guards:\n  judge_calibration: " + json.dumps(cal) + "\n")
        return cli()("gate", "--baseline", base, "--candidate", cand, "--results", str(results), "--config", str(cfg))

    ok = gate("v2", "v2", min_labels=10, min_kappa=0.5)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    strict = gate("v2", "v2", min_labels=10, min_kappa=0.99)
    assert strict.returncode == 1
    reason = next(line for line in strict.stdout.splitlines() if "judge_calibration" in line)
    assert "candidate v2 single grading" in reason and "n=10" in reason and "< 0.99 required" in reason
    missing = gate("v1", "v1", min_labels=10, on_missing="fail")
    assert missing.returncode == 1 and "unmeasured" in missing.stdout
    warned = gate("v1", "v1", min_labels=10, on_missing="warn")
    assert warned.returncode == 0 and "unmeasured" in warned.stderr
