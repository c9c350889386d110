"""`mxconform dendrite install [VERSION]` and `mxconform dendrite list`: the Dendrite build
cache (targets/embedded/dendrite_builds.py), beside `mxconform synapse install|list`."""

from __future__ import annotations

import argparse
from pathlib import Path

from mxconform.errors import HarnessError
from mxconform.targets.config import ConfigError, Target
from mxconform.targets.embedded import dendrite_builds

EXIT_OK = 0


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    d = sub.add_parser("dendrite", help="Dendrite builds for the dendrite target (the cache)")
    d_sub = d.add_subparsers(dest="action", required=True, metavar="ACTION")
    inst = d_sub.add_parser("install", help="build a release with go install (minutes, once)")
    inst.add_argument(
        "version",
        nargs="?",
        default=dendrite_builds.DEFAULT_VERSION,
        help=f"a release (default {dendrite_builds.DEFAULT_VERSION})",
    )
    inst.add_argument("--offline", action="store_true", help="only look in the cache")
    d_sub.add_parser("list", help="the cached builds, their Go and build time")


def _installer(version: str, path: Path, go: str, cache: Path) -> float:
    """The real build, announced first: it downloads and compiles for a few minutes."""
    print(f"building Dendrite {version} with {go} into {path} (a few minutes) ...", flush=True)
    return dendrite_builds.install(version, path, go, cache)


def dendrite_command(args: argparse.Namespace) -> int:
    if args.action == "install":
        problem = dendrite_builds.version_problem(args.version)
        if problem:
            raise ConfigError(problem)
        build = dendrite_builds.ensure(args.version, offline=args.offline, installer=_installer)
        print(f"Dendrite {build.version} ({build.go}): {build.bin}")
        return EXIT_OK
    cache = dendrite_builds.cache_dir()
    found = dendrite_builds.cached(cache)
    print(f"Dendrite builds in {cache}:" if found else f"nothing in {cache}")
    for b in found:
        took = f", built in {b.build_s:g}s" if b.build_s is not None else ""
        print(f"  {b.version} ({b.go}{took}): {b.bin}")
    return EXIT_OK


def prepare_builds(targets: list[Target], offline: bool) -> None:
    """Build (online) each dendrite target's release before the run, which then only reads
    the cache. Without Go, or when the build fails, the reason is printed and the run goes
    on: that target's checks are each ERROR with it (the cache keeps the build's failure),
    the other targets' are run."""
    for t in targets:
        if t.embedded != "dendrite":
            continue
        version = t.dendrite_version or dendrite_builds.DEFAULT_VERSION
        try:
            build = dendrite_builds.ensure(version, offline=offline, installer=_installer)
        except HarnessError as exc:
            print(f"{t.name}: no Dendrite to run, its checks will be ERROR: {exc}")
            continue
        print(f"{t.name}: Dendrite {build.version} ({build.go}, {build.bin})")
