"""Login drivers: how the harness gets a user's consent without a person.

Consent is interactive by design. Each driver stands in for the person in one way:
`form` fills the server's HTML pages (a real parser, a cookie jar per user agent),
`browser` runs a scripted Chromium, `mas-admin` mints tokens through MAS's admin API, and
`static` uses tokens the operator obtained by hand. Suites see one interface; a check that
needs what a driver cannot do is SKIP with the driver's reason.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from mxconform.errors import HarnessError, Unsupported
from mxconform.http.client import MatrixClient
from mxconform.http.credentials import bearer_header
from mxconform.http.evidence import Recorder
from mxconform.legacy import api as legacy
from mxconform.spec.matchers import body

DRIVER_GRANTS = {
    "form": "authorization code + PKCE, pages filled by the form driver",
    "browser": "authorization code + PKCE, pages driven in Chromium",
    "mas-admin": "personal session minted through MAS's admin API",
    "static": "tokens given in servers.yaml",
}


class DriverError(HarnessError):
    """The driver could not get through the server's pages (or API): the check is ERROR."""


class NoRegistrationPage(DriverError):
    """prompt=create led to a login form, not a registration form."""


@dataclass
class Account:
    """A user on the authorisation server."""

    username: str
    password: str | None = field(repr=False)  # never in a repr (tracebacks)
    user_id: str  # the Matrix user ID
    admin_id: str | None = None  # MAS's own ID for the user, when created through the admin API
    given: bool = False  # named in servers.yaml: never changed or destroyed


class LoginDriver:
    """The common interface; every method a driver cannot perform raises Unsupported."""

    name: ClassVar[str]
    grant: ClassVar[str]  # how this driver's tokens are produced, shown with each check
    interactive: ClassVar[bool] = False  # can it pass the authorisation and account pages?

    async def authorize(
        self, account: Account, url: str, redirect_uri: str, recorder: Recorder, create: bool
    ) -> str:
        """Visit an authorisation URL as the user; the redirect back to the client."""
        raise Unsupported(f"the {self.name} login driver does not drive authorisation pages")

    async def approve(self, account: Account, url: str, recorder: Recorder) -> None:
        """Approve what an account-management URL asks (e.g. a cross-signing reset)."""
        raise Unsupported(f"the {self.name} login driver does not drive account pages")

    async def approve_device(
        self, account: Account, verification_uri: str, user_code: str, recorder: Recorder
    ) -> None:
        raise Unsupported(f"the {self.name} login driver does not drive device-link pages")

    async def password_works(
        self, account: Account, password: str, start_url: str, recorder: Recorder
    ) -> bool:
        """Whether the login page accepts this password (in a fresh user agent)."""
        raise Unsupported(f"the {self.name} login driver cannot try passwords")

    async def close(self) -> None:
        return None


async def whoami(client: MatrixClient, token: str) -> tuple[str | None, str | None]:
    """The user and device a token belongs to, or (None, None)."""
    resp = await legacy.whoami(client, bearer_header(token), "whose token is this")
    data = body(resp) or {}
    if resp.status_code != 200:
        return None, None
    return data.get("user_id"), data.get("device_id")
