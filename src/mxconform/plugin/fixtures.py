"""Fixtures every check can use: the target, its client, what it says about itself."""

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from mxconform.errors import HarnessError, NotApplicable
from mxconform.http.client import MatrixClient, Pacer, new_http_client
from mxconform.http.evidence import Exchange, Recorder, shared_copies
from mxconform.oauth.drivers.base import DRIVER_GRANTS
from mxconform.plugin.state import get_run, has_run
from mxconform.plugin.targets import ensure_ready
from mxconform.spec import requirements
from mxconform.targets.lifecycle import RunningTarget


@pytest.fixture(scope="session")
def target(request: pytest.FixtureRequest) -> RunningTarget:
    """The target under test: started and identified before its first check (stopped when
    the run ends, in `record`)."""
    run = get_run(request.config)
    return ensure_ready(run, run.state(request.param), request.config)


@pytest.fixture(scope="session")
async def target_client(
    target: RunningTarget,
    request: pytest.FixtureRequest,
) -> AsyncIterator[MatrixClient]:
    """A client for the harness's own housekeeping on this target (not part of any check)."""
    run = get_run(request.config)
    state = run.state(target.name)
    t = state.target

    tls = state.tls  # every client made for this target (login drivers too) uses it
    async with new_http_client(tls) as http:
        client = MatrixClient(
            http,
            target.base_url,
            state.setup_recorder,
            run.secrets,
            Pacer(t.request_rate),  # shared by every client of this target, as is the budget
            t.policy(),
            on_login=lambda data: state.users.note_login(data) if state.users else None,
            budget=state.budget,
            tls=tls,
        )
        client.homeserver_header = state.identity.server_header if state.identity else None
        yield client


@pytest.fixture(scope="session")
def server(target: RunningTarget, request: pytest.FixtureRequest) -> dict[str, Any]:
    """What the server said about itself at preflight, and the version it is held to."""
    state = get_run(request.config).state(target.name)
    assert state.identity is not None  # set by ensure_ready before any check
    version = requirements.parse_version(state.info["spec_version_evaluated"])
    return {"versions": state.identity.advertised, "evaluated": version}


@pytest.fixture
def hs(target_client: MatrixClient, request: pytest.FixtureRequest) -> MatrixClient:
    """The client a check uses: every exchange lands in that check's evidence."""
    run = get_run(request.config)
    if run.active is None:
        raise HarnessError("the hs fixture is only for checks (@pytest.mark.check)")
    return target_client.with_recorder(run.active.recorder)


# The spec version that introduced an auth API: a target declaring it is held to it at least.
API_SINCE = {"oauth": (1, 15)}


@pytest.fixture(autouse=True)
def _requirement_gate(request: pytest.FixtureRequest) -> None:
    """SKIP a check whose requirements do not apply at the target's spec version."""
    run = get_run(request.config) if has_run(request.config) else None
    if run is None or run.active is None or "target" not in request.fixturenames:
        return
    info: dict[str, Any] = request.getfixturevalue("server")
    version = info["evaluated"]
    if version is None:
        return
    declared = API_SINCE.get(run.active.auth_api or "")
    if declared is not None and version < declared:
        # A target declaring the OAuth API is judged on its rules from the version that
        # introduced them, whatever older version it advertises (else it grades none).
        run.active.state.notes.append(
            f"held to {requirements.format_version(declared)} for the {run.active.auth_api} "
            f"API it declares (it advertises {requirements.format_version(version)})"
        )
        version = declared
    run.active.state.version = version
    for rid in run.active.state.gating or run.active.state.requirement_ids:
        req = requirements.get(rid)
        if not req.applies_to(version):
            raise NotApplicable(req.why_not(version), "version")


@dataclass(frozen=True)
class TokenHolder:
    """A user with a valid access token, from whichever API the check runs as."""

    user_id: str
    access_token: str = field(repr=False)  # secrets never reach a repr (tracebacks)
    api: str


@pytest.fixture
def token_holder(request: pytest.FixtureRequest) -> TokenHolder:
    """The run's main user of the API the check runs as (`api("legacy", "oauth")`): the
    legacy `user`, or, on a target offering only OAuth, the OAuth `oauth_user`."""
    run = get_run(request.config)
    if run.active is not None and run.active.auth_api == "oauth":
        target: RunningTarget = request.getfixturevalue("target")
        run.active.grant = DRIVER_GRANTS[run.driver_of(run.state(target.name).target)]
        login = request.getfixturevalue("oauth_user")
        return TokenHolder(login.account.user_id, login.tokens.access_token, "oauth")
    user = request.getfixturevalue("user")
    return TokenHolder(user.user_id, user.access_token, "legacy")


class SharedSetup:
    """Setup made once per target and shared by the checks that only read it (both
    transports of one check), so a token that costs a login is not issued twice. Its
    exchanges join the evidence of every check that uses it. Only what was made is kept: a
    setup that failed or skipped is tried again by the next check."""

    def __init__(self) -> None:
        self._made: dict[str, tuple[Any, list[Exchange]]] = {}

    async def get(
        self, key: str, hs: MatrixClient, make: Callable[[MatrixClient], Awaitable[Any]]
    ) -> Any:
        if key not in self._made:
            recorder = Recorder()
            try:
                value = await make(hs.with_recorder(recorder))
            finally:
                hs.recorder.exchanges.extend(recorder.exchanges)
            self._made[key] = (value, recorder.exchanges)
            return value
        value, exchanges = self._made[key]
        hs.recorder.exchanges.extend(shared_copies(exchanges))
        return value


@pytest.fixture(scope="session")
def shared_setup(target: RunningTarget) -> SharedSetup:
    """This target's setup shared between checks (SharedSetup)."""
    return SharedSetup()
