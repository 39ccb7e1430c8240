"""``--ray ADDRESS``: a backend's requests run on a Ray cluster; the run folder is written by the driver alone.

The executor is a :class:`~sfteval.harness.backends.base.Backend` that wraps the chosen backend (registered
under the ``sfteval.executors`` entry points), so the runner and every stage talk to one backend as always:
``generate(requests)`` and ``logprobs(requests)`` go to the cluster, results come back as they finish and the
stages store each one at once (a killed driver resumes with ``--resume``; stored work is never sent again).

- **vllm**: Ray Data LLM (``ray.data.llm.build_processor`` with ``vLLMEngineProcessorConfig``): ``--replicas N``
  engine replicas, each with ``tensor_parallel_size`` GPUs in its placement group; the harness-rendered token ids
  go in as ``tokenized_prompt`` (Ray Data LLM's chat-template and tokenize stages are off: no second template),
  every sampling field explicit, probe log-probs through ``prompt_logprobs`` (:mod:`.data_llm`).
- **any other backend** (hf, plugins): ``--replicas N`` Ray actors, one model each, spread over the nodes;
  batches of requests go to whichever actor is free. An actor that dies is restarted by Ray and its batch
  retried (``max_restarts``, ``max_task_retries``) (:mod:`.actors`).
- Judges are not wrapped: their requests stay in the driver (API-bound; concurrency covers them).

Every node must reach the model folder at the same path (a shared filesystem) and have sfteval installed
(``pip install 'sfteval[ray]'``, plus vllm for the vllm backend).
"""

from __future__ import annotations

from typing import Any, ClassVar, Iterator

from pydantic import ValidationError

from ..base import Backend, BackendError, BackendOptions, GenRequest, GenResult, LogprobRequest, LogprobResult
from .options import RayOptions, connect


def once(results: Iterator[Any]) -> Iterator[Any]:
    """Each request's result once, even if a retried batch or block were ever delivered twice."""
    seen: set[str] = set()
    for r in results:
        if r.key not in seen:
            seen.add(r.key)
            yield r


class RayBackend(Backend):
    """Wraps backend class ``inner`` (options ``inner_options``): its model lives on the cluster's workers."""

    name: ClassVar[str] = "ray"

    def __init__(self, inner: type[Backend], inner_options: BackendOptions, **ray_options: Any):
        super().__init__(inner_options)
        if inner.prompt_mode == "chat" or not inner.loads_local_weights:
            raise BackendError(f"--ray runs model backends that load weights (hf, vllm); the {inner.name} backend "
                               "talks to a server, whose concurrency already spreads its requests")
        try:
            self.ray_options = RayOptions.model_validate(ray_options)
        except ValidationError as e:
            first = e.errors()[0]
            loc = ".".join(str(p) for p in first["loc"])
            msg = "is not a --ray option" if first["type"] == "extra_forbidden" else first["msg"]
            raise BackendError(f"--ray-option {loc}: {msg} (options: {', '.join(RayOptions.model_fields)})") from None
        self.inner = inner
        self.name = inner.name  # type: ignore[misc]  (messages and records name the model backend)
        self.supports_prompt_logprobs = inner.supports_prompt_logprobs  # type: ignore[misc]
        self.loads_local_weights = inner.loads_local_weights  # type: ignore[misc]
        self.ray = connect(self.ray_options)
        if inner.name == "vllm":
            from .data_llm import DataLLMEngine

            self.engine: Any = DataLLMEngine(self.ray, inner_options, self.ray_options)
        else:
            from .actors import ActorEngine

            self.engine = ActorEngine(self.ray, inner, inner_options, self.ray_options)

    def generate(self, requests: list[GenRequest]) -> Iterator[GenResult]:
        return once(self.engine.generate(requests, progress=self.progress) if requests else iter(()))

    def logprobs(self, requests: list[LogprobRequest]) -> Iterator[LogprobResult]:
        return once(self.engine.logprobs(requests, progress=self.progress) if requests else iter(()))

    def effective_settings(self) -> dict[str, Any]:
        s = self.engine.effective_settings()
        s["dispatch"] = {"executor": "ray", **self.ray_options.model_dump(mode="json", exclude={"runtime_env"}),
                         "ray_version": getattr(self.ray, "__version__", None), **self.engine.cluster_info()}
        return s

    def close(self) -> None:
        engine = self.__dict__.pop("engine", None)
        if engine is not None:
            engine.close()
        if self.ray.is_initialized():
            self.ray.shutdown()  # disconnects from a cluster; stops the instance --ray local started
