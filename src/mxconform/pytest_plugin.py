"""The pytest plugin that turns suites into checks: targets, fixtures, verdicts, results.

It is inert for ordinary tests: only items marked `@pytest.mark.check(...)` are checks.
"""

from __future__ import annotations

import hashlib
import shlex
import signal
import sys
import threading
from collections.abc import AsyncIterator, Generator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import httpx
import pytest

from . import __version__, requirements
from .auth import LegacyUsers, Session, UserNames
from .client import (
    HarnessError,
    MatrixClient,
    Pacer,
    Recorder,
    RequestPolicy,
    Transport,
    new_http_client,
)
from .drivers import DRIVER_GRANTS, Account, Unsupported
from .lifecycle import RunningTarget, start_target
from .matchers import body
from .oauth import Metadata, OAuthApi, discover
from .oauth_users import OAuthLogin, OAuthUsers
from .paths import git_commit, servers_file
from .redact import SecretRegistry
from .results import CheckRecord, build_document, write_document
from .targets import (
    ConfigError,
    KnownIssue,
    ServersFile,
    StaticUsers,
    Target,
    load_known_issues,
    load_servers,
)
from .verdicts import CheckState, Unmet, Verdict, begin, end, unmet, verdict_for_level

CHECK_MARKER = "check"
API_MARKER = "api"
DESTRUCTIVE_MARKER = "destructive"
DESTRUCTIVE_REASON = (
    "would change or destroy an account given in servers.yaml (static-users): never run"
)
OAUTH_DESTRUCTIVE_REASON = (
    "would change or destroy an account given in servers.yaml (oauth accounts or static "
    "tokens): never run"
)
OAUTH_FIXTURES = ("oauth_users", "oauth_user", "oauth_account")


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("mxconform", "Matrix authentication conformance")
    group.addoption(
        "--servers",
        metavar="FILE",
        help="targets file (default: ./servers.yaml, else the bundled one)",
    )
    group.addoption(
        "--server",
        metavar="NAME",
        action="append",
        default=[],
        help="target to run against (repeatable; default: the file's defaults)",
    )
    group.addoption(
        "--report-dir",
        metavar="DIR",
        default="reports",
        help="where each run's report folder is written (default: reports)",
    )
    group.addoption(
        "--spec-version",
        metavar="V",
        help="hold every target to this spec version "
        "(e.g. v1.20) instead of the newest it advertises",
    )
    group.addoption(
        "--oauth-driver",
        choices=sorted(DRIVER_GRANTS),
        help="log in to OAuth targets with this driver instead of the one in servers.yaml",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "check(id, *requirement_ids, transport=None): a conformance check with a "
        "stable id and the requirements it covers",
    )
    config.addinivalue_line("markers", "api(name): the auth API a check exercises (legacy, oauth)")
    config.addinivalue_line(
        "markers", "destructive: the check changes or destroys its account (not on static users)"
    )
    _interrupt_anywhere()


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _interrupt_anywhere() -> None:
    """Make Ctrl-C stop the run even inside a check's event loop.

    asyncio's runner swaps the default SIGINT handler for one that only cancels the current
    task, so pytest never hears of the interrupt and the run goes on. Any other handler is
    left alone by asyncio, so one that raises KeyboardInterrupt keeps Ctrl-C meaning "stop,
    tear down (stopping embedded servers) and report".
    """
    if threading.current_thread() is threading.main_thread() and (
        signal.getsignal(signal.SIGINT) is signal.default_int_handler
    ):
        signal.signal(signal.SIGINT, _raise_interrupt)


@dataclass
class TargetState:
    """Everything the run learns and owns for one target."""

    target: Target
    running: RunningTarget | None = None
    start_error: str | None = None
    setup_recorder: Recorder = field(default_factory=Recorder)
    info: dict[str, Any] = field(default_factory=dict)
    users: LegacyUsers | None = None
    oauth_users: OAuthUsers | None = None
    known_issues: list[KnownIssue] = field(default_factory=list)


@dataclass
class ActiveCheck:
    state: CheckState
    recorder: Recorder
    transport: str | None
    target: str
    auth_api: str | None
    title: str
    recorded: bool = False
    grant: str | None = None


