"""Fixtures of the legacy API: provisioned test users and their sessions."""

from collections.abc import AsyncIterator, Generator
from typing import Any

import pytest

from mxconform.errors import PreconditionFailed, Unsupported
from mxconform.http.client import MatrixClient
from mxconform.legacy.admin import SynapseAdmin
from mxconform.legacy.api import Session
from mxconform.legacy.ledger import Ledger
from mxconform.legacy.refresh_session import RefreshSession
from mxconform.legacy.users import LegacyUsers
from mxconform.plugin.checks import check_id_of, check_key
from mxconform.plugin.early import EarlyLogin, EarlyLogins, planned, uses
from mxconform.plugin.plan import plan_line
from mxconform.plugin.progress import get_progress
from mxconform.plugin.state import (
    SELECTION_KEY,
    bounded_cleanup,
    get_run,
    has_run,
    report_dir,
    say,
)
from mxconform.targets.lifecycle import RunningTarget


@pytest.hookimpl(wrapper=True)
def pytest_collection_modifyitems(
    config: pytest.Config, items: list[pytest.Item]
) -> Generator[None, None, None]:
    """Run each target's `expiring_login` checks after its other checks: their logins start
    at the target's first check, so by then the tokens have expired and the checks do not
    sleep (in a process sharing a target, the sleep held up that process's share). Results
    keep the selection order (SELECTION_KEY)."""
    yield  # after -k, --requirement and --shard have selected
    config.stash[SELECTION_KEY] = {item.nodeid: i for i, item in enumerate(items)}
    waiting = set(uses(items, "expiring_login"))
    if not waiting:
        return
    ordered: list[pytest.Item] = []
    held: list[pytest.Item] = []
    for i, item in enumerate(items):
        (held if item in waiting else ordered).append(item)
        after = items[i + 1] if i + 1 < len(items) else None
        if held and (after is None or _target_of(after) != _target_of(item)):
            ordered += held  # at the end of this target's run of checks
            held = []
    items[:] = ordered


def _target_of(item: pytest.Item) -> Any:
    return getattr(getattr(item, "callspec", None), "params", {}).get("target")


@pytest.fixture(scope="session")
async def legacy_users(
    target: RunningTarget, target_client: MatrixClient, request: pytest.FixtureRequest
) -> AsyncIterator[LegacyUsers]:
    """Creates test users through the target's declared provisioning; cleans up at the end."""
    run = get_run(request.config)
    state = run.state(target.name)
    if state.provisioning_error is not None:  # one reason, no request per check
        raise PreconditionFailed(f"precondition failed: {state.provisioning_error}")
    ledger = None
    if not state.target.discards_accounts:
        ledger = Ledger.for_run(
            run.names.run_id,
            target.name,
            {
                "servers": str(run.servers_path.resolve()),
                "base_url": target.base_url,
                "server_name": target.server_name,
                "report": str(report_dir(run).resolve()),
            },
        )
    users = LegacyUsers(
        state.target,
        target.shared_secret,
        run.secrets,
        run.names,
        target.server_name,
        ledger=ledger,
        admin_url=target.admin_url,
    )
    state.users = users
    try:
        yield users
    finally:
        if isinstance(state.early, EarlyLogins):
            await state.early.settle()
        await bounded_cleanup(users, target_client, state.target)
        left = ledger.finish() if ledger is not None else None
        if left is not None:
            users.housekeeping.ledger = str(left.path)


