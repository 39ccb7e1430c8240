"""`sfteval view`: serve the results folder as a local web app (runs, comparisons, items, review queues)."""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Optional

import click

from .common import EXIT_USAGE, friendly

VIEW_EPILOG = """
\b
Examples:
  sfteval run --model demo:v1 --suite demo --run-name v1 -q
  sfteval run --model demo:v2 --suite demo --run-name v2 -q
  sfteval view                                   # then open http://127.0.0.1:8765/
  sfteval view --reviewer alice --overlap 2      # each item to two reviewers
  sfteval view --host 0.0.0.0 --token auto       # a team server: prints the URL with its token
\b
Pages: /  /runs/RUN  /runs/RUN/items  /runs/RUN/item/ID
       /compare/A/B  /compare/A/B/items?flip=worse&tt=...&q=...  /compare/A/B/item/ID
       /review/pair/A/B (blind pairwise)  /review/single/RUN[?baseline=A]
Labels go to RUN/labels.jsonl and B/pairs/A/labels.jsonl; see `sfteval agreement`.
"""

_TOKEN = re.compile(r"^[A-Za-z0-9._~-]{16,200}$")


@click.command("view", epilog=VIEW_EPILOG)
@click.option("--results", default="results", show_default=True, type=click.Path(file_okay=False, path_type=Path),
              help="The results folder to serve.")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to bind; anything but loopback needs --token.")
@click.option("--port", default=8765, show_default=True, type=click.IntRange(0, 65535), help="0: any free port.")
@click.option("--reviewer", metavar="NAME", help="Record every label under this name (default: each browser names itself).")
@click.option("--token", metavar="T", help="Require this token on every request (16+ URL-safe characters, or 'auto').")
@click.option("--overlap", default=1, show_default=True, type=click.IntRange(1, 20),
              help="Reviewers per item in the review queues (2+ measures human-human agreement).")
@click.option("--seed", default=0, show_default=True, type=int, help="Seed of the blind seat order and the audit sample.")
@click.option("--config", "config_path", type=click.Path(dir_okay=False, path_type=Path), metavar="GATE_YAML",
              help="Gate rules for the comparison pages (as for `sfteval diff --config`).")
def view_cmd(results: Path, host: str, port: int, reviewer: Optional[str], token: Optional[str], overlap: int,
             seed: int, config_path: Optional[Path]) -> None:
    """Browse runs, compare two, read any item in full, and review answers (labels for judge-human agreement)."""

    @friendly
    def go() -> None:
        import secrets
        import socket

        from ..gate import load_config
        from ..labels.records import check_reviewer
        from ..view.security import is_loopback

        if token == "auto":
            tok: Optional[str] = secrets.token_urlsafe(24)
        else:
            tok = token
        if tok is not None and not _TOKEN.match(tok):
            raise click.BadParameter("use 16-200 characters from A-Z a-z 0-9 . _ ~ - (or 'auto')", param_hint="--token")
        if not is_loopback(host) and tok is None:
            click.echo(f"sfteval: error: --host {host} is reachable from other machines: pass --token T "
                       "(or --token auto) so that only people with the token can read the runs", err=True)
            sys.exit(EXIT_USAGE)
        if reviewer is not None:
            check_reviewer(reviewer)
        if not results.is_dir():
            click.echo(f"sfteval: error: no results folder at {results} (make runs with `sfteval run`, or pass "
                       "--results DIR)", err=True)
            sys.exit(EXIT_USAGE)
        gate = load_config(config_path)
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as e:
            click.echo(f"sfteval: error: cannot listen on {host}:{port} ({e.strerror}); try --port 0", err=True)
            sys.exit(EXIT_USAGE)
        bound = sock.getsockname()[1]
        import uvicorn

        from ..view.app import Settings, create_app

        app = create_app(Settings(results=results, host=host, port=bound, reviewer=reviewer, token=tok,
                                  overlap=overlap, seed=seed, gate=gate))
        shown = f"[{host}]" if ":" in host else host
        url = f"http://{shown}:{bound}/" + (f"?token={tok}" if tok else "")
        click.echo(f"sfteval view: {url}  (results: {results}; Ctrl+C stops)", err=False)
        sys.stdout.flush()
        server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off"))
        server.run(sockets=[sock])

    go()
