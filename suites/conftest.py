"""The suites run through the mxconform pytest plugin (targets, fixtures, verdicts, report)."""

pytest_plugins = ["mxconform.plugin"]
