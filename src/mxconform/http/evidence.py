"""Evidence: each request and its response, redacted, as the report shows them."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
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


class Recorder:
    """Collects the exchanges of one check (or of one piece of housekeeping)."""

    def __init__(self) -> None:
        self.exchanges: list[Exchange] = []
