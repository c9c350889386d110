"""The pytest plugin that turns suites into checks: targets, fixtures, verdicts, results.

It is inert for ordinary tests: only items marked `@pytest.mark.check(...)` are checks.
Each job lives in its own module; pytest registers them all through this one.
"""

pytest_plugins = [
    "mxconform.plugin.options",
    "mxconform.plugin.console",
    "mxconform.plugin.checks",
    "mxconform.plugin.fixtures",
    "mxconform.plugin.fixtures_legacy",
    "mxconform.plugin.fixtures_oauth",
    "mxconform.plugin.judge",
    "mxconform.plugin.record",
    "mxconform.plugin.targets",
    "mxconform.plugin.shard",
    "mxconform.plugin.selection",
]
