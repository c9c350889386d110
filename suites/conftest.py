"""The suites run through the mxconform pytest plugin (targets, fixtures, verdicts, report)."""

import pytest

pytest_plugins = ["mxconform.plugin"]


# Shared by the OAuth suites and the token-kind checks (tokens/check_kinds.py).
@pytest.fixture
def account(oauth_user):
    """The run's main OAuth account, for checks that change nothing about the account: its
    user agent is already logged in, so a real MAS sees one password login, not one per check
    (MAS limits password checks to a few per minute)."""
    return oauth_user.account


@pytest.fixture
def grace(target):
    """How long the homeserver may keep accepting a revoked token (servers.yaml)."""
    return target.target.oauth.revocation_grace_s if target.target.oauth else 10.0
