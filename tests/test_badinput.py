"""Bad input: the drawn bodies (unit), and each bad-input check turned FAIL by a stand-in that
breaks its one rule, against the real embedded Synapse (and the delegated one for OAuth)."""

from __future__ import annotations

import json

import pytest
from nonconformant import BreakingProxy

from mxconform.results import rule_verdicts
from mxconform.spec import badinput
from mxconform.spec.badinput import BadBody, Shape

SHAPE = Shape(
    base={"type": "m.login.password", "password": "wrong"},
    fields={"type": "string", "password": "string", "refresh_token": "bool"},
    auth=True,
)
# A fixed seed and enough bodies that every stand-in's trigger is drawn (the seed replays).
SEEDED = ("--hypothesis-seed", "20261130", "--hypothesis-examples", "20")


def test_the_same_seed_draws_the_same_bodies_and_n_bounds_them():
    strategy = badinput.bodies(SHAPE, "@me:example.org")
    first = badinput.draw_examples(strategy, 6, 42)
    assert len(first) == 6
    assert first == badinput.draw_examples(strategy, 6, 42)
    assert first != badinput.draw_examples(strategy, 6, 43)


def test_every_kind_is_drawn_and_no_stage_could_complete():
    drawn = badinput.draw_examples(badinput.bodies(SHAPE, "@me:example.org"), 200, 7)
    kinds = {b.kind for b in drawn}
    assert kinds == {
        "invalid-json",
        "not-object",
        "unknown-keys",
        "content-type",
        "wrong-type",
        "missing-field",
        "oversized",
        "non-ascii",
        "auth",
    }
    for b in drawn:
        if b.kind == "invalid-json":
            with pytest.raises(ValueError):
                json.loads(b.content)
        auth = b.value.get("auth") if isinstance(b.value, dict) else None
        if isinstance(auth, dict) and isinstance(auth.get("type"), str):
            assert auth["type"] == "m.login.password" or not auth["type"].startswith("m.")
            if auth["type"] == "m.login.password":
                assert auth["password"].startswith("mxconform-wrong-")


def test_form_shapes_draw_form_bodies():
    shape = Shape(base={"grant_type": "refresh_token"}, fields={"grant_type": "string"}, form=True)
    drawn = badinput.draw_examples(badinput.bodies(shape), 40, 3)
    assert {b.content_type for b in drawn if b.kind == "wrong-type"} == {badinput.FORM}


def test_simpler_variants_are_smaller():
    body = badinput.json_body("unknown-keys", {"a": "x" * 100, "b": {"c": 1, "d": 2}})
    variants = list(badinput.simpler(body))
    assert variants and all(len(v.content) < len(body.content) for v in variants)
    assert all(v.kind == "unknown-keys" for v in variants)
    assert list(badinput.simpler(BadBody("invalid-json", b"{", "application/json"))) == []


@pytest.fixture(scope="module")
def proxy(synapse):
    with BreakingProxy(synapse.base_url) as p:
        yield p


KNOWN = {"badinput.delete-devices[-]"}  # Synapse's own 500 (known-issues/synapse.yaml)


@pytest.mark.integration
def test_synapse_passes_but_for_its_known_500_and_the_seed_is_recorded(run_harness, proxy):
    proxy.use("conformant")
    run = run_harness(proxy.base_url, "-k", "badinput", *SEEDED)
    assert run.document["run"]["hypothesis_seed"] == 20261130
    verdicts = run.verdicts()
    assert run.with_verdict("FAIL") == KNOWN, verdicts
    assert run.with_verdict("ERROR") == set()
    failed = next(c for c in run.checks if c["check_id"] == "badinput.delete-devices")
    assert "HTTP 500" in failed["message"] and "smallest failing body" in failed["message"]
    login = next(c for c in run.checks if c["check_id"] == "badinput.login")
    assert "20 bodies (seed 20261130)" in login["message"]
    # The 500 fails the rule it breaks only: its body has the error shape, and the other
    # rules the check cites are not counted as failed (page, matrix and results.json alike).
    assert failed["basis"] == ["API-BAD-JSON"]
    rules = rule_verdicts(run.checks, failed["target"])
    assert rules["API-BAD-JSON"]["verdict"] == "FAIL"
    assert rules["API-ERR-SHAPE"]["verdict"] == "PASS"
    assert rules["UIA-NOAUTH-401"]["verdict"] == "PASS"
    cited = run.document["requirements"]
    assert cited["API-ERR-SHAPE"]["verdict_by_target"][failed["target"]] == "PASS"


@pytest.mark.integration
def test_a_fail_alone_leaves_the_rules_it_did_not_break_observed(run_harness, proxy):
    proxy.use("conformant")
    run = run_harness(proxy.base_url, "-k", "badinput.delete-devices", *SEEDED)
    (failed,) = run.checks
    rules = rule_verdicts(run.checks, failed["target"])
    assert rules["API-BAD-JSON"]["verdict"] == "FAIL"
    assert rules["API-ERR-SHAPE"]["verdict"] == rules["UIA-NOAUTH-401"]["verdict"] == "OBSERVED"


@pytest.mark.integration
@pytest.mark.parametrize(
    ("breakage", "failed"),
    [
        ("bad-json-login-500", "badinput.login"),
        ("login-accepts-malformed", "badinput.login"),
        ("bad-json-register-500", "badinput.register"),
        ("bad-json-refresh-plain", "badinput.refresh"),
        ("bad-json-logout-500", "badinput.logout"),
        ("logout-does-nothing", "badinput.logout"),
        ("password-change-without-auth", "badinput.account-password"),
    ],
)
def test_each_broken_bad_input_rule_turns_its_check_fail(run_harness, proxy, breakage, failed):
    proxy.use(breakage)
    run = run_harness(proxy.base_url, "-k", "badinput", *SEEDED)
    assert run.with_verdict("FAIL") - KNOWN == {f"{failed}[-]"}, run.verdicts()
    assert run.with_verdict("ERROR") == set()
    check = next(c for c in run.checks if c["check_id"] == failed)
    assert check["evidence"] and "smallest failing body" in check["message"]
