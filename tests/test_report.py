"""Reports: markdown is valid GFM and fits a PR comment (truncated with a note), flipped items carry their texts
(cut in markdown, complete in JSON/HTML), HTML is self-contained, `sfteval report` / `sfteval diff` formats."""

from __future__ import annotations

import json
import re
import xml.dom.minidom
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from diffkit import Rec, items, write_pairs, write_run
from htmlkit import Node, parse
from sfteval.harness.differ import diff_frames, diff_runs
from sfteval.harness.differ.result import RunInfo
from sfteval.harness.gate import GateConfig, evaluate
from sfteval.harness.reporting.html import diff_html
from sfteval.harness.reporting.markdown import COMMENT_MARKER, GITHUB_COMMENT_LIMIT, diff_markdown, text_size
from sfteval.harness.store import RunStore
from clikit import cli

REPO = Path(__file__).resolve().parents[1]


sfteval = cli()


def gfm_tables(md: str) -> list[list[list[str]]]:
    """Every GFM table (header, separator, rows) as lists of cells; asserts the structure GitHub needs."""
    lines = md.split("\n")
    tables, i = [], 0
    split = lambda line: [c.strip() for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]]  # noqa: E731
    while i < len(lines):
        if lines[i].startswith("|") and i + 1 < len(lines) and re.fullmatch(r"\|(\s*:?-+:?\s*\|)+", lines[i + 1]):
            assert i == 0 or lines[i - 1].strip() == "", f"a table must follow a blank line: {lines[i - 1]!r}"
            header = split(lines[i])
            assert len(split(lines[i + 1])) == len(header), lines[i + 1]
            rows, j = [header], i + 2
            while j < len(lines) and lines[j].startswith("|"):
                cells = split(lines[j])
                assert len(cells) == len(header), f"row has {len(cells)} cells, header {len(header)}: {lines[j]!r}"
                rows.append(cells)
                j += 1
            tables.append(rows)
            i = j
        else:
            assert not lines[i].startswith("|"), f"a table row outside a table: {lines[i]!r}"
            i += 1
    return tables


def check_markdown(md: str, limit: int = GITHUB_COMMENT_LIMIT) -> list[list[list[str]]]:
    assert md.startswith(COMMENT_MARKER)
    assert text_size(md) <= limit
    assert md.count("<details>") == md.count("</details>")
    assert md.count("<summary>") == md.count("</summary>")
    fences = re.findall(r"^(`{3,})", md, flags=re.M)
    assert len(fences) % 2 == 0
    return gfm_tables(md)


ITEMS = items({"knowledge/likes": 30, "math/addition": 20, "chat": 10}, robustness=2)


def _recs(bad: bool) -> dict[str, Rec]:
    out = {}
    for i, it in enumerate(ITEMS):
        worse = bad and it["task_type"] == "knowledge/likes" and i % 2 == 0
        better = bad and it["task_type"] == "math/addition" and i % 4 == 0
        answer = ("WRONG | <tok_1> ```code``` " if worse else "fine answer ") + "long text " * 200
        out[it["id"]] = Rec(answer=answer, exact=0.0 if worse else 1.0, judge=2 if worse else 9 if better else 7,
                            probe=-9.0 if worse else -1.0, ttft=0.05 * (1.5 if bad else 1.0))
    return out


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("runs")
    a = write_run(root, "v1", ITEMS, _recs(False), judged=True)
    b = write_run(root, "v2", ITEMS, _recs(True), judged=True)
    write_pairs(b, a, {it["id"]: (it["task_type"], "loss" if i % 2 == 0 and i < 30 else "tie", None)
                       for i, it in enumerate(ITEMS)}, flip_rate=0.1)
    return root


def test_diff_markdown_is_valid_gfm_with_flipped_items(runs: Path) -> None:
    diff = diff_runs(RunStore(runs / "v1"), RunStore(runs / "v2"), log=lambda m: None)
    md = diff_markdown(diff, evaluate(diff, GateConfig()))
    tables = check_markdown(md)
    assert len(tables) >= 4  # regressions, other changes, pairwise, all cells
    assert md.index("#### Regressions") < md.index("#### Improvements") < md.index("Items that got worse")
    assert "🔴" in md.split("\n")[1] and "knowledge/likes" in md
    worse = md[md.index("Items that got worse"):md.index("Items that got better")]
    for text in ("**Prompt**", "**Reference**", "**Baseline answer**", "**Candidate answer**", "RATIONALE[v1:",
                 "RATIONALE[v2:", "more characters in the JSON/HTML report", "rule:exact_match"):
        assert text in worse, text
    assert "Items that got better" in md and "math-addition-002" in md  # improvements are listed too
    assert "swap flip rate 10.0%" in md and "Pairwise judge" in md