class Run:
    """One harness run: the selected targets, the secret registry and the records."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        path = servers_file(config.getoption("servers"))
        try:
            servers: ServersFile = load_servers(path)
            self.targets = servers.select(config.getoption("server"))
        except ConfigError as exc:
            raise pytest.UsageError(str(exc)) from None
        self.servers_path = path
        self.oauth_driver: str | None = config.getoption("oauth_driver")
        self.spec_override: str | None = config.getoption("spec_version")
        if self.spec_override and requirements.parse_version(self.spec_override) is None:
            raise pytest.UsageError(f"--spec-version: expected vX.Y, got {self.spec_override!r}")
        self.secrets = SecretRegistry()
        self.names = UserNames()
        self.records: list[CheckRecord] = []
        self.states = {t.name: TargetState(t) for t in self.targets}
        try:
            for state in self.states.values():
                state.known_issues = load_known_issues(state.target, path)
        except ConfigError as exc:
            raise pytest.UsageError(str(exc)) from None
        self.active: ActiveCheck | None = None
        self.started_at = datetime.now(UTC)
        self.report_path: Path | None = None

    def state(self, name: str) -> TargetState:
        return self.states[name]

    def driver_of(self, target: Target) -> str:
        configured = target.oauth.driver if target.oauth else "form"
        return self.oauth_driver or configured


_RUN_KEY = pytest.StashKey[Run]()


def get_run(config: pytest.Config) -> Run:
    if _RUN_KEY not in config.stash:
        config.stash[_RUN_KEY] = Run(config)
    return config.stash[_RUN_KEY]


def has_run(config: pytest.Config) -> bool:
    return _RUN_KEY in config.stash


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if metafunc.definition.get_closest_marker(CHECK_MARKER) is None:
        return
    run = get_run(metafunc.config)
    if "target" in metafunc.fixturenames:
        names = [t.name for t in run.targets]
        metafunc.parametrize("target", names, ids=names, indirect=True, scope="session")
    if "transport" in metafunc.fixturenames:
        metafunc.parametrize("transport", list(Transport), ids=[t.value for t in Transport])


# ---- fixtures --------------------------------------------------------------------------


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
            _say(
                request.config,
                f"mxconform: started embedded {state.target.embedded} "
                f"'{state.target.name}' at {state.running.base_url} in {startup:.1f}s",
            )
        run.secrets.add(state.running.shared_secret, "shared_secret")
        if state.running.oauth_admin is not None:
            run.secrets.add(state.running.oauth_admin.client_secret, "client_secret")
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

    async with new_http_client() as http:
        yield MatrixClient(
            http,
            target.base_url,
            state.setup_recorder,
            run.secrets,
            Pacer(t.request_rate),  # shared by every client of this target
            RequestPolicy(t.timeout_s, t.max_rate_limit_retries, t.max_retry_wait_s),
            on_login=lambda data: state.users.note_login(data) if state.users else None,
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
        await users.cleanup(target_client)


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


@pytest.fixture(scope="session")
async def oauth_metadata(
    target: RunningTarget, target_client: MatrixClient, request: pytest.FixtureRequest
) -> Metadata:
    """The target's OAuth 2.0 server metadata. A target declaring the OAuth API but serving
    none fails every OAuth check; one not declaring it never gets here (SKIP)."""
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
    get_run(request.config).state(target.name).info["oauth_metadata_path"] = meta.path
    return meta


@pytest.fixture(scope="session")
async def oauth_users(
    target: RunningTarget,
    target_client: MatrixClient,
    oauth_metadata: Metadata,
    request: pytest.FixtureRequest,
) -> AsyncIterator[OAuthUsers]:
    """Accounts and logins through the target's login driver; revoked and deactivated at
    the end."""
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
    )
    state.oauth_users = users
    state.info["oauth_driver"] = users.config.driver
    try:
        yield users
    finally:
        await users.cleanup(target_client)


@pytest.fixture(scope="session")
async def oauth_user(oauth_users: OAuthUsers, target_client: MatrixClient) -> OAuthLogin:
    """The run's main OAuth user on this target, with one device logged in."""
    account = await oauth_users.account(target_client, "oauth")
    return await oauth_users.login(target_client, account, "setup: main OAuth login")


@pytest.fixture
def oauth(hs: MatrixClient, oauth_metadata: Metadata) -> OAuthApi:
    """The target's OAuth 2.0 endpoints, called through the check's recording client."""
    return OAuthApi(hs, oauth_metadata)


@pytest.fixture
async def oauth_account(oauth_users: OAuthUsers, target_client: MatrixClient) -> Account:
    """An account of this check alone (nothing else logged in on it)."""
    return await oauth_users.account(target_client, "check")


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


# ---- check lifecycle and verdicts --------------------------------------------------------


