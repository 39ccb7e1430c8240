"""``--quiet`` for the whole process: errors, warnings about the run's results and the command's final line.

Why process-wide: most of the noise comes from libraries that never see the command's options --
transformers' "Loading weights" and "Writing model shards" bars, vLLM's start-up log (in its engine
processes too) -- and from the demo checkpoint build. Their switches are environment variables read when
they are imported, so :func:`make_quiet` runs before any of them is.

Messages of sfteval's own ``log`` callbacks follow one convention: a message that starts with "warning" is
one the user must see even with ``--quiet`` (probes skipped, a judge that failed every request, and why);
every other message is a note.
"""

from __future__ import annotations

import os
import sys
_quiet = False

#: read by the libraries at import time (vLLM: also in the engine processes it starts)
QUIET_ENV = {
    "TRANSFORMERS_VERBOSITY": "error",
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",
    "TQDM_DISABLE": "1",
    "VLLM_LOGGING_LEVEL": "ERROR",
    "TORCH_CPP_LOG_LEVEL": "ERROR",  # torch's C++ warnings ("[W ... NUMA binding ...]")
    "PYTHONWARNINGS": "ignore",  # for child processes; this one filters below
}


def make_quiet() -> None:
    """From now on: no progress bars, library logs below error, no notes (see the module docstring)."""
    import logging
    import warnings

    global _quiet
    _quiet = True
    os.environ.update(QUIET_ENV)
    warnings.simplefilter("ignore")
    # a library that logs before configuring its logger (vLLM's Triton check) reaches Python's last-resort
    # handler, which prints warnings: the root level stops them
    logging.getLogger().setLevel(logging.ERROR)
    if "transformers" in sys.modules:  # imported before this call: its switches were read already
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()


def is_quiet() -> bool:
    return _quiet


def stderr_log(message: str) -> None:
    """The default ``log`` of the commands: every message, or only warnings when quiet."""
    if not _quiet or message.lower().startswith("warning"):
        print(message, file=sys.stderr, flush=True)
