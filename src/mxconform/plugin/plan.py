"""The request plan a target is told before its first check: how many of the operations a
homeserver rate-limits hardest (password logins, registrations) the selected checks will
spend, and what that costs at Synapse's shipped limits.

The figures per check come from `data/operations.json`, measured on the embedded legacy
target by `benchmarks/operations.py` (`tests/test_main_run.py` fails when a check's spending
no longer matches it). Cleanup is not in them: it spends no login (legacy/cleanup.py).
"""

from __future__ import annotations

import functools
import json
import math
from collections import Counter
from typing import Any

from mxconform.http.evidence import SHARED_NOTE
from mxconform.paths import data_file
from mxconform.results import record_key

# Synapse's shipped rc_login per address: 5 at once, then one every 1/0.003 s.
STOCK_LOGIN_BURST, STOCK_LOGIN_INTERVAL_S = 5, 1 / 0.003


@functools.cache
def _costs() -> dict[str, dict[str, int]]:
    text = data_file("operations.json").read_text()
    checks: dict[str, dict[str, int]] = json.loads(text)["checks"]
    return checks


def planned(check_keys: list[str]) -> Counter[str]:
    """What the checks (`check_id[transport]`) will spend, by kind of operation."""
    costs = _costs()
    total: Counter[str] = Counter()
    for key in check_keys:
        total.update(costs.get(key, {}))
    return total


def plan_line(check_keys: list[str]) -> str:
    """"plan: 113 logins, 23 registrations for 281 checks; at Synapse's shipped login limit
    (5 at once, then one per 333 s) about 10 h 24 min of waiting"."""
    spent = planned(check_keys)
    logins, registrations = spent.get("login", 0), spent.get("register", 0)
    waits = max(0, logins - STOCK_LOGIN_BURST) * STOCK_LOGIN_INTERVAL_S
    return (
        f"plan: {logins} logins, {registrations} registrations for {len(check_keys)} checks; "
        f"at Synapse's shipped login limit ({STOCK_LOGIN_BURST} at once, then one per "
        f"{STOCK_LOGIN_INTERVAL_S:.0f} s) about {_duration(waits)} of waiting"
    )


def _duration(seconds: float) -> str:
    minutes = math.ceil(seconds / 60)
    return f"{minutes // 60} h {minutes % 60} min" if minutes >= 60 else f"{minutes} min"


def measured(document: dict[str, Any], target: str) -> dict[str, dict[str, int]]:
    """Per check (`check_id[transport]`): the logins and registrations its evidence shows."""
    out: dict[str, dict[str, int]] = {}
    for check in document["checks"]:
        if check["target"] != target:
            continue
        spent: Counter[str] = Counter()
        for exchange in check["evidence"]:
            path = exchange["url"].split("?")[0]
            if exchange["method"] != "POST" or "/_matrix/client/" not in path:
                continue
            if (exchange.get("note") or "").startswith(SHARED_NOTE):
                continue  # sent once, for an earlier check: counted there
            if path.endswith("/login"):
                spent["login"] += 1
            elif path.endswith("/register"):
                spent["register"] += 1
        if spent:
            out[record_key(check)] = dict(sorted(spent.items()))
    return dict(sorted(out.items()))
