"""How the browser driver acts on pages: the operator's steps, then a generic loop that
logs in, ticks what is required and approves, until the redirect back."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mxconform.http.limits import origin
from mxconform.http.redact import SecretRegistry, redact_url
from mxconform.oauth.drivers.base import (
    DriverError,
    NoRegistrationPage,
)
from mxconform.oauth.drivers.browser_visit import Visit
from mxconform.targets.config import BrowserStep

if TYPE_CHECKING:
    from playwright.async_api import (
        Locator,
        Page,
    )


_ROUNDS = 10  # pages the generic loop will act on before giving up
_OPTIONAL_WAIT_MS = 1000  # how long an optional wait_url step waits before it is skipped
_REFUSING = ("deny", "reject", "cancel", "decline")

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


@dataclass(frozen=True)
class Form:
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


class PageWalker:
    """The page-acting half of the browser driver (mixed into BrowserDriver)."""

    _steps: list[BrowserStep]
    _secrets: SecretRegistry
    _origins: frozenset[str] | None

    async def _run_steps(self, visit: Visit, username: str, password: str) -> None:
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
                    if not is_timeout(exc):
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
                    if not is_timeout(exc):
                        raise
                    return selector
            elif await page.locator(selector).count() == 0:
                return selector
        return None

    # -- the generic loop ----------------------------------------------------------------

    async def _loop(
        self,
        visit: Visit,
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
        last: Form | None = None
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

    async def _forms(self, page: Page) -> list[Form]:
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
            Form(
                index=int(f["index"]),
                method=str(f["method"]),
                action=str(f["action"]),
                names=tuple(str(n) for n in f["names"]),
                passwords=int(f["passwords"]),
                code=bool(f["code"]),
            )
            for f in found
        ]

    async def _choose(self, page: Page, code: str | None) -> Form | None:
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

    async def _login_form(self, page: Page) -> Form | None:
        await page.wait_for_load_state()
        return next((f for f in await self._forms(page) if f.passwords), None)

    async def _submit(
        self, page: Page, form: Form, username: str, password: str, code: str | None
    ) -> None:
        """Fill the form as a person would and press its approving button."""
        element = page.locator("form").nth(form.index)
        if self._origins is not None and (form.passwords or code is not None):
            there = origin(form.action)
            if there not in self._origins:
                raise DriverError(
                    f"a login page's form posts to {there}, which is not the authorisation "
                    f"server ({', '.join(sorted(self._origins))}) nor in oauth.login_origins: "
                    "nothing was filled"
                )
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

    def _url(self, page: Page) -> str:
        return redact_url(page.url, self._secrets)


def _searching(expression: str) -> Callable[[str], bool]:
    """A URL test with Python's regular expressions (`re.search`), as servers.yaml means."""
    pattern = re.compile(expression)
    return lambda url: pattern.search(url) is not None


async def _fill_if_editable(locator: Locator, value: str) -> None:
    if await locator.count() and await locator.first.is_editable():
        await locator.first.fill(value)


def is_timeout(exc: BaseException) -> bool:
    from playwright.async_api import TimeoutError as PlaywrightTimeout

    return isinstance(exc, PlaywrightTimeout)
