"""Where a target's OAuth credentials may go: the origins servers.yaml names, never the ones
the server's own metadata names.

A homeserver's metadata is what a hostile (or misconfigured) server controls: an issuer or an
endpoint on another origin would send that origin the harness accounts' passwords, the
operator's, codes, verifiers and tokens. So the operator names the origins (`base_url`,
`oauth.issuer`, `oauth.login_origins`; an embedded target names its own), and metadata that
puts an issuer or a credential-bearing endpoint anywhere else stops the target's OAuth checks
with one ERROR saying which key to set.
"""

from __future__ import annotations

from dataclasses import replace

from mxconform.errors import PreconditionFailed
from mxconform.http.limits import origin
from mxconform.oauth.client import Metadata
from mxconform.targets.config import OAuthConfig, Target
from mxconform.targets.lifecycle import RunningTarget

# Metadata keys whose URLs receive credentials (every `*_endpoint` too); others (jwks_uri,
# policy pages) may be elsewhere: the harness sends them none.
_CREDENTIAL_KEYS = ("issuer", "account_management_uri")


class ForeignOrigin(PreconditionFailed):
    """The metadata names an origin servers.yaml does not: a misconfiguration or a
    misdirection, not a rule the target broke, so ERROR (never FAIL) and nothing is sent."""


def named_origins(target: Target, running: RunningTarget) -> frozenset[str]:
    """The origins servers.yaml names for this target's OAuth credentials."""
    config = target.oauth or OAuthConfig()
    found = {origin(running.base_url), *config.login_origins}
    for issuer in (config.issuer, running.oauth_issuer):
        if issuer:
            found.add(origin(issuer))
    return frozenset(found)


def _credential_urls(metadata: Metadata) -> list[tuple[str, str]]:
    """(key, absolute URL) of every metadata entry a credential would be sent to."""
    found = []
    for key, value in metadata.data.items():
        if key not in _CREDENTIAL_KEYS and not key.endswith("_endpoint"):
            continue
        if isinstance(value, str) and value.startswith(("http://", "https://")):
            found.append((key, value))  # a relative one is unusable: never requested
    return found


def bind(metadata: Metadata, named: frozenset[str], target: str) -> Metadata:
    """The metadata, bound to the named origins; ForeignOrigin (one reason for all the
    target's OAuth checks) when an issuer or endpoint is on any other origin."""
    foreign: dict[str, list[str]] = {}
    for key, url in _credential_urls(metadata):
        if origin(url) not in named:
            foreign.setdefault(origin(url), []).append(key)
    if not foreign:
        return replace(metadata, named=named)
    issuer = metadata.get("issuer")
    parts = []
    for there, keys in sorted(foreign.items()):
        if isinstance(issuer, str) and "issuer" in keys:
            fix = f"oauth.issuer: {issuer}"
        else:
            fix = f"oauth.login_origins: [{there}]"
        parts.append(
            f"{there} for {', '.join(keys)} (if that is this target's OAuth server, set "
            f"`{fix}` in servers.yaml)"
        )
    raise ForeignOrigin(
        f"target {target}: its server metadata names {'; and '.join(parts)}: an origin "
        f"servers.yaml does not name for it (it names {', '.join(sorted(named))}). No OAuth "
        "check is run: credentials go only to the origins servers.yaml names"
    )
