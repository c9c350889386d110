"""One page of the browser driver: its evidence, and the redirect back caught by CDP."""

from __future__ import annotations

import asyncio
import base64
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from mxconform.http.evidence import Exchange, Recorder
from mxconform.http.redact import SecretRegistry, redact_url
from mxconform.oauth.client import is_redirect_to

if TYPE_CHECKING:
    from playwright.async_api import (
        CDPSession,
        Frame,
        Page,
        Request,
        Response,
    )


NOTE = "browser driver"
_CALLBACK_PAGE = "<!doctype html><title>mxconform</title><p>Back at the client.</p>"


class Visit:
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
        note = NOTE
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
