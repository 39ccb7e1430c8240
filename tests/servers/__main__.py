"""``python -m servers --latency 0.05``: serve the toy model from its own process (benchmarks)."""

from .openai_server import main

main()
