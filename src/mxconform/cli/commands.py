"""The commands other than `run`: serve, targets, report, diff, synapse (dendrite: its own
module)."""

from __future__ import annotations

import argparse
import json
import signal
import time
from pathlib import Path
from typing import Any

from mxconform.cli.dendrite import prepare_builds
from mxconform.paths import servers_file
from mxconform.targets.config import ConfigError, ServersFile, Target
from mxconform.targets.embedded import releases
from mxconform.targets.lifecycle import RunningTarget, start_target, synapse_python
from mxconform.targets.loading import load_servers

EXIT_OK, EXIT_FAIL, EXIT_ERROR = 0, 1, 2


def _load(arg: str | None) -> tuple[Path, ServersFile]:
    path = servers_file(arg)
    return path, load_servers(path)


def _installer(version: str, path: Path) -> None:
    """The real installer, announced first: it downloads for a few minutes."""
    print(f"installing Synapse {version} into {path} (a few minutes) ...", flush=True)
    releases.install_venv(version, path)


def synapse_command(args: argparse.Namespace) -> int:
    """`mxconform synapse install SPEC` and `mxconform synapse list`: the release cache."""
    if args.action == "install":
        problem = releases.spec_problem(args.spec)
        if problem:
            raise ConfigError(problem)
        release = releases.ensure(args.spec, offline=args.offline, installer=_installer)
        print(f"Synapse {release.version}: {release.path}")
        return EXIT_OK
    cache = releases.cache_dir()
    found, unverified = releases.cached(cache), releases.unverified(cache)
    print(f"Synapse releases in {cache}:" if found or unverified else f"nothing in {cache}")
    for r in found:
        pins = "adopted (made by hand)" if r.pins is None else ", ".join(r.pins) or "none"
        print(f"  {r.version}: {r.path} (pins: {pins})")
    for path in unverified:
        print(f"  {path.name}: {path} (no marker: adopted on first use if it imports this release)")
    return EXIT_OK


def remote_block(rt: RunningTarget, secret_var: str) -> str:
    """servers.yaml's entry for a served embedded OAuth target: its issuer named (the only
    OAuth origin credentials may go to), the admin secret by reference."""
    admin = rt.oauth_admin
    assert admin is not None
    lines = [
        f"- name: {rt.name}-served",
        f"  base_url: {rt.base_url}",
        f"  server_name: {rt.server_name}",
        "  auth: [oauth]",
        *([f"  tls: {{ca_file: {rt.ca_file}}}"] if rt.ca_file else []),
        "  oauth:",
        "    driver: form",
        f"    issuer: {rt.oauth_issuer or admin.url.rstrip('/') + '/'}",
        "    admin:",
        f"      url: {admin.url}",
        f"      client_id: {admin.client_id}",
        f"      client_secret: ${{{secret_var}}}",
    ]
    return "".join(f"    {line}\n" for line in lines)


def serve(args: argparse.Namespace) -> int:
    _, servers = _load(args.servers)
    chosen = (
        servers.select(args.names) if args.names else [t for t in servers.select([]) if t.embedded]
    )
    not_embedded = [t.name for t in chosen if t.embedded is None]
    if not_embedded:
        raise ConfigError(f"not embedded targets (nothing to start): {', '.join(not_embedded)}")
    if not chosen:
        raise ConfigError("no embedded targets among the defaults; name one")
    running: list[RunningTarget] = []
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    # Ctrl-C stops it even when started from a shell that ignores SIGINT in background jobs
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        for t in chosen:
            started = time.perf_counter()
            log_dir = Path(args.log_dir) / t.name if args.log_dir else None
            rt = start_target(t, log_dir, offline=args.offline)
            running.append(rt)
            print(
                f"{t.name}: {rt.base_url} (server_name {rt.server_name}, "
                f"started in {time.perf_counter() - started:.1f}s)"
            )
            if rt.shared_secret and rt.embedded is not None:
                print(f"  registration shared secret (this process only): {rt.shared_secret}")
            if rt.oauth_admin is not None:  # the embedded OAuth server and its admin client
                admin = rt.oauth_admin
                print(f"  OAuth server: {admin.url} (admin client {admin.client_id})")
                print(f"  admin client secret (this process only): {admin.client_secret}")
                print("  to test it as a remote target, in a servers file:")
                print(remote_block(rt, "MXCONFORM_ADMIN_SECRET"), end="")
        print("serving; Ctrl-C to stop", flush=True)
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        print("stopping")
    finally:
        for rt in running:
            rt.stop()
    return EXIT_OK


def list_targets(args: argparse.Namespace) -> int:
    """`mxconform targets [--json]`: each target and what it declares (never a secret: a
    secret is named by its variable only, and not shown here at all)."""
    path, servers = _load(args.servers)
    if getattr(args, "json", False):
        rows = [_target_row(t, t.name in servers.defaults) for t in servers.targets]
        print(json.dumps({"servers": str(path), "targets": rows}, indent=2))
        return EXIT_OK
    print(f"targets in {path}:")
    for t in servers.targets:
        where = f"embedded {t.embedded}" if t.embedded else t.base_url
        default = " (default)" if t.name in servers.defaults else ""
        parts = [f"{where}", f"auth {', '.join(t.auth)}"]
        if t.provisioning:
            parts.append(f"provisioning {t.provisioning.method}")
        if t.oauth:
            parts.append(f"oauth driver {t.oauth.driver}")
        if t.spec_version:
            parts.append(f"spec {t.spec_version}")
        if t.synapse_version:
            parts.append(f"synapse {t.synapse_version}")
        if t.dendrite_version:
            parts.append(f"dendrite {t.dendrite_version}")
        print(f"  {t.name}{default}: " + "; ".join(parts))
    return EXIT_OK


def _target_row(t: Target, default: bool) -> dict[str, Any]:
    """What `targets` says of a target, for scripts (the words' facts, by name)."""
    return {
        "name": t.name,
        "default": default,
        "embedded": t.embedded,
        "base_url": t.base_url,
        "server_name": t.server_name,
        "auth": list(t.auth),
        "provisioning": t.provisioning.method if t.provisioning else None,
        "oauth_driver": t.oauth.driver if t.oauth else None,
        "spec_version": t.spec_version,
        "synapse_version": t.synapse_version,
        "dendrite_version": t.dendrite_version,
        "known_issues": t.known_issues,
    }


def prepare_releases(targets: list[Target], offline: bool) -> None:
    """Resolve (and, online, install) each `synapse_version` before the run: a missing
    release is then a one-line usage error, and the run itself only reads the cache."""
    prepare_builds(targets, offline)
    for t in targets:
        if t.embedded is not None and t.synapse_version is not None:
            if not offline:
                releases.ensure(t.synapse_version, installer=_installer)
            python, version = synapse_python(t, offline=True)
            print(f"{t.name}: Synapse {version} ({python})")