def _check_identity(item: pytest.Item) -> tuple[str, list[str], str | None, str | None]:
    marker = item.get_closest_marker(CHECK_MARKER)
    assert marker is not None
    check_id, *req_ids = marker.args
    params: dict[str, Any] = getattr(getattr(item, "callspec", None), "params", {})
    transport: str | None = marker.kwargs.get("transport")
    suffix = []
    for name, value in params.items():
        if name == "target":
            continue
        if name == "transport":
            transport = value.value
            req_ids = [*req_ids, value.requirement]
            continue
        suffix.append(str(getattr(value, "id", value)))
    if suffix:
        check_id = ".".join([check_id, *suffix])
    api_marker = item.get_closest_marker(API_MARKER)
    api = api_marker.args[0] if api_marker else None
    for rid in req_ids:
        requirements.get(rid)  # an unknown id is a harness bug: fail loudly at setup
    return check_id, list(dict.fromkeys(req_ids)), transport, api


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Let `-k` select by our check ids (e.g. `-k tokens.missing`), not only pytest's names."""
    for item in items:
        if item.get_closest_marker(CHECK_MARKER) is not None:
            item.extra_keyword_matches.add(_check_identity(item)[0])


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker(CHECK_MARKER) is None:
        return
    run = get_run(item.config)
    check_id, req_ids, transport, api = _check_identity(item)
    params = getattr(getattr(item, "callspec", None), "params", {})
    target_name = params.get("target", "-")
    function = getattr(item, "function", None)
    doc = ((function.__doc__ if function else None) or "").strip().splitlines()
    state = CheckState(check_id, req_ids)
    run.active = ActiveCheck(
        state,
        Recorder(),
        transport,
        target_name,
        api,
        doc[0] if doc else check_id,
    )
    begin(state)
    if api and target_name in run.states and api not in run.state(target_name).target.auth:
        pytest.skip(f"the {api} API is not offered by this target (servers.yaml auth)")
    if target_name in run.states and any(
        f in getattr(item, "fixturenames", ()) for f in OAUTH_FIXTURES
    ):
        run.active.grant = DRIVER_GRANTS[run.driver_of(run.state(target_name).target)]
    if item.get_closest_marker(DESTRUCTIVE_MARKER) is not None and target_name in run.states:
        t = run.state(target_name).target
        if api == "oauth" and t.oauth and (t.oauth.accounts or t.oauth.driver == "static"):
            if t.oauth.admin is None:
                pytest.skip(OAUTH_DESTRUCTIVE_REASON)
        elif api != "oauth" and isinstance(t.provisioning, StaticUsers):
            pytest.skip(DESTRUCTIVE_REASON)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item,
    call: pytest.CallInfo[None],
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if item.get_closest_marker(CHECK_MARKER) is None or not has_run(item.config):
        return report
    run = get_run(item.config)
    active = run.active
    if active is None or active.recorded:
        return report
    if call.when == "call" or report.outcome != "passed":
        verdict, message, finding = _judge(active.state, call, report)
        _record(run, active, item, verdict, message, finding, report.duration)
        report.mxconform_verdict = verdict.value  # type: ignore[attr-defined]
        outcomes: dict[Verdict, Literal["passed", "failed", "skipped"]] = {
            Verdict.FAIL: "failed",
            Verdict.ERROR: "failed",
            Verdict.SKIP: "skipped",
        }
        report.outcome = outcomes.get(verdict, "passed")
        if verdict in (Verdict.PASS, Verdict.WARN, Verdict.INFO):
            report.longrepr = None
    return report


def _judge(
    state: CheckState,
    call: pytest.CallInfo[None],
    report: pytest.TestReport,
) -> tuple[Verdict, str, dict[str, Any] | None]:
    excinfo = call.excinfo
    if report.skipped:
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        return Verdict.SKIP, str(reason).removeprefix("Skipped: "), None
    if excinfo is None:
        verdict = state.verdict()
        messages = [f.message for f in state.findings] + state.observations + state.notes
        return verdict, "; ".join(messages) or "as required", None
    exc = excinfo.value
    if isinstance(exc, Unsupported):
        return Verdict.SKIP, str(exc), None
    if isinstance(exc, Unmet):
        f = exc.finding
        return (
            Verdict.FAIL,
            f.message,
            {"requirement": f.requirement, "expected": f.expected, "observed": f.observed},
        )
    if isinstance(exc, AssertionError) and call.when == "call":
        level = requirements.get(state.primary).level
        return verdict_for_level(level), str(exc) or "assertion failed", None
    where = "setting up" if call.when == "setup" else "running"
    kind = "harness or network" if isinstance(exc, HarnessError | httpx.HTTPError) else "harness"
    return Verdict.ERROR, f"{kind} error while {where} the check: {type(exc).__name__}: {exc}", None


