"""`--shard K/N`: this process runs every N-th selected check, starting at the K-th.

`mxconform run --jobs N` with a single embedded target starts it once and runs N processes
against it, one share each (see `parallel`): the parent merges their results in the order the
checks were selected. Shares are dealt out one check at a time, so each gets a fair part of
every suite whatever its cost."""

from __future__ import annotations

import re

import pytest

from mxconform.plugin.checks import CHECK_MARKER


def parse_shard(given: str) -> tuple[int, int]:
    match = re.fullmatch(r"(\d+)/(\d+)", given.strip())
    if match is None or not 1 <= int(match[1]) <= int(match[2]):
        raise pytest.UsageError(f"--shard: expected K/N with 1 <= K <= N, got {given!r}")
    return int(match[1]), int(match[2])


@pytest.hookimpl(trylast=True)  # after -k and --requirement have made their selection
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    given = config.getoption("shard", None)
    if not given:
        return
    k, n = parse_shard(given)
    checks = [item for item in items if item.get_closest_marker(CHECK_MARKER) is not None]
    kept = set(checks[k - 1 :: n])
    dropped = [item for item in checks if item not in kept]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = [item for item in items if item not in dropped]