@pytest.fixture(autouse=True)
def _early_starts(request: pytest.FixtureRequest) -> None:
    """At a legacy target's first check: start registering the accounts its later checks
    will each need, and the logins whose tokens must expire, so that both overlap the checks
    in between (plugin/early.py)."""
    run = get_run(request.config) if has_run(request.config) else None
    if run is None or run.active is None or "target" not in request.fixturenames:
        return
    state = run.state(run.active.target) if run.active.target in run.states else None
    if state is None or state.early is not None or state.running is None:
        return
    if "legacy" not in state.target.auth:
        state.early = False
        return
    server = request.getfixturevalue("server")
    items = planned(request.session, state.target, server["evaluated"])
    _announce_plan(request.config, state.target.name, items)
    # One login per check, not per transport: both transports only read the expired token.
    expiring = list(dict.fromkeys(check_id_of(item) for item in uses(items, "expiring_login")))
    fresh = len(uses(items, "fresh_user"))
    if not fresh and not expiring:
        state.early = False
        return
    state.early = EarlyLogins(
        request.getfixturevalue("legacy_users"),
        request.getfixturevalue("target_client"),
        fresh,
        expiring,
    )
    request.getfixturevalue("_start_early")


def _announce_plan(config: pytest.Config, target: str, items: list[pytest.Item]) -> None:
    """Before the first check: what the selected checks will spend of the operations a
    server rate-limits hardest (plugin/plan.py), so an operator knows the cost up front."""
    line = f"{target}: {plan_line([check_key(item) for item in items])}"
    progress = get_progress(config)
    if progress is not None:
        progress.line(line)
    else:
        say(config, f"mxconform: {line}")


@pytest.fixture
async def _start_early(request: pytest.FixtureRequest) -> None:
    """Starts the planned work inside the run's event loop (`_early_starts` has none)."""
    run = get_run(request.config)
    assert run.active is not None
    run.state(run.active.target).early.begin()


@pytest.fixture(scope="session")
async def user(legacy_users: LegacyUsers, target_client: MatrixClient) -> Session:
    """The run's main test user on this target, logged in with one device."""
    return await legacy_users.create(target_client, "main")


@pytest.fixture
async def fresh_user(legacy_users: LegacyUsers, target_client: MatrixClient) -> Session:
    """A user of this check alone, so no other check's state (or UIA grace) leaks into it."""
    return await legacy_users.fresh(target_client)


@pytest.fixture
async def expiring_login(
    request: pytest.FixtureRequest, legacy_users: LegacyUsers, target_client: MatrixClient
) -> EarlyLogin:
    """A fresh user's login with `refresh_token: true`, made when the target's first check
    started: its token's lifetime has mostly run by the time this check waits it out. The
    transports of one check share it (they only read the expired token). Its exchange is
    part of each check's evidence."""
    run = get_run(request.config)
    assert run.active is not None
    early = run.state(run.active.target).early
    if not isinstance(early, EarlyLogins):  # not started: the check makes its own login now
        early = EarlyLogins(legacy_users, target_client)
    login = await early.take(check_id_of(request.node))
    run.active.recorder.exchanges.extend(login.evidence())
    return login


@pytest.fixture
async def synapse_admin(legacy_users: LegacyUsers, target_client: MatrixClient) -> SynapseAdmin:
    """An administrator for the check's own account (legacy/admin.py), or SKIP: the target
    gives no `admin_token` and does not provision through synapse-shared-secret."""
    admin = await legacy_users.admin(target_client)
    if admin is None:
        raise Unsupported(
            "needs admin access: give the target an admin_token, or provision its users "
            "with synapse-shared-secret"
        )
    return admin


@pytest.fixture(scope="session")
async def logged_out_token(legacy_users: LegacyUsers, target_client: MatrixClient) -> str:
    """A token of an account made for it, after its device logged out (a registration's
    token, not a login's: logins are what servers rate-limit hardest)."""
    session = await legacy_users.create(target_client, "logged-out")
    await legacy_users.logout(target_client, session, "setup: log the account's device out")
    return session.access_token


@pytest.fixture(scope="session")
def refresh_session(legacy_users: LegacyUsers, target_client: MatrixClient) -> RefreshSession:
    """One refreshable login that the refresh checks share, each from the pair the last
    one left (legacy/refresh_session.py): one login, not one per check."""
    return RefreshSession(legacy_users, target_client)
