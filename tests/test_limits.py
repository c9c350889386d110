"""Hard limits against hostile loopback servers: a deadline per request, a cap on bodies,
a rate-limit budget per target. Each ends in a HarnessError (ERROR), never a hang."""

from __future__ import annotations

import asyncio
import gzip
import resource
import time

import httpx
import pytest
from hostile import MAX_HOLD_S, reply, serve

from mxconform.http.client import MatrixClient, NetworkError, Pacer, RateLimited, RequestPolicy
from mxconform.http.evidence import Recorder
from mxconform.http.limits import ResponseTooLarge
from mxconform.http.redact import SecretRegistry

MIB = 1024 * 1024


def client(url: str, http: httpx.AsyncClient, **policy: float) -> MatrixClient:
    return MatrixClient(
        http, url, Recorder(), SecretRegistry(), Pacer(1000), RequestPolicy(**policy)
    )


def _drip(h, seen, stub):
    """Headers at once, then one byte a second: every read is quick, the whole is not."""
    h.send_response(200)
    h.send_header("Content-Length", "100")
    h.end_headers()
    for _ in range(100):
        h.wfile.write(b"x")
        h.wfile.flush()
        if stub.stopping.wait(1.0):
            return


def _stall(h, seen, stub):
    stub.stopping.wait(MAX_HOLD_S)  # accepted, never answered


