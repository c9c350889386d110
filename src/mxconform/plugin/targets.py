"""The run's targets: started (when embedded) and identified once, before their first check,
and stopped at the end of the run whatever happened."""

from __future__ import annotations

import ssl
from collections.abc import Callable
from pathlib import Path

import pytest

from mxconform import stopping
from mxconform.errors import HarnessError, TargetUnavailable
from mxconform.http.client import tls_context
from mxconform.plugin.progress import get_progress
from mxconform.plugin.state import Run, TargetState, get_run, report_dir, say
from mxconform.spec import requirements
from mxconform.targets.config import ConfigError, SynapseSharedSecret, Target
from mxconform.targets.embedded import releases
from mxconform.targets.lifecycle import RunningTarget, Starter, attached, settled, start_target
from mxconform.targets.preflight import Identity, identify
from mxconform.targets.probes import server_software, shared_secret_problem


def ensure_ready(run: Run, state: TargetState, config: pytest.Config) -> RunningTarget:
    """The target, started and identified as a Matrix homeserver; TargetUnavailable (every
    check of the target ERROR with one reason) when it cannot be."""
    if state.start_error:
        raise TargetUnavailable(state.start_error)
    if state.running is not None:
        return state.running
    state.budget.start_clock()  # the target's time budget counts from its first check
    name = state.target.name
    progress = get_progress(config)
    if progress is not None and state.target.embedded is not None:
        progress.target_starting(name, f"embedded {state.target.embedded}")
    try:
        if state.starting is not None:  # begun while the checks were collected
            # cleared only once it is done: a run stopped while this waits still has the
            # target to stop (stop_all waits for it)
            state.running = state.starting.result()
            state.starting = None
        else:
            state.running = _start(state.target, _log_dir(run, name), run.offline)
    except (HarnessError, ConfigError) as exc:
        state.start_error = f"target {name} could not be started: {exc}"
        _unavailable(config, name, state.start_error)
        raise TargetUnavailable(state.start_error) from exc
    running = state.running
    state.tls = tls_for(state.target, running)
    if running.synapse_version is not None:
        state.info["synapse_version"] = running.synapse_version
        # the dependencies it ran with, as installed (dated to its release where recorded)
        state.info["synapse_resolved"] = releases.resolution(running.synapse_version)
    run.secrets.add(running.shared_secret, "shared_secret")
    if running.oauth_admin is not None:
        admin = running.oauth_admin
        run.secrets.add_pair(admin.client_id, admin.client_secret)
    for held in running.held_secrets:
        run.secrets.add(held, "shared_secret")
    if running.embedded is not None:
        startup = running.embedded.startup_s or 0.0
        state.info["startup_s"] = round(startup, 2)
        if progress is None:
            say(
                config,
                f"mxconform: started embedded {state.target.embedded} '{name}' at "
                f"{running.base_url} in {startup:.1f}s",
            )
    try:
        identity = identify(running.base_url, state.target.timeout_s, verify=state.tls)
    except Exception as exc:  # any failure: else the target is left running, unidentified
        why = exc if isinstance(exc, TargetUnavailable) else f"preflight failed: {exc!r}"
        state.start_error = f"target {name} not run: {why}"
        _unavailable(config, name, state.start_error)
        raise TargetUnavailable(state.start_error) from None
    state.provisioning_error = _provisioning_problem(state.target, running, state.tls)
    if state.provisioning_error is not None:  # said once; the checks needing users ERROR
        line = f"{name}: {state.provisioning_error} (checks that need test users are ERROR)"
        progress = get_progress(config)
        progress.line(line) if progress is not None else say(config, f"mxconform: {line}")
    # a proxy in front may name itself in the Server header: the homeserver's own word
    software = server_software(running.base_url, state.target.timeout_s, state.tls)
    if software is not None:
        state.info["server_software"] = software
    version, why = identity.held_to(run.spec_override or state.target.spec_version)
    state.identity = identity
    state.info.update(
        server_header=identity.server_header,
        versions_advertised=identity.advertised,
        versions_unknown=identity.unknown,
        spec_version_evaluated=requirements.format_version(version),
        spec_version_source=why,
        preflight=identity.to_json(),
    )
    if progress is not None:
        started = (
            f"started in {state.info['startup_s']:.1f} s, " if "startup_s" in state.info else ""
        )
        progress.target_ready(
            name,
            f"{started}{running.base_url} answers as "
            f"{identity.server_header or 'an unnamed server'}{_behind(software, identity)}; "
            f"held to {requirements.format_version(version)} ({_why(why)})",
        )
    if identity.unknown:
        say(
            config,
            f"mxconform: {name} advertises versions this harness does not know "
            f"({', '.join(identity.unknown)}); held to {requirements.format_version(version)}",
        )
    return running


