"""The ``--ray`` executor's options, and joining (or starting) the cluster."""

from __future__ import annotations

from typing import Any, Optional

from pydantic import BaseModel, ConfigDict, Field

from ..base import BackendError


class RayOptions(BaseModel):
    """``--ray``, ``--replicas`` and ``--ray-option KEY=VALUE``."""

    model_config = ConfigDict(extra="forbid")

    address: str = "auto"  #: auto (the running cluster), local (start one in this process), host:port, ray://...
    replicas: int = Field(1, ge=1)  #: model copies at once (Ray actors, or Ray Data LLM engine replicas)
    num_cpus: Optional[float] = Field(None, ge=0)  #: CPUs per replica (default 1)
    num_gpus: Optional[float] = Field(None, ge=0)  #: GPUs per replica (default: vllm tp size on a GPU cluster, hf 1
    #: when its device is cuda, else 0)
    batch_size: int = Field(32, ge=1)  #: requests per Ray task / Ray Data batch (smaller: less redone after a failure)
    max_restarts: int = Field(3, ge=-1)  #: restarts of a dead actor (-1: no limit)
    max_task_retries: int = Field(3, ge=-1)  #: retries of a batch whose actor died
    runtime_env: dict[str, Any] = Field(default_factory=dict)  #: Ray runtime_env for the workers (env_vars, ...)
    ray_init: dict[str, Any] = Field(default_factory=dict)  #: more ray.init keywords (e.g. num_cpus for local)


def _import_ray() -> Any:
    try:
        import ray
    except ImportError as e:
        raise BackendError(f"--ray needs the ray package, which cannot be imported ({e}). "
                           "Install it with: pip install 'sfteval[ray]'") from e
    return ray


def connect(options: RayOptions) -> Any:
    """Join (or start) the cluster; returns the ray module. ``local`` always starts a new instance here."""
    ray = _import_ray()
    if ray.is_initialized():
        return ray
    kwargs: dict[str, Any] = dict(include_dashboard=False, log_to_driver=True, **options.ray_init)
    if options.runtime_env:
        kwargs["runtime_env"] = options.runtime_env
    # "auto" goes to Ray as it is: Ray reads $RAY_ADDRESS (a Ray job's driver), else finds the cluster `ray start`
    # made here, and only then applies the local token authentication by itself
    address = options.address
    try:
        ray.init(address=address, **kwargs)
    except ConnectionError as e:
        hint = (" (start one with `ray start --head`, or use --ray local to start one in this process)"
                if address == "auto" else "")
        raise BackendError(f"--ray {options.address}: cannot connect to a Ray cluster: {e}{hint}") from e
    return ray


def cluster_size(ray: Any) -> dict[str, Any]:
    """The cluster as the manifest records it: nodes, CPUs and GPUs (no addresses)."""
    res = ray.cluster_resources()
    return {"cluster_nodes": sum(1 for n in ray.nodes() if n.get("Alive")), "cluster_cpus": res.get("CPU", 0),
            "cluster_gpus": res.get("GPU", 0)}
