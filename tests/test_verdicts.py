"""Verdict mapping and spec-version gating."""

import httpx
import pytest

from mxconform.http.credentials import Transport
from mxconform.spec import requirements, verdicts
from mxconform.spec.matchers import expect, match
from mxconform.spec.verdicts import CheckState, Unmet, Verdict, observe


def response(status: int, payload: dict, content_type: str = "application/json") -> httpx.Response:
    request = httpx.Request("GET", "http://hs/_matrix/client/v3/account/whoami")
    return httpx.Response(
        status, json=payload, request=request, headers={"content-type": content_type}
    )


@pytest.fixture
def check():
    state = CheckState("unit.check", ["TOKEN-MISSING"])
    verdicts.begin(state)
    yield state
    verdicts.end()


def test_level_to_verdict():
    assert verdicts.verdict_for_level("MUST") is Verdict.FAIL
    assert verdicts.verdict_for_level("SHOULD") is Verdict.WARN
    assert verdicts.verdict_for_level("MAY") is Verdict.INFO
    assert verdicts.verdict_for_level("unspecified") is Verdict.INFO


def test_met_expectations_pass(check):
    expect(
        response(401, {"errcode": "M_MISSING_TOKEN", "error": "x"}),
        match.status(401),
        match.errcode("M_MISSING_TOKEN"),
    )
    assert check.verdict() is Verdict.PASS


def test_broken_must_raises_fail(check):
    with pytest.raises(Unmet) as caught:
        expect(response(200, {}), match.status(401), match.errcode("M_MISSING_TOKEN"))
    finding = caught.value.finding
    assert finding.verdict is Verdict.FAIL and finding.requirement == "TOKEN-MISSING"
    assert "HTTP 401" in finding.expected and "HTTP 200" in finding.observed


def test_broken_should_warns_and_goes_on(check):
    expect(
        response(401, {"errcode": "M_UNKNOWN_TOKEN"}),
        match.errcode("M_UNKNOWN_TOKEN"),
        match.json_key_in("soft_logout", (True,), absent_ok=False),
        req="TOKEN-EXPIRED",
    )
    assert requirements.get("TOKEN-EXPIRED").level == "SHOULD"
    assert check.verdict() is Verdict.WARN
    assert "TOKEN-EXPIRED" in check.requirement_ids


def test_fail_beats_warn_and_info(check):
    observe("noted")
    assert check.verdict() is Verdict.INFO
    expect(response(200, {}), match.status(401), req="TOKEN-EXPIRED")
    assert check.verdict() is Verdict.WARN
    with pytest.raises(Unmet):
        expect(response(200, {}), match.status(401))


def test_content_type_matcher(check):
    with pytest.raises(Unmet, match="Content-Type"):
        expect(
            response(401, {"errcode": "X"}, content_type="text/plain"),
            match.content_type_json(),
            req="API-JSON-CT",
        )


@pytest.mark.parametrize(
    ("text", "parsed"),
    [
        ("v1.15", (1, 15)),
        ("v1.20", (1, 20)),
        ("r0.6.1", (0, 6)),
        ("v2.0", (2, 0)),
        ("1.15", None),
        ("latest", None),
    ],
)
def test_parse_version(text, parsed):
    assert requirements.parse_version(text) == parsed


def test_evaluated_version_is_override_or_newest_advertised():
    advertised = ["r0.6.1", "v1.1", "v1.15", "v1.9"]
    assert requirements.evaluated_version(advertised, None) == (1, 15)
    assert requirements.evaluated_version(advertised, "v1.20") == (1, 20)
    assert requirements.evaluated_version(["weird"], None) is None


def test_query_token_rule_is_gated_at_v1_20():
    legacy = requirements.get(Transport.QUERY.requirement)
    removed = requirements.get("TOKEN-QUERY-REMOVED")
    assert legacy.applies_to((1, 19)) and not legacy.applies_to((1, 20))
    assert removed.applies_to((1, 20)) and not removed.applies_to((1, 19))
    assert "removed in v1.20" in legacy.why_not((1, 20))
    assert requirements.get(Transport.HEADER.requirement).applies_to((1, 20))


def test_oauth_rules_do_not_apply_before_v1_15():
    assert not requirements.get("OAUTH-META-ENDPOINT").applies_to((1, 14))
    assert requirements.get("OAUTH-META-ENDPOINT").applies_to((1, 15))
    assert requirements.get("TOKEN-MISSING").applies_to((0, 6))


def test_spec_links_follow_the_evaluated_version():
    req = requirements.get("TOKEN-MISSING")
    assert req.url((1, 15)).startswith("https://spec.matrix.org/v1.15/client-server-api/#")
    assert req.url(None).startswith("https://spec.matrix.org/latest/")


def test_a_failed_precondition_is_an_error_never_the_rule():
    """Whatever goes wrong before the request under test becomes PreconditionFailed."""
    from mxconform.errors import HarnessError, PreconditionFailed, Unsupported

    state = verdicts.CheckState("c", ["TOKEN-MISSING"])
    verdicts.begin(state)
    try:
        for failing in (
            lambda: verdicts.unmet("setup answered 500", req=None),
            lambda: (_ for _ in ()).throw(AssertionError("bare")),
            lambda: (_ for _ in ()).throw(HarnessError("network")),
        ):
            with (
                pytest.raises(PreconditionFailed, match="precondition failed: setup"),
                verdicts.precondition("setup"),
            ):
                failing()
        with pytest.raises(Unsupported), verdicts.precondition("setup"):
            raise Unsupported("not offered")
    finally:
        verdicts.end()