def _start(target: Target, log_dir: Path, offline: bool) -> RunningTarget:
    """Start the target, unless the parent process started it for this one (`--jobs`)."""
    given = attached(target)
    return given if given is not None else start_target(target, log_dir, offline=offline)


def _provisioning_problem(
    target: Target, running: RunningTarget, tls: ssl.SSLContext | bool
) -> str | None:
    """Why the target's legacy users cannot be provisioned, asked once (a GET for a nonce),
    so that an unreachable admin API is one reason and not an ERROR per check."""
    if "legacy" not in target.auth or not isinstance(target.provisioning, SynapseSharedSecret):
        return None
    return shared_secret_problem(running.admin_url or running.base_url, target.timeout_s, tls)


def _log_dir(run: Run, name: str) -> Path:
    return report_dir(run) / "logs" / name


def start_early(run: Run, config: pytest.Config) -> None:
    """Start the embedded targets in the background while pytest collects the checks (most
    of a Synapse's start is its own imports, which need not wait for ours).

    Only when nothing deselects checks: `-k`, `-m`, `--requirement` and `--collect-only` runs
    start a target at its first check, so that a target none of them selects never starts.
    `ensure_ready` waits for its target's turn."""
    deselecting = (
        config.getoption("keyword", "")
        or config.getoption("markexpr", "")
        or config.getoption("requirement", None)
        or config.getoption("collectonly", False)
    )
    embedded = [s for s in run.states.values() if s.target.embedded is not None]
    if deselecting or not embedded or stopping.requested():
        return

    def starting(target: Target) -> Callable[[], RunningTarget]:
        return lambda: _start(target, _log_dir(run, target.name), run.offline)

    run.starter = Starter([starting(state.target) for state in embedded])
    for state, future in zip(embedded, run.starter.futures, strict=True):
        state.starting = future
    run.starter.start()


def pytest_sessionstart(session: pytest.Session) -> None:
    start_early(get_run(session.config), session.config)


def tls_for(target: Target, running: RunningTarget) -> ssl.SSLContext | bool:
    """What every client of the target verifies with: its `tls` settings, plus the CA the
    harness made for an embedded target's https face."""
    context = target.ssl_context()  # (a bundle it cannot read is a ConfigError)
    if running.ca_file is None or context is False:
        return context
    # its own context, not the shared one of the target's settings with the CA added to it
    return tls_context(target.tls.ca_file, target.tls.verify, str(running.ca_file))


def _behind(software: str | None, identity: Identity) -> str:
    """ " (the homeserver: Synapse 1.163.2)" when a proxy's name is all the header says."""
    header = (identity.server_header or "").lower()
    name = (software or "").split(" ")[0].lower()
    return f" (the homeserver: {software})" if software and name not in header else ""


def _why(source: str) -> str:
    return {
        "advertised": "the newest it advertises",
        "override": "set in servers.yaml or --spec-version",
    }.get(source, source)


def _unavailable(config: pytest.Config, name: str, reason: str) -> None:
    progress = get_progress(config)
    if progress is not None:
        progress.target_unavailable(name, reason)
    else:
        say(config, f"mxconform: {reason}")


def stop_all(run: Run) -> None:
    """Stop every target this run started (its kept logs scrubbed); safe to call twice. A
    target still starting in the background (the run was stopped early, or none of its
    checks ran) is waited for, then stopped."""
    for state in run.states.values():
        if state.starting is not None:
            starting, state.starting = state.starting, None
            state.running = settled(starting)
        if state.running is not None:
            state.running.stop(run.secrets.scrub)
    if run.starter is not None:
        run.starter.release()
