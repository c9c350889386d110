"""Benchmark: `mxconform run --jobs 4` over four embedded targets against each target alone.

    python benchmarks/parallel_targets.py [--jobs 4] [-k EXPR]

Targets: synapse-legacy on Synapse 1.150.0 and on the pinned default (1.163), synapse-oauth,
and synapse-legacy on 1.130.0 (both older releases must be in the cache: `mxconform synapse
install 1.150.0`; the runs use --offline). A benchmark, not a test: it prints the wall times,
the machine's load and CPU count, and exits 0 either way.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SERVERS = """\
defaults: [legacy-1-163, legacy-1-150, oauth-1-163, legacy-1-130]
targets:
  - name: legacy-1-163
    embedded: synapse-legacy
    server_name: localhost
    auth: [legacy]
    provisioning: {method: synapse-shared-secret}
    known_issues: KNOWN/synapse.yaml
  - name: legacy-1-150
    embedded: synapse-legacy
    synapse_version: "1.150.0"
    server_name: localhost
    auth: [legacy]
    provisioning: {method: synapse-shared-secret}
  - name: oauth-1-163
    embedded: synapse-oauth
    server_name: localhost
    auth: [oauth]
    spec_version: v1.18
    known_issues: KNOWN/synapse-oauth.yaml
  - name: legacy-1-130
    embedded: synapse-legacy
    synapse_version: "1.130.0"
    server_name: localhost
    auth: [legacy]
    provisioning: {method: synapse-shared-secret}
"""
NAMES = ["legacy-1-163", "legacy-1-150", "oauth-1-163", "legacy-1-130"]


def run(servers: Path, reports: Path, extra: list[str]) -> tuple[float, int]:
    argv = [sys.executable, "-m", "mxconform.cli", "run", "--servers", str(servers)]
    argv += ["--report-dir", str(reports), "--offline", *extra]
    started = time.perf_counter()
    code = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode
    return time.perf_counter() - started, code


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--jobs", type=int, default=4)
    p.add_argument("-k", default=None)
    args = p.parse_args()
    extra = ["-k", args.k] if args.k else []
    with tempfile.TemporaryDirectory() as tmp:
        servers = Path(tmp) / "servers.yaml"
        servers.write_text(SERVERS.replace("KNOWN", str(ROOT / "known-issues")))
        print(f"{os.cpu_count()} CPUs; load average before: {os.getloadavg()}")
        alone = {}
        for name in NAMES:
            wall, code = run(servers, Path(tmp) / name, ["--server", name, *extra])
            alone[name] = wall
            print(f"  {name} alone: {wall:.1f} s (exit {code})", flush=True)
        total = sum(alone.values())
        print(f"  sum of the four alone: {total:.1f} s", flush=True)
        wall, code = run(servers, Path(tmp) / "jobs", ["--jobs", str(args.jobs), *extra])
        print(
            f"  all four with --jobs {args.jobs}: {wall:.1f} s (exit {code}); "
            f"{total / wall:.2f}x the sequential sum"
        )
        print(f"load average after: {os.getloadavg()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
