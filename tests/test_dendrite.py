"""The `dendrite` target: its build cache, its configuration, admin capabilities it lacks
(SKIP, not ERROR), and a short selection against a real Dendrite built from the Go module
proxy (skipped, with the reason, where Go or the build is unavailable)."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from mxconform.cli import parser, run_suites
from mxconform.errors import HarnessError, Unsupported
from mxconform.legacy.admin import _unoffered
from mxconform.targets.config import ServersFile, Target
from mxconform.targets.embedded import dendrite_builds
from mxconform.targets.embedded.dendrite import RELAXED_RATE_LIMITING, dendrite_overrides
from mxconform.targets.loading import load_servers

ROOT = Path(__file__).resolve().parents[1]


def _fake_installer(calls: list[str]) -> dendrite_builds.Installer:
    def install(version: str, path: Path, go: str, cache: Path) -> float:
        calls.append(version)
        (path / "bin").mkdir(parents=True)
        for name in dendrite_builds.COMMANDS:
            (path / "bin" / name).write_text("#!/bin/sh\n")
        return 1.5

    return install


def test_a_build_is_made_once_then_read_from_the_cache(tmp_path, monkeypatch):
    """Keyed by Dendrite's version and Go's; the marker makes it usable; offline reads it."""
    monkeypatch.setattr(dendrite_builds, "go_version", lambda go: "go1.26.8")
    calls: list[str] = []
    first = dendrite_builds.ensure(
        "0.13.8", cache=tmp_path, go="/go", installer=_fake_installer(calls)
    )
    again = dendrite_builds.ensure(
        "0.13.8", cache=tmp_path, go="/go", installer=_fake_installer(calls)
    )
    assert calls == ["0.13.8"]
    assert first.path == again.path == tmp_path / "0.13.8-go1.26.8"
    assert again.build_s == 1.5
    assert dendrite_builds.ensure("0.13.8", cache=tmp_path, offline=True).path == first.path
    assert [b.version for b in dendrite_builds.cached(tmp_path)] == ["0.13.8"]


def test_a_failed_build_leaves_nothing_and_offline_names_the_install_command(tmp_path, monkeypatch):
    monkeypatch.setattr(dendrite_builds, "go_version", lambda go: "go1.26.8")

    def broken(version: str, path: Path, go: str, cache: Path) -> float:
        (path / "bin").mkdir(parents=True)
        raise HarnessError("building Dendrite 0.13.8 failed: cgo: C compiler not found")

    with pytest.raises(HarnessError, match="C compiler"):
        dendrite_builds.ensure("0.13.8", cache=tmp_path, go="/go", installer=broken)
    assert not (tmp_path / "0.13.8-go1.26.8").exists()
    with pytest.raises(HarnessError, match=r"its last build failed: .*C compiler"):
        dendrite_builds.ensure("0.13.8", cache=tmp_path, offline=True)
    dendrite_builds.ensure("0.13.8", cache=tmp_path, go="/go", installer=_fake_installer([]))
    assert not list(tmp_path.glob(".*.failed"))  # a build that worked forgets the failure


def test_offline_without_a_build_says_how_to_get_one(tmp_path, monkeypatch):
    monkeypatch.setattr(dendrite_builds, "go_binary", lambda env=None: "/go")
    with pytest.raises(HarnessError, match=r"mxconform dendrite install 0\.13\.8"):
        dendrite_builds.ensure("0.13.8", cache=tmp_path, offline=True)
    monkeypatch.setattr(dendrite_builds, "go_binary", lambda env=None: None)
    with pytest.raises(HarnessError, match="needs Go"):
        dendrite_builds.ensure("0.13.8", cache=tmp_path, offline=True)


def test_without_go_the_target_s_checks_are_error_with_the_reason(tmp_path, monkeypatch):
    """Not a usage error that stops the whole run: the other targets would still run."""
    monkeypatch.setattr(dendrite_builds, "go_binary", lambda env=None: None)
    monkeypatch.setenv("MXCONFORM_DENDRITE_CACHE_DIR", str(tmp_path / "cache"))
    servers = tmp_path / "servers.yaml"
    servers.write_text(
        "defaults: [dendrite]\n"
        "targets:\n"
        "  - name: dendrite\n"
        "    embedded: dendrite\n"
        "    auth: [legacy]\n"
        "    provisioning: {method: synapse-shared-secret}\n"
    )
    args = ["run", "--servers", str(servers), "--report-dir", str(tmp_path / "r")]
    outcome = run_suites(parser().parse_args([*args, "--jobs", "1", "-k", "legacy.login.password"]))
    assert outcome.report_dir is not None
    document = json.loads((outcome.report_dir / "results.json").read_text())
    assert document["checks"] and {c["verdict"] for c in document["checks"]} == {"ERROR"}
    assert all("needs Go" in c["message"] for c in document["checks"])


def test_without_go_the_reason_is_said(tmp_path, monkeypatch):
    monkeypatch.setattr(dendrite_builds, "go_binary", lambda env=None: None)
    with pytest.raises(HarnessError, match="needs Go"):
        dendrite_builds.ensure("0.13.8", cache=tmp_path)


def test_the_cache_sits_beside_the_synapse_releases():
    home = {"HOME": "/h", "XDG_CACHE_HOME": "/x"}
    assert dendrite_builds.cache_dir(home) == Path("/x/mxconform/dendrite")
    assert dendrite_builds.cache_dir({"MXCONFORM_CACHE_DIR": "/c"}) == Path("/c/dendrite")
    assert dendrite_builds.cache_dir({"MXCONFORM_DENDRITE_CACHE_DIR": "/d"}) == Path("/d")


def test_the_configuration_is_a_loopback_test_server(tmp_path):
    base = {"global": {"server_name": "localhost"}, "client_api": {"registration_disabled": True}}
    config = dendrite_overrides(base, tmp_path, "s3cret", open_registration=True)
    client = config["client_api"]
    assert client["registration_disabled"] is False
    assert client["registration_shared_secret"] == "s3cret"
    assert client["rate_limiting"] == RELAXED_RATE_LIMITING
    assert config["federation_api"]["key_perspectives"] == []
    closed = dendrite_overrides(base, tmp_path, "s3cret", open_registration=False)
    assert closed["client_api"]["registration_disabled"] is True


def test_the_bundled_target_is_declared_but_not_a_default():
    servers = load_servers(ROOT / "servers.yaml")
    target = next(t for t in servers.targets if t.name == "dendrite")
    assert target.embedded == "dendrite" and target.dendrite_version == "0.13.8"
    assert "dendrite" not in servers.defaults


@pytest.mark.parametrize(
    "extra, problem",
    [
        ({"dendrite_version": "0.13"}, "expected a release like 0.13.8"),
        ({"auth": ["oauth"]}, "offers only the legacy API"),
        ({"synapse_version": "1.70.1"}, "do not apply to dendrite"),
    ],
)
def test_dendrite_settings_are_checked(extra, problem):
    target = {
        "name": "d",
        "embedded": "dendrite",
        "auth": ["legacy"],
        "provisioning": {"method": "synapse-shared-secret"},
        **extra,
    }
    with pytest.raises(ValueError, match=problem):
        ServersFile.model_validate({"defaults": ["d"], "targets": [target]})


def test_dendrite_version_is_for_the_dendrite_kind_only():
    with pytest.raises(ValueError, match="only applies to the dendrite target"):
        Target.model_validate(
            {
                "name": "s",
                "embedded": "synapse-legacy",
                "auth": ["legacy"],
                "provisioning": {"method": "synapse-shared-secret"},
                "dendrite_version": "0.13.8",
            }
        )


def test_an_admin_endpoint_the_server_does_not_offer_is_a_skip():
    """Dendrite answers Synapse's user admin API as any unknown endpoint: 404 M_UNRECOGNIZED."""
    unknown = httpx.Response(404, json={"errcode": "M_UNRECOGNIZED", "error": "Unrecognized"})
    with pytest.raises(
        Unsupported, match=r"lock an account \(PUT /_synapse/admin/v2/users/\{user_id\}"
    ):
        _unoffered(unknown, "PUT", "/_synapse/admin/v2/users/@a:b", "lock")
    missing_user = httpx.Response(404, json={"errcode": "M_NOT_FOUND", "error": "no such user"})
    _unoffered(missing_user, "POST", "/_synapse/admin/v1/deactivate/@a:b", "deactivate")


