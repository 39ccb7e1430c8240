"""A spending cap on one judge command: ``--max-cost USD`` and ``--max-judge-calls N``.

Why a gate in front of each request rather than a plan made up front: what a judge answer costs is only known
once it is back. Before a request leaves, the gate reserves its worst case (its prompt tokens, counted with
headroom, plus the config's ``max_tokens``) next to what was really spent and what requests still in flight
have reserved; the first request that could pass the cap is not sent, and neither is any after it (dispatch
stops, in order). A request's reservation is replaced by its real cost when it comes back. So the cap is never
passed, and only the last few requests in flight are limited by their worst case.

What was not sent becomes a ``not_judged`` record with reason ``budget`` (never a score); a later run sends
exactly those (cached calls cost nothing), so raising the cap continues where the last run stopped.
"""

from __future__ import annotations

import threading
from typing import Callable, Iterable, Iterator, Optional, TypeVar

T = TypeVar("T")

#: the reason of a judgment the budget kept from being sent
BUDGET = "budget"


class Budget:
    """What this command may spend (USD) and send (requests); thread-safe (a backend may ask from its loop)."""

    def __init__(self, max_cost: Optional[float] = None, max_calls: Optional[int] = None):
        self.max_cost, self.max_calls = max_cost, max_calls
        self.spent = 0.0
        self.sent = 0
        self.stopped = False  #: a request was refused: nothing more is sent in this command
        self._reserved: dict[str, float] = {}
        self._lock = threading.Lock()

    @property
    def capped(self) -> bool:
        return self.max_cost is not None or self.max_calls is not None

    def describe(self) -> str:
        parts = []
        if self.max_calls is not None:
            parts.append(f"--max-judge-calls {self.max_calls}")
        if self.max_cost is not None:
            parts.append(f"--max-cost {self.max_cost:g}")
        return " and ".join(parts) or "no cap"

    def admit(self, key: str, worst_cost: float) -> bool:
        """Reserve ``worst_cost`` for the request ``key`` and say whether it may be sent."""
        with self._lock:
            if self.stopped:
                return False
            over_calls = self.max_calls is not None and self.sent + 1 > self.max_calls
            committed = self.spent + sum(self._reserved.values()) + worst_cost
            over_cost = self.max_cost is not None and committed > self.max_cost + 1e-12
            if over_calls or over_cost:
                self.stopped = True
                return False
            self.sent += 1
            self._reserved[key] = self._reserved.get(key, 0.0) + worst_cost
            return True

    def settle(self, key: str, cost: float) -> None:
        """The request ``key`` came back (or failed): its real cost replaces the reservation."""
        with self._lock:
            self._reserved.pop(key, None)
            self.spent += cost


def gate(items: Iterable[T], budget: Optional[Budget], key: Callable[[T], str], worst: Callable[[T], float],
         refused: set[str]) -> Iterator[T]:
    """The items the budget admits, lazily and in order; the keys of the others go to ``refused``."""
    for item in items:
        if budget is None or budget.admit(key(item), worst(item)):
            yield item
        else:
            refused.add(key(item))

