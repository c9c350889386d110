"""`mxconform`: run the suites, serve embedded targets, list targets, re-render a report."""

from __future__ import annotations

import argparse
import signal
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from mxconform.commands import add_parsers, diff, matrix, rerender
from mxconform.errors import HarnessError
from mxconform.paths import servers_file, suites_dir
from mxconform.results import gating_failures, read_document
from mxconform.targets.config import ConfigError, ServersFile, Target
from mxconform.targets.embedded import releases
from mxconform.targets.lifecycle import RunningTarget, start_target, synapse_python
from mxconform.targets.loading import load_servers

EXIT_OK, EXIT_FAIL, EXIT_ERROR = 0, 1, 2
EXIT_SIGINT, EXIT_SIGTERM = 130, 143  # as a shell reports a process ended by the signal


def _load(arg: str | None) -> tuple[Path, ServersFile]:
    path = servers_file(arg)
    return path, load_servers(path)


@dataclass
class RunOutcome:
    """What a run left behind; `secrets` stays in memory (the canary test reads it)."""

    exit_code: int
    report_dir: Path | None
    pytest_exit: int
    secrets: list[str] = field(default_factory=list)


class _Capture:
    """Picks the run's report folder and secret registry off the pytest config at the end."""

    def __init__(self) -> None:
        self.report_dir: Path | None = None
        self.secrets: list[str] = []
        self.interrupted: str | None = None

    @pytest.hookimpl(trylast=True)
    def pytest_unconfigure(self, config: pytest.Config) -> None:
        from mxconform.plugin.options import INTERRUPT_KEY
        from mxconform.plugin.state import REPORT_KEY, get_run, has_run

        self.report_dir = config.stash.get(REPORT_KEY, None)
        self.interrupted = config.stash.get(INTERRUPT_KEY, None)
        if has_run(config):
            self.secrets = get_run(config).secrets.values()


def run_suites(args: argparse.Namespace) -> RunOutcome:
    """Run the suites once, or `--repeat N` times merged into one report."""
    repeat = getattr(args, "repeat", 1) or 1
    if repeat < 1:
        raise ConfigError("--repeat: expected a number of runs from 1 up")
    jobs = getattr(args, "jobs", 1) or 1
    if jobs < 1:
        raise ConfigError("--jobs: expected a number of processes from 1 up")
    if jobs > 1:
        return _run_jobs(args, jobs)
    if repeat == 1:
        return _run_once(args)
    outcomes = [_run_once(args) for _ in range(repeat)]
    secrets = [s for o in outcomes for s in o.secrets]
    folders = [o.report_dir for o in outcomes if o.report_dir is not None]
    if len(folders) != repeat:
        return RunOutcome(EXIT_ERROR, None, outcomes[-1].pytest_exit, secrets)
    from mxconform.results import write_document

    from .report import render_all
    from .report.repeat import merge_repeats

    merged = merge_repeats([read_document(f / "results.json") for f in folders])
    folder = folders[-1].parent / f"{folders[-1].name}-repeat{repeat}"
    folder.mkdir()
    write_document(merged, folder / "results.json")
    render_all(folder / "results.json")
    latest = folder.parent / "latest"
    if latest.is_symlink():
        latest.unlink()
    latest.symlink_to(folder.name, target_is_directory=True)
    flaky = [c["check_id"] for c in merged["checks"] if c.get("flaky")]
    print(f"\n{repeat} runs merged: {len(flaky)} flaky; report: {folder / 'index.html'}")
    for check_id in flaky:
        print(f"  flaky: {check_id}")
    return RunOutcome(max(o.exit_code for o in outcomes), folder, outcomes[-1].pytest_exit, secrets)


def _prepare(args: argparse.Namespace) -> tuple[Path, list[Target], list[str]]:
    """Check the baseline, select the targets, resolve their secrets (a missing variable is a
    usage error, not ERROR) and make their Synapse releases ready."""
    if args.baseline:
        try:
            read_document(Path(args.baseline))
        except (OSError, ValueError) as exc:
            raise ConfigError(f"--baseline: {exc}") from None
    path, servers = _load(args.servers)
    selected = servers.select(args.server or [])
    secrets = [value for t in selected for value in start_check(t)]
    prepare_releases(selected, args.offline)
    return path, selected, secrets


