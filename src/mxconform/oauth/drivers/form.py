"""The `form` login driver: the server's HTML pages filled with a real parser (lxml)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast
from urllib.parse import urljoin

import lxml.html

from mxconform.errors import Unsupported
from mxconform.http.client import MatrixClient, new_http_client
from mxconform.http.evidence import Recorder
from mxconform.http.limits import origin
from mxconform.oauth.client import is_redirect_to
from mxconform.oauth.drivers.base import (
    DRIVER_GRANTS,
    Account,
    DriverError,
    LoginDriver,
    NoRegistrationPage,
)
from mxconform.oauth.drivers.form_fields import asks_for_the_name

_REDIRECTS = (301, 302, 303, 307, 308)
_REFUSING = ("deny", "reject", "cancel", "decline")
_MAX_STEPS = 14


@dataclass
class FormPage:
    """The HTML form a driver chose on a page, with the values it will submit."""

    action: str
    fields: list[tuple[str, str]]
    has_password: bool
    signature: tuple[str, ...]
    password_fields: int = 0


def choose_form(html: str, url: str, fill: dict[str, str]) -> FormPage | None:
    """The page's POST form to submit, filled: hidden fields kept, known fields filled,
    required checkboxes ticked, and an approving submit button pressed."""
    try:
        doc = cast(lxml.html.HtmlElement, lxml.html.document_fromstring(html))
    except (ValueError, lxml.etree.ParserError):
        return None
    doc.make_links_absolute(url)
    forms = [f for f in doc.forms if (f.method or "GET").upper() == "POST"]
    if not forms:
        return None
    with_password = [f for f in forms if f.xpath('.//input[@type="password"]')]
    form = with_password[0] if with_password and "password" in fill else forms[0]
    fields: list[tuple[str, str]] = []
    names: list[str] = []
    # the account's name goes in the field that asks for it, whatever its name: the one
    # called `username` if there is one, else the first text input whose role says so
    named = any(e.get("name") == "username" for e in form.inputs)
    name_field = (
        None
        if named or "username" not in fill
        else next(
            (e.get("name") for e in form.inputs if e.get("name") and asks_for_the_name(e)), None
        )
    )
    for element in form.inputs:
        name = element.get("name")
        if not name:
            continue
        names.append(name)
        kind = (element.get("type") or "text").lower()
        if kind in ("submit", "button", "image", "reset"):
            continue
        if kind == "checkbox":
            if name in fill or element.get("required") is not None or element.checked:
                fields.append((name, element.get("value") or "on"))
            continue
        if kind == "radio":
            if element.checked:
                fields.append((name, element.get("value") or "on"))
            continue
        if name in fill:
            fields.append((name, fill[name]))
        elif name == name_field:
            fields.append((name, fill["username"]))
        elif kind == "password" and "password" in fill:
            fields.append((name, fill["password"]))  # e.g. a confirmation field
        else:
            fields.append((name, element.value or ""))
    buttons = form.xpath('.//button[not(@type) or @type="submit"] | .//input[@type="submit"]')
    approving = [
        b for b in buttons if not any(word in (b.get("value") or "").lower() for word in _REFUSING)
    ]
    if approving and approving[0].get("name"):
        fields.append((approving[0].get("name"), approving[0].get("value") or ""))
    action = form.get("action") or url
    return FormPage(
        action=urljoin(url, action),
        fields=fields,
        has_password=bool(form.xpath('.//input[@type="password"]')),
        signature=(urljoin(url, action), *sorted(names)),
        password_fields=len(form.xpath('.//input[@type="password"]')),
    )


class UserAgent:
    """One simulated browser: its own cookie jar, every exchange recorded."""

    def __init__(self, template: MatrixClient) -> None:
        self._http = new_http_client(template.tls)  # the target's TLS settings, own cookies
        self._client = template.with_http(self._http)

    def client(self, recorder: Recorder) -> MatrixClient:
        return self._client.with_recorder(recorder)

    async def close(self) -> None:
        await self._http.aclose()


def bound_to(action: str, origins: frozenset[str]) -> str:
    """A form's action, if it posts to an origin credentials may go to; else DriverError
    naming the origin (nothing is sent)."""
    there = origin(action)
    if there not in origins:
        raise DriverError(
            f"a login page's form posts to {there}, which is not the authorisation server "
            f"({', '.join(sorted(origins)) or 'unknown'}) nor in oauth.login_origins: "
            "nothing was sent"
        )
    return action


async def walk_pages(
    agent: MatrixClient,
    start: str,
    fill: dict[str, str],
    *,
    origins: frozenset[str],
    redirect_uri: str | None = None,
    submissions: int = 4,
    registration: bool = False,
) -> str | None:
    """Follow redirects and submit forms until the server sends the agent to `redirect_uri`
    (returned), or a page without a form is reached after `submissions` forms (None).
    Forms are posted only to `origins`; a redirect is followed with a bare GET (no body,
    no credentials; only the agent's own cookies)."""
    url, method, form = start, "GET", None
    submitted = 0
    last: FormPage | None = None
    for _ in range(_MAX_STEPS):
        resp = await agent.request(
            method, url, form=form, note="login driver (form)", allow_origins=origins
        )
        if resp.status_code in _REDIRECTS:
            location = urljoin(url, resp.headers.get("location", ""))
            if redirect_uri is not None and is_redirect_to(location, redirect_uri):
                return str(location)
            url, method, form = location, "GET", None
            continue
        ctype = resp.headers.get("content-type", "")
        page = choose_form(resp.text, url, fill) if "html" in ctype else None
        if page is not None and last is not None and page.signature == last.signature:
            raise DriverError(
                f"the server showed the same form again after it was submitted "
                f"(HTTP {resp.status_code} at {url}): login or consent refused"
            )
        if page is None or (redirect_uri is None and submitted >= submissions):
            if redirect_uri is None and resp.status_code < 400:
                return None
            raise DriverError(f"stuck at {url}: HTTP {resp.status_code} with no form to submit")
        looks_like_login = page.password_fields < 2 and "regist" not in url.lower()
        if registration and page.has_password and submitted == 0 and looks_like_login:
            raise NoRegistrationPage(f"prompt=create led to a login form at {url}")
        last = page
        submitted += 1
        url, method, form = bound_to(page.action, origins), "POST", page.fields
    raise DriverError(f"no result after {_MAX_STEPS} pages")


class FormDriver(LoginDriver):
    """Scripted login and consent through server-rendered HTML (MAS's pages, or ours)."""

    name = "form"
    grant = DRIVER_GRANTS["form"]
    interactive = True

    def __init__(self, template: MatrixClient, origins: frozenset[str]) -> None:
        self._template = template
        self._origins = origins  # where what the user types may be posted
        self._agents: dict[str, UserAgent] = {}

    def _agent(self, account: Account) -> UserAgent:
        if account.username not in self._agents:
            self._agents[account.username] = UserAgent(self._template)
        return self._agents[account.username]

    @staticmethod
    def _fill(account: Account) -> dict[str, str]:
        if account.password is None:
            raise Unsupported("no password is known for this account")
        return {
            "username": account.username,
            "password": account.password,
            "password_confirm": account.password,
        }

    async def authorize(
        self, account: Account, url: str, redirect_uri: str, recorder: Recorder, create: bool
    ) -> str:
        agent = self._agent(account).client(recorder)
        result = await walk_pages(
            agent,
            url,
            self._fill(account),
            origins=self._origins,
            redirect_uri=redirect_uri,
            registration=create,
        )
        if result is None:  # pragma: no cover - walk_pages raises instead
            raise DriverError("the authorisation pages never redirected back")
        return result

    async def approve(self, account: Account, url: str, recorder: Recorder) -> None:
        agent = self._agent(account).client(recorder)
        await walk_pages(agent, url, self._fill(account), origins=self._origins, submissions=1)

    async def approve_device(
        self, account: Account, verification_uri: str, user_code: str, recorder: Recorder
    ) -> None:
        agent = self._agent(account).client(recorder)
        # MAS (1.18 on) refuses a device consent without its confirm_device box ticked.
        fill = self._fill(account) | {"code": user_code, "confirm_device": "on"}
        await walk_pages(agent, verification_uri, fill, origins=self._origins, submissions=3)

    async def password_works(
        self, account: Account, password: str, start_url: str, recorder: Recorder
    ) -> bool:
        agent = UserAgent(self._template)
        try:
            fill = {"username": account.username, "password": password}
            client = agent.client(recorder)
            resp = await client.request(
                "GET", start_url, note="fresh user agent: login page", allow_origins=self._origins
            )
            url = start_url
            for _ in range(_MAX_STEPS):
                if resp.status_code not in _REDIRECTS:
                    break
                url = urljoin(url, resp.headers.get("location", ""))
                resp = await client.request(
                    "GET", url, note="fresh user agent: login page", allow_origins=self._origins
                )
            page = choose_form(resp.text, url, fill)
            if page is None or not page.has_password:
                raise DriverError(f"no login form at {url}")
            after = await client.request(
                "POST",
                bound_to(page.action, self._origins),
                form=page.fields,
                note="fresh user agent: try the password",
                allow_origins=self._origins,
            )
            again = choose_form(after.text, page.action, fill)
            return after.status_code in _REDIRECTS or not (again and again.has_password)
        finally:
            await agent.close()

    async def close(self) -> None:
        for agent in self._agents.values():
            await agent.close()