def test_json_and_html_are_complete(runs: Path, tmp_path: Path) -> None:
    out_json, out_html = tmp_path / "d.json", tmp_path / "d.html"
    for fmt, out in (("json", out_json), ("html", out_html)):
        proc = sfteval("diff", "v1", "v2", "--results", str(runs), "--format", fmt, "--out", str(out))
        assert proc.returncode == 0, proc.stderr
    data = json.loads(out_json.read_text())
    assert data["verdict"]["passed"] is False and data["counts"]["regression"] > 0
    flip = data["flipped"]["worse"][0]
    assert flip["detail"]["b"]["answer"].count("long text") == 200  # complete, not truncated
    assert flip["detail"]["a"]["judge"]["rationale"].startswith("RATIONALE[v1:")
    assert data["pairwise"]["swap_flip_rate"] == 0.1 and data["items"]["paired"] == len(ITEMS)
    assert all(c["p_holm"] is None or 0 <= c["p_holm"] <= 1 for c in data["cells"])
    page = out_html.read_text()
    assert page.startswith("<!DOCTYPE html>") and "<svg" in page and "Delta per task_type" in page
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page), "external asset"
    assert "<script" not in page and "@import" not in page
    for svg in re.findall(r"<svg.*?</svg>", page, flags=re.S):
        xml.dom.minidom.parseString(svg)  # well-formed inline SVG
    assert page.count("long text") >= 200 and "RATIONALE[v2:" in page
    assert "&lt;tok_1&gt;" in page  # escaped, not markup


def verdict_rows(doc: Node) -> dict[tuple[str, str], list[str]]:
    """(task_type, metric) -> the rest of its row in the verdict table."""
    return {(r[0], r[1]): r[2:] for r in doc.find("table", id="verdict").rows()[1:]}


def test_diff_html_opens_with_a_verdict_table_of_the_regressions(runs: Path, tmp_path: Path) -> None:
    """Half of the 30 knowledge/likes answers turn wrong (exact match 0, judge 7 -> 2): by hand, knowledge/likes
    exact match 100% -> 50% (-50 pp), judge 7 -> 4.5; over all 60 items 100% -> 75%."""
    page, data = tmp_path / "d.html", tmp_path / "d.json"
    for fmt, out in (("html", page), ("json", data)):
        sfteval("diff", "v1", "v2", "--results", str(runs), "--format", fmt, "--out", str(out))
    doc = parse(page.read_text(encoding="utf-8"))
    body = doc.find("body")
    first = next(n for n in body.iter() if n.tag in ("table", "h2", "svg", "details", "div"))
    assert first.tag == "table" and first.attrs["id"] == "verdict"  # the page opens with the verdict
    regressions = json.loads(data.read_text())["regressions"]
    caption = first.find("caption").text()
    assert caption.startswith("FAIL") and f"{len(regressions)} regressions" in caption
    rows = verdict_rows(doc)
    assert first.rows()[0] == ["task_type", "metric", "baseline", "candidate", "Δ", "95% CI", "p (Holm)",
                               "min effect", "n"]
    label = {"overall": "[overall]", "robustness": "[robustness]"}
    assert list(rows) == [(label.get(r["kind"], r["group"]), r["metric"]) for r in regressions]  # one row each
    assert rows[("knowledge/likes", "rule:exact_match")][:3] == ["100.0%", "50.0%", "-50.0 pp"]
    assert rows[("knowledge/likes", "rule:exact_match")][-1] == "30"
    assert rows[("knowledge/likes", "judge:overall")][:3] == ["7.00", "4.50", "-2.5"]
    assert rows[("[overall]", "rule:exact_match")][:3] == ["100.0%", "75.0%", "-25.0 pp"]
    lo, hi = (float(x) for x in rows[("knowledge/likes", "rule:exact_match")][3].strip("[]").split(","))
    assert lo < -50 < hi < 0  # the interval holds the delta and excludes 0
    assert "regression: " not in body.text()  # no sentence per regression any more


