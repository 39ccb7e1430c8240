"""A spending cap on one judge command: ``--max-cost USD`` and ``--max-judge-calls N``.

Why a gate in front of each request rather than a plan made up front: what a judge answer costs is only known
once it is back. Before a request leaves, the gate reserves its worst case (its prompt tokens, counted with
headroom, plus the config's ``max_tokens``) next to what was really spent and what requests still in flight
have reserved. A request that could pass the cap is not sent, and neither is any after it (order is kept): if
requests were still in flight, the dispatcher waits for them (their real cost replaces their reservation) and
tries again; if none were, dispatch stops for good. So the cap is never passed, and only the last requests are
limited by their worst case.

What was not sent becomes a ``not_judged`` record with reason ``budget`` (never a score); a later run sends
exactly those (cached calls cost nothing), so raising the cap continues where the last run stopped.
"""

from __future__ import annotations

import threading
from typing import Callable, Iterable, Iterator, Optional, TypeVar

T = TypeVar("T")
R = TypeVar("R")

#: the reason of a judgment the budget kept from being sent
BUDGET = "budget"


class Budget:
    """What this command may spend (USD) and send (requests); thread-safe (a backend may ask from its loop)."""

    def __init__(self, max_cost: Optional[float] = None, max_calls: Optional[int] = None):
        self.max_cost, self.max_calls = max_cost, max_calls
        self.spent = 0.0
        self.sent = 0
        self.stopped = False  #: a request was refused with nothing in flight: nothing more is sent in this command
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
        """Reserve ``worst_cost`` for the request ``key`` and say whether it may be sent now. A refusal is final
        (``stopped``) unless requests are in flight whose real cost may leave room (then: try again later)."""
        with self._lock:
            if self.stopped:
                return False
            over_calls = self.max_calls is not None and self.sent + 1 > self.max_calls
            committed = self.spent + sum(self._reserved.values()) + worst_cost
            over_cost = self.max_cost is not None and committed > self.max_cost + 1e-12
            if over_calls or over_cost:
                self.stopped = over_calls or not self._reserved
                return False
            self.sent += 1
            self._reserved[key] = self._reserved.get(key, 0.0) + worst_cost
            return True

    def close_round(self) -> None:
        """Every request of a dispatch round is back: a reservation still held belongs to a request whose result
        was lost, which may have cost money; its worst case counts as spent."""
        with self._lock:
            self.spent += sum(self._reserved.values())
            self._reserved.clear()

    def settle(self, key: str, cost: float) -> None:
        """The request ``key`` came back (or failed): its real cost replaces the reservation."""
        with self._lock:
            self._reserved.pop(key, None)
            self.spent += cost


def gate(items: Iterable[T], budget: Optional[Budget], key: Callable[[T], str], worst: Callable[[T], float],
         refused: set[str]) -> Iterator[T]:
    """The items the budget admits, lazily and in order, up to the first it refuses; the keys of that one and all
    after it go to ``refused`` (sent later if ``budget.stopped`` is still False, see :func:`rounds`)."""
    held = False
    for item in items:
        if not held and (budget is None or budget.admit(key(item), worst(item))):
            yield item
        else:
            held = True
            refused.add(key(item))


def dispatch_rounds(items: list[T], budget: Optional[Budget], key: Callable[[T], str],
                    send: Callable[[Iterable[T]], Iterator[R]], worst: Callable[[T], float],
                    refused: set[str]) -> Iterator[R]:
    """``send`` the items the budget admits; when it held some back while others were in flight, send those once
    the in-flight ones are back (their real cost counted), until all are sent or the budget stops for good.
    The keys never sent end in ``refused``. The caller settles each result before asking for the next."""
    todo = items
    while todo:
        held: set[str] = set()
        yield from send(gate(todo, budget, key, worst, held))
        if budget is not None:
            budget.close_round()
        if not held:
            return
        if budget is None or budget.stopped:
            refused |= held
            return
        todo = [item for item in todo if key(item) in held]

