"""TLS per target: an operator's CA bundle is trusted, the system store otherwise; every
client the harness makes for the target (login drivers' too) uses the same settings."""

from __future__ import annotations

import pytest
from hostile import reply, serve
from tls_certs import make_ca, server_context

from mxconform.http.client import (
    MatrixClient,
    NetworkError,
    Pacer,
    RequestPolicy,
    new_http_client,
    tls_context,
)
from mxconform.http.evidence import Recorder
from mxconform.http.redact import SecretRegistry
from mxconform.oauth.drivers.form import UserAgent


def _ok(h, seen, stub):
    reply(h, 200, {"versions": ["v1.11"]})


async def _get(url: str, tls) -> int:
    async with new_http_client(tls) as http:
        client = MatrixClient(
            http, url, Recorder(), SecretRegistry(), Pacer(1000), RequestPolicy(), tls=tls
        )
        resp = await client.request("GET", "/_matrix/client/versions")
        agent = UserAgent(client)  # the form driver's own user agent
        try:
            again = await agent.client(Recorder()).request("GET", "/_matrix/client/versions")
        finally:
            await agent.close()
        assert again.status_code == resp.status_code
        return resp.status_code


async def test_a_private_ca_needs_its_bundle(tmp_path):
    ca = make_ca()
    (tmp_path / "ca.pem").write_bytes(ca.cert_pem)
    with serve(_ok, tls=server_context(ca, tmp_path)) as stub:
        assert stub.url.startswith("https://127.0.0.1:")
        with pytest.raises(NetworkError, match="CERTIFICATE_VERIFY_FAILED"):
            await _get(stub.url, tls_context())
        assert await _get(stub.url, tls_context(str(tmp_path / "ca.pem"))) == 200
        assert await _get(stub.url, tls_context(verify=False)) == 200