@pytest.fixture(scope="module")
def dendrite_build() -> dendrite_builds.Build:
    """The cached build, built now if Go is here (minutes, once); SKIP with the reason."""
    try:
        return dendrite_builds.ensure(dendrite_builds.DEFAULT_VERSION, offline=True)
    except HarnessError:
        pass
    if dendrite_builds.go_binary() is None:
        pytest.skip("Dendrite is built from source: no Go on this machine")
    try:
        return dendrite_builds.ensure(dendrite_builds.DEFAULT_VERSION)
    except HarnessError as exc:
        pytest.skip(f"Dendrite {dendrite_builds.DEFAULT_VERSION} could not be built: {exc}")


@pytest.mark.integration
def test_a_short_selection_against_a_real_dendrite(dendrite_build, tmp_path):
    """Provisioning through Synapse-compatible shared-secret registration, checks judged,
    Synapse's admin API absent and /account/3pid/add unoffered: SKIP with the reason, never
    ERROR; a deviation FAILs, listed in known-issues/dendrite.yaml."""
    servers = tmp_path / "servers.yaml"
    servers.write_text(
        "defaults: [dendrite]\n"
        "targets:\n"
        "  - name: dendrite\n"
        "    embedded: dendrite\n"
        f'    dendrite_version: "{dendrite_build.version}"\n'
        "    server_name: localhost\n"
        "    auth: [legacy]\n"
        "    provisioning: {method: synapse-shared-secret}\n"
        f"    known_issues: {ROOT / 'known-issues' / 'dendrite.yaml'}\n"
    )
    selection = (
        "legacy.login.password or deactivated-by-admin or legacy.register.available "
        "or legacy.register.in-use or (uia.challenge and add-3pid)"
    )
    args = ["run", "--servers", str(servers), "--report-dir", str(tmp_path / "r"), "--offline"]
    outcome = run_suites(parser().parse_args([*args, "--jobs", "1", "-k", selection]))
    assert outcome.report_dir is not None
    document = json.loads((outcome.report_dir / "results.json").read_text())
    checks = {c["check_id"]: c for c in document["checks"]}
    assert document["targets"][0]["server_software"].startswith("Dendrite")
    assert not [c for c in checks.values() if c["verdict"] == "ERROR"]
    assert not [c for c in checks.values() if c["verdict"] == "FAIL" and not c.get("known_issue")]
    by_admin = checks["account.deactivated-by-admin.login"]
    assert by_admin["verdict"] == "SKIP" and "needs admin capability" in by_admin["message"]
    assert checks["legacy.register.available"]["verdict"] == "PASS"
    in_use = checks["legacy.register.in-use"]  # a deviation, listed with its rule
    assert in_use["verdict"] == "FAIL" and in_use.get("known_issue")
    assert checks["uia.challenge.add-3pid"]["verdict"] == "SKIP"
    assert "third-party identifiers are optional" in checks["uia.challenge.add-3pid"]["message"]
    assert [k for k, c in checks.items() if k.startswith("legacy.login.password")]
    assert document["targets"][0]["housekeeping"]["users_created"]


