"""Synapse releases by version: pins, spec matching, the cache and its marker, config rules.

Nothing here downloads Synapse: the index listing and the installer are injected, and the one
integration test uses a venv already in the cache (skipped when there is none).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from mxconform.cli import main
from mxconform.errors import HarnessError
from mxconform.targets.config import ConfigError
from mxconform.targets.embedded import releases
from mxconform.targets.embedded.releases import (
    MARKER,
    cache_dir,
    ensure,
    matches,
    newest,
    oauth_problem,
    pins_for,
    spec_problem,
)
from mxconform.targets.loading import load_servers

INDEX = ["1.150.0", "1.131.0", "1.130.2", "1.130.10", "1.130.0", "1.13.0", "1.70.1", "1.70.0"]


def never_list() -> list[str]:
    raise AssertionError("the index was asked")


def never_install(version: str, path: Path) -> None:
    raise AssertionError(f"an install of {version} was attempted")


def fake_installer(calls: list[str]):
    def install(version: str, path: Path) -> None:
        calls.append(version)
        (path / "bin").mkdir(parents=True)
        (path / "bin" / "python").symlink_to(sys.executable)

    return install


def cached_venv(cache: Path, version: str, *, marker: bool = True) -> Path:
    """A venv as `python -m venv` leaves it: bin/python links to the interpreter."""
    path = cache / version
    (path / "bin").mkdir(parents=True)
    (path / "bin" / "python").symlink_to(sys.executable)
    if marker:
        (path / MARKER).write_text(json.dumps({"version": version, "pins": pins_for(version)}))
    return path


def fake_python(path: Path, version: str) -> None:
    """A `bin/python` that answers the version question and passes the import check."""
    script = path / "bin" / "python"
    script.unlink(missing_ok=True)  # a link to the real interpreter: never write through it
    script.write_text(f'#!/bin/sh\ncase "$2" in *__version__*) echo {version};; esac\nexit 0\n')
    script.chmod(0o755)


@pytest.mark.parametrize(
    ("version", "pins"),
    [
        ("1.70.1", ["prometheus-client<0.22", "pydantic<2"]),
        ("1.89.0", ["prometheus-client<0.22", "pydantic<2"]),
        ("1.90.0", ["prometheus-client<0.22"]),
        ("1.149.1", ["prometheus-client<0.22"]),
        ("1.150.0", []),
        ("1.163.2", []),
    ],
)
def test_pins_follow_the_table(version, pins):
    assert pins_for(version) == pins


def test_spec_forms_and_matching():
    assert spec_problem("1.70.1") is None and spec_problem("1.130.*") is None
    for bad in ("1.130", "latest", ">=1.130", "1.*", "1.130.x", ""):
        assert spec_problem(bad) is not None, bad
    assert matches("1.130.*", "1.130.10") and not matches("1.13.*", "1.130.0")
    assert not matches("1.130.*", "1.131.0") and not matches("1.130.*", "1.130.0rc1")
    assert matches("1.70.1", "1.70.1") and not matches("1.70.1", "1.70.0")
    assert newest("1.130.*", INDEX) == "1.130.10"  # numeric, not string, order
    assert newest("1.129.*", INDEX) is None


def test_cache_dir_precedence():
    home = Path.home() / ".cache" / "mxconform" / "synapse"
    assert cache_dir({}) == home
    assert cache_dir({"XDG_CACHE_HOME": "/x"}) == Path("/x/mxconform/synapse")
    assert cache_dir({"XDG_CACHE_HOME": "/x", "MXCONFORM_CACHE_DIR": "/c"}) == Path("/c")


def test_a_line_resolves_to_its_newest_release_and_installs_it(tmp_path):
    calls: list[str] = []
    release = ensure(
        "1.130.*", cache=tmp_path, lister=lambda: INDEX, installer=fake_installer(calls)
    )
    assert calls == ["1.130.10"] and release.version == "1.130.10"
    assert release.path == tmp_path / "1.130.10"
    assert release.python == tmp_path / "1.130.10" / "bin" / "python"
    marker = json.loads((release.path / MARKER).read_text())
    assert marker == {"version": "1.130.10", "pins": ["prometheus-client<0.22"]}


def test_a_cached_release_is_reused_without_install(tmp_path):
    cached_venv(tmp_path, "1.70.1")
    release = ensure("1.70.1", cache=tmp_path, lister=never_list, installer=never_install)
    assert release.version == "1.70.1" and release.pins == ("prometheus-client<0.22", "pydantic<2")
    cached_venv(tmp_path, "1.130.10")
    line = ensure("1.130.*", cache=tmp_path, lister=lambda: INDEX, installer=never_install)
    assert line.version == "1.130.10"


def test_offline_uses_the_newest_cached_match(tmp_path):
    cached_venv(tmp_path, "1.130.0")
    cached_venv(tmp_path, "1.130.2")
    cached_venv(tmp_path, "1.131.0")
    release = ensure(
        "1.130.*", offline=True, cache=tmp_path, lister=never_list, installer=never_install
    )
    assert release.version == "1.130.2"


def test_offline_with_nothing_cached_says_how_to_install(tmp_path):
    cached_venv(tmp_path, "1.131.0")
    with pytest.raises(HarnessError) as caught:
        ensure("1.130.*", offline=True, cache=tmp_path, lister=never_list)
    message = str(caught.value)
    assert "1.130.*" in message and str(tmp_path) in message
    assert "mxconform synapse install '1.130.*'" in message and "\n" not in message


def test_a_venv_whose_interpreter_is_gone_is_built_again(tmp_path):
    """A cache restored on a runner whose Python patch release changed: the marker is there,
    the interpreter the venv links to is not."""
    stale = cached_venv(tmp_path, "1.130.2")
    (stale / "bin" / "python").unlink()
    (stale / "bin" / "python").symlink_to(tmp_path / "python3.11.8-gone")
    with pytest.raises(HarnessError, match="no cached Synapse release"):
        ensure("1.130.*", offline=True, cache=tmp_path)
    calls: list[str] = []
    release = ensure("1.130.2", cache=tmp_path, installer=fake_installer(calls))
    assert calls == ["1.130.2"] and release.python.resolve() == Path(sys.executable).resolve()


def test_a_half_built_venv_is_never_used(tmp_path):
    half = cached_venv(tmp_path, "1.130.2", marker=False)
    (half / "bin" / "leftover").write_text("")
    with pytest.raises(HarnessError, match="no cached Synapse release"):
        ensure("1.130.*", offline=True, cache=tmp_path)
    calls: list[str] = []
    release = ensure("1.130.2", cache=tmp_path, installer=fake_installer(calls))
    assert calls == ["1.130.2"] and not (release.path / "bin" / "leftover").exists()
    assert (release.path / MARKER).exists()


def test_a_hand_made_venv_is_adopted_once_it_imports_its_version(tmp_path):
    good = cached_venv(tmp_path, "1.110.0", marker=False)
    fake_python(good, "1.110.0")
    wrong = cached_venv(tmp_path, "1.111.0", marker=False)
    fake_python(wrong, "1.90.0")  # the folder's name is not what it holds
    release = ensure("1.110.0", offline=True, cache=tmp_path)
    assert release.pins is None and (good / MARKER).exists()
    with pytest.raises(HarnessError, match="no cached"):
        ensure("1.111.*", offline=True, cache=tmp_path)
    assert [r.version for r in releases.cached(tmp_path)] == ["1.110.0"]


def test_a_failed_install_leaves_nothing_behind(tmp_path):
    def broken(version: str, path: Path) -> None:
        (path / "bin").mkdir(parents=True)
        raise HarnessError("installing Synapse failed")

    with pytest.raises(HarnessError, match="failed"):
        ensure("1.70.1", cache=tmp_path, installer=broken)
    assert not (tmp_path / "1.70.1").exists()


def test_pip_failure_shows_a_short_masked_tail(tmp_path, monkeypatch):
    output = "\n".join(f"line {i}" for i in range(100))
    output += "\nERROR: https://user:hunter2@pypi.example/simple refused"

    class Done:
        returncode = 1
        stdout = output
        stderr = ""

    monkeypatch.setattr(releases, "_run", lambda argv, timeout: Done())
    with pytest.raises(HarnessError) as caught:
        releases.install_venv("1.70.1", tmp_path / "1.70.1")
    message = str(caught.value)
    assert len(message.splitlines()) <= 21 and "hunter2" not in message
    assert "https://***@pypi.example" in message


def test_installed_version_asks_the_interpreter(tmp_path):
    (tmp_path / "bin").mkdir()
    fake_python(tmp_path, "1.99.0")
    assert releases.installed_version(tmp_path / "bin" / "python") == "1.99.0"
    assert releases.installed_version(tmp_path / "missing") is None


def test_oauth_needs_the_mas_contract():
    assert "1.138.0" in (oauth_problem("1.130.*") or "")
    assert oauth_problem("1.137.0") and oauth_problem("1.136.*") and oauth_problem("1.70.1")
    assert oauth_problem("1.138.*") is None and oauth_problem("1.150.0") is None


TARGET = """
defaults: [t]
targets:
  - name: t
    {extra}
