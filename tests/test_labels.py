"""Human labels: records keyed by content, safe appends, agreement with the judge, import/export, the gate guard."""

from __future__ import annotations

import json
import multiprocessing
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import spearmanr
from sklearn.metrics import cohen_kappa_score

from clikit import cli
from diffkit import FACT_DIMS, Rec, items, write_run
from sfteval.harness.differ import diff_runs
from sfteval.harness.gate import GateConfig, evaluate
from sfteval.harness.labels.exchange import LabelImportError, apply, export_lines, plan_import
from sfteval.harness.labels.folders import pair_folder, run_block
from sfteval.harness.labels.records import LabelFile, LabelError, pair_label, single_label
from sfteval.harness.models import Generation
from sfteval.harness.runfolder import RunFolder
from sfteval.harness.scoring import item_frame
from sfteval.harness.score import score_targets

sfteval = cli()
N = 30


def judged_run(root: Path, name: str, shift: int = 0) -> RunFolder:
    its = items({"knowledge/facts": 20, "math": 10})
    recs = {it["id"]: Rec(answer=f"answer {i} of {name}", judge=1 + (i * 7 + shift) % 10, exact=1.0)
            for i, it in enumerate(its)}
    write_run(root, name, its, recs, judged=True)
    return RunFolder(root / name)


def targets(folder: RunFolder) -> dict[str, object]:
    records = folder.records()
    return {t.item.id: t for t in score_targets(records.items, records.generations)}


def human_overall(judge: float, i: int) -> int:
    """A person who mostly agrees with the judge: off by one on every third item, by three on every seventh."""
    return int(min(10, max(1, judge + (1 if i % 3 == 0 else 0) - (3 if i % 7 == 0 else 0))))


def label_run(folder: RunFolder, reviewer: str, ids: list[str], offset: int = 0) -> dict[str, tuple[float, int]]:
    """Single-grade ``ids``; returns item id -> (judge overall, human overall)."""
    ts = targets(folder)
    frame = item_frame(folder.records())
    out, labels = {}, []
    for i, item_id in enumerate(ids):
        judge = float(frame.loc[item_id, "judge:overall"])
        human = human_overall(judge, i + offset)
        labels.append(single_label(reviewer, ts[item_id], scores={d: float(human) for d in FACT_DIMS},
                                   overall=human, usable=human >= 6, comment=f"<i>{reviewer}</i> on {item_id}"))
        out[item_id] = (judge, human)
    LabelFile.of(folder.path).append(labels)
    return out


def test_judge_human_agreement_equals_an_independent_computation(tmp_path: Path) -> None:
    folder = judged_run(tmp_path, "v2")
    ids = [it.id for it in folder.items()][:24]
    pairs = label_run(folder, "alice", ids)
    block = run_block(folder)
    assert block is not None and block["labels"] == 24 and block["reviewers"] == ["alice"] and block["stale"] == 0
    overall = block["judge_vs_human"]["overall"]
    judge, human = zip(*pairs.values())
    assert overall["n"] == 24
    assert overall["kappa_w"]["value"] == pytest.approx(
        cohen_kappa_score([int(j) for j in judge], list(human), labels=list(range(1, 11)), weights="quadratic"))
    assert overall["spearman"]["value"] == pytest.approx(spearmanr(judge, human).statistic)
    assert overall["mad"]["value"] == pytest.approx(np.mean(np.abs(np.subtract(judge, human))))
    assert set(block["judge_vs_human"]["dimensions"]) == set(FACT_DIMS)
    frame = item_frame(folder.records())  # the judge's usable decision, as the run's own aggregation made it
    usable = block["judge_vs_human"]["usable"]
    judge_usable = [bool(frame.loc[i, "usable"]) for i in ids]
    human_usable = [h >= 6 for _, h in pairs.values()]
    assert usable["kappa"]["value"] == pytest.approx(cohen_kappa_score(judge_usable, human_usable))
    assert usable["confusion"]["tp"] == sum(j and h for j, h in zip(judge_usable, human_usable))
    assert block["human_vs_human"]["overall"] == {"n": 0, "items": 0, "enough": False, "min_n": 10}