def _baseline_regressions(args: argparse.Namespace, document: dict[str, Any]) -> bool:
    if not args.baseline:
        return False
    from .report.diff import diff_results, render_diff

    result = diff_results(read_document(Path(args.baseline)), document)
    print(f"\ncompared with {args.baseline}:\n{render_diff(result)}")
    return bool(result.regressions)


def _run_jobs(args: argparse.Namespace, jobs: int) -> RunOutcome:
    """`--jobs N`: a child process per target, at most N at once, merged into one report."""
    from mxconform.http.redact import SecretRegistry

    from .parallel import run_children

    path, selected, secrets = _prepare(args)
    registry = SecretRegistry()
    for value in secrets:
        registry.add(value)
    print(f"running {len(selected)} targets, at most {jobs} at once, a process each")
    started = time.perf_counter()
    outcome = run_children(args, path.resolve(), selected, jobs, registry)
    wall = time.perf_counter() - started
    if outcome.document is None or outcome.folder is None:
        print("mxconform: no target wrote a report", file=sys.stderr)
        return RunOutcome(outcome.exit_code or EXIT_ERROR, None, 0, secrets)
    print_summary(outcome.document, outcome.folder, wall)
    code = outcome.exit_code
    if _baseline_regressions(args, outcome.document) and not outcome.interrupted:
        code = EXIT_FAIL
    if code:
        worst = {c.target: c.exit_code for c in outcome.children}
        print(f"  exit {code}: the worst of the targets' exit codes {worst}")
    return RunOutcome(code, outcome.folder, 0, secrets)


def _run_once(args: argparse.Namespace) -> RunOutcome:
    path, _selected, _ = _prepare(args)
    suites = suites_dir()
    argv = [
        str(suites),
        "--rootdir",
        str(suites),
        "-c",
        str(suites / "pytest.ini"),
        "-p",
        "no:cacheprovider",
        "--servers",
        str(path.resolve()),
        "--report-dir",
        str(Path(args.report_dir).resolve()),
        "-rfE",
    ]
    for name in args.server or []:
        argv += ["--server", name]
    if args.spec_version:
        argv += ["--spec-version", args.spec_version]
    if getattr(args, "oauth_driver", None):
        argv += ["--oauth-driver", args.oauth_driver]
    if getattr(args, "hypothesis_examples", None):
        argv += ["--hypothesis-examples", str(args.hypothesis_examples)]
    if getattr(args, "hypothesis_seed", None) is not None:
        argv += ["--hypothesis-seed", str(args.hypothesis_seed)]
    argv += ["--offline"]  # every synapse_version is in the cache now (prepare_releases)
    if args.k:
        argv += ["-k", args.k]
    argv += ["-q"] if not args.verbose else ["-v"]
    if getattr(args, "tb", None):
        argv += [f"--tb={args.tb}"]
    capture = _Capture()
    started = time.perf_counter()
    code = int(pytest.main(argv, plugins=[capture]))
    wall = time.perf_counter() - started
    if capture.report_dir is None:
        print(
            "mxconform: no checks ran (nothing selected, or the run failed before any check)",
            file=sys.stderr,
        )
        return RunOutcome(EXIT_ERROR, None, code, capture.secrets)
    document = read_document(capture.report_dir / "results.json")
    print_summary(document, capture.report_dir, wall)
    regressions = _baseline_regressions(args, document)
    exit_code, reason = exit_status(document, code, regressions, getattr(args, "fail_on", "fail"))
    if capture.interrupted or code == pytest.ExitCode.INTERRUPTED:
        signame = capture.interrupted or "SIGINT"
        exit_code = EXIT_SIGTERM if signame == "SIGTERM" else EXIT_SIGINT
        reason = f"interrupted by {signame}: partial report, reports/latest left as it was"
    if reason:
        print(f"  exit {exit_code}: {reason}")
    return RunOutcome(exit_code, capture.report_dir, code, capture.secrets)


