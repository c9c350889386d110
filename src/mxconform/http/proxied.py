"""Answers that did not come from the homeserver: a reverse proxy's own error pages.

A proxy in front of a homeserver answers some requests itself (nginx refuses a doubled
`Authorization` header with its own HTML 400 before Synapse sees it). Such an answer is no
evidence about the homeserver, so no Matrix rule may be judged on it: it is recorded as the
proxy's and the check is ERROR.
"""

from __future__ import annotations

import json
import re

_PRODUCT = re.compile(r"[A-Za-z][A-Za-z0-9_.-]*")


def proxy_answer(
    status: int,
    server: str | None,
    content_type: str | None,
    content: bytes,
    homeserver: str | None,
) -> str | None:
    """Why this error answer is a proxy's own, or None. Only an error that is not JSON
    qualifies (a homeserver answers its errors in JSON; one that does not is judged): it must
    also carry a Server header other than the homeserver's, or a page that names the product
    in its own Server header (a proxy's stock error page signs itself)."""
    if status < 400 or _is_json(content):
        return None
    kind = (content_type or "no content type").split(";")[0].strip()
    if server and homeserver and server != homeserver:
        return f"HTTP {status} {kind} from '{server}', not the homeserver ('{homeserver}')"
    product = _PRODUCT.match(server or "")
    if product and product.group(0).lower() in content[:4096].decode("latin-1").lower():
        return f"HTTP {status} {kind}: an error page signed by '{server}' itself"
    return None


def _is_json(content: bytes) -> bool:
    try:
        json.loads(content)
    except (ValueError, RecursionError):
        return False
    return True
