"""A target's known-issues file: the checks it is known to fail, each with the reason and
a link (shown as KNOWN, not gating the run)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from mxconform.targets.config import _Strict


class KnownIssue(_Strict):
    """A check this target is known to fail, and why (shown as KNOWN, not gating the run)."""

    check: Annotated[str, Field(min_length=1)]
    transport: Literal["header", "query"] | None = None
    reason: Annotated[str, Field(min_length=1)]
    link: Annotated[str, Field(pattern=r"^https?://")]

    def covers(self, check_id: str, transport: str | None) -> bool:
        return self.check == check_id and self.transport in (None, transport)


class KnownIssuesFile(_Strict):
    known_issues: list[KnownIssue]
