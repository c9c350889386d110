"""What one run knows: the selected targets, their state, the check being run."""

import asyncio
import ssl
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import pytest

from mxconform.http.client import MatrixClient
from mxconform.http.evidence import Recorder
from mxconform.http.limits import RateBudget
from mxconform.http.redact import SecretRegistry
from mxconform.legacy.housekeeping import Housekeeping
from mxconform.legacy.users import LegacyUsers, UserNames
from mxconform.oauth.users import OAuthUsers
from mxconform.paths import servers_file
from mxconform.results import CheckRecord
from mxconform.spec import requirements
from mxconform.spec.verdicts import CheckState
from mxconform.targets.config import ConfigError, ServersFile, Target
from mxconform.targets.known_issues import KnownIssue
from mxconform.targets.lifecycle import RunningTarget
from mxconform.targets.loading import load_known_issues, load_servers
from mxconform.targets.preflight import Identity


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
    identity: Identity | None = None  # what /versions said (preflight)
    tls: ssl.SSLContext | bool = True  # what the target's clients verify with
    early: Any = None  # plugin.early.EarlyLogins once the target's first check started it
    # An embedded target being started in the background while the checks are collected.
    starting: Future[RunningTarget] | None = None
    # What the target may cost (429s, failures in a row, time), shared by all its clients.
    budget: RateBudget = field(init=False)

    def __post_init__(self) -> None:
        policy = self.target.policy()
        self.budget = RateBudget(
            policy.rate_limit_budget_429,
            policy.rate_limit_budget_s,
            policy.failure_budget,
            policy.time_budget_s,
        )
    # Why its users cannot be provisioned (found once, at preflight), if they cannot.
    provisioning_error: str | None = None


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
        budget_s = config.getoption("target_timeout", None)
        if budget_s is not None:  # --target-timeout: every target's, over servers.yaml's
            if budget_s <= 0:
                raise pytest.UsageError("--target-timeout: expected a number of seconds over 0")
            self.targets = [t.model_copy(update={"time_budget_s": budget_s}) for t in self.targets]
        self.servers_path = path
        self.oauth_driver: str | None = config.getoption("oauth_driver")
        self.spec_override: str | None = config.getoption("spec_version")
        max_wait = config.getoption("max_wait", None)
        if max_wait is not None:  # --max-wait: every target's rate-limit budget, wall-clock
            if max_wait <= 0:
                raise pytest.UsageError("--max-wait: expected a number of seconds above 0")
            update = {"rate_limit_budget_s": float(max_wait)}
            self.targets = [t.model_copy(update=update) for t in self.targets]
        self.offline: bool = bool(config.getoption("offline"))
        self.hypothesis_examples: int = config.getoption("hypothesis_examples")
        if self.hypothesis_examples < 1:
            raise pytest.UsageError("--hypothesis-examples: expected a number from 1 up")
        given_seed = config.getoption("hypothesis_seed", None)
        try:  # the bad-input checks draw with it; results.json records it for a replay
            self.hypothesis_seed = int(given_seed) if given_seed is not None else DEFAULT_SEED
        except ValueError:
            raise pytest.UsageError(
                f"--hypothesis-seed: expected an integer, got {given_seed!r}"
            ) from None
        if self.spec_override and requirements.parse_version(self.spec_override) is None:
            raise pytest.UsageError(f"--spec-version: expected vX.Y, got {self.spec_override!r}")
        self.secrets = SecretRegistry()
        self.names = UserNames()
        self.records: list[CheckRecord] = []
        # Every requirement the collected checks cite, before `-k` deselects any (coverage).
        self.cited: set[str] = set()
        self.states = {t.name: TargetState(t) for t in self.targets}
        try:
            for state in self.states.values():
                state.known_issues = load_known_issues(state.target, path)
        except ConfigError as exc:
            raise pytest.UsageError(str(exc)) from None
        self.active: ActiveCheck | None = None
        self.started_at = datetime.now(UTC)
        self.report_path: Path | None = None
        self.starter: Any = None  # plugin.targets._Starter when the targets start early
        # plugin.selection: the run's selection, and the targets it leaves nothing to run
        self.selection: dict[str, Any] = {"complete": True, "text": ""}
        self.not_selected: set[str] = set()

    def state(self, name: str) -> TargetState:
        return self.states[name]

    def driver_of(self, target: Target) -> str:
        configured = target.oauth.driver if target.oauth else "form"
        return self.oauth_driver or configured


# The bad-input bodies are the same every run unless another seed is asked for: verdicts
# must not change between two runs of the same server (a nightly diff would call that a
# regression); other seeds explore, and each run's seed is recorded for a replay.
DEFAULT_SEED = 0


_RUN_KEY = pytest.StashKey[Run]()


def get_run(config: pytest.Config) -> Run:
    if _RUN_KEY not in config.stash:
        config.stash[_RUN_KEY] = Run(config)
    return config.stash[_RUN_KEY]


def has_run(config: pytest.Config) -> bool:
    return _RUN_KEY in config.stash


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


REPORT_KEY = pytest.StashKey[Path]()
# node id -> place in the selection: the order results are written in, whatever the order
# the checks ran in (fixtures_legacy runs the ones that wait for a token's expiry last)
SELECTION_KEY = pytest.StashKey[dict[str, int]]()


def say(config: pytest.Config, text: str) -> None:
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


CLEANUP_BUDGET_S = 120.0


class _Cleanable(Protocol):
    housekeeping: Housekeeping

    async def cleanup(self, client: MatrixClient) -> None: ...

    async def discard(self, client: MatrixClient) -> None: ...


async def bounded_cleanup(users: _Cleanable, client: MatrixClient, target: Target) -> None:
    """Clean up a target's test accounts within a bounded time (a run stopped by SIGTERM
    still ends promptly); what is left is named in the report's housekeeping. A target
    whose accounts go with it (`cleanup: discard`) only has what is in flight settled.
    Its requests are not held to the target's time budget (this is the budget they have)."""
    # a rate-limit budget of its own: one the checks spent never stops the cleanup
    budget = RateBudget(target.rate_limit_budget_429, CLEANUP_BUDGET_S)
    budget.operations = client.budget.operations  # counted with the run's, all the same
    client = client.untimed().with_budget(budget)
    try:
        async with asyncio.timeout(CLEANUP_BUDGET_S):
            if target.discards_accounts:
                await users.discard(client)
            else:
                await users.cleanup(client)
    except TimeoutError:
        users.housekeeping.problems.append(
            f"cleanup stopped after {CLEANUP_BUDGET_S:g}s: some test accounts may be left"
        )
