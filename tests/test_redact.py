"""Redaction: secrets are masked by field name and scrubbed by value, everywhere."""

import json
import re

import httpx
from hypothesis import assume, given
from hypothesis import strategies as st

from mxconform.http.redact import SecretRegistry, redact_body, redact_headers, redact_url

TOKEN = "syt_bXhj_ZXhhbXBsZXRva2Vu_0abc12"


def test_json_secret_fields_are_masked_and_remembered():
    reg = SecretRegistry()
    body = json.dumps(
        {
            "access_token": TOKEN,
            "refresh_token": "r3fresh-xyz",
            "user_id": "@a:b",
            "auth": {"password": "pa55word!", "type": "m.login.password"},
        }
    ).encode()
    out = redact_body(body, "application/json", reg, 10_000)
    text = json.dumps(out)
    for secret in (TOKEN, "r3fresh-xyz", "pa55word!"):
        assert secret not in text
        assert secret in reg.values()
    assert out["user_id"] == "@a:b"
    assert reg.scrub(f"later {TOKEN} shows up") == "later <redacted:access_token> shows up"


def test_authorization_header_and_query_token_are_masked():
    reg = SecretRegistry()
    headers = redact_headers([("Authorization", f"Bearer {TOKEN}"), ("Accept", "*/*")], reg)
    assert headers[0] == ("Authorization", "Bearer <redacted:credential>")
    url = redact_url(f"http://h/_matrix/client/v3/sync?timeout=0&access_token={TOKEN}", reg)
    assert TOKEN not in url and "access_token=<redacted:access_token>" in url
    assert "timeout=0" in url


def test_form_bodies_and_cookies_are_masked():
    reg = SecretRegistry()
    out = redact_body(
        b"grant_type=refresh_token&refresh_token=abcdefgh123&client_id=c1",
        "application/x-www-form-urlencoded",
        reg,
        10_000,
    )
    assert ["refresh_token", "<redacted:refresh_token>"] in out["form"]
    assert ["client_id", "c1"] in out["form"]
    headers = redact_headers([("Set-Cookie", "session=abcdef123456; Path=/")], reg)
    assert "abcdef123456" not in headers[0][1]


def test_known_secret_is_scrubbed_from_plain_text_and_nested_data():
    reg = SecretRegistry()
    reg.add("hunter2-secret", "shared_secret")
    doc = {"a": ["x hunter2-secret y", {"b": "hunter2-secret"}], "n": 3}
    assert "hunter2-secret" not in json.dumps(reg.scrub_any(doc))


def test_bodies_are_capped():
    reg = SecretRegistry()
    out = redact_body(b"x" * 5000, "text/plain", reg, 100)
    assert out["truncated"] and out["size"] == 5000 and len(out["head"]) == 100


@given(
    st.text(alphabet=st.characters(codec="ascii", categories=["L", "N"]), min_size=8, max_size=64)
)
def test_any_token_sent_by_header_never_survives(token):
    # A token that is part of the fixed text around it (e.g. "authoriz") proves nothing.
    assume(token not in "authorization Bearer error mentioning http://h/x access_token")
    reg = SecretRegistry()
    request = httpx.Request(
        "GET",
        "http://h/x",
        params={"access_token": token},
        headers={"Authorization": f"Bearer {token}"},
    )
    stored = json.dumps(
        [
            redact_url(str(request.url), reg),
            redact_headers(request.headers.multi_items(), reg),
            reg.scrub(f"error mentioning {token}"),
        ]
    )
    assert token not in re.sub(r"<redacted:[a-z_]+>", "", stored)
