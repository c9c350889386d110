"""Benchmark: a 5,000-check report over 4 targets: file size and load time in headless chromium.

    python benchmarks/report_scale.py [--checks 5000] [--targets 4]

Goal (from the report issue): under 10 MB and open in under 2 s. A benchmark, not a test: it
prints the numbers and exits 0 either way.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

from mxconform.report import render_all
from mxconform.results import SCHEMA_VERSION

VERDICTS = ["PASS"] * 80 + ["FAIL"] * 5 + ["WARN"] * 3 + ["INFO"] * 7 + ["SKIP"] * 4 + ["ERROR"]


def synthetic(checks: int, targets: int) -> dict:
    exchange = {
        "method": "GET",
        "url": "http://hs.example/_matrix/client/v3/account/whoami",
        "request_headers": [["authorization", "Bearer <redacted:credential>"]],
        "request_body": None,
        "started_at": "2026-11-26T10:00:00+00:00",
        "duration_ms": 3.2,
        "status": 200,
        "error": None,
        "note": None,
        "response_headers": [["content-type", "application/json"]],
        "response_body": {"user_id": "@u:hs.example", "device_id": "ABCDEFGHIJ"},
    }
    records = []
    for n in range(checks):
        records.append(
            {
                "check_id": f"area{n % 20}.check{n}",
                "title": f"synthetic check {n}",
                "requirements": ["TOKEN-MISSING"],
                "target": f"target-{n % targets}",
                "auth_api": "legacy",
                "transport": ("header", "query", None)[n % 3],
                "verdict": VERDICTS[n % len(VERDICTS)],
                "message": "as required",
                "expected": None,
                "observed": None,
                "findings": [],
                "observations": [],
                "duration_s": 0.01,
                "evidence": [exchange, exchange],
                "nodeid": "",
                "known_issue": None,
            }
        )
    return {
        "schema_version": SCHEMA_VERSION,
        "harness": {"version": "bench", "git_commit": None},
        "run": {
            "started_at": "2026-11-26T10:00:00+00:00",
            "finished_at": "2026-11-26T10:05:00+00:00",
            "duration_s": 300,
            "command": "benchmark",
        },
        "targets": [
            {
                "name": f"target-{t}",
                "auth": ["legacy"],
                "base_url": "http://hs",
                "server_name": "hs",
                "provisioning": "static-users",
                "housekeeping": None,
            }
            for t in range(targets)
        ],
        "summary": {},
        "requirements": {
            "TOKEN-MISSING": {
                "level": "MUST",
                "area": "tokens",
                "statement": "s",
                "url": "https://spec.matrix.org/latest/client-server-api/#using-access-tokens",
            }
        },
        "checks": records,
    }


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--checks", type=int, default=5000)
    parser.add_argument("--targets", type=int, default=4)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="mxconform-bench-"))
    results = folder / "results.json"
    results.write_text(json.dumps(synthetic(args.checks, args.targets)))
    started = time.perf_counter()
    html = render_all(results)[0]
    render_s = time.perf_counter() - started
    size_mb = html.stat().st_size / 1e6
    print(
        f"checks {args.checks}, targets {args.targets}: index.html {size_mb:.1f} MB, "
        f"rendered in {render_s:.1f} s"
    )
    chromium = shutil.which("chromium")
    if chromium is None:
        print("no chromium: load time not measured")
        return 0
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        page = browser.new_page()
        started = time.perf_counter()
        page.goto(html.as_uri(), wait_until="load")
        load_s = time.perf_counter() - started
        browser.close()
    print(f"loaded in headless chromium in {load_s:.2f} s (goal: under 2 s, under 10 MB)")
    shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
