"""Where a run's time goes: `mxconform run` against the default targets, N times.

    python benchmarks/run_speed.py [--runs 3] [--servers FILE] [--server NAME]...
                                   [--jobs N] [--keep DIR]

For each run it reads results.json and prints the wall time, the targets' start-up, the
servers' own service time (the sum of every recorded exchange's duration), the harness's
overhead (the rest), requests per graded verdict, accounts created, and the ratio
wall / (service + start-up) that the speed issue sets a goal for (at most 2). Medians at the
end. A benchmark, not a test: say the machine's load when you quote it.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any


def measure(document: dict[str, Any], wall_s: float) -> dict[str, float]:
    """The figures of one run, from its results.json (evidence durations in ms)."""
    checks = document["checks"]
    exchanges = [e for c in checks for e in c.get("evidence", [])]
    service_s = sum(float(e.get("duration_ms") or 0) for e in exchanges) / 1000
    startup_s = sum(float(t.get("startup_s") or 0) for t in document["targets"])
    setup_requests = sum(int(t.get("setup_exchanges") or 0) for t in document["targets"])
    graded = [c for c in checks if c["verdict"] not in ("SKIP", "ERROR")]
    accounts = sum(
        len((t.get("housekeeping") or {}).get("users_created", [])) for t in document["targets"]
    )
    return {
        "wall_s": wall_s,
        "startup_s": startup_s,
        "service_s": service_s,
        "overhead_s": wall_s - service_s - startup_s,
        "requests_per_graded": (len(exchanges) + setup_requests) / max(len(graded), 1),
        "accounts": float(accounts),
        "ratio": wall_s / max(service_s + startup_s, 0.001),
    }


def run_once(extra: list[str], keep: Path | None = None) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="mxconform-speed-") as folder:
        command = [sys.executable, "-m", "mxconform.cli", "run", "-q", "--report-dir", folder]
        started = time.perf_counter()
        subprocess.run(
            [*command, *extra], check=False, stdout=subprocess.DEVNULL, env=dict(os.environ)
        )
        wall_s = time.perf_counter() - started
        found = sorted(Path(folder).glob("*/results.json"))
        if not found:
            raise SystemExit("the run wrote no results.json")
        if keep is not None:
            keep.mkdir(parents=True, exist_ok=True)
            (keep / f"results-{len(list(keep.glob('results-*.json'))) + 1}.json").write_bytes(
                found[-1].read_bytes()
            )
        return measure(json.loads(found[-1].read_text()), wall_s)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--servers", metavar="FILE")
    parser.add_argument("--server", metavar="NAME", action="append", default=[])
    parser.add_argument("--jobs", help="passed on to `mxconform run` (its default: auto)")
    parser.add_argument(
        "--keep", metavar="DIR", type=Path, help="copy each run's results.json here, to compare"
    )
    args = parser.parse_args()
    extra = (["--servers", args.servers] if args.servers else []) + [
        f"--server={name}" for name in args.server
    ]
    extra += [f"--jobs={args.jobs}"] if args.jobs else []
    columns = ["wall_s", "startup_s", "service_s", "overhead_s", "requests_per_graded"]
    columns += ["accounts", "ratio"]
    print(f"load average before: {os.getloadavg()[0]:.2f}")
    print("run  " + "  ".join(f"{c:>19}" for c in columns))
    rows = []
    for n in range(1, args.runs + 1):
        row = run_once(extra, args.keep)
        rows.append(row)
        print(f"{n:<4} " + "  ".join(f"{row[c]:>19.2f}" for c in columns), flush=True)
    medians = {c: statistics.median(r[c] for r in rows) for c in columns}
    print("med  " + "  ".join(f"{medians[c]:>19.2f}" for c in columns))
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