@pytest.mark.integration
def test_accounts_on_dendrite_are_deactivated_without_the_admin_api(dendrite_build, tmp_path):
    """`cleanup: deactivate`: the admin route answers as unknown, so each account is
    deactivated with the token the run holds; nothing is left active, no problem noted."""
    servers = tmp_path / "servers.yaml"
    servers.write_text(
        "defaults: [dendrite]\n"
        "targets:\n"
        "  - name: dendrite\n"
        "    embedded: dendrite\n"
        f'    dendrite_version: "{dendrite_build.version}"\n'
        "    auth: [legacy]\n"
        "    provisioning: {method: synapse-shared-secret}\n"
        "    cleanup: deactivate\n"
    )
    args = ["run", "--servers", str(servers), "--report-dir", str(tmp_path / "r"), "--offline"]
    selection = "legacy.login.password or deactivated-by-admin"
    outcome = run_suites(parser().parse_args([*args, "--jobs", "1", "-k", selection]))
    assert outcome.report_dir is not None
    document = json.loads((outcome.report_dir / "results.json").read_text())
    hk = document["targets"][0]["housekeeping"]
    assert hk["users_created"] and set(hk["users_deactivated"]) == set(hk["users_created"])
    assert hk["users_left_active"] == [] and hk["problems"] == []
