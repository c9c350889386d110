"""The console: nothing pytest or the harness prints may carry a secret (CI logs are often
public), whatever the traceback style."""

from collections.abc import Callable
from typing import Any

import pytest

from mxconform.plugin.progress import PLUGIN_NAME, Progress
from mxconform.plugin.state import get_run, has_run


class _ScrubbingFile:
    """What pytest's terminal writer prints, passed through the run's secret registry first:
    tracebacks (`--tb=long` shows argument values), captured output and our own lines."""

    def __init__(self, inner: Any, scrub: Callable[[str], str]) -> None:
        self._inner = inner
        self._scrub = scrub

    def write(self, text: str) -> int:
        written: int = self._inner.write(self._scrub(text))
        return written

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


@pytest.hookimpl(trylast=True)
def pytest_configure(config: pytest.Config) -> None:
    """No secret on the console or in CI logs: every stream pytest writes is scrubbed."""
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    writer = getattr(reporter, "_tw", None)
    if writer is None or isinstance(getattr(writer, "_file", None), _ScrubbingFile):
        return

    def scrub(text: str) -> str:
        return get_run(config).secrets.scrub(text) if has_run(config) else text

    writer._file = _ScrubbingFile(writer._file, scrub)
    mode = config.getoption("console", "pytest")
    if mode != "pytest" and config.pluginmanager.get_plugin(PLUGIN_NAME) is None:
        config.pluginmanager.register(Progress(config, mode), PLUGIN_NAME)
