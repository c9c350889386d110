"""Verdicts, and the state of the check being run.

A check's expectations cite requirements. A broken MUST ends the check at once with FAIL;
a broken SHOULD is noted and the check goes on (WARN unless something worse follows); an
observation where the spec is silent makes the check INFO. SKIP carries a reason; ERROR is
the harness's or the network's fault and is never counted as FAIL.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from mxconform.errors import HarnessError, PreconditionFailed, Unsupported
from mxconform.spec import requirements


class Verdict(StrEnum):
    PASS = "PASS"
    FAIL = "FAIL"
    WARN = "WARN"
    INFO = "INFO"
    SKIP = "SKIP"
    ERROR = "ERROR"


VERDICT_ORDER = [
    Verdict.FAIL,
    Verdict.ERROR,
    Verdict.WARN,
    Verdict.INFO,
    Verdict.PASS,
    Verdict.SKIP,
]

# The one order every output lists verdicts in (console, summary, page, matrix): what needs
# attention first. KNOWN is a FAIL the target's known-issues file lists.
DISPLAY_ORDER = ("FAIL", "KNOWN", "ERROR", "WARN", "INFO", "PASS", "SKIP")


def verdict_for_level(level: str) -> Verdict:
    """What breaking a rule of this level means."""
    return {"MUST": Verdict.FAIL, "SHOULD": Verdict.WARN}.get(level, Verdict.INFO)


@dataclass
class Finding:
    requirement: str
    verdict: Verdict
    message: str
    expected: Any = None
    observed: Any = None


class Unmet(AssertionError):
    """A MUST-level expectation was not met: the check stops here."""

    def __init__(self, finding: Finding) -> None:
        super().__init__(finding.message)
        self.finding = finding


@dataclass
class CheckState:
    """What one running check has found so far."""

    check_id: str
    requirement_ids: list[str]
    findings: list[Finding] = field(default_factory=list)
    observations: list[str] = field(default_factory=list)
    observed_under: list[str] = field(default_factory=list)  # the silent rules observed
    gating: list[str] = field(default_factory=list)  # rules whose gate decides if it runs
    version: requirements.SpecVersion | None = None  # the target's held-to version
    notes: list[str] = field(default_factory=list)

    @property
    def primary(self) -> str:
        return self.requirement_ids[0]

    def verdict(self) -> Verdict:
        """The worst finding wins; observations alone give INFO; nothing gives PASS."""
        verdicts = {f.verdict for f in self.findings}
        for candidate in (Verdict.FAIL, Verdict.WARN, Verdict.INFO):
            if candidate in verdicts:
                return candidate
        return Verdict.INFO if self.observations else Verdict.PASS


_current: CheckState | None = None


def begin(state: CheckState) -> None:
    global _current
    _current = state


def end() -> None:
    global _current
    _current = None


def current() -> CheckState:
    if _current is None:
        raise RuntimeError("expectations can only be made inside a running check")
    return _current


def cite(req: str | None) -> None:
    """A rule an expectation judges, met or not, is the check's: its PASS rests on it too
    (results.json lists it with the check, and coverage counts it as run)."""
    if req is None or _current is None:
        return
    if _current.version is not None and not requirements.get(req).applies_to(_current.version):
        return
    if req not in _current.requirement_ids:
        _current.requirement_ids.append(req)


def unmet(message: str, *, req: str | None, expected: Any = None, observed: Any = None) -> None:
    """Record a broken rule; raise if it is a MUST."""
    state = current()
    rid = req or state.primary
    rule = requirements.get(rid)
    if state.version is not None and not rule.applies_to(state.version):
        note(f"not judged: {rule.why_not(state.version)}")  # the rule is not in its version
        return
    if rid not in state.requirement_ids:
        state.requirement_ids.append(rid)
    verdict = verdict_for_level(rule.level)
    finding = Finding(rid, verdict, message, expected, observed)
    if verdict is Verdict.FAIL:
        raise Unmet(finding)
    state.findings.append(finding)


def observe(note: str, *, req: str | None = None) -> None:
    """Record what happened where the spec is silent (the check becomes INFO). `req` names
    the rule that leaves it open; by default the check's first rule that is not a MUST or
    a SHOULD, so an INFO never rests on a rule it does not judge."""
    state = current()
    rid = req or next(
        (r for r in state.requirement_ids if requirements.get(r).level not in ("MUST", "SHOULD")),
        state.primary,
    )
    if rid not in state.requirement_ids:
        state.requirement_ids.append(rid)
    state.observations.append(note)
    if rid not in state.observed_under:
        state.observed_under.append(rid)


def basis(state: CheckState, verdict: Verdict) -> list[str]:
    """The rules a verdict rests on: the broken ones for FAIL and WARN, the silent ones
    observed for INFO, every cited rule for PASS; none for SKIP and ERROR."""
    if verdict in (Verdict.FAIL, Verdict.WARN):
        return list(dict.fromkeys(f.requirement for f in state.findings if f.verdict is verdict))
    if verdict is Verdict.INFO:
        return list(state.observed_under) or [
            f.requirement for f in state.findings if f.verdict is Verdict.INFO
        ]
    if verdict is Verdict.PASS:
        return list(state.requirement_ids)
    return []


def note(text: str) -> None:
    """Keep a measurement with the verdict (a token lifetime, a delay) without changing it."""
    current().notes.append(text)


@contextmanager
def precondition(what: str) -> Iterator[None]:
    """Run a step the check needs before its request under test. Whatever goes wrong in it
    (an expectation, an assertion, a harness or network error) is ERROR "precondition
    failed: ...", never a FAIL of the rule under test, which was not tried. SKIPs (pytest's
    skip, Unsupported) pass through: the server may legitimately lack what is needed."""
    try:
        yield
    except (Unsupported, PreconditionFailed):
        raise
    except Unmet as exc:
        raise PreconditionFailed(f"precondition failed: {what}: {exc.finding.message}") from None
    except AssertionError as exc:
        raise PreconditionFailed(f"precondition failed: {what}: {exc}") from None
    except HarnessError as exc:
        raise PreconditionFailed(f"precondition failed: {what}: {exc}") from exc