def test_an_edit_appends_the_latest_counts_and_a_changed_answer_makes_a_label_stale(tmp_path: Path) -> None:
    folder = judged_run(tmp_path, "v2")
    ids = [it.id for it in folder.items()][:12]
    label_run(folder, "alice", ids)
    label_run(folder, "bob", ids, offset=1)
    t = targets(folder)[ids[0]]
    LabelFile.of(folder.path).append([single_label("alice", t, scores={}, overall=1, usable=False, comment="edit")])
    history = LabelFile.of(folder.path).history()
    latest = LabelFile.of(folder.path).latest()
    assert len(history) == 25 and len(latest) == 24
    alice_first = [j for j in history if j.item_id == ids[0] and j.scorer == "human:alice"]
    assert len(alice_first) == 2 and alice_first[1].overall == 1 and alice_first[1].rationale == "edit"
    assert latest[alice_first[1].key].overall == 1
    block = run_block(folder)
    assert block["labels"] == 24 and block["human_vs_human"]["pairs"] == 12
    assert block["human_vs_human"]["overall"]["n"] == 12
    # the run's answer to ids[1] changes (a re-generation): both labels on it no longer apply
    gen = targets(folder)[ids[1]].generation
    with open(folder.path / "generations.jsonl", "a", encoding="utf-8") as f:
        f.write(Generation(**{**gen.model_dump(), "answer": "a different answer"}).model_dump_json() + "\n")
    block = run_block(folder)
    assert block["stale"] == 2 and block["labels"] == 22 and block["human_vs_human"]["pairs"] == 11


def _append_many(args: tuple[str, int]) -> None:
    path, who = args
    folder = RunFolder(Path(path))
    t = targets(folder)
    ids = sorted(t)
    for i in range(40):
        LabelFile.of(folder.path).append([single_label(
            f"r{who}", t[ids[i % len(ids)]], scores={}, overall=1 + i % 10, usable=True,
            comment=f"{who}-{i} " + "x" * 20_000)])  # lines far above the pipe/atomic-write size


def test_concurrent_appends_from_several_processes_never_interleave(tmp_path: Path) -> None:
    folder = judged_run(tmp_path, "v2")
    with multiprocessing.get_context("fork").Pool(4) as pool:
        pool.map(_append_many, [(str(folder.path), w) for w in range(4)])
    lines = (folder.path / "labels.jsonl").read_text().splitlines()
    assert len(lines) == 160
    comments = {json.loads(line)["rationale"].split(" ")[0] for line in lines}
    assert comments == {f"{w}-{i}" for w in range(4) for i in range(40)}


def test_reviewer_names_and_verdicts_are_checked() -> None:
    for bad in ("", " alice", "a/b", "x" * 65, "<script>"):
        with pytest.raises(LabelError):
            single_label(bad, None, scores={}, overall=1, usable=True)  # type: ignore[arg-type]


def test_pair_labels_live_in_the_pair_folder_and_record_the_seat(tmp_path: Path) -> None:
    a, b = judged_run(tmp_path, "v1"), judged_run(tmp_path, "v2", shift=3)
    ta, tb = targets(a), targets(b)
    item_id = sorted(tb)[0]
    label = pair_label("alice", tb[item_id], ta[item_id], preferred="baseline", seat="BA")
    assert label.verdict == "A" and label.order == "BA" and label.details["outcome"] == "loss"
    LabelFile.of(pair_folder(a, b)).append([label])
    assert (b.path / "pairs" / "v1" / "labels.jsonl").exists()
    with pytest.raises(LabelError):
        pair_label("alice", tb[item_id], ta[item_id], preferred="A", seat="AB")


# -- import / export ------------------------------------------------------------------------------------------