def test_diff_html_heatmap_scales_to_the_page_width() -> None:
    """Many metrics make the heatmap wider than the page: it is drawn in a viewBox and shown at 100% width
    (never wider than its natural size), keeping its aspect ratio."""
    diff = huge_diff(6)
    doc = parse(diff_html(diff, evaluate(diff, GateConfig())))
    heatmap = doc.find("div", id="heatmap").find("svg")
    _, _, width, height = (float(v) for v in heatmap.attrs["viewbox"].split())
    assert heatmap.attrs["width"] == "100%" and "height" not in heatmap.attrs
    assert f"max-width:{width:.0f}px" in heatmap.attrs["style"] and "height:auto" in heatmap.attrs["style"]
    assert width > 0 and height > 0
    labels = [t.text() for t in heatmap.find_all("text")]
    assert "judge:factuality" in labels and "  area0/type-0" in labels  # rows and columns both drawn


HOSTILE = "<script>alert(1)</script>"
ONERROR = '<img src=x onerror="alert(2)">'


def test_model_and_suite_text_is_escaped_in_the_html_pages(tmp_path: Path) -> None:
    """Answers, prompts, references, ids, task_type and run names are untrusted: they reach the page as text,
    never as markup (no script element, no event-handler attribute anywhere, SVG included)."""
    tt = f"knowledge/{ONERROR}"
    its = [{"id": f"{HOSTILE}-{i}", "task_type": tt if i < 20 else "chat", "prompt": f"{HOSTILE} prompt {i}",
            "reference": f"{ONERROR} reference {i}"} for i in range(30)]
    name = f"cand {ONERROR}"
    write_run(tmp_path, "base", its, {it["id"]: Rec(answer=f"fine {i}", exact=1.0, judge=8) for i, it in enumerate(its)},
              judged=True)
    write_run(tmp_path, name, its, {it["id"]: Rec(answer=f"{HOSTILE} {ONERROR} {i}", exact=0.0 if i < 20 else 1.0,
                                                  judge=2 if i < 20 else 8) for i, it in enumerate(its)}, judged=True)
    pages = []
    for args in (["diff", "base", name], ["report", name]):
        out = tmp_path / f"{args[0]}.html"
        sfteval(*args, "--results", str(tmp_path), "--format", "html", "--out", str(out))
        pages.append(out.read_text(encoding="utf-8"))
    for page in pages:
        doc = parse(page)
        tags = list(doc.iter())
        assert not [n.tag for n in tags if n.tag in ("script", "img", "iframe", "object")]
        assert not [(n.tag, a) for n in tags for a in n.attrs if a.lower().startswith("on")]
        assert ONERROR in doc.text()  # shown as text
        for svg in re.findall(r"<svg.*?</svg>", page, flags=re.S):
            xml.dom.minidom.parseString(svg)
    diff_doc = parse(pages[0])
    assert (tt, "rule:exact_match") in verdict_rows(diff_doc)  # the task_type, as text, in the verdict table
    assert any(n.tag == "text" and n.text().strip() == tt for n in diff_doc.find("div", id="heatmap").iter())
    flips = diff_doc.find_all("details")
    assert flips and all(HOSTILE in f.find("summary").text() for f in flips)  # item ids
    texts = [p.text() for f in flips for p in f.find_all("pre")]
    assert any(t.startswith(f"{HOSTILE} prompt") for t in texts) and any(t.startswith(ONERROR) for t in texts)
    assert any(t.startswith(f"{HOSTILE} {ONERROR}") for t in texts)  # the candidate's answer
    assert any(f"RATIONALE[{name}:{HOSTILE}" in t for t in texts)  # the judge's rationale
    assert name in diff_doc.find("h1").text()


def huge_diff(n_task_types: int = 200, per_type: int = 40) -> Any:
    rng = np.random.default_rng(0)
    n = n_task_types * per_type
    tt = np.repeat([f"area{i % 25}/type-{i}" for i in range(n_task_types)], per_type)
    base = pd.DataFrame({"task_type": tt, "level1": [t.split("/")[0] for t in tt], "robustness": False, "tags": ""},
                        index=[f"id-{i}" for i in range(n)])
    a, b = base.copy(), base.copy()
    for m in ("judge:overall", "judge:clarity", "judge:factuality"):
        a[m] = rng.integers(7, 11, n).astype(float)
        b[m] = np.clip(a[m] - rng.integers(2, 5, n), 1, 10)
    a["usable"], b["usable"] = 1.0, (rng.random(n) < 0.3).astype(float)

    class Texts:
        def detail(self, item_id: str) -> dict[str, Any]:
            return {"prompt": "p | " * 500, "reference": "r " * 500, "answer": "x` " * 900,
                    "judge": {"rationale": "because " * 400, "overall": 3.0}, "rules": []}

    return diff_frames(a, b, GateConfig(resamples=100), run_a=RunInfo("a", suite_hash="h"),
                       run_b=RunInfo("b", suite_hash="h"), top=30, texts_a=Texts(), texts_b=Texts())


