"""Live progress for `mxconform run` (`--console live|quiet`): a line when a target starts,
a compact progress line (rewritten in place on a terminal, every few seconds otherwise), one
line per FAIL, WARN and ERROR as it happens, and one line for a target that cannot be run.

Everything goes through pytest's terminal writer, whose file `console.py` scrubs by the run's
secret registry; pytest's own dots, percentages and summary sections are turned off by the
options `mxconform run` passes (`-qq --no-summary -o console_output_style=classic`) and by
`pytest_report_teststatus` here.
"""

from __future__ import annotations

import time
from collections import Counter
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any

import pytest

from mxconform.plugin.options import brief
from mxconform.spec.verdicts import DISPLAY_ORDER

PLUGIN_NAME = "mxconform-progress"
REPORT_EVERY_S = 5.0  # not a terminal: a progress line at most this often
REDRAW_EVERY_S = 0.1  # a terminal: the line is rewritten at most this often
LINE_VERDICTS = ("FAIL", "WARN", "ERROR")
_COLOURS: dict[str, dict[str, bool]] = {
    "PASS": {"green": True},
    "FAIL": {"red": True, "bold": True},
    "ERROR": {"red": True},
    "WARN": {"yellow": True, "bold": True},
    "INFO": {"cyan": True},
    "SKIP": {},
    "KNOWN": {"purple": True},
}


@dataclass
class _TargetProgress:
    total: int = 0
    done: int = 0
    counts: Counter[str] = field(default_factory=Counter)
    started: float | None = None
    unavailable: str | None = None
    finished: bool = False


