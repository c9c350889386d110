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
import itertools
import os
import re
import shutil
import time
from collections.abc import Awaitable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import parse_qs, urlsplit

from mxconform.errors import Unsupported
from mxconform.http.evidence import Exchange, Recorder
from mxconform.http.redact import SecretRegistry
from mxconform.oauth.drivers.base import (
    DRIVER_GRANTS,
    Account,
    DriverError,
    LoginDriver,
)
from mxconform.oauth.drivers.browser_pages import PageWalker, is_timeout
from mxconform.oauth.drivers.browser_visit import NOTE, Visit
from mxconform.targets.config import BrowserStep

if TYPE_CHECKING:
    from playwright.async_api import (
        Browser,
        BrowserContext,
        Page,
        Playwright,
    )


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


_T = TypeVar("_T")


class BrowserDriver(PageWalker, LoginDriver):
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
        origins: frozenset[str] | None = None,
        accept_own_ca: bool = False,
    ) -> None:
        self._steps = list(steps)
        # Chromium keeps its own trust store: an embedded target whose https face is signed
        # by the run's own CA is accepted by not checking its certificate (loopback only).
        self._ignore_https_errors = accept_own_ca
        self._origins = origins  # where a password may be posted (None: not bound)
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
        context = await browser.new_context(
            locale="en-US", ignore_https_errors=self._ignore_https_errors
        )
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
        visit = Visit(page, recorder, self._secrets, redirect_uri)
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
        visit = Visit(page, recorder, self._secrets, None)
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
        visit = Visit(page, recorder, self._secrets, None)
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
        visit = Visit(page, recorder, self._secrets, redirect_uri)
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

    # -- failures ------------------------------------------------------------------------

    async def _guarded(self, visit: Visit, account: Account, work: Awaitable[_T]) -> _T:
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
            if is_timeout(exc):
                reason = f"timed out at {self._url(visit.page)}: {reason}"
            else:
                reason = f"the browser failed at {self._url(visit.page)}: {reason}"
            raise await self._failed(visit, account, reason, DriverError) from None

    async def _failed(
        self, visit: Visit, account: Account, reason: str, kind: type[DriverError]
    ) -> DriverError:
        saved = await self._snapshot(visit.page, account.username)
        note = f"{NOTE}: failed here"
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


async def _quietly(closing: Awaitable[Any]) -> None:
    try:
        await closing
    except Exception:  # closing a browser that already went away
        return
