"""Which answer type an item is judged as, checked for every item before the first judge call."""

from __future__ import annotations

from typing import Callable, Optional

from sfteval.judges.config import JudgeConfig, UnknownAnswerTypeError

from ..models import Item, RunManifest
from ..suite import Suite, SuiteError, load_suite
from .spec import JudgeError

#: item -> answer type override (the item's own, else the suite's per-task_type setting), or None
AnswerTypeOf = Callable[[Item], Optional[str]]


def check_answer_types(cfg: JudgeConfig, items: list[Item], answer_type_of: AnswerTypeOf) -> None:
    """Every item's answer type must exist in the judge config: fail before the first judge call."""
    for item in items:
        try:
            cfg.answer_type_for(item.task_type, answer_type_of(item))
        except UnknownAnswerTypeError as e:
            raise JudgeError(f"item {item.id} (task_type {item.task_type}): {e}") from None


def suite_answer_types(suite: Optional[Suite]) -> AnswerTypeOf:
    """The item's own answer_type, else the suite's per-task_type setting, else the judge config's map."""
    if suite is None:
        return lambda item: item.answer_type
    return lambda item: item.answer_type or suite.settings_for(item.task_type).answer_type


def stored_suite(manifest: RunManifest, log: Callable[[str], None]) -> Optional[Suite]:
    """The run's suite for its per-task_type settings, if it is still where it was and unchanged."""
    try:
        suite = load_suite(manifest.suite_path)
    except (SuiteError, OSError):
        suite = None
    if suite is None or suite.content_hash != manifest.suite_hash:
        log(f"note: suite {manifest.suite_path} is gone or changed; answer types come from the items and the "
            "judge config's task_type map (suite.yaml answer_type settings are not applied)")
        return None
    return suite