"""
LEGACY = (
    "embedded: synapse-legacy\n    auth: [legacy]\n    provisioning: {method: open-registration}"
)
OAUTH = "embedded: synapse-oauth\n    auth: [oauth]"
REMOTE = (
    "base_url: https://m.example.org\n    server_name: m.example.org\n    auth: [legacy]\n"
    "    provisioning: {method: open-registration}"
)


def config_error(tmp_path: Path, body: str) -> str:
    path = tmp_path / "servers.yaml"
    path.write_text(TARGET.format(extra=body))
    with pytest.raises(ConfigError) as caught:
        load_servers(path)
    message = str(caught.value)
    assert "\n" not in message
    return message


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (f"{LEGACY}\n    synapse_version: '1.70.1'\n    synapse_python: /x/python", "not both"),
        (f"{REMOTE}\n    synapse_version: '1.70.1'", "only applies to embedded targets"),
        (f"{LEGACY}\n    synapse_version: latest", "like 1.130.*"),
        (f"{OAUTH}\n    synapse_version: '1.130.*'", "needs Synapse 1.138.0 or later"),
    ],
)
def test_config_rules(tmp_path, body, expected):
    assert expected in config_error(tmp_path, body)


def test_config_accepts_a_version(tmp_path):
    path = tmp_path / "servers.yaml"
    path.write_text(TARGET.format(extra=f"{OAUTH}\n    synapse_version: '1.150.*'"))
    assert load_servers(path).targets[0].synapse_version == "1.150.*"


def test_cli_install_list_and_offline_run(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MXCONFORM_CACHE_DIR", str(tmp_path / "cache"))
    cached_venv(tmp_path / "cache", "1.70.1")
    assert main(["synapse", "install", "1.70.1"]) == 0  # cached: no index, no install
    assert f"Synapse 1.70.1: {tmp_path / 'cache' / '1.70.1'}" in capsys.readouterr().out
    cached_venv(tmp_path / "cache", "1.90.0", marker=False)
    assert main(["synapse", "list"]) == 0
    listing = capsys.readouterr().out
    assert "1.70.1: " in listing and "prometheus-client<0.22, pydantic<2" in listing
    assert "1.90.0: " in listing and "no marker" in listing
    assert main(["synapse", "install", "1.90.*", "--offline"]) == 2
    assert "mxconform synapse install '1.90.*'" in capsys.readouterr().err
    servers = tmp_path / "servers.yaml"
    servers.write_text(TARGET.format(extra=f"{LEGACY}\n    synapse_version: '1.90.*'"))
    assert main(["run", "--servers", str(servers), "--offline"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "target t: no cached Synapse release matches 1.90.*" in err


def _cached_real_release() -> Path | None:
    """The newest venv in the real cache that holds a Synapse (marker or not)."""
    found = [
        d
        for d in releases._version_dirs(cache_dir())
        if (d / "bin" / "python").exists() and (d / "lib").exists()
    ]
    return max(found, key=lambda d: releases.parse_version(d.name) or ()) if found else None


@pytest.mark.integration
@pytest.mark.skipif(_cached_real_release() is None, reason="no Synapse venv in the cache")
def test_a_cached_release_runs_and_reaches_provenance(tmp_path, monkeypatch):
    venv = _cached_real_release()
    assert venv is not None
    servers = tmp_path / "servers.yaml"
    servers.write_text(
        TARGET.format(extra=f"{LEGACY}\n    synapse_version: '{venv.name}'").replace(
            "open-registration", "synapse-shared-secret"
        )
    )
    monkeypatch.chdir(tmp_path)
    args = ["run", "--servers", str(servers), "--offline", "--report-dir", "reports"]
    assert main([*args, "-k", "discovery.legacy.offered"]) == 0
    document = json.loads(Path("reports/latest/results.json").read_text())
    (target,) = document["targets"]
    assert target["synapse_version"] == venv.name
    assert target["server_header"].startswith(f"Synapse/{venv.name}")
    assert os.path.exists(venv / MARKER)


def test_a_release_date_is_its_newest_file_s_upload_on_the_index(monkeypatch):
    """PEP 691 JSON with PEP 700 upload times: the newest of that version's files only."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    files = [
        {"filename": "matrix_synapse-1.130.0.tar.gz", "upload-time": "2025-05-20T15:35:32Z"},
        {
            "filename": "matrix_synapse-1.130.0-cp39-abi3-x.whl",
            "upload-time": "2025-05-20T15:34:56Z",
        },
        {
            "filename": "matrix_synapse-1.130.10-cp39-abi3-x.whl",
            "upload-time": "2025-09-01T00:00:00Z",
        },
    ]

    class Index(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            asked = self.headers.get("accept", "")
            body = json.dumps({"meta": {"api-version": "1.1"}, "files": files}).encode()
            self.send_response(200 if "vnd.pypi.simple.v1+json" in asked else 406)
            self.send_header("content-type", "application/vnd.pypi.simple.v1+json")
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Index)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        index = f"http://127.0.0.1:{server.server_address[1]}/simple"
        date = releases.release_date("1.130.0", index)
        assert date is not None and date.isoformat() == "2025-05-20T15:35:32+00:00"
        assert releases.release_date("1.131.0", index) is None
    finally:
        server.shutdown()
        server.server_close()


