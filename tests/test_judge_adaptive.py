"""Adaptive repeats (sampling.adaptive / --judge-adaptive): which samples are drawn, what aggregation makes of
them, what the report says was saved. The judge's answers are scripted per (prompt, seed), so the calls that must
be made are known here; the server's request log says which were.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import pytest

from judge_server import JudgeServer, judge, prompt_of  # noqa: F401 (fixture)
from scripted_judge import extract
from servers import Request
from sfteval.harness.judging.pair import judge_pair
from sfteval.harness.runfolder import RunFolder
from sfteval.harness.runner import estimate_rejudge, rejudge
from sfteval.harness.scoring import item_frame
from sfteval.judges.adaptive import pair_agrees, single_agrees
from sfteval.judges.config import config_hash, load_judge_config
from test_judge_stage import ITEMS, V1, make_run

KEYS = ("Factual correctness", "User satisfaction", "Clarity", "Completeness", "Logical coherence", "Creativity",
        "Richness", "Overall")
#: overall score per item and judge sample (k = 5: three equal scores fix the median): k1 and w1 agree in the
#: first round of three; k2 on its fourth sample; m1 and mt never
SCRIPT = {"<tok_1> likes?": [8, 8, 8, 3, 3], "<tok_2> likes?": [5, 6, 5, 5, 9], "2+3=": [4, 6, 9, 2, 4],
          "Write about the red fox": [7, 7, 7, 7, 1], "Now say bye": [3, 5, 7, 9, 3]}


def scripted(req: Request) -> str:
    text = prompt_of(req)
    marker = next(m for m in SCRIPT if m in text)
    score = SCRIPT[marker][req.body["seed"]]
    return "Compared with the reference.\n{" + ", ".join(f"'{k}': {score}" for k in KEYS) + "}"


def sent(judge: JudgeServer) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {}
    for r in judge.requests:
        out.setdefault(next(m for m in SCRIPT if m in prompt_of(r)), []).append(r.body["seed"])
    return {k: sorted(v) for k, v in out.items()}


def test_stop_rules() -> None:
    class S:
        def __init__(self, overall: float | None = None, verdict: str | None = None, status: str = "ok"):
            self.overall, self.verdict, self.status = overall, verdict, status

    assert single_agrees([S(7), S(7)], 3) and not single_agrees([S(7)], 3) and not single_agrees([S(7), S(8)], 3)
    assert single_agrees([S(7), S(status="unparsed"), S(7)], 3) and single_agrees([S(7), S(8), S(7)], 3)
    assert not single_agrees([S(7), S(7)], 5) and single_agrees([S(7), S(6), S(7), S(7)], 5)
    assert not single_agrees([S(7), S(7)], 4) and single_agrees([S(7), S(7), S(7)], 4)
    assert pair_agrees([S(verdict="A")], [S(verdict="B")])  # the candidate wins in both positions
    assert not pair_agrees([S(verdict="A")], [S(verdict="A")])  # a flip: position bias, keep sampling
    assert pair_agrees([S(verdict="tie")], [S(verdict="tie")]) and not pair_agrees([S(verdict="A")], [])
    assert not pair_agrees([S(verdict="A")], [S(status="unparsed")])


def test_adaptive_flag_is_not_in_the_config_hash() -> None:
    cfg = load_judge_config("default-en")
    h = config_hash(cfg)
    cfg.sampling.adaptive = True
    assert config_hash(cfg) == h  # cached judgments stay valid when adaptive repeats are switched on or off


def test_single_draws_two_then_one_at_a_time_until_agreement(tmp_path: Path, judge: JudgeServer) -> None:
    judge.use(scripted)
    store = make_run(tmp_path, "v1", V1)
    folder = RunFolder(store.path)
    spec = judge.spec(k=5)
    spec.adaptive = True
    est = estimate_rejudge(folder, spec).as_dict()
    assert (est["first_round_calls"], est["calls"]) == (3 * len(ITEMS), 5 * len(ITEMS))
    rejudge(folder, spec, log=lambda m: None)
    assert sent(judge) == {"<tok_1> likes?": [0, 1, 2], "Write about the red fox": [0, 1, 2],
                           "<tok_2> likes?": [0, 1, 2, 3], "2+3=": [0, 1, 2, 3, 4], "Now say bye": [0, 1, 2, 3, 4]}
    drawn = sum(len(v) for v in sent(judge).values())
    assert drawn == 20
    frame = item_frame(folder.records())
    assert frame.loc["k1", "judge:overall"] == 8 and frame.loc["w1", "judge:overall"] == 7
    assert frame.loc["k2", "judge:overall"] == statistics.median([5, 6, 5, 5])  # the samples that exist
    assert frame.loc["m1", "judge:overall"] == statistics.median([4, 6, 9, 2, 4])
    summary = json.loads((store.path / "summary.json").read_text())
    assert summary["judge"]["usage"]["adaptive"] == {"samples_max": 25, "samples_drawn": 20, "saved": 5}
    assert "5 calls saved" in (store.path / "report.md").read_text()
    assert json.loads((store.path / "judge_config.json").read_text())["sampling"]["adaptive"] is True

    spec.adaptive = False  # fixed repeats after adaptive ones: only the samples never drawn are sent
    rejudge(folder, spec, log=lambda m: None)
    assert len(judge.requests) == 5 * len(ITEMS) and len({(prompt_of(r), r.body["seed"]) for r in judge.requests}) \
        == 5 * len(ITEMS)


def test_pair_judges_both_orders_and_stops_when_they_agree(tmp_path: Path, judge: JudgeServer) -> None:
    def verdicts(req: Request) -> str:
        text, seed = prompt_of(req), req.body["seed"]
        cand_first = extract(text)[1][-2] in ("<tok_7>", "a blue cat")  # the candidate's answer is shown first
        if "<tok_2> likes?" in text:  # the baseline is better, whatever the order: consistent at once
            return "[[B]]" if cand_first else "[[A]]"
        return "[[A]]" if seed % 2 == 0 else "[[B]]"  # w1: position-biased at first, so both orders flip

    judge.use(verdicts)
    a = make_run(tmp_path, "v1", V1)
    b = make_run(tmp_path, "v2", dict(V1, k2=["<tok_7>"], w1=["a blue cat"]))
    spec = judge.spec(k=3)
    spec.adaptive = True
    summary = judge_pair(a, b, spec, log=lambda m: None)
    by_item: dict[str, list[tuple[int, bool]]] = {}
    for r in judge.requests:
        text = prompt_of(r)
        item = "k2" if "<tok_2> likes?" in text else "w1"
        by_item.setdefault(item, []).append(r.body["seed"])
    assert sorted(by_item["k2"]) == [0, 0]  # one sample in each order: they agree
    assert sorted(by_item["w1"]) == [0, 0, 1, 1, 2, 2]  # both orders, all k samples
    assert summary["usage"]["adaptive"] == {"samples_max": 2 * 2 * 3, "samples_drawn": 8, "saved": 4}
    assert summary["overall"]["loss"] == pytest.approx(1 / 5)  # k2 a loss; w1 a tie after its flips
    assert "4 calls saved" in (b.path / "pairs" / "v1" / "pair_report.md").read_text()


def test_bench_adaptive_pairwise_saves_calls_within_two_points() -> None:
    import re
    import subprocess
    import sys

    bench = Path(__file__).resolve().parents[1] / "bench" / "judge_cost.py"
    proc = subprocess.run([sys.executable, str(bench), "--items", "2000"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rows = {m.group(1): (int(m.group(2)), float(m.group(3))) for m in re.finditer(
        r"^\s+pairwise \(corrected score\), (fixed|adaptive)\s+(\d+)\s+\S+%\s+\S+%\s+([+-]\d+\.\d) pts$",
        proc.stdout, re.M)}
    assert rows["fixed"][0] == 2000 * 2 * 3 and rows["adaptive"][0] <= 0.7 * rows["fixed"][0]
    assert abs(rows["adaptive"][1]) <= 2
    strict = subprocess.run([sys.executable, str(bench), "--items", "500", "--min-saving", "0.9"],
                            capture_output=True, text=True, timeout=300)
    assert strict.returncode == 1 and "NO" in strict.stdout
