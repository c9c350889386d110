"""The requirement catalogue, and which requirements apply to a server's spec version."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from typing import Literal

import yaml

from mxconform.paths import data_file

Level = Literal["MUST", "SHOULD", "MAY", "unspecified"]
SpecVersion = tuple[int, int]

_VERSION = re.compile(r"^(?:v(\d+)\.(\d+)|r0\.(\d+)\.\d+)$")


def parse_version(text: str) -> SpecVersion | None:
    """`v1.15` → (1, 15); the r0 era sorts below v1.0; anything else is None."""
    match = _VERSION.match(text.strip())
    if match is None:
        return None
    if match.group(3) is not None:
        return (0, int(match.group(3)))
    return (int(match.group(1)), int(match.group(2)))


# The newest spec version the catalogue knows (v1.20 is the spec's main branch: the query
# token's removal). A server advertising a newer one is held to this, and the page says so.
NEWEST_KNOWN: SpecVersion = (1, 20)


def is_known_version(text: str) -> bool:
    """r0.x, or v1.1 up to the newest the catalogue knows (there is no v1.0)."""
    parsed = parse_version(text)
    return parsed is not None and (parsed[0] == 0 or (1, 1) <= parsed <= NEWEST_KNOWN)


def format_version(version: SpecVersion) -> str:
    return f"v{version[0]}.{version[1]}" if version[0] >= 1 else f"r0.{version[1]}"


def evaluated_version(advertised: list[str], override: str | None) -> SpecVersion | None:
    """The version a server is held to: an explicit override, else the newest it advertises."""
    if override:
        return parse_version(override)
    parsed = [v for v in (parse_version(a) for a in advertised) if v is not None]
    return max(parsed) if parsed else None


@dataclass(frozen=True)
class Requirement:
    id: str
    area: str
    level: Level
    basis: str
    binds: str
    page: str
    anchor: str
    since: str | None
    until: str | None
    statement: str
    anchor_before_v1_19: str | None = None
    gate_source: str | None = None  # where since/until come from (spec data, changelog)
    # A row no check cites says why: it cannot be observed from a client (`untestable`), or
    # a check would need a capability the harness is not given (`needs`, e.g. `admin`).
    untestable: str | None = None
    needs: str | None = None

    def applies_to(self, version: SpecVersion | None) -> bool:
        if version is None:
            return True
        since = parse_version(self.since) if self.since else None
        until = parse_version(self.until) if self.until else None
        return (since is None or version >= since) and (until is None or version < until)

    def why_not(self, version: SpecVersion) -> str:
        at = f"server evaluated at {format_version(version)}"
        if self.until and version >= (parse_version(self.until) or version):
            return f"{self.id} was removed in {self.until}; {at}"
        return f"{self.id} applies from {self.since}; {at}"

    def url(self, version: SpecVersion | None) -> str:
        """Link to the rule in the spec version under evaluation (latest when unknown)."""
        label = format_version(version) if version and version >= (1, 1) else "latest"
        anchor = self.anchor
        if self.anchor_before_v1_19 and version is not None and version < (1, 19):
            anchor = self.anchor_before_v1_19
        return f"https://spec.matrix.org/{label}/{self.page}/{anchor}"


@cache
def catalogue() -> dict[str, Requirement]:
    # libyaml's loader where PyYAML has it: the pure-Python one takes over half a second here
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    raw = yaml.load(data_file("requirements.yaml").read_text(), Loader=loader)
    items = [Requirement(**entry) for entry in raw["requirements"]]
    return {item.id: item for item in items}


def get(requirement_id: str) -> Requirement:
    try:
        return catalogue()[requirement_id]
    except KeyError:
        raise KeyError(f"unknown requirement id {requirement_id!r}") from None