def test_huge_diff_is_truncated_under_the_comment_limit_with_a_note() -> None:
    diff = huge_diff()
    verdict = evaluate(diff, GateConfig())
    assert len(diff.regressions()) > 600
    md = diff_markdown(diff, verdict)
    check_markdown(md)
    assert text_size(md) > 0.9 * GITHUB_COMMENT_LIMIT  # uses the room it has
    assert "Truncated to fit GitHub's 65,536-character comment limit" in md
    assert re.search(r"_… \d+ more regressions not shown", md)
    assert md.rstrip().endswith("</sub>")  # the footer survives
    small = diff_markdown(diff, verdict, limit=6000)
    check_markdown(small, limit=6000)
    assert "Truncated" in small and "#### Regressions" in small


def test_report_command_single_run(runs: Path, tmp_path: Path) -> None:
    md = sfteval("report", "v2", "--results", str(runs))
    assert md.returncode == 0, md.stderr
    assert "# sfteval run `v2`" in md.stdout and "Judge reliability" in md.stdout
    gfm_tables(md.stdout)
    js = sfteval("report", str(runs / "v2"), "--format", "json")
    data = json.loads(js.stdout)
    assert data["manifest"]["run_id"] == "v2" and "knowledge/likes" in data["summary"]["task_types"]
    out = tmp_path / "run.html"
    html_proc = sfteval("report", "v2", "--results", str(runs), "--format", "html", "--out", str(out))
    assert html_proc.returncode == 0, html_proc.stderr
    page = out.read_text()
    assert "<svg" in page and "Judge reliability" in page and "knowledge/likes" in page
    for svg in re.findall(r"<svg.*?</svg>", page, flags=re.S):
        xml.dom.minidom.parseString(svg)
    missing = sfteval("report", "nope", "--results", str(runs))
    assert missing.returncode == 2 and "nope" in missing.stderr


def test_diff_command_markdown_to_stdout_and_suite_warning(runs: Path, tmp_path: Path) -> None:
    write_run(tmp_path, "x", ITEMS, _recs(False), judged=True, suite_hash="differentsuite")
    proc = sfteval("diff", str(runs / "v1"), str(tmp_path / "x"))
    assert proc.returncode == 0
    assert "WARNING: the runs used different suites" in proc.stderr
    assert "suites differ" in proc.stdout
    check_markdown(proc.stdout.rstrip("\n") + "\n")


def test_html_of_a_synthetic_diff_renders_every_section() -> None:
    diff = huge_diff(12)
    page = diff_html(diff, evaluate(diff, GateConfig()))
    for section in ("Regressions", "Improvements", "Distributions", "Items that got worse", "All cells"):
        assert section in page


def test_items_flipped_by_probe_mass_alone(tmp_path: Path) -> None:
    """No rule, usable or judge change: an item flips when log P(reference) moves by >= 2 nats, ordered by the
    (clipped) lost mass, and improvements are listed the same way."""
    its = items({"chat": 12})
    before = [-1.0, -1.0, -1.0, -1.0, -1.0, -6.0] + [-2.0] * 6
    after = [-3.0, -4.0, -13.0, -25.0, -2.9, -1.5] + [-2.0] * 6  # drops 2, 3, 12, 24, 1.9; a gain of 4.5
    a = write_run(tmp_path, "a", its, {it["id"]: Rec(exact=1.0, probe=p) for it, p in zip(its, before)})
    b = write_run(tmp_path, "b", its, {it["id"]: Rec(exact=1.0, probe=p) for it, p in zip(its, after)})
    diff = diff_runs(a, b, log=lambda m: None)
    ids = [it["id"] for it in its]
    assert (diff.n_worse, diff.n_better) == (4, 1)  # a 1.9-nat drop is not a flip
    assert [f.item_id for f in diff.worse] == [ids[2], ids[3], ids[1], ids[0]]  # 12 and 24 nats both clip to 1
    assert [f.severity for f in diff.worse] == pytest.approx([1.0, 1.0, 0.3, 0.2])
    assert diff.worse[3].reasons == ["log P(ref) -1.00 → -3.00 (-2.00 nats)"]
    assert [f.item_id for f in diff.better] == [ids[5]] and diff.better[0].severity == pytest.approx(-0.45)
    assert diff.worse[0].detail["b"]["answer"] == "an answer"  # the texts come with probe-only flips too
    md = diff_markdown(diff, evaluate(diff, GateConfig()))
    assert "Items that got worse" in md and "log P(ref) -1.00 → -13.00 (-12.00 nats)" in md


