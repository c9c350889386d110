"""Two more preflight questions, asked once per target before its first check:

- can the harness reach the shared-secret registration it provisions through? (Behind a
  reverse proxy set up as Synapse's documentation says, `/_synapse/admin` is not public: the
  operator must give `admin_url`.) One clear reason for the target, not an ERROR per check;
- what software answers, from the homeserver itself (its federation version endpoint), since
  a reverse proxy often replaces the `Server` header with its own name.
"""

from __future__ import annotations

import json
from typing import Any

import httpx

SHARED_SECRET_PATH = "/_synapse/admin/v1/register"
FEDERATION_VERSION_PATH = "/_matrix/federation/v1/version"
_MAX_BODY = 64 * 1024


def _get_json(url: str, timeout_s: float, verify: Any) -> tuple[int | None, Any, str]:
    """(status, parsed JSON or None, why it could not be had); bounded in time and size."""
    try:
        with (
            httpx.Client(timeout=timeout_s, follow_redirects=False, verify=verify) as http,
            http.stream("GET", url, headers={"User-Agent": "mxconform"}) as resp,
        ):
            content = b""
            for chunk in resp.iter_bytes():
                content += chunk
                if len(content) > _MAX_BODY:
                    return resp.status_code, None, f"a body over {_MAX_BODY} bytes"
            status = resp.status_code
    except httpx.HTTPError as exc:
        return None, None, f"{type(exc).__name__}: {exc}"
    try:
        return status, json.loads(content), ""
    except (ValueError, RecursionError):
        return status, None, "not JSON"


def shared_secret_problem(url: str, timeout_s: float, verify: Any = True) -> str | None:
    """Why shared-secret registration cannot be used at `url`, or None when it answers with a
    nonce (a GET: it sends nothing secret and creates nothing)."""
    status, data, why = _get_json(url.rstrip("/") + SHARED_SECRET_PATH, timeout_s, verify)
    if status == 200 and isinstance(data, dict) and isinstance(data.get("nonce"), str):
        return None
    answered = f"HTTP {status}" if status is not None else why
    return (
        f"provisioning: shared-secret registration is not reachable at {url} ({answered}); "
        "a reverse proxy usually keeps /_synapse/admin private: set the target's admin_url "
        "to Synapse's internal listener"
    )


def server_software(base_url: str, timeout_s: float, verify: Any = True) -> str | None:
    """ "Synapse 1.163.2", as the homeserver names itself, or None when it does not say."""
    _, data, _ = _get_json(base_url.rstrip("/") + FEDERATION_VERSION_PATH, timeout_s, verify)
    server = data.get("server") if isinstance(data, dict) else None
    if not isinstance(server, dict):
        return None
    parts = [str(server.get(k))[:80] for k in ("name", "version") if server.get(k)]
    return " ".join(parts) or None
