"""Fixtures of the OAuth 2.0 API: metadata, users through the login driver."""

from collections.abc import AsyncIterator

import pytest

from mxconform.http.client import MatrixClient
from mxconform.oauth.client import Metadata, OAuthApi, discover
from mxconform.oauth.drivers.base import Account
from mxconform.oauth.origins import bind, named_origins
from mxconform.oauth.tokens import IssuedTokens
from mxconform.oauth.users import OAuthLogin, OAuthUsers
from mxconform.plugin.state import bounded_cleanup, get_run, report_dir
from mxconform.spec.verdicts import unmet
from mxconform.targets.lifecycle import RunningTarget


@pytest.fixture(scope="session")
async def oauth_metadata(
    target: RunningTarget, target_client: MatrixClient, request: pytest.FixtureRequest
) -> Metadata:
    """The target's OAuth 2.0 server metadata, bound to the origins servers.yaml names. A
    target declaring the OAuth API but serving none fails every OAuth check; one whose
    metadata names another origin makes them ERROR (`origins.bind`); one not declaring it
    never gets here (SKIP)."""
    meta, resp = await discover(target_client)
    if meta is None:
        unmet(
            f"the target declares the OAuth 2.0 API but GET {resp.request.url.path} "
            f"answers HTTP {resp.status_code}",
            req="OAUTH-META-ENDPOINT",
            expected="HTTP 200 with server metadata",
            observed=f"HTTP {resp.status_code}",
        )
    assert meta is not None
    state = get_run(request.config).state(target.name)
    state.info["oauth_metadata_path"] = meta.path
    return bind(meta, named_origins(state.target, target), target.name)


@pytest.fixture(scope="session")
def oauth_issued(target: RunningTarget) -> IssuedTokens:
    """Every token this target's token endpoint gave the run, whoever asked (a check's own
    refresh or device grant included): `oauth_users` revokes them all at the end."""
    return IssuedTokens()


@pytest.fixture(scope="session")
async def oauth_users(
    target: RunningTarget,
    target_client: MatrixClient,
    oauth_metadata: Metadata,
    oauth_issued: IssuedTokens,
    request: pytest.FixtureRequest,
) -> AsyncIterator[OAuthUsers]:
    """Accounts and logins through the target's login driver; every token the run was
    issued revoked, and every account it made deactivated, at the end."""
    run = get_run(request.config)
    state = run.state(target.name)
    users = OAuthUsers(
        state.target,
        target,
        oauth_metadata,
        target_client,
        run.secrets,
        run.names,
        run.oauth_driver,
        artifacts_dir=report_dir(run) / "browser" / target.name,
        issued=oauth_issued,
    )
    state.oauth_users = users
    state.info["oauth_driver"] = users.config.driver
    try:
        yield users
    finally:
        await bounded_cleanup(users, target_client, state.target)


@pytest.fixture(scope="session")
async def oauth_user(oauth_users: OAuthUsers, target_client: MatrixClient) -> OAuthLogin:
    """The run's main OAuth user on this target, with one device logged in."""
    account = await oauth_users.account(target_client, "oauth")
    return await oauth_users.login(target_client, account, "setup: main OAuth login")


@pytest.fixture
def oauth(hs: MatrixClient, oauth_metadata: Metadata, oauth_issued: IssuedTokens) -> OAuthApi:
    """The target's OAuth 2.0 endpoints, called through the check's recording client."""
    return OAuthApi(hs, oauth_metadata, oauth_issued)


@pytest.fixture
async def oauth_account(oauth_users: OAuthUsers, target_client: MatrixClient) -> Account:
    """An account of this check alone (nothing else logged in on it)."""
    return await oauth_users.account(target_client, "check")
