"""Fixtures every check can use: the target, its client, what it says about itself."""

from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from mxconform.errors import HarnessError
from mxconform.http.client import MatrixClient, Pacer, new_http_client
from mxconform.plugin.state import get_run, has_run, report_dir, say
from mxconform.spec import requirements
from mxconform.spec.matchers import body
from mxconform.targets.config import ConfigError
from mxconform.targets.lifecycle import RunningTarget, start_target


@pytest.fixture(scope="session")
def target(request: pytest.FixtureRequest) -> Iterator[RunningTarget]:
    """The target under test, started here when it is embedded, stopped at the end."""
    run = get_run(request.config)
    state = run.state(request.param)
    if state.start_error:
        raise HarnessError(state.start_error)
    if state.running is None:
        try:
            log_dir = report_dir(run) / "logs" / state.target.name
            state.running = start_target(state.target, log_dir)
        except (HarnessError, ConfigError) as exc:
            state.start_error = f"target {state.target.name} could not be started: {exc}"
            raise HarnessError(state.start_error) from exc
        if state.running.embedded is not None:
            startup = state.running.embedded.startup_s or 0.0
            state.info["startup_s"] = round(startup, 2)
            say(
                request.config,
                f"mxconform: started embedded {state.target.embedded} "
                f"'{state.target.name}' at {state.running.base_url} in {startup:.1f}s",
            )
        run.secrets.add(state.running.shared_secret, "shared_secret")
        if state.running.oauth_admin is not None:
            admin = state.running.oauth_admin
            run.secrets.add_pair(admin.client_id, admin.client_secret)
        for held in state.running.held_secrets:
            run.secrets.add(held, "shared_secret")
    try:
        yield state.running
    finally:
        state.running.stop(run.secrets.scrub)


@pytest.fixture(scope="session")
async def target_client(
    target: RunningTarget,
    request: pytest.FixtureRequest,
) -> AsyncIterator[MatrixClient]:
    """A client for the harness's own housekeeping on this target (not part of any check)."""
    run = get_run(request.config)
    state = run.state(target.name)
    t = state.target

    tls = t.ssl_context()  # every client made for this target (login drivers too) uses it
    async with new_http_client(tls) as http:
        yield MatrixClient(
            http,
            target.base_url,
            state.setup_recorder,
            run.secrets,
            Pacer(t.request_rate),  # shared by every client of this target, as is the budget
            t.policy(),
            on_login=lambda data: state.users.note_login(data) if state.users else None,
            tls=tls,
        )


@pytest.fixture(scope="session")
async def server(
    target: RunningTarget, target_client: MatrixClient, request: pytest.FixtureRequest
) -> dict[str, Any]:
    """What the server says about itself (/versions, Server header) and the version we apply."""
    run = get_run(request.config)
    state = run.state(target.name)
    resp = await target_client.request(
        "GET", "/_matrix/client/versions", note="discovery: advertised spec versions"
    )
    data = body(resp) if resp.status_code == 200 else None
    advertised = [v for v in (data or {}).get("versions", []) if isinstance(v, str)]
    override = run.spec_override or state.target.spec_version
    evaluated = requirements.evaluated_version(advertised, override)
    state.info.update(
        server_header=resp.headers.get("server"),
        versions_advertised=advertised,
        spec_version_evaluated=requirements.format_version(evaluated) if evaluated else None,
        spec_version_source="override" if override else "advertised",
    )
    return {"versions": advertised, "evaluated": evaluated}


@pytest.fixture
def hs(target_client: MatrixClient, request: pytest.FixtureRequest) -> MatrixClient:
    """The client a check uses: every exchange lands in that check's evidence."""
    run = get_run(request.config)
    if run.active is None:
        raise HarnessError("the hs fixture is only for checks (@pytest.mark.check)")
    return target_client.with_recorder(run.active.recorder)


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
    for rid in run.active.state.requirement_ids:
        req = requirements.get(rid)
        if not req.applies_to(version):
            pytest.skip(req.why_not(version))
