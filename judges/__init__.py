"""LLM judges and rule scorers. Judge configs are data: judges/configs/<name>.yaml.

The LLM-judge core is backend-independent: :mod:`judges.config` (load/validate/hash a config),
:mod:`judges.prompt` (judge messages, untrusted-answer handling), :mod:`judges.parse` (score dicts and
pairwise verdicts) and :mod:`judges.aggregate` (medians, usability, position-swap combination).
"""
