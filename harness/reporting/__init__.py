"""Reports of runs and diffs: markdown for PR comments, JSON for machines, self-contained HTML for people."""
