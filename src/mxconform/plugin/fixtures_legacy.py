"""Fixtures of the legacy API: provisioned test users and their sessions."""

from collections.abc import AsyncIterator

import pytest

from mxconform.http.client import MatrixClient
from mxconform.legacy.api import Session
from mxconform.legacy.users import LegacyUsers
from mxconform.plugin.state import bounded_cleanup, get_run
from mxconform.targets.lifecycle import RunningTarget


@pytest.fixture(scope="session")
async def legacy_users(
    target: RunningTarget, target_client: MatrixClient, request: pytest.FixtureRequest
) -> AsyncIterator[LegacyUsers]:
    """Creates test users through the target's declared provisioning; cleans up at the end."""
    run = get_run(request.config)
    state = run.state(target.name)
    users = LegacyUsers(
        state.target, target.shared_secret, run.secrets, run.names, target.server_name
    )
    state.users = users
    try:
        yield users
    finally:
        await bounded_cleanup(users, target_client)


@pytest.fixture(scope="session")
async def user(legacy_users: LegacyUsers, target_client: MatrixClient) -> Session:
    """The run's main test user on this target, logged in with one device."""
    return await legacy_users.create(target_client, "main")


@pytest.fixture
async def fresh_user(legacy_users: LegacyUsers, target_client: MatrixClient) -> Session:
    """A user of this check alone, so no other check's state (or UIA grace) leaks into it."""
    return await legacy_users.create(target_client, "check")


@pytest.fixture(scope="session")
async def logged_out_token(
    legacy_users: LegacyUsers, user: Session, target_client: MatrixClient
) -> str:
    """A token of the main user's second device, after that device logged out."""
    second = await legacy_users.login(target_client, user, "setup: second device to log out")
    await legacy_users.logout(target_client, second, "setup: log the second device out")
    return second.access_token
