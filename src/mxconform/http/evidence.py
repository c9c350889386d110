"""Evidence: each request and its response, redacted, as the report shows them."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any


@dataclass
class Exchange:
    """One request and its response, redacted, as shown in the report."""

    method: str
    url: str
    request_headers: list[tuple[str, str]]
    request_body: Any
    started_at: str
    duration_ms: float = 0.0
    status: int | None = None
    response_headers: list[tuple[str, str]] = field(default_factory=list)
    response_body: Any = None
    error: str | None = None
    note: str | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


# The note that marks an exchange shown again in a later check's evidence: it was sent once,
# for an earlier check (plugin.fixtures.SharedSetup), so it is not counted twice.
SHARED_NOTE = "shared setup, sent once for an earlier check"


def shared_copies(exchanges: list[Exchange]) -> list[Exchange]:
    """The exchanges as a later check shows them: the same, marked as sent once before."""
    return [
        replace(e, note=f"{SHARED_NOTE}: {e.note}" if e.note else SHARED_NOTE) for e in exchanges
    ]


class Recorder:
    """Collects the exchanges of one check (or of one piece of housekeeping)."""

    def __init__(self) -> None:
        self.exchanges: list[Exchange] = []
