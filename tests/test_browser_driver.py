"""The browser login driver against a small local imitation of MAS's pages (login, consent,
device link), so it is tested without the real authorisation server: redirects captured
with their fragment, sessions reused per account, refusals and missing selectors reported
with a scrubbed snapshot, and no password in any evidence or file."""

from __future__ import annotations

import html
import json
import re
import secrets
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import asdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, quote, urlsplit

import pytest

from mxconform.errors import Unsupported
from mxconform.http.evidence import Recorder
from mxconform.http.redact import SecretRegistry
from mxconform.oauth.drivers.base import Account, DriverError, NoRegistrationPage
from mxconform.oauth.drivers.browser import BrowserDriver
from mxconform.targets.config import BrowserStep

PASSWORD = "correct-horse-battery"
CALLBACK = "http://127.0.0.1/callback"

pytestmark = pytest.mark.skipif(
    BrowserDriver([]).executable() is None, reason="no chromium executable on this machine"
)


class FakeAuthServer(ThreadingHTTPServer):
    """MAS-shaped pages: /authorize → /login → /consent → the client's redirect URI."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Pages)
        self.posts: Counter[str] = Counter()
        self.sessions: set[str] = set()
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


def page(title: str, body: str) -> bytes:
    head = f"<!doctype html><html><head><title>{title}</title></head>"
    return f"{head}<body>{body}</body></html>".encode()


def login_form(action: str, echo: str = "") -> bytes:
    # `echo` imitates a careless server that puts the submitted password back in the page.
    return page(
        "Sign in",
        f'<form method="post" action="{html.escape(action)}">'
        '<input type="hidden" name="csrf" value="csrf-token-1">'
        '<input name="username" autocomplete="username">'
        f'<input type="password" name="password" value="{html.escape(echo)}">'
        '<button type="submit">Continue</button></form>',
    )


class Pages(BaseHTTPRequestHandler):
    server: FakeAuthServer

    def log_message(self, format: str, *args: object) -> None:
        return None

    def send(
        self, status: int, body: bytes = b"", location: str | None = None, cookie: str = ""
    ) -> None:
        self.send_response(status)
        if location is not None:
            self.send_header("Location", location)
        if cookie:
            self.send_header("Set-Cookie", f"session={cookie}; Path=/; HttpOnly")
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def logged_in(self) -> bool:
        cookies = self.headers.get("Cookie", "")
        values = {c.strip().partition("=")[2] for c in cookies.split(";") if "=" in c}
        return bool(values & self.server.sessions)

    def form(self) -> dict[str, str]:
        size = int(self.headers.get("Content-Length", "0"))
        raw = self.rfile.read(size).decode()
        return {k: v[-1] for k, v in parse_qs(raw, keep_blank_values=True).items()}

    def need_login(self, custom: bool = False) -> None:
        login = "/custom-login" if custom else "/login"
        self.send(303, location=f"{login}?next={quote(self.path, safe='')}")

    def next_page(self) -> str:
        return parse_qs(urlsplit(self.path).query).get("next", ["/consent"])[0]

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        query = parse_qs(parts.query)
        if parts.path == "/authorize":
            mode = query.get("response_mode", ["query"])[0]
            if not self.logged_in():
                self.need_login(custom="custom" in query)
            else:
                self.send(303, location=f"/consent?mode={mode}")
        elif parts.path == "/login":
            self.send(200, login_form(self.path))
        elif parts.path == "/custom-login":
            self.send(
                200,
                page(
                    "Custom sign in",
                    f'<form method="post" action="{html.escape(self.path)}">'
                    '<input id="user-field" name="u"><input id="secret-field" name="p" '
                    'type="password"><button id="go" type="button" '
                    'onclick="this.form.submit()">Next</button></form>',
                ),
            )
        elif parts.path == "/consent":
            if not self.logged_in():
                self.need_login()
                return
            self.send(
                200,
                page(
                    "Allow access",
                    f'<form method="post" action="{html.escape(self.path)}">'
                    '<input type="hidden" name="csrf" value="csrf-token-2">'
                    '<button type="submit" name="action" value="deny">Deny</button>'
                    '<button type="submit" name="action" value="consent">Allow</button>'
                    "</form>",
                ),
            )
        elif parts.path in ("/approve", "/approve-again"):
            if not self.logged_in():
                self.need_login()
                return
            self.send(
                200,
                page(
                    "Reset cross-signing",
                    f'<form method="post" action="{parts.path}">'
                    '<button type="submit">Reset</button></form>',
                ),
            )
        elif parts.path == "/device":
            if not self.logged_in():
                self.need_login()
                return
            self.send(
                200,
                page(
                    "Link a device",
                    '<form method="post" action="/device"><input name="code">'
                    '<input type="checkbox" name="confirm_device" required>'
                    '<button type="submit" name="action" value="cancel">Cancel</button>'
                    '<button type="submit" name="action" value="consent">Link</button></form>',
                ),
            )
        elif parts.path == "/hang":
            time.sleep(2)  # longer than the driver's timeout in the test that comes here
            self.send(200, page("Late", ""))
        elif parts.path == "/done":
            self.send(200, page("Done", "<p>All done.</p>"))
        else:
            self.send(404, page("Not found", "<p>Nothing here.</p>"))

    def do_POST(self) -> None:
        parts = urlsplit(self.path)
        fields = self.form()
        with self.server.lock:
            self.server.posts[parts.path] += 1
        if parts.path in ("/login", "/custom-login"):
            user, password = (
                (fields.get("username"), fields.get("password"))
                if parts.path == "/login"
                else (fields.get("u"), fields.get("p"))
            )
            if password != PASSWORD or not user:
                self.send(400, login_form(self.path, echo=password or ""))
                return
            session = secrets.token_hex(8)
            self.server.sessions.add(session)
            self.send(303, location=self.next_page(), cookie=session)
        elif parts.path == "/consent":
            if fields.get("action") != "consent" or fields.get("csrf") != "csrf-token-2":
                self.send(303, location=f"{CALLBACK}?error=access_denied&state=xyz")
            elif parse_qs(parts.query).get("mode") == ["fragment"]:
                self.send(303, location=f"{CALLBACK}#code=abc&state=xyz")
            else:
                self.send(303, location=f"{CALLBACK}?code=abc&state=xyz")
        elif parts.path == "/approve":
            self.send(303, location="/approve-again")
        elif parts.path == "/device":
            ok = fields.get("code") == "WXYZ-1234" and fields.get("confirm_device") == "on"
            self.send(303, location="/done" if ok and fields.get("action") == "consent" else "/x")
        else:
            self.send(404, page("Not found", ""))


@pytest.fixture(scope="module")
def server() -> Iterator[FakeAuthServer]:
    instance = FakeAuthServer()
    thread = threading.Thread(target=instance.serve_forever, daemon=True)
    thread.start()
    yield instance
    instance.shutdown()
    instance.server_close()


@pytest.fixture(scope="module")
async def driver(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[BrowserDriver]:
    """One Chromium for the tests with no script (each account still has its own context)."""
    artifacts = tmp_path_factory.mktemp("browser-artifacts")
    instance = BrowserDriver([], secrets=SecretRegistry(), artifacts_dir=artifacts, timeout_s=5)
    yield instance
    await instance.close()


def account(name: str, password: str = PASSWORD) -> Account:
    return Account(name, password, f"@{name}:example.org")


def evidence(recorder: Recorder) -> str:
    return json.dumps([asdict(e) for e in recorder.exchanges])


async def test_authorize_logs_in_consents_and_reuses_the_session(
    server: FakeAuthServer, driver: BrowserDriver
) -> None:
    alice = account("alice")
    recorder = Recorder()
    where = await driver.authorize(
        alice, f"{server.url}/authorize?state=xyz", CALLBACK, recorder, False
    )
    assert where == f"{CALLBACK}?code=abc&state=xyz"
    assert server.posts["/login"] == 1
    assert server.posts["/consent"] == 1

    # The same account's second login finds the session cookie: no login form this time.
    again = await driver.authorize(
        alice, f"{server.url}/authorize?response_mode=fragment", CALLBACK, recorder, False
    )
    assert again == f"{CALLBACK}#code=abc&state=xyz"
    assert server.posts["/login"] == 1
    assert server.posts["/consent"] == 2

    # Evidence: every navigation, redacted, with no password anywhere.
    urls = [e.url for e in recorder.exchanges]
    assert any("/login" in u for u in urls)
    assert any(u.startswith(CALLBACK) and "<redacted:code>" in u for u in urls)
    assert all(e.note and e.note.startswith("browser driver") for e in recorder.exchanges)
    assert {e.method for e in recorder.exchanges} == {"GET", "POST"}
    assert PASSWORD not in evidence(recorder)

    # Another account has its own cookie jar: it must log in.
    await driver.authorize(account("bob"), f"{server.url}/authorize", CALLBACK, Recorder(), False)
    assert server.posts["/login"] == 2


async def test_wrong_password_is_a_driver_error_with_scrubbed_artifacts(
    server: FakeAuthServer, driver: BrowserDriver
) -> None:
    wrong = "wrong-password-123"
    recorder = Recorder()
    with pytest.raises(DriverError, match="login refused") as caught:
        await driver.authorize(
            account("carol", wrong), f"{server.url}/authorize", CALLBACK, recorder, False
        )
    named = re.search(r"\(saved: (.+)\)$", str(caught.value))
    assert named is not None
    saved = sorted(Path(p) for p in named.group(1).split(", "))
    assert {p.suffix for p in saved} == {".png", ".html"}
    for path in saved:
        assert wrong.encode() not in path.read_bytes()
    page = next(p for p in saved if p.suffix == ".html").read_text()
    assert "<redacted:password>" in page  # the server echoed it; the driver scrubbed it
    assert recorder.exchanges[-1].error is not None
    assert str(saved[0]) in (recorder.exchanges[-1].note or "")
    assert wrong not in evidence(recorder)


async def test_password_works(server: FakeAuthServer, driver: BrowserDriver) -> None:
    dave = account("dave")
    start = f"{server.url}/authorize?redirect_uri={quote(CALLBACK)}"
    assert await driver.password_works(dave, PASSWORD, start, Recorder())
    assert not await driver.password_works(dave, "not-the-password", start, Recorder())


async def test_configured_steps_drive_a_custom_login_page(
    server: FakeAuthServer, tmp_path: Path
) -> None:
    steps = [
        BrowserStep(wait_url=r"/custom-login"),
        BrowserStep(click="#accept-cookies", optional=True),  # absent: skipped
        BrowserStep(fill={"#user-field": "{username}", "#secret-field": "{password}"}),
        BrowserStep(click="#go"),
    ]
    driver = BrowserDriver(steps, artifacts_dir=tmp_path, timeout_s=5)
    try:
        before = server.posts["/custom-login"]
        recorder = Recorder()
        where = await driver.authorize(
            account("erin"), f"{server.url}/authorize?custom=1", CALLBACK, recorder, False
        )
        assert where == f"{CALLBACK}?code=abc&state=xyz"
        assert server.posts["/custom-login"] == before + 1
        assert PASSWORD not in evidence(recorder)
    finally:
        await driver.close()


async def test_a_missing_selector_names_its_step_and_timeouts_are_errors(
    server: FakeAuthServer,
) -> None:
    driver = BrowserDriver([BrowserStep(click="#no-such-button")], timeout_s=1)
    frank = account("frank")
    try:
        with pytest.raises(DriverError, match=r"browser step 1: .*#no-such-button"):
            await driver.authorize(frank, f"{server.url}/authorize", CALLBACK, Recorder(), False)
        with pytest.raises(DriverError, match="timed out"):
            await driver.approve(frank, f"{server.url}/hang", Recorder())
    finally:
        await driver.close()


async def test_prompt_create_meeting_a_login_form(
    server: FakeAuthServer, driver: BrowserDriver
) -> None:
    with pytest.raises(NoRegistrationPage, match="login form"):
        await driver.authorize(
            account("ivy"), f"{server.url}/authorize?prompt=create", CALLBACK, Recorder(), True
        )


async def test_approve_submits_once_and_device_approval(
    server: FakeAuthServer, driver: BrowserDriver
) -> None:
    grace = account("grace")
    await driver.approve(grace, f"{server.url}/approve", Recorder())
    assert server.posts["/login"] >= 1
    assert server.posts["/approve"] == 1
    assert server.posts["/approve-again"] == 0  # the next form is left alone

    await driver.approve_device(grace, f"{server.url}/device", "WXYZ-1234", Recorder())
    assert server.posts["/device"] == 1  # code filled, box ticked, "Link" (not "Cancel")


async def test_no_chromium_is_unsupported(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MXCONFORM_CHROMIUM", "")
    monkeypatch.setenv("PATH", "/nonexistent")
    driver = BrowserDriver([])
    with pytest.raises(Unsupported, match="no chromium"):
        await driver.authorize(account("henry"), "http://127.0.0.1:9/", CALLBACK, Recorder(), False)
