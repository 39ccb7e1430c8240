"""Built-in suites (data). `sfteval run --suite NAME` finds a folder here by name."""
