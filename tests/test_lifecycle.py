"""Embedded Synapse: config, start, and a stop on every exit path (end, failure, Ctrl-C)."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import yaml

from mxconform.errors import HarnessError
from mxconform.plugin.options import forget_stale_stops
from mxconform.targets.embedded.synapse import EmbeddedSynapse, synapse_available, synapse_config

needs_synapse = pytest.mark.skipif(not synapse_available(), reason="embedded extra missing")


def is_down(base_url: str) -> bool:
    try:
        httpx.get(f"{base_url}/_matrix/client/versions", timeout=1)
    except httpx.TransportError:
        return True
    return False


def test_config_is_loopback_and_test_friendly(tmp_path):
    config = synapse_config(tmp_path, 12345, "localhost", "s3cret", tmp_path / "hs.log")
    listener = config["listeners"][0]
    assert listener["bind_addresses"] == ["127.0.0.1"] and listener["port"] == 12345
    assert config["database"]["name"] == "sqlite3" and config["bcrypt_rounds"] == 4
    assert config["enable_registration_without_verification"] is True
    assert config["rc_login"]["failed_attempts"]["per_second"] >= 1000
    assert yaml.safe_load((tmp_path / "log.yaml").read_text())["handlers"]["file"]["filename"]


@pytest.mark.integration
@needs_synapse
def test_stop_on_normal_end_keeps_a_scrubbed_log(tmp_path):
    with EmbeddedSynapse(log_dir=tmp_path / "logs") as server:
        base, secret = server.base_url, server.shared_secret
        assert httpx.get(f"{base}/_matrix/client/versions").status_code == 200
        workdir = server.workdir
    assert is_down(base) and not workdir.exists()
    log = (tmp_path / "logs" / "synapse-homeserver.log").read_text()
    assert "Synapse now listening" in log or "Started" in log or log
    assert secret not in log


@pytest.mark.integration
@needs_synapse
def test_failed_start_cleans_up(tmp_path):
    server = EmbeddedSynapse(python=sys.executable, startup_timeout_s=20)
    server.server_name = "bad name with spaces"  # Synapse refuses this at start-up
    with pytest.raises(HarnessError, match="exited during start-up"):
        server.start()
    assert server.process is None and not server.workdir.exists()


def _spawn(*args: str, cwd: Path, tmp: Path | None = None) -> subprocess.Popen[str]:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    if tmp is not None:  # the embedded targets' state goes there (see memory_dir)
        env["TMPDIR"] = str(tmp)
    return subprocess.Popen(
        [sys.executable, "-m", "mxconform.cli", *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _wait_for_url(proc: subprocess.Popen[str], pattern: str, timeout: float = 60) -> str:
    deadline = time.monotonic() + timeout
    seen = ""
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        seen += line
        found = re.search(pattern, line)
        if found:
            return found.group(1)
        if not line and proc.poll() is not None:
            break
    raise AssertionError(f"no URL in output:\n{seen}")


@pytest.mark.integration
@needs_synapse
def test_ctrl_c_during_a_run_stops_synapse(tmp_path):
    """Ctrl-C as soon as one target is up, the other most likely still starting: both are
    stopped and neither leaves its state folder (a target still starting is waited for)."""
    state = tmp_path / "state"
    state.mkdir()
    argv = ("run", "--report-dir", str(tmp_path / "reports"), "-v")
    proc = _spawn(*argv, cwd=tmp_path, tmp=state)
    base = _wait_for_url(proc, r"started in [\d.]+ s, (http://127\.0\.0\.1:\d+)")
    proc.send_signal(signal.SIGINT)
    proc.wait(timeout=60)
    assert proc.returncode != 0
    assert is_down(base)
    assert not [p.name for p in state.iterdir() if p.name.startswith("mxconform-")]


@pytest.mark.integration
@needs_synapse
def test_serve_prints_urls_and_stops_on_ctrl_c(tmp_path):
    proc = _spawn("serve", cwd=tmp_path)
    base = _wait_for_url(proc, r"^synapse-legacy: (http://127\.0\.0\.1:\d+)")
    assert httpx.get(f"{base}/_matrix/client/versions").status_code == 200
    _wait_for_url(proc, r"^(serving); Ctrl-C to stop")  # every target up: stop them all
    proc.send_signal(signal.SIGINT)
    proc.wait(timeout=60)  # each Synapse may take its 10 s SIGTERM grace on a loaded machine
    assert proc.returncode == 0 and is_down(base)


def test_a_signal_just_after_a_check_ended_leaves_the_teardown_a_working_loop():
    """The stop signal lands after the check's task is done but before the loop ran its own
    stop callback (a done-callback raising stands in for the signal's handler): the loop's
    next run, the fixtures' teardown, must still run to the end (without the clean-up:
    "Event loop stopped before Future completed", and no report)."""
    loop = asyncio.new_event_loop()
    try:

        async def check() -> str:
            return "graded"

        def signal_lands(_: object) -> None:
            raise KeyboardInterrupt

        task = loop.create_task(check())
        task.add_done_callback(signal_lands)  # queued ahead of run_until_complete's callback
        with pytest.raises(KeyboardInterrupt):
            loop.run_until_complete(task)
        assert forget_stale_stops(loop) == 1
        assert loop.run_until_complete(asyncio.sleep(0.01, "torn down")) == "torn down"
        assert forget_stale_stops(loop) == 0
    finally:
        loop.close()
