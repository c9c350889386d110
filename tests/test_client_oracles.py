"""Real client libraries as oracles: matrix-nio (Python) and matrix-js-sdk (the SDK Element
Web is built on, pinned in tests/oracles/js/package-lock.json) go through the legacy flows
the harness grades, against the session's Synapse and against
stand-ins that break one rule. Where nio and a verdict disagree, one of them is wrong: the
harness's PASS must be a flow nio completes, and a FAIL one nio cannot complete, or one in
which what nio is told does not hold (a logged-out token still working)."""

from __future__ import annotations

import asyncio
import fcntl
import json
import secrets
import shutil
import subprocess
from pathlib import Path

import pytest
from nonconformant import BreakingProxy

nio = pytest.importorskip("nio")

pytestmark = pytest.mark.integration

CHECKS = "legacy.login.password or tokens.whoami.identity or legacy.logout.device-gone"
JS = Path(__file__).resolve().parent / "oracles" / "js"


async def _registered(base_url: str) -> tuple[str, str]:
    """An account nio registers itself (the embedded Synapse has open registration, the
    dummy stage)."""
    name, password = f"mxc-nio-{secrets.token_hex(4)}", secrets.token_urlsafe(18)
    client = nio.AsyncClient(base_url)
    try:
        resp = await client.register(name, password)
        assert isinstance(resp, nio.RegisterResponse), resp
        return resp.user_id, password
    finally:
        await client.close()


async def _login_whoami_logout(base_url: str, user_id: str, password: str) -> dict[str, object]:
    """What nio experiences: a login, whoami with its token, a logout, then whether a new
    client holding that token is still let in."""
    seen: dict[str, object] = {}
    client = nio.AsyncClient(base_url, user_id)
    try:
        login = await client.login(password, device_name="nio oracle")
        seen["login"] = type(login).__name__
        if not isinstance(login, nio.LoginResponse):
            return seen
        who = await client.whoami()
        seen["whoami"] = (getattr(who, "user_id", None), getattr(who, "device_id", None))
        seen["device"] = login.device_id
        token = client.access_token
        seen["logout"] = type(await client.logout()).__name__
    finally:
        await client.close()
    after = nio.AsyncClient(base_url, user_id)
    after.access_token, after.user_id = token, user_id
    try:
        seen["after_logout"] = type(await after.whoami()).__name__
    finally:
        await after.close()
    return seen


def _nio(base_url: str, register_at: str) -> dict[str, object]:
    """nio's flows in an event loop of their own (the harness runs its own: tests are sync)."""

    async def flows() -> dict[str, object]:
        user_id, password = await _registered(register_at)
        seen = await _login_whoami_logout(base_url, user_id, password)
        return {**seen, "user_id": user_id}

    return asyncio.run(flows())


def test_nio_completes_every_flow_the_harness_passes(run_harness, synapse):
    seen = _nio(synapse.base_url, synapse.base_url)
    user_id = seen["user_id"]
    assert seen["login"] == "LoginResponse" and seen["logout"] == "LogoutResponse"
    assert seen["whoami"] == (user_id, seen["device"])
    assert seen["after_logout"] == "WhoamiError"  # the token ended with the logout
    run = run_harness(synapse.base_url, "-k", CHECKS)
    assert run.verdicts() and set(run.verdicts().values()) == {"PASS"}, run.verdicts()


def test_a_login_without_device_id_fails_both_nio_and_the_harness(run_harness, synapse):
    """nio's schema requires `device_id` in the login answer, as login.yaml does."""
    with BreakingProxy(synapse.base_url) as proxy:
        proxy.use("login-answers-without-device")
        seen = _nio(proxy.base_url, synapse.base_url)
        run = run_harness(proxy.base_url, "-k", "legacy.login.password")
    assert seen["login"] == "LoginError"
    assert set(run.verdicts().values()) == {"FAIL"}, run.verdicts()


def test_a_logout_that_ends_nothing_fails_the_harness_and_misleads_nio(run_harness, synapse):
    """nio is told the logout succeeded (200), yet its token still works: the deviation the
    harness FAILs is what a client would live with."""
    with BreakingProxy(synapse.base_url) as proxy:
        proxy.use("logout-does-nothing")
        seen = _nio(proxy.base_url, synapse.base_url)
        run = run_harness(proxy.base_url, "-k", "legacy.logout.device-gone")
    assert seen["logout"] == "LogoutResponse" and seen["after_logout"] == "WhoamiResponse"
    assert set(run.verdicts().values()) == {"FAIL"}, run.verdicts()


@pytest.fixture(scope="session")
def js_sdk() -> Path:
    """matrix-js-sdk installed from the lock file (npm ci, once, under a lock: the xdist
    workers share the folder); SKIP with the reason without node and npm."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.skip("matrix-js-sdk is an npm package: no node or npm on this machine")
    with open(JS / ".install.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (JS / "node_modules" / "matrix-js-sdk" / "package.json").exists():
            done = subprocess.run(
                [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"],
                cwd=JS,
                capture_output=True,
                text=True,
                timeout=600,
                check=False,
            )
            if done.returncode != 0:
                pytest.fail(f"npm ci of the js-sdk oracle failed: {done.stderr[-2000:]}")
    return Path(node)


def _js(node: Path, base_url: str, register_at: str) -> dict[str, object]:
    user_id, password = asyncio.run(_registered(register_at))
    done = subprocess.run(
        [node, JS / "oracle.mjs", base_url, user_id, password],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return {**json.loads(done.stdout.strip().splitlines()[-1]), "user_id": user_id}


def test_js_sdk_completes_every_flow_the_harness_passes(run_harness, synapse, js_sdk):
    seen = _js(js_sdk, synapse.base_url, synapse.base_url)
    assert "error" not in seen, seen
    assert seen["whoami"] == {"user_id": seen["user_id"], "device_id": seen["login"]["device_id"]}
    assert seen["logout"] == "ok" and seen["after_logout"] == "M_UNKNOWN_TOKEN"
    run = run_harness(synapse.base_url, "-k", CHECKS)
    assert run.verdicts() and set(run.verdicts().values()) == {"PASS"}, run.verdicts()


def test_js_sdk_and_the_harness_agree_on_a_logout_that_ends_nothing(run_harness, synapse, js_sdk):
    with BreakingProxy(synapse.base_url) as proxy:
        proxy.use("logout-does-nothing")
        seen = _js(js_sdk, proxy.base_url, synapse.base_url)
        run = run_harness(proxy.base_url, "-k", "legacy.logout.device-gone")
    assert seen["logout"] == "ok" and seen["after_logout"] == "accepted", seen
    assert set(run.verdicts().values()) == {"FAIL"}, run.verdicts()
