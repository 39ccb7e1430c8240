"""Judge reliability numbers: pure functions over judge records, shown in every report.

Why: an LLM judge prefers the first position, prefers longer answers, gives 3, 4 and 5 to the same
answer, sometimes answers in no parsable form, and favours its own model family. None of that is
visible in a mean score, so each report carries the numbers that reveal it, plus plain warnings when
they cross a threshold. Everything here takes plain values (no I/O but reading a config.json).
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Optional, Sequence

from scipy.stats import spearmanr

#: Thresholds above which a reliability number earns a warning.
WARN_UNPARSED = 0.10
WARN_ERROR = 0.05
WARN_FLIP = 0.20
WARN_LENGTH_CORR = 0.5
WARN_LONGER_WINS = 0.75
WARN_POSITION = 0.65


def status_rates(statuses: Iterable[str]) -> dict[str, Any]:
    """Share of judge samples that were unparsed / failed / not judged (budget); all are excluded from scores,
    never 0."""
    s = list(statuses)
    n = len(s)

    def rate(status: str) -> Optional[float]:
        return s.count(status) / n if n else None

    return {"samples": n, "unparsed": s.count("unparsed"), "errors": s.count("error"),
            "not_judged": s.count("not_judged"), "unparsed_rate": rate("unparsed"), "error_rate": rate("error"),
            "not_judged_rate": rate("not_judged")}


def repeat_spread(groups: Iterable[Mapping[str, Any]]) -> dict[str, dict[str, float]]:
    """Mean per-dimension spread over items judged with >= 2 parsed samples.

    Each group maps a dimension to an object with ``std`` and ``range`` (judges.aggregate.Spread);
    groups with a single parsed sample carry no information about repeat spread and are skipped by
    the caller passing only those with n_parsed >= 2.
    """
    acc: dict[str, list[tuple[float, float]]] = {}
    for g in groups:
        for dim, sp in g.items():
            acc.setdefault(dim, []).append((float(sp.std), float(sp.range)))
    return {dim: {"mean_std": _mean([s for s, _ in v]), "mean_range": _mean([r for _, r in v]), "items": len(v)}
            for dim, v in sorted(acc.items())}


def _mean(v: Sequence[float]) -> float:
    return float(sum(v) / len(v))


def _real(v: Optional[float]) -> bool:
    return v is not None and not math.isnan(v)


def spearman(x: Sequence[float], y: Sequence[float]) -> Optional[float]:
    """Spearman rank correlation (scipy's, ties averaged) over the pairs where both values are numbers; None
    with fewer than 3 such pairs or a constant side, where a correlation says nothing."""
    pairs = [(a, b) for a, b in zip(x, y, strict=True) if _real(a) and _real(b)]
    if len(pairs) < 3:
        return None
    a, b = zip(*pairs)
    if len(set(a)) == 1 or len(set(b)) == 1:  # undefined (scipy would warn and return nan)
        return None
    return float(spearmanr(a, b).statistic)


def flip_rate(flipped: Iterable[bool]) -> Optional[float]:
    """Share of position-swapped pairs whose two orders disagree (both orders parsed)."""
    f = list(flipped)
    return sum(f) / len(f) if f else None


def first_position_rate(verdicts: Iterable[Optional[str]]) -> Optional[float]:
    """Share of decisive pairwise samples ('A' or 'B', by position) that chose the answer shown first."""
    v = [x for x in verdicts if x in ("A", "B")]
    return v.count("A") / len(v) if v else None


def longer_answer_win_rate(rows: Iterable[tuple[Optional[str], int, int]]) -> Optional[float]:
    """Among decided pairs (win/loss) whose answers differ in length, the share the longer answer won.

    ``rows``: (candidate outcome 'win'|'loss'|'tie'|None, candidate length, baseline length).
    """
    won = []
    for outcome, cand_len, base_len in rows:
        if outcome in ("win", "loss") and cand_len != base_len:
            won.append((outcome == "win") == (cand_len > base_len))
    return sum(won) / len(won) if won else None


# -- model families ---------------------------------------------------------------------------------
FAMILIES: dict[str, str] = {
    "qwen": r"qwen|qwq",
    "llama": r"llama|vicuna|alpaca",
    "mistral": r"mistral|mixtral|ministral|codestral",
    "gemma": r"gemma",
    "gpt": r"(?<![a-z])gpt|chatgpt|openai",
    "smollm": r"smollm",
    "phi": r"(?<![a-z])phi-?\d",
    "deepseek": r"deepseek",
    "yi": r"(?<![a-z])yi-",
    "glm": r"chatglm|(?<![a-z])glm",
    "internlm": r"internlm",
    "baichuan": r"baichuan",
    "falcon": r"falcon",
    "claude": r"claude",
    "olmo": r"olmo",
}


@dataclass
class ModelIdentity:
    """What can be known about a model's family without loading it: names, paths, config.json fields."""

    label: str
    names: list[str] = field(default_factory=list)
    model_type: Optional[str] = None

    @property
    def families(self) -> set[str]:
        """Families named anywhere: the names, and config.json's model_type ('qwen2' -> qwen)."""
        return families_in(" ".join([*self.names, self.model_type or ""]))

    @property
    def architecture(self) -> Optional[str]:
        return self.model_type


def families_in(text: str) -> set[str]:
    t = text.lower()
    return {fam for fam, rx in FAMILIES.items() if re.search(rx, t)}


def identify_model(label: str, name: Optional[str] = None, path: Optional[str] = None) -> ModelIdentity:
    """What to look for a family in: the label, the name, the path, and config.json's _name_or_path,
    architectures and model_type (a checkpoint folder named 'step-1200' still says 'qwen2' there)."""
    names = [x for x in (label, name, path) if x]
    model_type = None
    if path and (Path(path) / "config.json").is_file():
        try:
            conf = json.loads((Path(path) / "config.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            conf = {}
        model_type = conf.get("model_type")
        names += [str(conf.get("_name_or_path") or "")] + [str(a) for a in conf.get("architectures") or []]
    return ModelIdentity(label, [n for n in names if n], model_type)


def family_warning(judge: ModelIdentity, candidate: ModelIdentity) -> Optional[str]:
    """A warning when the judge and the candidate look like the same model family (heuristic)."""
    if {n.rstrip("/") for n in judge.names} & {n.rstrip("/") for n in candidate.names}:
        return (f"the judge {judge.label!r} is the candidate model {candidate.label!r} itself: "
                "it will favour its own answers")
    shared = judge.families & candidate.families
    if shared:
        return (f"the judge {judge.label!r} and the candidate {candidate.label!r} look like the same model family "
                f"({', '.join(sorted(shared))}): judges favour their own family's style; "
                "prefer a judge from another family")
    if judge.model_type and judge.model_type == candidate.model_type:
        return (f"the judge {judge.label!r} and the candidate {candidate.label!r} share the architecture "
                f"{judge.model_type!r} (config.json model_type); if they are the same model family, the judge may "
                "favour its own style")
    return None


#: Fewer items than this and a rate is too noisy to warn about (the numbers are still reported).
MIN_ITEMS_FOR_WARNINGS = 10


def threshold_warnings(rel: Mapping[str, Any], n_items: int) -> list[str]:
    """Plain-language warnings for reliability numbers past their thresholds (``n_items`` judged)."""
    out: list[str] = []
    if rel.get("not_judged"):  # whatever the item count: the scores cover only part of the work
        out.append(f"{rel['not_judged']} judge samples were not judged (the budget ran out): scores cover the "
                   "judged ones only; judge again (with a higher cap) to continue")
    if n_items < MIN_ITEMS_FOR_WARNINGS:
        return out
    checks = [
        ("unparsed_rate", WARN_UNPARSED, "of judge outputs were unparsed (excluded from scores, not 0)"),
        ("error_rate", WARN_ERROR, "of judge requests failed (rerun to retry them)"),
        ("swap_flip_rate", WARN_FLIP, "of pairs flip when the order is swapped: the judge is position-biased"),
        ("first_position_rate", WARN_POSITION, "of decisive pairwise verdicts chose the first position"),
        ("longer_answer_win_rate", WARN_LONGER_WINS, "of decided pairs were won by the longer answer"),
    ]
    for key, limit, text in checks:
        v = rel.get(key)
        if v is not None and v > limit:
            out.append(f"{100 * v:.0f}% {text}")
    corr = rel.get("length_correlation")
    if corr is not None and abs(corr) > WARN_LENGTH_CORR:
        out.append(f"judge score correlates with answer length (Spearman {corr:+.2f}): check for a length bias")
    return out
