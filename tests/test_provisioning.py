"""Provisioning drivers against a real Synapse configured for each of them."""

from __future__ import annotations

import httpx
import pytest

from mxconform.http.client import MatrixClient, Pacer, RequestPolicy
from mxconform.http.credentials import bearer_header
from mxconform.http.evidence import Recorder
from mxconform.http.redact import SecretRegistry
from mxconform.legacy.registration import shared_secret_mac
from mxconform.legacy.users import LegacyUsers, UserNames
from mxconform.targets.config import Target
from mxconform.targets.embedded.synapse import EmbeddedSynapse, synapse_available

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not synapse_available(), reason="the embedded extra is not installed"),
]


def admin_token(server: EmbeddedSynapse) -> str:
    nonce = httpx.get(f"{server.base_url}/_synapse/admin/v1/register").json()["nonce"]
    mac = shared_secret_mac(server.shared_secret, nonce, "tokenadmin", "Adm1n-pass", True)
    resp = httpx.post(
        f"{server.base_url}/_synapse/admin/v1/register",
        json={
            "nonce": nonce,
            "username": "tokenadmin",
            "password": "Adm1n-pass",
            "admin": True,
            "mac": mac,
        },
    )
    return str(resp.json()["access_token"])


async def test_registration_token_provisioning_completes_the_token_stage(monkeypatch):
    with EmbeddedSynapse(extra_config={"registration_requires_token": True}) as server:
        created = httpx.post(
            f"{server.base_url}/_synapse/admin/v1/registration_tokens/new",
            json={"uses_allowed": 5},
            headers={"Authorization": f"Bearer {admin_token(server)}"},
        )
        assert created.status_code == 200
        monkeypatch.setenv("MXC_REG_TOKEN", created.json()["token"])
        target = Target.model_validate(
            {
                "name": "tokened",
                "base_url": server.base_url,
                "server_name": "localhost",
                "auth": ["legacy"],
                "provisioning": {"method": "registration-token", "token": "${MXC_REG_TOKEN}"},
            }
        )
        secrets = SecretRegistry()
        users = LegacyUsers(target, None, secrets, UserNames())
        recorder = Recorder()
        async with httpx.AsyncClient() as http:
            client = MatrixClient(
                http, server.base_url, recorder, secrets, Pacer(1000), RequestPolicy()
            )
            session = await users.create(client, "tok")
            stages = [
                e.request_body.get("auth", {}).get("type")
                for e in recorder.exchanges
                if isinstance(e.request_body, dict)
            ]
            assert "m.login.registration_token" in stages
            assert created.json()["token"] in secrets.values()
            assert "<redacted:token>" in str([e.request_body for e in recorder.exchanges])
            who = await client.request(
                "GET",
                "/_matrix/client/v3/account/whoami",
                credentials=bearer_header(session.access_token),
            )
            assert who.json()["user_id"] == session.user_id
            await users.cleanup(client)
        assert users.housekeeping.users_deactivated == [session.user_id]


async def test_open_registration_without_a_completable_flow_is_a_harness_error(monkeypatch):
    from mxconform.errors import HarnessError

    with EmbeddedSynapse(extra_config={"registration_requires_token": True}) as server:
        target = Target.model_validate(
            {
                "name": "open",
                "base_url": server.base_url,
                "server_name": "localhost",
                "auth": ["legacy"],
                "provisioning": {"method": "open-registration"},
            }
        )
        users = LegacyUsers(target, None, SecretRegistry(), UserNames())
        async with httpx.AsyncClient() as http:
            client = MatrixClient(
                http, server.base_url, Recorder(), SecretRegistry(), Pacer(1000), RequestPolicy()
            )
            with pytest.raises(HarnessError, match="no flow the harness can complete"):
                await users.create(client, "open")


async def test_cleanup_takes_a_refused_login_as_an_interrupted_deactivation():
    """A run stopped while a check deactivated its account: Synapse then refuses the right
    password 403 `M_FORBIDDEN` (the hash is gone). Cleanup counts that account done only when
    a deactivation was in flight for it; any other refused login stays a problem."""

    def answer(request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/_matrix/client/v3/login"
        return httpx.Response(403, json={"errcode": "M_FORBIDDEN", "error": "Invalid"})

    target = Target.model_validate(
        {
            "name": "remote",
            "base_url": "http://hs.test",
            "server_name": "hs.test",
            "auth": ["legacy"],
            "provisioning": {"method": "open-registration"},
        }
    )
    users = LegacyUsers(target, None, SecretRegistry(), UserNames())
    users.adopt("@gone:hs.test", "pw-gone-123")
    users.adopt("@other:hs.test", "pw-other-123")
    users.deactivation_may_happen("@gone:hs.test")
    async with httpx.AsyncClient(transport=httpx.MockTransport(answer)) as http:
        client = MatrixClient(
            http, "http://hs.test", Recorder(), SecretRegistry(), Pacer(1000), RequestPolicy()
        )
        await users.cleanup(client)
    assert users.housekeeping.users_deactivated == ["@gone:hs.test"]
    assert [p.split(":")[0] for p in users.housekeeping.problems] == ["@other"]
