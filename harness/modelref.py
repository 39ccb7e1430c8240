"""Turn a ``--model`` argument into a concrete checkpoint: a local folder or a built-in demo model.

The fingerprint identifies the weights without reading all of them (a 70B checkpoint must not
take minutes to hash): file names and sizes, the small JSON files in full, and the first and
last MiB of every weight file.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Optional

from .models import ModelInfo

DEMO_PREFIX = "demo:"
_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".gguf", ".pt", ".pth")
_CHUNK = 1 << 20


class ModelRefError(ValueError):
    pass


def fingerprint(path: Path) -> str:
    h = hashlib.sha256()
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith("."))
    for f in files:
        rel = f.name if path.is_file() else str(f.relative_to(path))
        size = f.stat().st_size
        h.update(f"{rel}\0{size}\0".encode())
        with open(f, "rb") as fh:
            if f.suffix in _WEIGHT_SUFFIXES and size > 2 * _CHUNK:
                h.update(fh.read(_CHUNK))
                fh.seek(-_CHUNK, 2)
                h.update(fh.read(_CHUNK))
            elif f.suffix in _WEIGHT_SUFFIXES or f.suffix in (".json", ".jinja", ".model", ".txt", ".py"):
                h.update(fh.read())
    return h.hexdigest()[:16]


def resolve_model(spec: str, *, must_exist: bool = True) -> ModelInfo:
    """``demo:v1`` builds (once, then cached) a tiny real checkpoint; anything else is a path.

    With ``must_exist=False`` (API backends) a spec that is not a local path is a served model name.
    """
    if spec.startswith(DEMO_PREFIX):
        from . import demo

        version = spec[len(DEMO_PREFIX):]
        if version not in demo.DEMO_VERSIONS:
            raise ModelRefError(f"unknown demo model {spec!r}; choose one of: "
                                + ", ".join(DEMO_PREFIX + v for v in demo.DEMO_VERSIONS))
        path = demo.ensure_checkpoint(version)
        return ModelInfo(path=str(path), name=f"demo-{version}", fingerprint=fingerprint(path))
    path = Path(spec).expanduser()
    if path.exists():
        path = path.resolve()
        return ModelInfo(path=str(path), name=_display_name(path), fingerprint=fingerprint(path))
    if must_exist:
        raise ModelRefError(f"model path does not exist: {spec}")
    return ModelInfo(path=spec, name=spec.replace("/", "-"), fingerprint=None)


def _display_name(path: Path) -> str:
    # checkpoints are often .../run-name/checkpoint-1200: keep both parts
    if path.name.startswith(("checkpoint", "step", "epoch", "global_step")):
        return f"{path.parent.name}-{path.name}"
    return path.stem if path.is_file() else path.name


def local_tokenizer_path(model: ModelInfo, tokenizer: Optional[str]) -> Optional[str]:
    """Where to load the tokenizer for rendering, if anywhere."""
    if tokenizer:
        if tokenizer.startswith(DEMO_PREFIX):
            return resolve_model(tokenizer).path
        if not Path(tokenizer).exists():
            raise ModelRefError(f"tokenizer path does not exist: {tokenizer}")
        return tokenizer
    return model.path if Path(model.path).exists() else None
