"""The real ``sfteval`` command in a subprocess, run from the repository root as a user would run it.

Each test module makes its own caller with :func:`cli` (whether a non-zero exit fails the test by default,
extra environment, time limit), so every end-to-end test goes through the same code path.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable, Optional

REPO = Path(__file__).resolve().parents[1]


def cli(*prefix: str, check: bool = False, env: Optional[dict[str, str]] = None, drop_env: tuple[str, ...] = (),
        timeout: float = 1800) -> Callable[..., subprocess.CompletedProcess]:
    """A caller of ``sfteval *prefix *args``. ``check``: a non-zero exit raises with both outputs (callers
    may pass ``check=`` per call); ``env`` is added to the environment after removing names starting
    with any of ``drop_env``; per-call ``env=`` is added on top."""

    def sfteval(*args: str, check: bool = check, env: Optional[dict[str, str]] = None,
                **kw: Any) -> subprocess.CompletedProcess:
        base = {k: v for k, v in os.environ.items() if not (drop_env and k.startswith(drop_env))}
        full_env = {**base, **(extra_env or {}), **(env or {})}
        proc = subprocess.run([sys.executable, "-m", "sfteval.harness.cli", *prefix, *args], capture_output=True, text=True,
                              cwd=REPO, env=full_env, timeout=kw.pop("timeout", timeout), **kw)
        if check and proc.returncode != 0:
            raise AssertionError(f"sfteval {' '.join(prefix + args)} exited {proc.returncode}\n"
                                 f"{proc.stdout}\n{proc.stderr}")
        return proc

    extra_env = env
    return sfteval
