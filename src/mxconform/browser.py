"""The `browser` login driver: the form driver's twin in a real, headless Chromium.

Some authorisation servers only work with a browser (pages built by JavaScript, cookies
set by scripts, forms that are not plain HTML). This driver walks the same pages the form
driver walks, but through Playwright driving the system's Chromium (never a downloaded
one). Each account keeps its own browser context, so a second login reuses the session
cookie the way a person's browser would. The redirect back to the client is never sent:
it is intercepted and answered with a tiny page, and read with its fragment.

Operators may script the login with `oauth.browser` steps (wait for a URL, fill fields,
click); the generic loop then carries on from wherever the steps left the page. Failures
leave a screenshot and the page's HTML (secrets scrubbed) in the artifacts directory.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import os
import re
import shutil
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import parse_qs, urlsplit

from .client import Exchange, Recorder
from .drivers import (
    DRIVER_GRANTS,
    Account,
    DriverError,
    LoginDriver,
    NoRegistrationPage,
    Unsupported,
)
from .oauth import is_redirect_to
from .redact import SecretRegistry, redact_url
from .targets import BrowserStep

if TYPE_CHECKING:
    from playwright.async_api import (
        Browser,
        BrowserContext,
        CDPSession,
        Frame,
        Locator,
        Page,
        Playwright,
        Request,
        Response,
    )

_ROUNDS = 10  # pages the generic loop will act on before giving up
_OPTIONAL_WAIT_MS = 1000  # how long an optional wait_url step waits before it is skipped
_REFUSING = ("deny", "reject", "cancel", "decline")
_NOTE = "browser driver"
_CALLBACK_PAGE = "<!doctype html><title>mxconform</title><p>Back at the client.</p>"
# Inputs whose contents a screenshot must not show (password inputs already show dots).
_TYPED_INPUTS = (
    "textarea, input:not([type]), input[type=text], input[type=email], input[type=search],"
    " input[type=tel], input[type=url], input[type=number]"
)
# Chromium as root in a container: no sandbox; and no traffic of its own beside the pages.
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-dev-shm-usage",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

# Reads the page's forms without trusting DOM properties a field could shadow (a button
# named "action" hides form.action).
_FORMS_JS = """
() => Array.from(document.querySelectorAll('form')).map((f, index) => ({
  index,
  method: (f.getAttribute('method') || 'get').toLowerCase(),
  action: new URL(f.getAttribute('action') || '', document.baseURI).href,
  names: Array.from(f.querySelectorAll('input, select, textarea, button'))
    .map(e => e.getAttribute('name')).filter(n => n),
  passwords: f.querySelectorAll('input[type=password]').length,
  code: f.querySelector('input[name=code]') !== null,
}))
"""

# Marks the form's first submit button that does not refuse; true when one was found.
_MARK_BUTTON_JS = """
(f, refusing) => {
  const buttons = Array.from(f.querySelectorAll('button, input')).filter(b => {
    const type = (b.getAttribute('type') || (b.tagName === 'BUTTON' ? 'submit' : 'text'));
    return type.toLowerCase() === 'submit';
  });
  const approving = buttons.find(b => {
    const words = ((b.value || '') + ' ' + (b.textContent || '')).toLowerCase();
    return !refusing.some(w => words.includes(w));
  });
  f.querySelectorAll('[data-mxconform-submit]')
    .forEach(b => b.removeAttribute('data-mxconform-submit'));
  if (!approving) return false;
  approving.setAttribute('data-mxconform-submit', '');
  return true;
}
"""

_T = TypeVar("_T")


@dataclass(frozen=True)
class _Form:
    """A form the loop may submit, as read from the page."""

    index: int
    method: str
    action: str
    names: tuple[str, ...]
    passwords: int
    code: bool

    @property
    def signature(self) -> tuple[str, ...]:
        return (self.action, *sorted(self.names))


class _Visit:
    """One page driven for one call: its evidence, and the redirect back when it comes."""

    def __init__(
        self,
        page: Page,
        recorder: Recorder,
        secrets: SecretRegistry,
        redirect_uri: str | None,
    ) -> None:
        self.page = page
        self.recorder = recorder
        self.secrets = secrets
        self.redirect_uri = redirect_uri
        self.captured: str | None = None
        self.status: int | None = None  # of the last main-frame document
        self._cdp: CDPSession
        self._tasks: set[asyncio.Future[None]] = set()
        page.on("response", self._on_response)
        page.on("framenavigated", self._on_navigated)

    async def intercept(self) -> None:
        """Answer every request to the redirect URI inside the browser, so the code never
        reaches whatever listens there. Playwright's routes do not see redirected requests,
        and the way back to the client is always a redirect: Chromium's own Fetch domain
        does, fragment included."""
        if self.redirect_uri is None:
            return
        target = urlsplit(self.redirect_uri)
        host = target.hostname or ""
        host = f"[{host}]" if ":" in host else host  # an IPv6 literal, as URLs spell it
        cdp = await self.page.context.new_cdp_session(self.page)
        cdp.on("Fetch.requestPaused", self._paused)
        self._cdp = cdp
        pattern = {"urlPattern": f"{target.scheme}://{host}*", "requestStage": "Request"}
        await cdp.send("Fetch.enable", {"patterns": [pattern]})

    def _paused(self, event: dict[str, Any]) -> None:
        task = asyncio.ensure_future(self._answer(event))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _answer(self, event: dict[str, Any]) -> None:
        request = event.get("request") or {}
        url = str(request.get("url", "")) + str(request.get("urlFragment") or "")
        try:
            if self._is_callback(url):
                if self.captured is None:
                    self.captured = url
                await self._cdp.send(
                    "Fetch.fulfillRequest",
                    {
                        "requestId": event["requestId"],
                        "responseCode": 200,
                        "responseHeaders": [{"name": "Content-Type", "value": "text/html"}],
                        "body": base64.b64encode(_CALLBACK_PAGE.encode()).decode(),
                    },
                )
            else:
                await self._cdp.send("Fetch.continueRequest", {"requestId": event["requestId"]})
        except Exception:  # the page closed while the request waited: nothing to answer
            return

    def _is_callback(self, url: str) -> bool:
        return self.redirect_uri is not None and is_redirect_to(url, self.redirect_uri)

    def _on_navigated(self, frame: Frame) -> None:
        if frame == self.page.main_frame and self._is_callback(frame.url):
            self.captured = frame.url  # the committed URL keeps the fragment

    def _on_response(self, response: Response) -> None:
        request = response.request
        if not request.is_navigation_request() or request.frame != self.page.main_frame:
            return
        self.status = response.status
        note = _NOTE
        if self._is_callback(request.url):
            note += ": the redirect back to the client, answered inside the browser"
        self.recorder.exchanges.append(
            Exchange(
                method=request.method,
                url=redact_url(request.url, self.secrets),
                request_headers=[],
                request_body=None,
                started_at=_started(request),
                duration_ms=_duration(request),
                status=response.status,
                note=note,
            )
        )

    def redirect(self) -> str | None:
        """The redirect back, fragment included, once the browser was sent there."""
        return self.captured


def _started(request: Request) -> str:
    start = request.timing.get("startTime", -1)
    moment = datetime.fromtimestamp(start / 1000, UTC) if start > 0 else datetime.now(UTC)
    return moment.isoformat(timespec="milliseconds")


def _duration(request: Request) -> float:
    took = request.timing.get("responseStart", -1)
    return round(took, 2) if took >= 0 else 0.0


class BrowserDriver(LoginDriver):
    """Login, consent and device approval through the server's pages in headless Chromium."""

    name = "browser"
    grant = DRIVER_GRANTS["browser"]
    interactive = True

    def __init__(
        self,
        steps: list[BrowserStep],
        *,
        secrets: SecretRegistry | None = None,
        artifacts_dir: Path | None = None,
        executable: str | None = None,
        timeout_s: float = 20.0,
    ) -> None:
        self._steps = list(steps)
        # Without the run's registry, a private one still masks what the pages reveal.
        self._secrets = secrets if secrets is not None else SecretRegistry()
        self._artifacts = artifacts_dir
        self._executable = executable
        self._timeout_ms = timeout_s * 1000
        self._lock = asyncio.Lock()
        self._playwright: Playwright | None = None
        self._browser: Browser | None = None
        self._contexts: dict[str, BrowserContext] = {}
        self._shots = itertools.count(1)

    # -- the browser and its contexts --------------------------------------------------

    def executable(self) -> str | None:
        """The Chromium this driver would run, if there is one."""
        return (
            self._executable
            or os.environ.get("MXCONFORM_CHROMIUM")
            or shutil.which("chromium")
            or shutil.which("chromium-browser")
        )

    async def _launch(self) -> Browser:
        async with self._lock:
            if self._browser is not None:
                return self._browser
            executable = self.executable()
            if not executable:
                raise Unsupported(
                    "no chromium found for the browser login driver "
                    "(install Debian's chromium, or set MXCONFORM_CHROMIUM)"
                )
            try:
                from playwright.async_api import async_playwright
            except ImportError:
                raise Unsupported(
                    "the browser login driver needs Playwright (the mxconform[browser] extra)"
                ) from None
            self._playwright = await async_playwright().start()
            try:
                self._browser = await self._playwright.chromium.launch(
                    executable_path=executable, headless=True, args=CHROMIUM_FLAGS
                )
            except Exception as exc:
                await self._playwright.stop()
                self._playwright = None
                raise Unsupported(f"chromium at {executable} would not start: {exc}") from exc
            return self._browser

    async def _new_context(self) -> BrowserContext:
        browser = await self._launch()
        context = await browser.new_context(locale="en-US")
        context.set_default_timeout(self._timeout_ms)
        context.set_default_navigation_timeout(self._timeout_ms)
        return context

    async def _context(self, account: Account) -> BrowserContext:
        """The account's own cookie jar: a later login finds the earlier session."""
        if account.username not in self._contexts:
            context = await self._new_context()
            if account.username in self._contexts:  # another task made it meanwhile
                await context.close()
            else:
                self._contexts[account.username] = context
        return self._contexts[account.username]

    def _password(self, account: Account) -> str:
        if account.password is None:
            raise Unsupported("no password is known for this account")
        self._secrets.add(account.password, "password")
        return account.password

    # -- the interface -----------------------------------------------------------------

    async def authorize(
        self, account: Account, url: str, redirect_uri: str, recorder: Recorder, create: bool
    ) -> str:
        password = self._password(account)
        context = await self._context(account)
        page = await context.new_page()
        visit = _Visit(page, recorder, self._secrets, redirect_uri)
        try:
            await visit.intercept()

            async def drive() -> str:
                await page.goto(url)
                await self._run_steps(visit, account.username, password)
                await self._loop(visit, account.username, password, create=create)
                where = visit.redirect()
                if where is None:
                    raise DriverError(f"the pages never sent the browser back to {redirect_uri}")
                return where

            return await self._guarded(visit, account, drive())
        finally:
            await page.close()

    async def approve(self, account: Account, url: str, recorder: Recorder) -> None:
        password = self._password(account)
        page = await (await self._context(account)).new_page()
        visit = _Visit(page, recorder, self._secrets, None)
        try:

            async def drive() -> None:
                await page.goto(url)
                await self._loop(visit, account.username, password, submissions=1)

            await self._guarded(visit, account, drive())
        finally:
            await page.close()

    async def approve_device(
        self, account: Account, verification_uri: str, user_code: str, recorder: Recorder
    ) -> None:
        password = self._password(account)
        page = await (await self._context(account)).new_page()
        visit = _Visit(page, recorder, self._secrets, None)
        try:

            async def drive() -> None:
                await page.goto(verification_uri)
                await self._loop(visit, account.username, password, code=user_code, submissions=3)

            await self._guarded(visit, account, drive())
        finally:
            await page.close()

    async def password_works(
        self, account: Account, password: str, start_url: str, recorder: Recorder
    ) -> bool:
        self._secrets.add(password, "password")
        redirect_uri = parse_qs(urlsplit(start_url).query).get("redirect_uri", [None])[0]
        context = await self._new_context()  # a fresh user agent: no session to reuse
        page = await context.new_page()
        visit = _Visit(page, recorder, self._secrets, redirect_uri)
        try:
            await visit.intercept()

            async def drive() -> bool:
                await page.goto(start_url)
                form = await self._login_form(page)
                if form is None and self._steps:
                    await self._run_steps(visit, account.username, password)
                    return visit.captured is not None or await self._login_form(page) is None
                if form is None:
                    raise DriverError(f"no login form at {self._url(page)}")
                await self._submit(page, form, account.username, password, None)
                return await self._login_form(page) is None  # no login form: accepted

            return await self._guarded(visit, account, drive())
        finally:
            await context.close()

    async def close(self) -> None:
        for context in self._contexts.values():
            await _quietly(context.close())
        self._contexts.clear()
        if self._browser is not None:
            await _quietly(self._browser.close())
            self._browser = None
        if self._playwright is not None:
            await _quietly(self._playwright.stop())
            self._playwright = None

    # -- the operator's steps ------------------------------------------------------------

    async def _run_steps(self, visit: _Visit, username: str, password: str) -> None:
        page = visit.page
        for number, step in enumerate(self._steps, 1):
            if visit.captured is not None:
                return  # already back at the client: later steps have nothing to act on
            where = f"browser step {number}"
            if step.wait_url is not None:
                try:
                    await page.wait_for_url(
                        _searching(step.wait_url),
                        timeout=_OPTIONAL_WAIT_MS if step.optional else None,
                    )
                except Exception as exc:
                    if not _is_timeout(exc):
                        raise
                    if step.optional:
                        continue
                    raise DriverError(
                        f"{where}: the page never reached a URL matching {step.wait_url!r} "
                        f"(still at {self._url(page)})"
                    ) from None
            selectors = [*(step.fill or {}), *([step.click] if step.click else [])]
            missing = await self._missing(page, selectors, wait=not step.optional)
            if missing is not None:
                if step.optional:
                    continue
                raise DriverError(f"{where}: nothing on {self._url(page)} matches {missing!r}")
            for selector, value in (step.fill or {}).items():
                text = value.replace("{username}", username).replace("{password}", password)
                await page.locator(selector).first.fill(text)
            if step.click is not None:
                await page.locator(step.click).first.click()
                await page.wait_for_load_state()

    async def _missing(self, page: Page, selectors: list[str], *, wait: bool) -> str | None:
        """The first selector with nothing on the page (waited for when the step is
        required)."""
        await page.wait_for_load_state()
        for selector in selectors:
            locator = page.locator(selector).first
            if wait:
                try:
                    await locator.wait_for(state="attached")
                except Exception as exc:
                    if not _is_timeout(exc):
                        raise
                    return selector
            elif await page.locator(selector).count() == 0:
                return selector
        return None

    # -- the generic loop ----------------------------------------------------------------

    async def _loop(
        self,
        visit: _Visit,
        username: str,
        password: str,
        *,
        code: str | None = None,
        submissions: int | None = None,
        create: bool = False,
    ) -> None:
        """Log in when asked, tick what is required and approve, until the redirect back
        (authorisation) or until `submissions` approvals were made or no form is left."""
        page = visit.page
        approvals = 0
        logins = 0
        last: _Form | None = None
        for _ in range(_ROUNDS):
            if visit.captured is not None:
                return
            await page.wait_for_load_state()
            if visit.captured is not None:
                return
            form = await self._choose(page, code)
            is_login = form is not None and form.passwords > 0
            if last is not None and last.passwords and is_login:
                raise DriverError(
                    f"the login form came back after the password was submitted "
                    f"(HTTP {visit.status} at {self._url(page)}): login refused"
                )
            if form is not None and last is not None and form.signature == last.signature:
                raise DriverError(
                    f"the server showed the same form again after it was submitted "
                    f"(HTTP {visit.status} at {self._url(page)}): refused"
                )
            done = submissions is not None and approvals >= submissions
            if form is None or (done and not is_login):
                if submissions is not None and (visit.status or 200) < 400:
                    return
                if form is not None:
                    raise DriverError(
                        f"HTTP {visit.status} at {self._url(page)} after the approval"
                    )
                raise DriverError(
                    f"stuck at {self._url(page)}: HTTP {visit.status} with no form to submit"
                )
            if create and is_login and logins == 0 and approvals == 0:
                looks_like_login = form.passwords < 2 and "regist" not in page.url.lower()
                if looks_like_login:
                    raise NoRegistrationPage(
                        f"prompt=create led to a login form at {self._url(page)}"
                    )
            await self._submit(page, form, username, password, code)
            last = form
            if is_login:
                logins += 1
            else:
                approvals += 1
        if visit.captured is None and submissions is None:
            raise DriverError(f"no redirect back to the client after {_ROUNDS} pages")

    async def _forms(self, page: Page) -> list[_Form]:
        found: list[dict[str, Any]] = []
        for attempt in range(3):
            try:
                found = await page.evaluate(_FORMS_JS)
                break
            except Exception as exc:  # a script navigated away while the page was read
                if "context was destroyed" not in str(exc) or attempt == 2:
                    raise
                await page.wait_for_load_state()
        return [
            _Form(
                index=int(f["index"]),
                method=str(f["method"]),
                action=str(f["action"]),
                names=tuple(str(n) for n in f["names"]),
                passwords=int(f["passwords"]),
                code=bool(f["code"]),
            )
            for f in found
        ]

    async def _choose(self, page: Page, code: str | None) -> _Form | None:
        """A form with a password input first, else the first POST form, else (with a
        code to give) a form asking for it."""
        forms = await self._forms(page)
        for candidates in (
            [f for f in forms if f.passwords],
            [f for f in forms if f.method == "post"],
            [f for f in forms if f.code and code is not None],
        ):
            if candidates:
                return candidates[0]
        return None

    async def _login_form(self, page: Page) -> _Form | None:
        await page.wait_for_load_state()
        return next((f for f in await self._forms(page) if f.passwords), None)

    async def _submit(
        self, page: Page, form: _Form, username: str, password: str, code: str | None
    ) -> None:
        """Fill the form as a person would and press its approving button."""
        element = page.locator("form").nth(form.index)
        if form.passwords:
            await _fill_if_editable(element.locator("input[name=username]"), username)
            fields = element.locator("input[type=password]")
            for n in range(await fields.count()):
                await fields.nth(n).fill(password)
        if code is not None:
            await _fill_if_editable(element.locator("input[name=code]"), code)
        boxes = element.locator("input[type=checkbox][required]")
        for n in range(await boxes.count()):
            await boxes.nth(n).check()
        has_button = await element.evaluate(_MARK_BUTTON_JS, list(_REFUSING))
        async with page.expect_navigation(wait_until="load"):
            if has_button:
                await element.locator("[data-mxconform-submit]").click()
            else:
                await element.evaluate("f => f.requestSubmit()")

    # -- failures ------------------------------------------------------------------------

    async def _guarded(self, visit: _Visit, account: Account, work: Awaitable[_T]) -> _T:
        """Run a page interaction; a failure becomes a DriverError with a snapshot."""
        try:
            return await work
        except Unsupported:
            raise
        except DriverError as exc:
            raise await self._failed(visit, account, str(exc), type(exc)) from exc
        except Exception as exc:
            from playwright.async_api import Error as PlaywrightError

            if not isinstance(exc, PlaywrightError):
                raise
            reason = self._secrets.scrub(exc.message.splitlines()[0] if exc.message else "")
            if _is_timeout(exc):
                reason = f"timed out at {self._url(visit.page)}: {reason}"
            else:
                reason = f"the browser failed at {self._url(visit.page)}: {reason}"
            raise await self._failed(visit, account, reason, DriverError) from None

    async def _failed(
        self, visit: _Visit, account: Account, reason: str, kind: type[DriverError]
    ) -> DriverError:
        saved = await self._snapshot(visit.page, account.username)
        note = f"{_NOTE}: failed here"
        if saved:
            listing = ", ".join(str(p) for p in saved)
            reason = f"{reason} (saved: {listing})"
            note = f"{note}; saved {listing}"
        visit.recorder.exchanges.append(
            Exchange(
                method="GET",
                url=self._url(visit.page),
                request_headers=[],
                request_body=None,
                started_at=datetime.now(UTC).isoformat(timespec="milliseconds"),
                error=reason,
                note=note,
            )
        )
        return kind(reason)

    async def _snapshot(self, page: Page, label: str) -> list[Path]:
        """A screenshot and the scrubbed HTML of the page, when there is somewhere to put
        them. Typed fields are masked in the picture; the HTML is scrubbed of secrets."""
        if self._artifacts is None:
            return []
        self._artifacts.mkdir(parents=True, exist_ok=True)
        safe = re.sub(r"[^A-Za-z0-9._-]+", "_", label)[:40] or "page"
        stem = f"{time.strftime('%Y%m%dT%H%M%S')}-{next(self._shots):03d}-{safe}"
        saved: list[Path] = []
        png = self._artifacts / f"{stem}.png"
        try:
            picture = await page.screenshot(
                full_page=True, mask=[page.locator(_TYPED_INPUTS)], timeout=5000
            )
        except Exception:  # a page that cannot be pictured still has its HTML
            picture = None
        if picture is not None:
            png.write_bytes(picture)
            saved.append(png)
        html = self._artifacts / f"{stem}.html"
        try:
            content = await page.content()
        except Exception:  # e.g. a page still navigating
            content = None
        if content is not None:
            html.write_text(self._secrets.scrub(content), encoding="utf-8")
            saved.append(html)
        return saved

    def _url(self, page: Page) -> str:
        return redact_url(page.url, self._secrets)


def _searching(expression: str) -> Callable[[str], bool]:
    """A URL test with Python's regular expressions (`re.search`), as servers.yaml means."""
    pattern = re.compile(expression)
    return lambda url: pattern.search(url) is not None


async def _fill_if_editable(locator: Locator, value: str) -> None:
    if await locator.count() and await locator.first.is_editable():
        await locator.first.fill(value)


def _is_timeout(exc: BaseException) -> bool:
    from playwright.async_api import TimeoutError as PlaywrightTimeout

    return isinstance(exc, PlaywrightTimeout)


async def _quietly(closing: Awaitable[Any]) -> None:
    try:
        await closing
    except Exception:  # closing a browser that already went away
        return