def test_a_first_level_with_one_second_level_is_shown_once(runs: Path) -> None:
    """`knowledge` holds only `knowledge/likes` and `math` only `math/addition`: the same items, the same test.
    Markdown, HTML and the gate's reasons show each pair once, as the second level; JSON keeps both, marked."""
    diff = diff_runs(RunStore(runs / "v1"), RunStore(runs / "v2"), log=lambda m: None)
    verdict = evaluate(diff, GateConfig())
    regressions = [r for r in verdict.reasons if r.startswith("regression: ")]
    assert any(r.startswith("regression: knowledge/likes ") for r in regressions)
    assert not any(r.startswith(("regression: knowledge ", "regression: math ")) for r in regressions)
    assert len(regressions) == len({r.split(": ")[1] for r in regressions})  # one line per (group, metric)

    md = diff_markdown(diff, verdict)
    rows = [row for t in check_markdown(md) if t[0][0] == "task_type" for row in t[1:]]
    names = {row[0] for row in rows}
    assert {"knowledge/likes", "math/addition", "chat"} <= names and not names & {"knowledge", "math"}
    for table in check_markdown(md):
        if table[0][:2] == ["task_type", "metric"]:
            assert len({(row[0], row[1]) for row in table[1:]}) == len(table) - 1, table

    page = diff_html(diff, verdict)
    assert "<td>knowledge/likes</td>" in page and "<td>knowledge</td>" not in page and "<td>math</td>" not in page
    assert ">knowledge<" not in page and ">math<" not in page  # heatmap and bar labels

    data = diff.as_dict(verdict.as_dict())
    by_group = {}
    for c in data["cells"]:
        by_group.setdefault(c["group"], []).append(c)
    assert {c["same_as"] for c in by_group["knowledge"]} == {"knowledge/likes"}
    assert len(by_group["knowledge"]) == len(by_group["knowledge/likes"])
    assert all(c["same_as"] is None for g in ("knowledge/likes", "chat", "overall") for c in by_group[g])
    assert data["settings"]["cells_tested"] == sum(c["same_as"] is None for c in data["cells"])
    pairwise = {g["group"]: g for g in data["pairwise"]["groups"]}
    assert pairwise["knowledge"]["same_as"] == "knowledge/likes" and pairwise["knowledge/likes"]["same_as"] is None
    assert pairwise["knowledge"]["score"] == pairwise["knowledge/likes"]["score"]


def test_pairwise_reports_the_position_bias_corrected_score_beside_the_tie_based_one(tmp_path: Path) -> None:
    """A judge that always prefers the first position turns every pair into a flip (a tie); the balanced vote
    still sees the candidate lose most items, and the report leads with that corrected score."""
    its = items({"chat": 20})
    a = write_run(tmp_path, "a", its, {it["id"]: Rec(exact=1.0) for it in its})
    b = write_run(tmp_path, "b", its, {it["id"]: Rec(exact=1.0) for it in its})
    write_pairs(b, a, {it["id"]: (it["task_type"], "tie", "loss" if i < 15 else "win") for i, it in enumerate(its)},
                flip_rate=1.0)
    diff = diff_runs(a, b, log=lambda m: None)
    overall = next(g for g in diff.pairwise.groups if g["kind"] == "overall")
    assert overall["score"] == 0.5 and overall["corrected_score"] == pytest.approx(0.25)
    assert overall["corrected_ci_low"] <= 0.25 <= overall["corrected_ci_high"] < 0.5
    md = diff_markdown(diff, evaluate(diff, GateConfig()))
    check_markdown(md)
    assert "position-bias-corrected score 0.25" in md
    # read from the reverse pair (A judged against B), outcomes map back to B's side
    inverted = diff_runs(b, a, log=lambda m: None)
    assert next(g for g in inverted.pairwise.groups if g["kind"] == "overall")["corrected_score"] == pytest.approx(0.75)
