"""``python -m sfteval.harness.cli``: the same as the ``sfteval`` command."""

from . import main

main()