def test_export_then_import_round_trips_and_a_second_import_adds_nothing(tmp_path: Path) -> None:
    v1, v2 = judged_run(tmp_path, "v1"), judged_run(tmp_path, "v2", shift=3)
    label_run(v2, "alice", sorted(targets(v2))[:5])
    ta, tb = targets(v1), targets(v2)
    LabelFile.of(pair_folder(v1, v2)).append(
        [pair_label("bob", tb[i], ta[i], preferred="candidate", seat="BA", comment="ok") for i in sorted(tb)[:3]])
    single = export_lines(v2)
    pair = export_lines(v2, baseline=v1)
    assert len(single) == 5 and len(pair) == 3 and pair[0]["baseline"] == "v1" and pair[0]["seat"] == "BA"
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    for v in (v1, v2):
        write_copy = fresh / v.run_id
        import shutil

        shutil.copytree(v.path, write_copy)
        (write_copy / "labels.jsonl").unlink(missing_ok=True)
        shutil.rmtree(write_copy / "pairs", ignore_errors=True)
    src = tmp_path / "labels.jsonl"
    src.write_text("".join(json.dumps(line) + "\n" for line in single + pair))
    copy = RunFolder(fresh / "v2")
    plan = plan_import(copy, src, fresh)
    assert apply(plan) == 8
    assert {k: (j.scores, j.overall, j.details["usable"]) for k, j in LabelFile.of(copy.path).latest().items()} == \
        {k: (j.scores, j.overall, j.details["usable"]) for k, j in LabelFile.of(v2.path).latest().items()}
    assert set(LabelFile.of(pair_folder(RunFolder(fresh / "v1"), copy)).latest()) == \
        set(LabelFile.of(pair_folder(v1, v2)).latest())
    again = plan_import(copy, src, fresh)
    assert apply(again) == 0 and again.skipped == 8


@pytest.mark.parametrize("line, where", [
    ({"item_id": "math-000", "reviewer": "al", "mode": "single", "overall": 11}, "field 'overall': 11 is outside 1-10"),
    ({"item_id": "math-000", "reviewer": "al", "mode": "single", "scores": {"wit": 5}}, "field 'scores.wit': not a dim"),
    ({"item_id": "nope", "reviewer": "al", "mode": "single", "overall": 5}, "field 'item_id': no item 'nope'"),
    ({"item_id": "math-000", "reviewer": "al", "mode": "single", "overal": 5}, "field 'overal': Extra inputs"),
    ({"item_id": "math-000", "reviewer": "al", "mode": "pair", "preferred": "candidate"}, "field 'baseline'"),
    ({"item_id": "math-000", "reviewer": "al", "mode": "single", "overall": 5, "answer_sha256": "0" * 64},
     "field 'answer_sha256': the label was made on a different answer"),
    ({"item_id": "math-000", "reviewer": "a/l", "mode": "single", "overall": 5}, "field 'reviewer': reviewer name"),
])
def test_import_errors_name_file_line_and_field_and_write_nothing(tmp_path: Path, line: dict, where: str) -> None:
    folder = judged_run(tmp_path, "v2")
    good = {"item_id": "math-001", "reviewer": "al", "mode": "single", "overall": 5}
    src = tmp_path / "in.jsonl"
    src.write_text(json.dumps(good) + "\n\n" + json.dumps(line) + "\n")
    with pytest.raises(LabelImportError) as e:
        plan_import(folder, src, tmp_path)
    assert f"{src}:3: {where}" in str(e.value)
    proc = sfteval("labels", "import", "v2", str(src), "--results", str(tmp_path))
    assert proc.returncode == 2 and f"{src}:3: {where}" in proc.stderr
    assert not (folder.path / "labels.jsonl").exists()


# -- the gate guard -------------------------------------------------------------------------------------------

def _diff(tmp_path: Path, label: str = "", configured: bool = True, **guard: object) -> tuple:
    v1, v2 = judged_run(tmp_path, "v1"), judged_run(tmp_path, "v2")
    if label == "agree":
        label_run(v2, "alice", [it.id for it in v2.items()][:N])
    elif label == "random":
        ts, rng = targets(v2), np.random.default_rng(1)
        LabelFile.of(v2.path).append([single_label("alice", ts[i], scores={}, overall=int(rng.integers(1, 11)),
                                                   usable=True) for i in sorted(ts)])
    config = GateConfig.model_validate({"guards": {"judge_calibration": guard}} if configured else {})
    diff = diff_runs(v1, v2, config, log=lambda m: None)
    return diff, evaluate(diff, config)


