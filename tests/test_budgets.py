"""A target that stops answering, or takes too long, is given up: its remaining requests and
checks ERROR at once (never FAIL), and the run ends within its budget instead of paying a
time-out per check for as long as it has checks."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import pytest
from hostile import MAX_HOLD_S, reply, serve

from mxconform.cli import parser, run_suites
from mxconform.errors import TargetUnavailable
from mxconform.http.client import MatrixClient, NetworkError, Pacer, RequestPolicy
from mxconform.http.evidence import Recorder
from mxconform.http.limits import RateBudget
from mxconform.http.redact import SecretRegistry

STOPPED = "target stopped answering (3 consecutive time-outs/connection failures)"


def _versions_then_stall(h, seen, stub):
    """Answers /versions (the preflight), then accepts every request and never answers."""
    if seen.path.startswith("/_matrix/client/versions"):
        reply(h, 200, {"versions": ["v1.11"]})
    else:
        stub.stopping.wait(MAX_HOLD_S)


def _stall_unless_ok(h, seen, stub):
    if seen.path == "/ok":
        reply(h, 200, {})
    else:
        stub.stopping.wait(MAX_HOLD_S)


def client(url: str, http: httpx.AsyncClient, budget: RateBudget | None = None) -> MatrixClient:
    policy = RequestPolicy(timeout_s=0.3, deadline_s=0.3, failure_budget=3)
    return MatrixClient(
        http, url, Recorder(), SecretRegistry(), Pacer(1000), policy, budget=budget
    )


async def test_failures_in_a_row_give_the_target_up_and_an_answer_resets_the_count():
    with serve(_stall_unless_ok) as stub:
        async with httpx.AsyncClient() as http:
            c = client(stub.url, http)
            for _ in range(2):
                with pytest.raises(NetworkError):
                    await c.request("GET", "/stall")
            await c.request("GET", "/ok")  # answered: the count starts again
            other = c.with_recorder(Recorder())  # every client of the target shares it
            for _ in range(3):
                with pytest.raises(NetworkError):
                    await other.request("GET", "/stall")
            sent = len(stub.requests)
            started = time.monotonic()
            with pytest.raises(TargetUnavailable, match=r"^target stopped answering \(3 "):
                await c.request("GET", "/ok")
            assert time.monotonic() - started < 0.1 and len(stub.requests) == sent  # not sent


async def test_the_time_budget_cuts_a_request_short_but_not_the_cleanup():
    budget = RateBudget(failure_budget=100, time_budget_s=0.5)
    budget.start_clock()
    with serve(_stall_unless_ok) as stub:
        async with httpx.AsyncClient() as http:
            policy = RequestPolicy(timeout_s=5, deadline_s=5)
            c = MatrixClient(
                http, stub.url, Recorder(), SecretRegistry(), Pacer(1000), policy, budget=budget
            )
            started = time.monotonic()
            with pytest.raises(TargetUnavailable, match=r"target time budget of 0\.5 s spent"):
                await c.request("GET", "/stall")
            assert time.monotonic() - started < 1.5
            with pytest.raises(TargetUnavailable, match=r"time budget of 0\.5 s spent.*not sent"):
                await c.request("GET", "/ok")
            assert (await c.untimed().request("GET", "/ok")).status_code == 200


def _servers(folder: Path, url: str, extra: str) -> Path:
    path = folder / "servers.yaml"
    path.write_text(
        "defaults: [stalls]\ntargets:\n  - name: stalls\n"
        f"    base_url: {url}\n    server_name: localhost\n    auth: [legacy]\n"
        "    provisioning: {method: open-registration}\n"
        f"    timeout_s: 1\n    deadline_s: 1\n{extra}"
    )
    return path


def _run(tmp_path: Path, servers: Path, *more: str) -> tuple[float, dict]:
    argv = ["run", "--servers", str(servers), "--report-dir", str(tmp_path / "r"), "--jobs", "1"]
    started = time.monotonic()
    outcome = run_suites(parser().parse_args([*argv, *more]))
    took = time.monotonic() - started
    assert outcome.report_dir is not None
    return took, json.loads((outcome.report_dir / "results.json").read_text())


def test_a_run_against_a_server_that_stalls_after_versions_ends_at_its_failure_budget(
    tmp_path,
):
    with serve(_versions_then_stall) as stub:
        servers = _servers(tmp_path, stub.url, "    failure_budget: 3\n")
        took, document = _run(tmp_path, servers)
        asked = len(stub.requests)
    verdicts = {c["verdict"] for c in document["checks"]}
    stopped = [c for c in document["checks"] if c["message"].startswith(STOPPED)]
    assert verdicts <= {"ERROR", "SKIP"}, verdicts  # never a FAIL for the server's silence
    assert len(stopped) > 50, [c["message"] for c in document["checks"]][:5]
    assert asked < 25, asked  # once given up, nothing more is sent
    assert document["targets"][0]["limits"]["failure_budget"] == 3
    assert took < 60, took  # not a time-out per check (10 s each, hundreds of checks)
    print(f"\nstalling server: {len(stopped)} checks given up, {asked} requests, {took:.1f} s")


def test_the_target_timeout_ends_a_target_that_answers_too_slowly(tmp_path):
    with serve(_versions_then_stall) as stub:
        servers = _servers(tmp_path, stub.url, "    failure_budget: 1000\n")
        took, document = _run(tmp_path, servers, "--target-timeout", "4")
    spent = [c for c in document["checks"] if "target time budget of 4 s spent" in c["message"]]
    assert {c["verdict"] for c in spent} == {"ERROR"} and len(spent) > 50
    assert "FAIL" not in {c["verdict"] for c in document["checks"]}
    assert document["targets"][0]["limits"]["time_budget_s"] == 4
    assert took < 60, took
    print(f"\nslow server: {len(spent)} checks past the time budget, {took:.1f} s")
