"""What a run did to a target's accounts, as results.json reports it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Housekeeping:
    """What the harness created on a target, and what it cleaned up; listed in the report."""

    users_created: list[str] = field(default_factory=list)
    users_deactivated: list[str] = field(default_factory=list)
    devices_logged_out: int = 0
    problems: list[str] = field(default_factory=list)
    # Accounts left to go with the server (`cleanup: discard`): not deactivated one by one.
    users_discarded: list[str] = field(default_factory=list)
    # The run's ledger of accounts while any is left active (`mxconform cleanup` reads it).
    ledger: str | None = None

    @property
    def left_active(self) -> list[str]:
        """Accounts the run made that are neither deactivated nor going with the server."""
        done = {*self.users_deactivated, *self.users_discarded}
        return sorted({u for u in self.users_created if u not in done})

    def to_json(self) -> dict[str, Any]:
        return {
            "users_created": self.users_created,
            "users_deactivated": self.users_deactivated,
            "users_discarded": self.users_discarded,
            "users_left_active": self.left_active,
            "devices_logged_out": self.devices_logged_out,
            "problems": self.problems,
            **({"ledgers": [self.ledger]} if self.ledger else {}),
        }

    def discard_all(self) -> None:
        """Every account the run made is left to be deleted with the server."""
        done = set(self.users_deactivated)
        self.users_discarded = sorted(u for u in self.users_created if u not in done)
