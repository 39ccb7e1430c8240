"""Suite tools: stats, lint and sample for any suite; the suite writer shared with the importers.

Why: generated SFT data is homogeneous and answers must be clean to the punctuation mark
(PRACTICE 14); a suite has to be checked and sized before GPU time is spent on it.
"""

from .lint import Finding, LintReport, lint_suite
from .sample import sample_suite
from .stats import suite_stats
from .writer import write_suite

__all__ = ["Finding", "LintReport", "lint_suite", "sample_suite", "suite_stats", "write_suite"]