class Progress:
    """The console of one run; `quiet` prints nothing live (the summary comes from the CLI)."""

    def __init__(self, config: pytest.Config, mode: str) -> None:
        self.config = config
        self.quiet = mode == "quiet"
        self.verbose = mode == "verbose"
        self.targets: dict[str, _TargetProgress] = {}
        self.started = time.monotonic()
        self._last_progress = 0.0
        self._open_line = False  # a terminal's progress line is on screen, unterminated

    # ---- writing ------------------------------------------------------------------------

    def _writer(self) -> Any:
        reporter = self.config.pluginmanager.get_plugin("terminalreporter")
        return getattr(reporter, "_tw", None)

    def _tty(self) -> bool:
        tw = self._writer()
        isatty = getattr(getattr(tw, "_file", None), "isatty", None)
        return bool(isatty and isatty())

    def _colour(self, text: str, verdict: str) -> str:
        tw = self._writer()
        if tw is None or not getattr(tw, "hasmarkup", False):
            return text
        markup: str = tw.markup(text, **_COLOURS.get(verdict, {}))
        return markup

    def _write(self, text: str, *, newline: bool = True) -> None:
        tw = self._writer()
        if tw is None:
            return
        capman = self.config.pluginmanager.get_plugin("capturemanager")
        out = tw._file  # the scrubbing file (console.py): every byte passes the registry
        prefix = "\r\x1b[K" if self._open_line else ""
        with capman.global_and_fixture_disabled() if capman else nullcontext():
            out.write(prefix + text + ("\n" if newline else ""))
            out.flush()
        self._open_line = not newline

    def line(self, text: str) -> None:
        """A line of its own (never lost under the progress line)."""
        if not self.quiet:
            self._write(text)

    # ---- events -------------------------------------------------------------------------

    def collected(self, items: list[pytest.Item]) -> None:
        for item in items:
            params = getattr(getattr(item, "callspec", None), "params", {})
            name = params.get("target")
            if isinstance(name, str):
                self.targets.setdefault(name, _TargetProgress()).total += 1
        if self.targets:
            per = ", ".join(f"{n} {t.total}" for n, t in self.targets.items())
            total = sum(t.total for t in self.targets.values())
            self.line(f"mxconform: {total} checks selected ({per})")

    def _target(self, name: str) -> _TargetProgress:
        state = self.targets.setdefault(name, _TargetProgress())
        if state.started is None:
            state.started = self._last_progress = time.monotonic()
        return state

    def target_starting(self, name: str, what: str) -> None:
        self._target(name)
        self.line(f"{name}: starting {what} ...")

    def target_ready(self, name: str, text: str) -> None:
        self._target(name)
        self._last_progress = time.monotonic()
        self.line(f"{name}: {text}")

    def target_unavailable(self, name: str, reason: str) -> None:
        state = self._target(name)
        state.unavailable = reason
        left = state.total - state.done
        self.line(
            self._colour(f"{name}: UNAVAILABLE", "ERROR")
            + f": {reason} (its {left} checks are ERROR, not run)"
        )

    def check_done(self, info: dict[str, Any]) -> None:
        name = info["target"]
        state = self._target(name)
        state.done += 1
        verdict = info["verdict"]
        label = "KNOWN" if verdict == "FAIL" and info["known"] else verdict
        state.counts[label] += 1
        repeated_reason = state.unavailable is not None and info["message"] == state.unavailable
        if not self.quiet and not repeated_reason and (label in LINE_VERDICTS or self.verbose):
            transport = f" [{info['transport']}]" if info["transport"] else ""
            where = f" ({name})" if len(self.targets) > 1 else ""
            self.line(
                f"  {self._colour(f'{label:<5}', label)} {info['check_id']}{transport}{where}: "
                f"{_one_line(info['message'])}"
            )
        if state.done >= state.total and not state.finished:
            state.finished = True
            if state.unavailable is None or state.counts.keys() - {"ERROR"}:
                self.line(f"{name}: done, {self._progress_text(name, state)}")
            return
        self._maybe_progress(name, state)

    def _progress_text(self, name: str, state: _TargetProgress, colour: bool = True) -> str:
        paint = self._colour if colour else (lambda text, _: text)
        counts = " ".join(
            paint(f"{v} {state.counts[v]}", v) for v in DISPLAY_ORDER if state.counts[v]
        )
        elapsed = time.monotonic() - (state.started or self.started)
        return f"{state.done}/{state.total} checks, {counts or 'none yet'}, {elapsed:.1f} s"

    def _maybe_progress(self, name: str, state: _TargetProgress) -> None:
        if self.quiet:
            return
        now = time.monotonic()
        if self._tty():
            if now - self._last_progress >= REDRAW_EVERY_S:
                self._last_progress = now
                # one screen row, or `\r` would not take it all back
                width = int(getattr(self._writer(), "fullwidth", 80)) - 1
                plain = f"{name}: {self._progress_text(name, state, colour=False)}"
                text = f"{name}: {self._progress_text(name, state)}"
                self._write(text if len(plain) <= width else plain[:width], newline=False)
        elif now - self._last_progress >= REPORT_EVERY_S:
            self._last_progress = now
            self._write(f"{name}: {self._progress_text(name, state)}")

    def finish(self) -> None:
        if self._open_line:
            self._write("", newline=False)
            self._open_line = False

    # ---- hooks --------------------------------------------------------------------------

    def pytest_sessionstart(self, session: pytest.Session) -> None:
        self.line("mxconform: collecting the checks ...")

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        self.collected(session.items)

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        if report.failed:  # pytest's own section for it is off (--no-summary)
            text = str(report.longrepr).strip().splitlines()
            self._write(f"mxconform: cannot collect {report.nodeid}: {text[-1] if text else ''}")

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        info = getattr(report, "mxconform_check", None)
        if info is not None:
            self.check_done(info)
        elif report.failed and report.when == "teardown":
            text = str(report.longrepr).strip().splitlines()
            last = text[-1] if text and brief(self.config) else ""
            self.line(
                f"  {self._colour('ERROR', 'ERROR')} cleaning up after {report.nodeid}: "
                f"{_one_line(last)}"
            )

    @pytest.hookimpl(tryfirst=True)
    def pytest_report_teststatus(
        self, report: pytest.TestReport, config: pytest.Config
    ) -> tuple[str, str, str]:
        """No dots, letters or words from pytest: this console says what happened."""
        verdict = getattr(report, "mxconform_verdict", None)
        if verdict is not None:
            return verdict.lower(), "", ""
        if report.passed and report.when != "call":
            return "", "", ""
        return report.outcome, "", ""

    @pytest.hookimpl(wrapper=True)
    def pytest_runtestloop(self, session: pytest.Session) -> Any:
        try:
            return (yield)
        finally:
            self.finish()


def _one_line(text: str, limit: int = 240) -> str:
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def get_progress(config: pytest.Config) -> Progress | None:
    plugin = config.pluginmanager.get_plugin(PLUGIN_NAME)
    return plugin if isinstance(plugin, Progress) else None