def test_gate_guard_passes_a_calibrated_judge_and_fails_an_uncalibrated_one(tmp_path: Path) -> None:
    diff, verdict = _diff(tmp_path / "a", "agree", min_labels=20, min_kappa=0.6)
    kappa = diff.agreement["candidate"]["judge_vs_human"]["overall"]["kappa_w"]["value"]
    assert kappa >= 0.6 and verdict.passed, verdict.reasons
    assert any(g.name == "judge_calibration" and g.passed and f"{kappa:.2f}" in g.detail for g in verdict.guards)
    diff, verdict = _diff(tmp_path / "b", "random", min_labels=20, min_kappa=0.6)
    kappa = diff.agreement["candidate"]["judge_vs_human"]["overall"]["kappa_w"]["value"]
    assert kappa < 0.6 and not verdict.passed
    reason = next(r for r in verdict.reasons if "judge_calibration" in r)
    assert f"{kappa:.2f}" in reason and "n=30" in reason and "< 0.6 required" in reason


def test_gate_guard_on_missing_labels_warns_or_fails_as_configured(tmp_path: Path) -> None:
    _, verdict = _diff(tmp_path / "a", "", on_missing="warn")
    assert verdict.passed and any("judge_calibration" in w and "unmeasured" in w for w in verdict.warnings)
    _, verdict = _diff(tmp_path / "b", "", on_missing="fail")
    assert not verdict.passed and any("judge_calibration" in r and "unmeasured" in r for r in verdict.reasons)
    _, verdict = _diff(tmp_path / "c", "agree", min_labels=50, on_missing="fail")  # 30 labels < 50: unmeasured
    assert not verdict.passed and any("50 needed" in r for r in verdict.reasons)
    _, verdict = _diff(tmp_path / "d", "", configured=False)  # not configured: no guard
    assert verdict.passed and not any(g.name == "judge_calibration" for g in verdict.guards)


def test_agreement_is_in_every_report_format_with_its_n(tmp_path: Path) -> None:
    """κ in every report: run report (md, html) and diff (md, json, html) show the judge-human numbers and n."""
    from htmlkit import parse

    v1, v2 = judged_run(tmp_path, "v1"), judged_run(tmp_path, "v2", shift=3)
    pairs = label_run(v2, "alice", [it.id for it in v2.items()][:24])
    judge, human = zip(*pairs.values())
    kappa = cohen_kappa_score([int(j) for j in judge], list(human), labels=list(range(1, 11)), weights="quadratic")
    sfteval("agreement", str(v2.path), check=True)  # refreshes the summary's agreement block
    shown = f"{kappa:.2f}"
    md = sfteval("report", str(v2.path), check=True).stdout
    assert "agreement" in md.lower() and shown in md and "24" in md
    page = parse(sfteval("report", str(v2.path), "--format", "html", check=True).stdout)
    rows = [r for t in page.find_all("table") for r in t.rows() if r[:3] == ["judge vs human", "overall", "24"]]
    assert rows and rows[0][3].startswith(shown)
    assert "alice" in page.text()
    diff_json = json.loads(sfteval("diff", str(v1.path), str(v2.path), "--format", "json", check=True).stdout)
    assert diff_json["agreement"]["candidate"]["judge_vs_human"]["overall"]["n"] == 24
    assert diff_json["agreement"]["candidate"]["judge_vs_human"]["overall"]["kappa_w"]["value"] == pytest.approx(kappa)
    diff_md = sfteval("diff", str(v1.path), str(v2.path), check=True).stdout
    assert "Judge-human agreement" in diff_md and shown in diff_md
    diff_page = parse(sfteval("diff", str(v1.path), str(v2.path), "--format", "html", check=True).stdout)
    rows = [r for t in diff_page.find_all("table") for r in t.rows() if r[:3] == ["judge vs human", "overall", "24"]]
    assert rows and rows[0][3].startswith(shown)
