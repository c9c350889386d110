"""Checks: their stable ids, requirement ids, parametrisation, selection and skipping."""

from pathlib import Path
from typing import Any

import pytest

from mxconform.errors import NotApplicable, TargetUnavailable, Unsupported
from mxconform.http.credentials import Transport
from mxconform.http.evidence import Recorder
from mxconform.oauth.drivers.base import DRIVER_GRANTS
from mxconform.plugin.state import ActiveCheck, get_run, has_run
from mxconform.plugin.targets import ensure_ready
from mxconform.spec import requirements
from mxconform.spec.coverage import function_citations, literal_citations, suite_files
from mxconform.spec.verdicts import CheckState, begin, end
from mxconform.targets.config import StaticUsers

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


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if metafunc.definition.get_closest_marker(CHECK_MARKER) is None:
        return
    run = get_run(metafunc.config)
    if "target" in metafunc.fixturenames:
        names = [t.name for t in run.targets]
        metafunc.parametrize("target", names, ids=names, indirect=True, scope="session")
    if "transport" in metafunc.fixturenames:
        metafunc.parametrize("transport", list(Transport), ids=[t.value for t in Transport])


def check_key(item: pytest.Item) -> str:
    """`check_id[transport]`, as results.json and the reports key a check."""
    check_id, _, transport, _ = _check_identity(item)
    return f"{check_id}[{transport or '-'}]"


def check_id_of(item: pytest.Item) -> str:
    """The check id without the transport: what both transports of one check share."""
    return _check_identity(item)[0]


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
        # A parameter that carries a rule of its own (a transport, a UIA operation) adds it
        # to the check's requirements, so its version gate applies too.
        own = getattr(value, "requirement", None)
        if isinstance(own, str):
            req_ids = [*req_ids, own]
        if name == "transport":
            transport = value.value
            continue
        suffix.append(str(getattr(value, "id", value)))
    if suffix:
        check_id = ".".join([check_id, *suffix])
    api_marker = item.get_closest_marker(API_MARKER)
    api = api_marker.args[0] if api_marker else None
    for rid in req_ids:
        requirements.get(rid)  # an unknown id is a harness bug: fail loudly at setup
    return check_id, list(dict.fromkeys(req_ids)), transport, api


def title_of(docstring: str | None) -> str:
    """A check's title: the first paragraph of its docstring, whole (a sentence wrapped over
    two lines was cut at the first line end)."""
    paragraph = (docstring or "").strip().split("\n\n")[0]
    return " ".join(paragraph.split())


def gating_requirements(item: pytest.Item) -> list[str]:
    """The rules whose version gate decides whether the check runs at all: its primary rule
    and the rules its parameters bring (a transport, a UIA operation). Its other rules are
    judged only where they apply (`spec.verdicts.unmet` drops the rest)."""
    marker = item.get_closest_marker(CHECK_MARKER)
    assert marker is not None
    params: dict[str, Any] = getattr(getattr(item, "callspec", None), "params", {})
    own = [getattr(v, "requirement", None) for n, v in params.items() if n != "target"]
    return list(dict.fromkeys([*marker.args[1:2], *(r for r in own if isinstance(r, str))]))


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Let `-k` select by our check ids (e.g. `-k tokens.missing`), not only pytest's names;
    note every requirement the suites cite (before `-k` deselects), for coverage;
    `--requirement REQ` keeps only the checks citing one of the given requirements."""
    cited: set[str] = set()
    paths = set()
    for item in items:
        if item.get_closest_marker(CHECK_MARKER) is not None:
            check_id, req_ids, _, _ = _check_identity(item)
            item.extra_keyword_matches.add(check_id)
            cited.update(req_ids)
            paths.add(Path(str(item.path)))
    cited |= literal_citations(suite_files(paths))
    if has_run(config):
        get_run(config).cited |= cited
    wanted = {rid.upper() for rid in config.getoption("requirement", None) or []}
    if not wanted:
        return
    unknown = sorted(wanted - set(requirements.catalogue()))
    if unknown:
        raise pytest.UsageError(f"--requirement: not in the catalogue: {', '.join(unknown)}")
    kept: list[pytest.Item] = []
    dropped: list[pytest.Item] = []
    for item in items:
        cited = set()
        if item.get_closest_marker(CHECK_MARKER) is not None:
            name = getattr(item, "originalname", None) or item.name
            cited = set(_check_identity(item)[1]) | function_citations(Path(item.path), name)
        (kept if cited & wanted else dropped).append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker(CHECK_MARKER) is None:
        return
    run = get_run(item.config)
    check_id, req_ids, transport, api = _check_identity(item)
    params = getattr(getattr(item, "callspec", None), "params", {})
    target_name = params.get("target", "-")
    function = getattr(item, "function", None)
    doc = [title_of(function.__doc__ if function else None)]
    state = CheckState(check_id, req_ids, gating=gating_requirements(item))
    run.active = ActiveCheck(
        state,
        Recorder(),
        transport,
        target_name,
        api,
        doc[0] or check_id,
    )
    begin(state)
    if target_name in run.states:  # a target that cannot be run: ERROR, one reason
        ensure_ready(run, run.state(target_name), item.config)
        given_up = run.state(target_name).budget.given_up()  # stopped answering, out of time
        if given_up:
            raise TargetUnavailable(given_up)
    if api and target_name in run.states:
        # `api("legacy", "oauth")`: the check runs once, as the first API the target offers.
        marker = item.get_closest_marker(API_MARKER)
        apis = tuple(marker.args) if marker else (api,)
        offered = [a for a in apis if a in run.state(target_name).target.auth]
        if not offered:
            names = " or ".join(apis)
            raise NotApplicable(
                f"the {names} API is not offered by this target (servers.yaml auth)", "api"
            )
        run.active.auth_api = offered[0]
    if target_name in run.states and any(
        f in getattr(item, "fixturenames", ()) for f in OAUTH_FIXTURES
    ):
        run.active.grant = DRIVER_GRANTS[run.driver_of(run.state(target_name).target)]
    if item.get_closest_marker(DESTRUCTIVE_MARKER) is not None and target_name in run.states:
        t = run.state(target_name).target
        if api == "oauth" and t.oauth and (t.oauth.accounts or t.oauth.driver == "static"):
            if t.oauth.admin is None:
                raise Unsupported(OAUTH_DESTRUCTIVE_REASON, "policy")
        elif api != "oauth" and isinstance(t.provisioning, StaticUsers):
            raise Unsupported(DESTRUCTIVE_REASON, "policy")


@pytest.hookimpl(trylast=True)
def pytest_runtest_teardown(item: pytest.Item) -> None:
    if has_run(item.config) and item.get_closest_marker(CHECK_MARKER) is not None:
        get_run(item.config).active = None
        end()
