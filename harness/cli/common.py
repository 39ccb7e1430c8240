"""What every command shares: user errors as one line and exit 2, KEY=VALUE options, writing an output file.

A leaf: command modules import it, it imports no command. Heavy packages load inside functions only, so
`sfteval --help` stays fast.
"""

from __future__ import annotations

import functools
import os
import sys
from pathlib import Path
from typing import Any, Callable, Optional

import click

#: exit status of a command line the user got wrong (bad option, missing run, invalid config)
EXIT_USAGE = 2


def user_errors() -> tuple[type[BaseException], ...]:
    """Exceptions a user can cause and fix: printed as one line, never as a traceback."""
    from ..backends.base import BackendError
    from ..gate import GateConfigError
    from ..labels.exchange import LabelImportError
    from ..labels.records import LabelError
    from ..judging.spec import JudgeError
    from ..modelref import ModelRefError
    from ..plugins import PluginError
    from ..render import RenderError
    from ..stages.base import RunError
    from ..store import StoreError
    from ..suite import SuiteError

    return (SuiteError, RunError, BackendError, ModelRefError, StoreError, RenderError, JudgeError, PluginError,
            GateConfigError, LabelError, LabelImportError)


def friendly(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn errors a user can cause into one clear line and exit status 2 (no traceback)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except KeyboardInterrupt:
            click.echo("\ninterrupted: finished work is stored; rerun with --resume RUN to continue", err=True)
            sys.exit(130)
        except Exception as e:
            if isinstance(e, user_errors()):
                click.echo(f"sfteval: error: {e}", err=True)
                sys.exit(EXIT_USAGE)
            raise

    return wrapper


def parse_key_values(pairs: tuple[str, ...], option: str) -> dict[str, Any]:
    """``KEY=VALUE`` options (values are YAML: numbers, booleans, lists, mappings); dashes in keys become _."""
    import yaml

    out: dict[str, Any] = {}
    for pair in pairs:
        if "=" not in pair:
            raise click.BadParameter(f"expected KEY=VALUE, got {pair!r}", param_hint=option)
        key, value = pair.split("=", 1)
        out[key.strip().replace("-", "_")] = yaml.safe_load(value) if value else ""
    return out


def emit(text: str, out: Optional[Path]) -> None:
    """Print, or write atomically to ``out`` (readers never see half a report) and say where."""
    if out is None:
        click.echo(text, nl=not text.endswith("\n"))
        return
    from ..store import write_text_atomic

    write_text_atomic(out, text)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(out, 0o666 & ~umask)  # an ordinary file (the temp file it came from was private)
    click.echo(f"wrote {out}", err=True)


def add_options(options: list[Callable[[Any], Any]]) -> Callable[[Any], Any]:
    """A decorator that adds a group of click options in the order listed."""

    def decorate(fn: Any) -> Any:
        for opt in reversed(options):
            fn = opt(fn)
        return fn

    return decorate


def results_option(help_text: str = "Results root that run names are looked up in.") -> Callable[[Any], Any]:
    return click.option("--results", default="results", show_default=True,
                        type=click.Path(file_okay=False, path_type=Path), help=help_text)


def train_data_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """--train-data RUN=PATH (repeatable) and --train-map FIELD=COLUMN (repeatable), for diff and trend."""
    fn = click.option("--train-map", "train_map", multiple=True, metavar="FIELD=COLUMN",
                      help="Training-data column of FIELD (task_type, messages, prompt, system, answer), as the "
                           "importers' --map: --train-map task_type=category --train-map answer=output.")(fn)
    return click.option("--train-data", "train_data", multiple=True, metavar="RUN=PATH",
                        help="The training data RUN was trained on: a JSONL, JSON, CSV or Parquet file or a dataset "
                             "folder with a task_type column and messages or prompt/answer columns. Repeatable, one "
                             "per run.")(fn)


def load_train_data(pairs: tuple[str, ...], field_pairs: tuple[str, ...],
                    runs: dict[str, tuple[str, ...]]) -> dict[str, Any]:
    """``--train-data`` pairs loaded per run key; ``runs``: run key -> the names RUN may use for it (the
    argument as given, the run id, the folder name). An unknown run or a bad file is a user error."""
    if not pairs:
        return {}
    from ..traindata import load_training, parse_map

    try:
        field_map = parse_map(field_pairs)
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--train-map") from None
    out: dict[str, Any] = {}
    for pair in pairs:
        name, sep, path = pair.partition("=")
        if not sep or not name.strip() or not path.strip():
            raise click.BadParameter(f"expected RUN=PATH, got {pair!r}", param_hint="--train-data")
        key = next((k for k, names in runs.items() if name.strip() in names), None)
        if key is None:
            known = ", ".join(sorted({n for names in runs.values() for n in names}))
            raise click.BadParameter(f"{name.strip()!r} is none of the runs compared ({known})",
                                     param_hint="--train-data")
        if key in out:
            raise click.BadParameter(f"two training sets for run {name.strip()!r}", param_hint="--train-data")
        out[key] = load_training(path.strip(), field_map)
    return out
