"""servers.yaml's unknown keys, each with the closest known one: `admin_ulr` is a typo of
`admin_url`, which "unknown key" alone leaves the user to find."""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import Any


def known_keys(data: Any, known: Iterable[str]) -> Any:
    """`data` as given when each of its keys is known; else a ValueError naming the first
    unknown key and, when one is near, the known key it may have meant (one line, as every
    config error is: loading.py puts the file and the key path before it)."""
    names = sorted(known)
    for key in data if isinstance(data, dict) else ():
        if key not in names:
            near = difflib.get_close_matches(str(key), names, n=1, cutoff=0.6)
            hint = f" (did you mean {near[0]!r}?)" if near else ""
            raise ValueError(f"unknown key {str(key)!r}{hint}")
    return data
