"""Fixtures for the project's own tests (tests/). The suites have theirs in suites/conftest.py.

Integration tests share one real embedded Synapse, and run the harness in-process against it
(directly or through a non-conformant proxy) with a servers file written for the test.
"""

from __future__ import annotations

import gc
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mxconform.cli import GC_THRESHOLDS, RunOutcome, parser, run_suites
from mxconform.targets.config import Target
from mxconform.targets.embedded.synapse import EmbeddedSynapse, synapse_available
from mxconform.targets.lifecycle import RunningTarget, start_target

SECRET_VAR = "MXCONFORM_TEST_SHARED_SECRET"


# Seconds each module's tests took one after another (`pytest -n 0`, 2026-11-30): a
# scheduling hint, nothing more. A wrong figure costs time, never a result.
_MODULE_SECONDS = {
    "test_oauth_suite.py": 190,
    "test_suites_integration.py": 160,
    "test_console_secrets.py": 90,
    "test_badinput.py": 70,
    "test_staging.py": 70,
    "test_main_run.py": 60,
    "test_catalogue_standins.py": 45,
    "test_parallel.py": 35,
    "test_browser_driver.py": 20,
    "test_client_oracles.py": 15,
    "test_selection.py": 15,
    "test_browser_origin.py": 8,
    "test_wheel.py": 20,
    "test_lifecycle.py": 20,
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The slowest modules first, quick unit tests last: xdist hands tests out in this
    order, so the quick ones fill in while the last slow ones end (alphabetical order left
    a 15-second wheel build to start last)."""
    items.sort(
        key=lambda item: (
            item.get_closest_marker("integration") is None,
            -_MODULE_SECONDS.get(item.path.name, 0),
        )
    )


def pytest_collection_finish(session: pytest.Session) -> None:
    """Everything imported and collected so far lives to the end: keep the garbage collector
    off it, and collect young objects less often. Each in-process run of the harness
    allocates much; at CPython's defaults the collector took about 9% of a worker's CPU."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)  # as `mxconform run` sets it


@pytest.fixture(autouse=True)
def _own_state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Ledgers (legacy/ledger.py) go to the test's own folder, never the user's state."""
    state = tmp_path / "state"
    monkeypatch.setenv("MXCONFORM_STATE_DIR", str(state))
    return state


@pytest.fixture(scope="session")
def synapse() -> Iterator[EmbeddedSynapse]:
    if not synapse_available():
        pytest.skip("the embedded extra (matrix-synapse) is not installed")
    with EmbeddedSynapse() as server:
        yield server


@pytest.fixture(scope="session")
def synapse_oauth() -> Iterator[RunningTarget]:
    """Synapse delegated to the embedded OAuth server (the `synapse-oauth` target)."""
    if not synapse_available():
        pytest.skip("the embedded extra (matrix-synapse) is not installed")
    target = Target(
        name="synapse-oauth", embedded="synapse-oauth", server_name="localhost", auth=["oauth"]
    )
    running = start_target(target)
    try:
        yield running
    finally:
        running.stop()


def remote_servers_file(
    folder: Path, base_url: str, name: str = "under-test", auth: str = "[legacy]"
) -> Path:
    """A servers.yaml naming one already-running server, provisioned by shared secret."""
    path = folder / "servers.yaml"
    path.write_text(
        f"defaults: [{name}]\n"
        "targets:\n"
        f"  - name: {name}\n"
        f"    base_url: {base_url}\n"
        "    server_name: localhost\n"
        f"    auth: {auth}\n"
        f"    provisioning: {{method: synapse-shared-secret, shared_secret: '${{{SECRET_VAR}}}'}}\n"
        "    max_requests_per_second: 1000\n"
    )
    return path


class HarnessRun:
    """The outcome of one in-process `mxconform run`, indexed for assertions."""

    def __init__(self, outcome: RunOutcome) -> None:
        self.outcome = outcome
        assert outcome.report_dir is not None, "the run wrote no report"
        self.document: dict[str, Any] = json.loads(
            (outcome.report_dir / "results.json").read_text()
        )
        self.checks = self.document["checks"]

    def verdicts(self) -> dict[str, str]:
        """`check_id[transport]` → verdict."""
        return {f"{c['check_id']}[{c['transport'] or '-'}]": c["verdict"] for c in self.checks}

    def with_verdict(self, verdict: str) -> set[str]:
        return {k for k, v in self.verdicts().items() if v == verdict}


@pytest.fixture
def run_harness(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, synapse: EmbeddedSynapse):
    """Run the suites in-process against a base URL (the embedded Synapse or a proxy to it)."""
    monkeypatch.setenv(SECRET_VAR, synapse.shared_secret)

    def run(base_url: str, *extra: str, servers: Path | None = None) -> HarnessRun:
        servers = servers or remote_servers_file(tmp_path, base_url)
        args = parser().parse_args(
            ["run", "--servers", str(servers), "--report-dir", str(tmp_path / "reports"), *extra]
        )
        return HarnessRun(run_suites(args))

    return run


@pytest.fixture
def servers_file(tmp_path: Path):
    """Write a servers.yaml for one running server: `servers_file(base_url, auth="[oauth]")`."""

    def write(base_url: str, auth: str = "[legacy]") -> Path:
        return remote_servers_file(tmp_path, base_url, auth=auth)

    return write
