"""Any model backend on Ray actors: one model per actor, batches of requests to whichever actor is free.

The requests are ordered by prompt length before they are cut into batches (as the hf backend orders its own
batches), so the batches a worker sees are those one process would have formed. An actor that dies (its
process killed, its node lost) is restarted by Ray (``max_restarts``) and the batch it held is retried
(``max_task_retries``); results are handed to the run as each batch finishes, so a batch is stored once.
A batch that still fails (retries used up) comes back as failed requests: the run ends ``incomplete`` and
``--resume`` retries only those.
"""

from __future__ import annotations

from collections import deque
from typing import Any, Callable, Iterator, Optional

from ..base import Backend, BackendOptions, GenRequest, GenResult, LogprobRequest, LogprobResult, batched
from .options import RayOptions, cluster_size


class BackendWorker:
    """The body of one Ray actor: a backend instance with its model, on whichever node Ray placed it."""

    def __init__(self, cls: type[Backend], options: BackendOptions):
        self.backend = cls(options)
        self.backend.progress = False  # the driver shows progress; a worker's bar would only clutter its log

    def generate(self, requests: list[GenRequest]) -> list[GenResult]:
        return list(self.backend.generate(requests))

    def logprobs(self, requests: list[LogprobRequest]) -> list[LogprobResult]:
        return list(self.backend.logprobs(requests))

    def settings(self) -> dict[str, Any]:
        return self.backend.effective_settings()

    def where(self) -> dict[str, Any]:
        import os

        import ray

        return {"node_id": ray.get_runtime_context().get_node_id(), "pid": os.getpid()}


def default_gpus(options: BackendOptions) -> float:
    device = str(getattr(options, "device", "cpu"))
    if device.startswith("cuda"):
        return 1.0
    if device == "auto":  # the hf default: cuda where there is one
        import ray

        return 1.0 if ray.cluster_resources().get("GPU", 0) >= 1 else 0.0
    return 0.0


class ActorEngine:
    def __init__(self, ray: Any, cls: type[Backend], options: BackendOptions, ray_options: RayOptions):
        self.ray, self.ray_options = ray, ray_options
        num_gpus = ray_options.num_gpus if ray_options.num_gpus is not None else default_gpus(options)
        num_cpus = ray_options.num_cpus if ray_options.num_cpus is not None else 1.0
        remote = ray.remote(BackendWorker).options(
            num_cpus=num_cpus, num_gpus=num_gpus, max_restarts=ray_options.max_restarts,
            max_task_retries=ray_options.max_task_retries, scheduling_strategy="SPREAD")
        self.actors = [remote.remote(cls, options) for _ in range(ray_options.replicas)]
        self.resources = {"num_cpus": num_cpus, "num_gpus": num_gpus}
        try:  # wait for the models to load: a bad option or path fails here, once, with the worker's error
            self.placed = self._started([a.where.remote() for a in self.actors])
        except ray.exceptions.RayError as e:
            from ..base import BackendError

            raise BackendError(f"the {cls.name} backend could not start on the Ray cluster: {_cause(e)}") from e
        self._settings: Optional[dict[str, Any]] = None

    def _started(self, refs: list[Any], every_s: float = 30.0) -> list[Any]:
        """All replicas up; while some cannot be placed (too few CPUs/GPUs free), say so every ``every_s``."""
        import sys

        ready: list[Any] = []
        waiting = list(refs)
        while waiting:
            done, waiting = self.ray.wait(waiting, num_returns=len(waiting), timeout=every_s)
            ready += done
            if waiting:
                free = self.ray.available_resources()
                print(f"--ray: {len(ready)} of {len(refs)} replicas started; waiting for the cluster to place the "
                      f"rest (each needs {self.resources}; free now: CPU {free.get('CPU', 0):g}, GPU "
                      f"{free.get('GPU', 0):g}; fewer --replicas or --ray-option num_cpus= if it never fits)",
                      file=sys.stderr)
        order = {ref: i for i, ref in enumerate(refs)}
        return self.ray.get(sorted(ready, key=lambda r: order[r]))

    # -- dispatch ---------------------------------------------------------------------------
    def _run(self, method: str, batches: list[list[Any]], failed: Callable[[Any, str], Any]) -> Iterator[Any]:
        """Each batch to a free actor (two in flight per actor, so none waits between batches); results as
        batches finish, any order."""
        ray = self.ray
        queue = deque(batches)
        free = deque([a for a in self.actors for _ in range(2)])
        pending: dict[Any, tuple[Any, list[Any]]] = {}
        while queue or pending:
            while queue and free:
                actor, batch = free.popleft(), queue.popleft()
                pending[getattr(actor, method).remote(batch)] = (actor, batch)
            done, _ = ray.wait(list(pending), num_returns=1)
            for ref in done:
                actor, batch = pending.pop(ref)
                free.append(actor)
                try:
                    results = ray.get(ref)
                except ray.exceptions.RayError as e:  # the retries are used up: the batch's requests failed
                    reason = f"Ray worker failed: {_cause(e)}"
                    results = [failed(r, reason) for r in batch]
                yield from results

    def generate(self, requests: list[GenRequest], progress: bool = True) -> Iterator[GenResult]:
        ordered = sorted(requests, key=lambda r: (r.sampling.model_dump_json(), len(r.prompt_ids or []), r.key))
        return self._run("generate", list(batched(ordered, self.ray_options.batch_size)),
                         lambda r, why: GenResult(key=r.key, error=why))

    def logprobs(self, requests: list[LogprobRequest], progress: bool = True) -> Iterator[LogprobResult]:
        ordered = sorted(requests, key=lambda r: (len(r.context_ids) + len(r.continuation_ids), r.key))
        return self._run("logprobs", list(batched(ordered, self.ray_options.batch_size)),
                         lambda r, why: LogprobResult(key=r.key, error=why))

    # -- bookkeeping ------------------------------------------------------------------------
    def effective_settings(self) -> dict[str, Any]:
        if self._settings is None:
            self._settings = self.ray.get(self.actors[0].settings.remote())
        return dict(self._settings)

    def cluster_info(self) -> dict[str, Any]:
        nodes = sorted({p["node_id"] for p in self.placed})
        return {"engine": "actors", "resources_per_replica": self.resources, "nodes_used": len(nodes),
                **cluster_size(self.ray)}

    def close(self) -> None:
        for a in self.actors:
            try:
                self.ray.kill(a)
            except Exception:
                pass
        self.actors = []


def _cause(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[-1] if text else type(e).__name__