def test_a_release_is_installed_with_the_dependencies_of_its_day(tmp_path, monkeypatch):
    """pip is told --uploaded-prior-to a day after the release, and what it resolved is kept
    for the provenance."""
    from datetime import UTC, datetime

    ran: list[list[str]] = []

    class Done:
        returncode = 0
        stdout = json.dumps([{"name": "bcrypt", "version": "4.3.0"}])
        stderr = ""

    monkeypatch.setattr(
        releases, "release_date", lambda v: datetime(2025, 5, 20, 15, 35, tzinfo=UTC)
    )
    monkeypatch.setattr(releases, "_run", lambda argv, timeout: ran.append(argv) or Done())
    path = tmp_path / "1.130.0"
    path.mkdir()
    releases.install_venv("1.130.0", path)
    install = next(a for a in ran if "matrix-synapse==1.130.0" in a)
    assert install[install.index("--uploaded-prior-to") + 1] == "2025-05-21T15:35:00Z"
    assert any(releases.DATED_PIP in a for a in ran)  # a pip that knows the option, first
    resolved = releases.resolution("1.130.0", cache=tmp_path)
    assert resolved == {
        "uploaded_prior_to": "2025-05-21T15:35:00Z",
        "packages": {"bcrypt": "4.3.0"},
    }