def _record(
    run: Run,
    active: ActiveCheck,
    item: pytest.Item,
    verdict: Verdict,
    message: str,
    finding: dict[str, Any] | None,
    duration_s: float,
) -> None:
    state = active.state
    findings = [
        {
            "requirement": f.requirement,
            "verdict": f.verdict.value,
            "message": f.message,
            "expected": f.expected,
            "observed": f.observed,
        }
        for f in state.findings
    ]
    record = CheckRecord(
        check_id=state.check_id,
        title=active.title,
        requirements=state.requirement_ids,
        target=active.target,
        auth_api=active.auth_api,
        transport=active.transport,
        verdict=verdict,
        message=message,
        expected=(finding or {}).get("expected"),
        observed=(finding or {}).get("observed"),
        findings=findings,
        observations=list(state.observations),
        duration_s=round(duration_s, 4),
        evidence=[e.to_json() for e in active.recorder.exchanges],
        nodeid=item.nodeid,
        grant=active.grant,
    )
    if active.target in run.states:
        for known in run.state(active.target).known_issues:
            if known.covers(state.check_id, active.transport):
                record.known_issue = {"reason": known.reason, "link": known.link}
    run.records.append(record)
    active.recorded = True


@pytest.hookimpl(trylast=True)
def pytest_runtest_teardown(item: pytest.Item) -> None:
    if has_run(item.config) and item.get_closest_marker(CHECK_MARKER) is not None:
        get_run(item.config).active = None
        end()


def pytest_report_teststatus(
    report: pytest.TestReport,
    config: pytest.Config,
) -> tuple[str, str, str] | None:
    verdict = getattr(report, "mxconform_verdict", None)
    if verdict in ("WARN", "INFO"):
        return verdict.lower(), verdict[0], verdict
    if verdict == "ERROR":
        return "error", "E", "ERROR"
    return None


# ---- output ------------------------------------------------------------------------------


def report_dir(run: Run) -> Path:
    if run.report_path is None:
        base = Path(run.config.getoption("report_dir"))
        stamp = run.started_at.strftime("%Y%m%dT%H%M%SZ")
        path = base / stamp
        n = 1
        while path.exists():
            n += 1
            path = base / f"{stamp}-{n}"
        path.mkdir(parents=True)
        run.report_path = path
    return run.report_path


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if not has_run(session.config):
        return
    run = get_run(session.config)
    if not run.records:
        return
    from .report import render_all

    out = report_dir(run)
    finished = datetime.now(UTC)
    document = build_document(
        harness={"name": "mxconform", "version": __version__, "git_commit": git_commit()},
        run={
            "started_at": run.started_at.isoformat(timespec="seconds"),
            "finished_at": finished.isoformat(timespec="seconds"),
            "duration_s": round((finished - run.started_at).total_seconds(), 2),
            "command": shlex.join([Path(sys.argv[0]).name, *sys.argv[1:]]),
            "servers_file": str(run.servers_path),
            # servers files hold only ${ENV} references, so hashing the file leaks no secret
            "servers_file_sha256": hashlib.sha256(run.servers_path.read_bytes()).hexdigest(),
            "hypothesis_seed": None,  # no suite draws from hypothesis yet
            "spec_version_override": run.spec_override,
        },
        targets=[_target_json(s) for s in run.states.values()],
        records=run.records,
        secrets=run.secrets,
    )
    write_document(document, out / "results.json")
    render_all(out / "results.json")
    latest = out.parent / "latest"
    try:
        if latest.is_symlink() or latest.exists():
            latest.unlink()
        latest.symlink_to(out.name, target_is_directory=True)
    except OSError:
        pass
    session.config.stash[REPORT_KEY] = out


REPORT_KEY = pytest.StashKey[Path]()


def _target_json(state: TargetState) -> dict[str, Any]:
    t = state.target
    running = state.running
    return {
        "name": t.name,
        "embedded": t.embedded,
        "base_url": running.base_url if running else t.base_url,
        "server_name": running.server_name if running else t.server_name,
        "auth": list(t.auth),
        "provisioning": t.provisioning.method if t.provisioning else None,
        "start_error": state.start_error,
        **state.info,
        "housekeeping": _housekeeping(state),
        "setup_exchanges": len(state.setup_recorder.exchanges),
    }


def _housekeeping(state: TargetState) -> dict[str, Any] | None:
    parts = [u.housekeeping.to_json() for u in (state.users, state.oauth_users) if u]
    if not parts:
        return None
    merged: dict[str, Any] = {}
    for part in parts:
        for key, value in part.items():
            merged[key] = merged.get(key, 0 if isinstance(value, int) else []) + value
    return merged


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    out = config.stash.get(REPORT_KEY, None)
    if out is not None:
        terminalreporter.write_line(f"mxconform report: {out / 'index.html'}")


def _say(config: pytest.Config, text: str) -> None:
    """Print now, even from inside a fixture (where pytest captures output)."""
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    capman = config.pluginmanager.get_plugin("capturemanager")
    if reporter is None:
        return
    if capman is None:
        reporter.write_line(text)
        return
    with capman.global_and_fixture_disabled():
        reporter.ensure_newline()
        reporter.write_line(text)