def exit_status(
    document: dict[str, Any], pytest_code: int, regressions: bool, fail_on: str = "fail"
) -> tuple[int, str]:
    """The run's exit code and, when it is not 0, why in one line."""
    checks = document["checks"]
    # --fail-on regression: only a change for the worse against --baseline fails the run
    gating = [] if fail_on == "regression" else gating_failures(checks, fail_on)
    if gating or regressions:
        kinds = sorted({c["verdict"] for c in gating})
        what = f"{len(gating)} {'/'.join(kinds)} not listed as known issues" if gating else ""
        return EXIT_FAIL, "; ".join(p for p in (what, "regressions" if regressions else "") if p)
    graded = [c for c in checks if c["verdict"] not in ("SKIP", "ERROR")]
    # An ERROR listed as a known issue (a setup step a release is known to break) is flagged
    # in the summary, not gating; any other ERROR means part of the run is not graded.
    errors = [c for c in checks if c["verdict"] == "ERROR" and not c.get("known_issue")]
    if not graded:
        return EXIT_ERROR, "nothing graded (every check was SKIP or ERROR)"
    if errors:
        setup = sum(1 for c in errors if str(c.get("message", "")).startswith("precondition"))
        parts = [f"{len(errors)} ERROR: checks not graded"]
        if setup:
            parts.append(f"{setup} a setup step the server answered unexpectedly")
        if len(errors) > setup:
            parts.append(f"{len(errors) - setup} the harness or the network failed")
        return EXIT_ERROR, "; ".join(parts)
    if pytest_code in (
        pytest.ExitCode.INTERRUPTED,
        pytest.ExitCode.INTERNAL_ERROR,
        pytest.ExitCode.USAGE_ERROR,
    ):
        return EXIT_ERROR, f"the run stopped early (pytest exit {pytest_code})"
    return EXIT_OK, ""


def start_check(target: Target) -> list[str]:
    """Fail early, as a usage error, on a target whose secret variables are not set; the
    values, for scrubbing."""
    return [ref.resolve(where) for where, ref in target.secret_refs()]


def _installer(version: str, path: Path) -> None:
    """The real installer, announced first: it downloads for a few minutes."""
    print(f"installing Synapse {version} into {path} (a few minutes) ...", flush=True)
    releases.install_venv(version, path)


def prepare_releases(targets: list[Target], offline: bool) -> None:
    """Resolve (and, online, install) each `synapse_version` before the run: a missing
    release is then a one-line usage error, and the run itself only reads the cache."""
    for t in targets:
        if t.embedded is not None and t.synapse_version is not None:
            if not offline:
                releases.ensure(t.synapse_version, installer=_installer)
            python, version = synapse_python(t, offline=True)
            print(f"{t.name}: Synapse {version} ({python})")


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


