"""The `sfteval` command line: one module per command group, option groups declared once (options.py), shared
helpers in a leaf (common.py). Heavy packages (torch, transformers, pandas) load inside commands only, so
`sfteval --help` stays fast."""

from __future__ import annotations

import click

from .. import __version__
from .info import backends_cmd, plugins_cmd, runs_cmd, schema_cmd
from .judge import judge_cmd
from .merge import merge_cmd
from .labels import agreement_cmd, labels_group
from .probe import probe_cmd
from .reports import diff_cmd, gate_cmd, report_cmd
from .run import run_cmd
from .suites import suites_group
from .trend import trend_cmd
from .view import view_cmd

@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="sfteval")
def main() -> None:
    """Evaluate supervised fine-tuned LLM checkpoints per task_type, and compare versions.

    \b
    Quick start (no GPU, no network): a tiny real demo checkpoint on the demo suite
      sfteval run --model demo:v1 --suite demo
    Your checkpoint on a built-in or your own suite
      sfteval run --model ./ckpt/step-1200 --suite my_suite/ --run-name v2
    Check a suite before spending GPU time on it
      sfteval suites validate my_suite/
    """



for command in (run_cmd, merge_cmd, judge_cmd, probe_cmd, diff_cmd, gate_cmd, report_cmd, trend_cmd, suites_group, runs_cmd,
                backends_cmd, plugins_cmd, schema_cmd, view_cmd, labels_group, agreement_cmd):
    main.add_command(command)


if __name__ == "__main__":
    main()
