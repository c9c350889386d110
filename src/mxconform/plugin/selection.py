"""What a selection (`-k`, `-m`, `--requirement`) leaves each target.

A partial run must never read as a conformance verdict, so the selection is recorded for
every output (`run.selection` in results.json). A target none of whose selected checks can
apply to it (each is of an auth API it does not declare) is *not selected*: its checks are
dropped before any runs, so it is never started and its run is neither ERROR nor exit 2.
"""

from __future__ import annotations

from typing import Any

import pytest

from mxconform.plugin.checks import API_MARKER, CHECK_MARKER
from mxconform.plugin.state import get_run, has_run


def selection_of(config: pytest.Config) -> dict[str, Any]:
    """The selection as the command line gave it; `complete` when there is none."""
    keyword = config.getoption("keyword", "") or None
    marks = config.getoption("markexpr", "") or None
    wanted = list(config.getoption("requirement", None) or [])
    parts = [f"-k {keyword!r}"] if keyword else []
    parts += [f"-m {marks!r}"] if marks else []
    parts += [f"-r {rid}" for rid in wanted]
    return {
        "complete": not parts,
        "k": keyword,
        "m": marks,
        "requirements": wanted,
        "text": " ".join(parts),
    }


def applies_to(item: pytest.Item, auth: tuple[str, ...] | list[str]) -> bool:
    """Whether the check can run on a target declaring these APIs (as `checks` decides at
    setup: a check of an API the target does not offer is a not-applicable SKIP)."""
    marker = item.get_closest_marker(API_MARKER)
    return marker is None or any(api in auth for api in marker.args)


def _target_of(item: pytest.Item) -> str | None:
    params: dict[str, Any] = getattr(getattr(item, "callspec", None), "params", {})
    target = params.get("target")
    return target if isinstance(target, str) else None


@pytest.hookimpl(trylast=True)  # after -k, -m and --requirement have selected
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not has_run(config):
        return
    run = get_run(config)
    run.selection = selection_of(config)
    if run.selection["complete"]:
        return
    applicable = dict.fromkeys(run.states, 0)
    for item in items:
        target = _target_of(item)
        if item.get_closest_marker(CHECK_MARKER) is None or target not in run.states:
            continue
        if applies_to(item, list(run.state(target).target.auth)):
            applicable[target] += 1
    run.not_selected = {name for name, n in applicable.items() if n == 0}
    dropped = [item for item in items if _target_of(item) in run.not_selected]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = [item for item in items if _target_of(item) not in run.not_selected]
