"""The client: evidence capture, 429 handling, network failures, rate bounding."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from mxconform.http.client import (
    MatrixClient,
    NetworkError,
    Pacer,
    RateLimited,
    RequestPolicy,
    retry_delay,
)
from mxconform.http.credentials import Transport
from mxconform.http.evidence import Recorder
from mxconform.http.redact import SecretRegistry

TOKEN = "syt_secret_token_value_123"


def client_for(handler, *, retries: int = 3, per_second: float = 1000.0) -> MatrixClient:
    http = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    return MatrixClient(
        http,
        "http://hs",
        Recorder(),
        SecretRegistry(),
        Pacer(per_second),
        RequestPolicy(timeout_s=2, max_rate_limit_retries=retries, max_retry_wait_s=0.05),
    )


async def test_exchange_is_recorded_redacted():
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"user_id": "@u:hs", "access_token": "issued-abcdef"})

    client = client_for(handler)
    for transport in Transport:
        await client.request(
            "GET", "/_matrix/client/v3/account/whoami", credentials=transport.credentials(TOKEN)
        )
    header, query = client.recorder.exchanges
    assert ("authorization", "Bearer <redacted:credential>") in header.request_headers
    assert "access_token=<redacted:access_token>" in query.url
    assert header.status == 200 and header.duration_ms >= 0
    assert header.response_body == {"user_id": "@u:hs", "access_token": "<redacted:access_token>"}
    assert TOKEN not in str([e.to_json() for e in client.recorder.exchanges])


async def test_429_is_waited_out_and_retried():
    answers = iter(
        [
            httpx.Response(429, headers={"Retry-After": "0"}, json={"errcode": "M_LIMIT_EXCEEDED"}),
            httpx.Response(429, json={"errcode": "M_LIMIT_EXCEEDED", "retry_after_ms": 10}),
            httpx.Response(200, json={}),
        ]
    )
    client = client_for(lambda request: next(answers))
    resp = await client.request("GET", "/x")
    assert resp.status_code == 200
    statuses = [e.status for e in client.recorder.exchanges]
    assert statuses == [429, 429, 200]
    assert "never scored" in (client.recorder.exchanges[0].note or "")


async def test_endless_429_becomes_a_harness_error():
    client = client_for(lambda r: httpx.Response(429, json={"retry_after_ms": 1}), retries=2)
    with pytest.raises(RateLimited, match="after 2 retries"):
        await client.request("GET", "/x")
    assert len(client.recorder.exchanges) == 3


def test_retry_delay_sources():
    req = httpx.Request("GET", "http://hs/x")
    assert retry_delay(httpx.Response(429, headers={"Retry-After": "2"}, request=req), 30) == 2
    assert retry_delay(httpx.Response(429, json={"retry_after_ms": 1500}, request=req), 30) == 1.5
    assert retry_delay(httpx.Response(429, headers={"Retry-After": "999"}, request=req), 30) == 30
    assert retry_delay(httpx.Response(429, request=req), 30) == 1.0


async def test_network_failures_raise_network_error_with_evidence():
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused")

    def slow(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("too slow")

    for handler, text in ((refuse, "ConnectError"), (slow, "timeout after 2s")):
        client = client_for(handler)
        with pytest.raises(NetworkError, match=text):
            await client.request("GET", "/x", credentials=Transport.HEADER.credentials(TOKEN))
        assert text in (client.recorder.exchanges[0].error or "")


async def test_request_rate_is_bounded():
    client = client_for(lambda r: httpx.Response(200, json={}), per_second=20)
    started = time.perf_counter()
    await asyncio.gather(*(client.request("GET", "/x") for _ in range(6)))
    assert time.perf_counter() - started >= 5 / 20 * 0.9