def print_summary(document: dict[str, Any], report_dir: Path, wall_s: float) -> None:
    print()
    print("mxconform summary")
    for name, s in document["summary"].items():
        counts = ", ".join(f"{v} {n}" for v, n in s["counts"].items() if n)
        levels = "; ".join(
            f"{lvl.upper()} met {s[f'{lvl}_passed']}/{s[f'{lvl}_applicable']}"
            for lvl in ("must", "should")
            if s[f"{lvl}_applicable"]
        )
        print(f"  {name}: {s['total']} checks ({counts}); {levels or 'nothing graded'}")
        if s["known_fail"]:
            print(f"    {s['known_fail']} FAIL listed as known issues (not failing the run)")
        for check_id in s["known_now_passing"]:
            print(f"    known issue now passes, remove it from the file: {check_id}")
        for check_id in s.get("known_not_tried", []):
            print(f"    known issue not tried this run (SKIP or ERROR), still listed: {check_id}")
    for t in document["targets"]:
        if t.get("startup_s") is not None:
            print(f"  {t['name']}: embedded server started in {t['startup_s']} s")
    print(f"  wall time {wall_s:.1f} s")
    print(f"  report: {report_dir / 'index.html'}")


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
    path, servers = _load(args.servers)
    print(f"targets in {path}:")
    for t in servers.targets:
        where = f"embedded {t.embedded}" if t.embedded else t.base_url
        default = " (default)" if t.name in servers.defaults else ""
        print(
            f"  {t.name}{default}: {where}; auth {', '.join(t.auth)}; "
            + (f"provisioning {t.provisioning.method}" if t.provisioning else "")
            + (f"oauth driver {t.oauth.driver}" if t.oauth else "")
            + (f"; spec {t.spec_version}" if t.spec_version else "")
            + (f"; synapse {t.synapse_version}" if t.synapse_version else "")
        )
    return EXIT_OK


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="mxconform", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="run the conformance suites and write a report")
    r.add_argument("--servers", metavar="FILE")
    r.add_argument("--server", metavar="NAME", action="append")
    r.add_argument("--report-dir", metavar="DIR", default="reports")
    r.add_argument("--spec-version", metavar="V")
    r.add_argument(
        "--oauth-driver",
        choices=["browser", "form", "mas-admin", "static"],
        help="log in to OAuth targets with this driver instead of servers.yaml's",
    )
    r.add_argument("-k", metavar="EXPR", help="select checks (pytest -k expression)")
    r.add_argument("-v", "--verbose", action="store_true")
    r.add_argument(
        "--tb",
        choices=["short", "long", "line", "native", "no"],
        help="show tracebacks for debugging (secrets still redacted); default: one line each",
    )
    r.add_argument(
        "--fail-on",
        choices=["fail", "warn", "regression"],
        default="fail",
        help="exit 1 on FAIL (default), on FAIL and WARN (SHOULDs gate too), or only on "
        "regressions against --baseline (nightly jobs)",
    )
    r.add_argument(
        "--repeat",
        metavar="N",
        type=int,
        default=1,
        help="run N times; checks whose verdict changes between runs are marked flaky",
    )
    r.add_argument(
        "--baseline",
        metavar="OLD_RESULTS_JSON",
        help="compare with an earlier run; regressions make the exit code 1",
    )
    r.add_argument(
        "--jobs",
        metavar="N",
        type=int,
        default=1,
        help="run the targets concurrently, a process per target, at most N at once (default 1:"
        " in this process, one after another); one merged report",
    )
    r.add_argument(
        "--hypothesis-examples",
        metavar="N",
        type=int,
        help="bad-input checks: malformed bodies drawn per endpoint (default: 8)",
    )
    r.add_argument(
        "--hypothesis-seed",
        metavar="SEED",
        type=int,
        help="bad-input checks: replay a run's bodies (its results.json run.hypothesis_seed)",
    )
    offline = "embedded targets' synapse_version: use only releases already in the cache"
    r.add_argument("--offline", action="store_true", help=offline)
    s = sub.add_parser("serve", help="start embedded targets and print their URLs")
    s.add_argument("names", nargs="*", metavar="NAME")
    s.add_argument("--offline", action="store_true", help=offline)
    s.add_argument("--servers", metavar="FILE")
    s.add_argument("--log-dir", metavar="DIR")
    t = sub.add_parser("targets", help="list the targets of servers.yaml")
    t.add_argument("--servers", metavar="FILE")
    add_parsers(sub)
    syn = sub.add_parser("synapse", help="Synapse releases for synapse_version (the cache)")
    syn_sub = syn.add_subparsers(dest="action", required=True)
    inst = syn_sub.add_parser("install", help="install a release (1.70.1) or line (1.130.*)")
    inst.add_argument("spec", metavar="VERSION_SPEC")
    inst.add_argument("--offline", action="store_true", help="only look in the cache")
    syn_sub.add_parser("list", help="the cached releases, their venvs and pins")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        if args.command == "run":
            return run_suites(args).exit_code
        if args.command == "serve":
            return serve(args)
        if args.command == "targets":
            return list_targets(args)
        if args.command == "diff":
            return diff(args)
        if args.command == "matrix":
            return matrix(args)
        if args.command == "synapse":
            return synapse_command(args)
        return rerender(args)
    except (ConfigError, HarnessError) as exc:
        print(f"mxconform: error: {exc}", file=sys.stderr)
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
