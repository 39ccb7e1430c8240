"""The stages of a run, in order: the ``sfteval.stages`` entry points (generate, rules, judge, probes, plugins).

Only this module knows how stages are found; the runner runs them, aggregation and reports iterate them.
"""

from __future__ import annotations

from .. import plugins
from .base import Stage


def stage_classes() -> list[type[Stage]]:
    """Every registered stage class, ordered by ``order`` (then name, so the order is total)."""
    classes = []
    for name, cls in plugins.load_all("stages").items():
        if not (isinstance(cls, type) and issubclass(cls, Stage)):
            raise plugins.PluginError(f"stage plugin {name!r} is {cls!r}, not a subclass of sfteval's Stage")
        classes.append(cls)
    return sorted(classes, key=lambda c: (c.order, c.name))


def stages() -> list[Stage]:
    """Fresh stage instances for one run or one aggregation (stages may keep per-run state)."""
    return [cls() for cls in stage_classes()]
