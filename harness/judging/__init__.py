"""The LLM-judge stage: single grading as a Scorer, pairwise grading with position swap, reliability.

The pure judge core (configs, prompts, parsing, aggregation) is :mod:`judges`; this package connects
it to backends and run folders. Modules: ``spec`` (which judge), ``engine`` (cached, batched judge
calls), ``single`` (JudgeScorer), ``metrics`` (per-item judge metrics, the summary's judge block),
``pair`` (pairwise runs; its docstring documents the ``results/<B>/pairs/<A>/`` layout), ``report`` (markdown).
Cost: ``cost`` (prices, prompt-token counting), ``dryrun`` (the ``--dry-run`` estimate), ``budget`` (the
``--max-cost`` / ``--max-judge-calls`` gate), ``batch`` (the OpenAI Batch API and vLLM's batch runner),
``adaptive`` (adaptive repeats in rounds), ``usage`` (calls, tokens and cost from the stored records).
"""