def _huge(h, seen, stub):
    """50 MB, generated as it is sent."""
    h.send_response(200)
    h.send_header("Content-Type", "application/octet-stream")
    h.send_header("Content-Length", str(50 * 1000 * 1000))
    h.end_headers()
    chunk = b"A" * 65536
    for _ in range(50 * 1000 * 1000 // len(chunk)):
        if stub.stopping.is_set():
            return
        h.wfile.write(chunk)


def _storm(h, seen, stub):
    reply(h, 429, {"errcode": "M_LIMIT_EXCEEDED"}, {"Retry-After": "3600"})


async def test_a_dripping_server_cannot_hold_a_request_past_its_deadline():
    with serve(_drip) as stub:
        async with httpx.AsyncClient() as http:
            c = client(stub.url, http, timeout_s=5, deadline_s=2)
            started = time.monotonic()
            with pytest.raises(NetworkError, match="deadline of 2s exceeded"):
                await c.request("GET", "/drip")
            elapsed = time.monotonic() - started
    assert elapsed < 3.0, elapsed
    assert c.recorder.exchanges[0].error.startswith("deadline of 2s exceeded")
    print(f"\ndrip: gave up after {elapsed:.2f}s (deadline 2s)")


async def test_a_stalled_server_is_given_up_at_the_deadline():
    with serve(_stall) as stub:
        async with httpx.AsyncClient() as http:
            c = client(stub.url, http, timeout_s=10, deadline_s=1.5)
            started = time.monotonic()
            with pytest.raises(NetworkError, match="deadline"):
                await c.request("GET", "/stall")
            elapsed = time.monotonic() - started
    assert elapsed < 2.5, elapsed
    print(f"\nstall: gave up after {elapsed:.2f}s (deadline 1.5s)")


async def test_a_huge_body_stops_at_the_cap_in_bounded_memory():
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    with serve(_huge) as stub:
        async with httpx.AsyncClient() as http:
            c = client(stub.url, http, max_response_bytes=1 * MIB)
            started = time.monotonic()
            with pytest.raises(ResponseTooLarge, match="over the cap of 1048576 bytes"):
                await c.request("GET", "/huge")
            elapsed = time.monotonic() - started
    growth_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    exchange = c.recorder.exchanges[0]
    assert exchange.status == 200 and "stopped reading at" in (exchange.error or "")
    assert growth_mb < 64, growth_mb
    print(f"\nhuge: 50 MB body refused after {elapsed:.2f}s, peak RSS grew {growth_mb:.1f} MB")


async def test_bodies_within_the_cap_are_loaded_and_decoded():
    payload = b'{"ok": true, "pad": "' + b"p" * 5000 + b'"}'

    def handler(h, seen, stub):
        data = gzip.compress(payload)
        reply(h, 200, data, {"Content-Encoding": "gzip"})

    with serve(handler) as stub:
        async with httpx.AsyncClient() as http:
            c = client(stub.url, http, max_response_bytes=8192)
            resp = await c.request("GET", "/small")
    assert resp.json()["ok"] is True and resp.content == payload
    assert c.recorder.exchanges[0].error is None


async def test_a_429_storm_exhausts_the_budget_and_later_requests_fail_at_once():
    with serve(_storm) as stub:
        async with httpx.AsyncClient() as http:
            c = client(
                stub.url,
                http,
                max_rate_limit_retries=10,
                max_retry_wait_s=0.1,
                rate_limit_budget_429=3,
            )
            started = time.monotonic()
            with pytest.raises(RateLimited, match="budget exhausted: 3 consecutive 429"):
                await c.request("GET", "/limited")
            storm_s = time.monotonic() - started
            assert len(stub.requests) == 3
            other = c.with_recorder(Recorder())  # another client of the same target
            started = time.monotonic()
            with pytest.raises(RateLimited, match="budget exhausted"):
                await other.request("GET", "/limited")
            assert time.monotonic() - started < 0.05
            assert len(stub.requests) == 3 and not other.recorder.exchanges
    assert storm_s < 1.0, storm_s
    print(f"\n429 storm (Retry-After: 3600): gave up after {storm_s:.2f}s")


async def test_the_total_wait_budget_ends_waiting_too():
    with serve(_storm) as stub:
        async with httpx.AsyncClient() as http:
            c = client(stub.url, http, max_retry_wait_s=0.1, rate_limit_budget_s=0.15)
            with pytest.raises(RateLimited, match=r"rate-limit budget is left"):
                await c.request("GET", "/limited")
    assert len(stub.requests) == 2


def _stock_login(h, seen, stub):
    """Synapse's stock rc_login: a 429 asking for minutes on /login, other paths answered."""
    if seen.path.endswith("/login"):
        reply(h, 429, {"errcode": "M_LIMIT_EXCEEDED", "retry_after_ms": 333_000})
    else:
        reply(h, 200, {"ok": True})


async def test_a_wait_longer_than_the_budget_refuses_that_request_only():
    """One login asking for 333 s against a 120 s budget: that request is refused at once
    (nothing waited), and the target is not given up: other requests go on."""
    with serve(_stock_login) as stub:
        async with httpx.AsyncClient() as http:
            c = client(stub.url, http, rate_limit_budget_s=120)
            started = time.monotonic()
            with pytest.raises(RateLimited, match=r"asked to wait 333s; 120s of"):
                await c.request("POST", "/login")
            assert time.monotonic() - started < 1.0
            resp = await c.request("GET", "/versions")
    assert resp.status_code == 200


async def test_concurrent_waits_cost_the_budget_once():
    """Five requests waiting out the same second cost about a second of the budget, not
    five: the budget is wall-clock."""
    calls: dict[str, int] = {}

    def once_limited(h, seen, stub):
        n = calls[seen.path] = calls.get(seen.path, 0) + 1
        if n == 1:
            reply(h, 429, {"errcode": "M_LIMIT_EXCEEDED"}, {"Retry-After": "1"})
        else:
            reply(h, 200, {"ok": True})

    with serve(once_limited) as stub:
        async with httpx.AsyncClient() as http:
            c = client(stub.url, http, rate_limit_budget_s=2.5)
            answers = await asyncio.gather(*(c.request("GET", f"/p{i}") for i in range(5)))
    assert [a.status_code for a in answers] == [200] * 5
    assert c._budget.waited_s < 2.0, c._budget.waited_s
