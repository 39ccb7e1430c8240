"""Write a suite folder (item files + suite.yaml + README.md) atomically.

Why atomic: an importer or sampler that fails half-way must not leave a folder that looks like a
suite but holds half the items; a later `sfteval run` would evaluate it without complaint. Everything
is written into a hidden temporary folder beside DEST, loaded back with the normal suite loader (so
what we write is exactly what `run` will read), and only then renamed into place.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any, Optional

import yaml

from ..models import Item, SuiteConfig
from ..store import replace_dir
from ..suite import SUITE_CONFIG, Suite, SuiteError, load_suite


def item_record(item: Item) -> dict[str, Any]:
    """The item as a compact JSON object: defaults (empty tags, unset checks) are left out."""
    return item.model_dump(mode="json", exclude_none=True, exclude_defaults=True)


def config_record(config: SuiteConfig) -> dict[str, Any]:
    data = config.model_dump(mode="json", exclude_none=True)
    data["task_types"] = {k: v for k, v in data.get("task_types", {}).items() if v}
    return {k: v for k, v in data.items() if v not in ({}, [], "", None)}


def counts_table(items: list[Item], config: Optional[SuiteConfig] = None) -> str:
    """Markdown table: every first-level task_type (bold) followed by its second-level types, with counts."""
    level = Counter(lvl for it in items for lvl in it.task_type_levels)
    answer_types: dict[str, set[str]] = {}
    for it in items:
        for lvl in it.task_type_levels:
            answer_types.setdefault(lvl, set()).add(it.answer_type or "")
    rows = ["| task_type | items | answer type |", "| --- | ---: | --- |"]
    for top in sorted(k for k in level if "/" not in k):
        rows.append(f"| **`{top}`** | **{level[top]}** | |")
        for sub in sorted(k for k in level if k.startswith(top + "/")):
            rows.append(f"| `{sub}` | {level[sub]} | {', '.join(sorted(a for a in answer_types[sub] if a))} |")
    return "\n".join(rows)


def readme_text(name: str, intro: str, items: list[Item]) -> str:
    first = {it.task_type_levels[0] for it in items}
    second = {it.task_type for it in items if "/" in it.task_type}
    robust = sum(it.is_robustness for it in items)
    multi = sum(it.n_answer_turns > 1 for it in items)
    lines = [
        f"# {name}", "", intro.strip(), "",
        (f"**{len(items)}** items over {len(first)} first-level and {len(second)} second-level task_types"
         f" ({multi} multi-turn, {robust} tagged `robustness`)."), "",
        "```bash", "sfteval suites lint SUITE_FOLDER", "sfteval run --model CKPT --suite SUITE_FOLDER", "```", "",
        "## Task types", "", counts_table(items), "",
    ]
    return "\n".join(lines)


def write_suite(dest: Path | str, files: dict[str, list[Item]], config: SuiteConfig, intro: str,
                *, force: bool = False) -> Suite:
    """Write ``files`` (file name -> items) as a suite folder at ``dest`` and return it, loaded back."""
    dest = Path(dest)
    if dest.exists() and not force:
        raise SuiteError(dest, "already exists; choose another destination or pass --force to replace it")
    if dest.exists() and not dest.is_dir():
        raise SuiteError(dest, "exists and is not a folder")
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}.partial-"))
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o777 & ~umask)  # mkdtemp's 0700 would make the suite private to its writer
    try:
        all_items: list[Item] = []
        for fname, items in files.items():
            if not items:
                continue
            text = "".join(json.dumps(item_record(it), ensure_ascii=False) + "\n" for it in items)
            (tmp / fname).write_text(text, encoding="utf-8")
            all_items += items
        cfg = config.model_copy(update={"name": config.name or dest.name})
        (tmp / SUITE_CONFIG).write_text(
            yaml.safe_dump(config_record(cfg), allow_unicode=True, sort_keys=False, width=100), encoding="utf-8")
        (tmp / "README.md").write_text(readme_text(cfg.name or dest.name, intro, all_items), encoding="utf-8")
        load_suite(tmp)  # what `run` will read; raises SuiteError before anything is renamed into place
        replace_dir(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return load_suite(dest)
