"""The requirement catalogue and the probe table, cross-checked against the reference and spec."""

import re
from functools import cache
from pathlib import Path

import pytest
import yaml

from mxconform.legacy.probes import AUTHENTICATED_PROBES
from mxconform.spec import requirements

SHARED = Path(__file__).resolve().parent.parent.parent / "shared"
REFERENCE = SHARED / "reference" / "spec-requirements.md"
SPEC_API = SHARED / "matrix-spec" / "data" / "api" / "client-server"


def test_catalogue_entries_are_complete():
    cat = requirements.catalogue()
    assert len(cat) >= 180
    for req in cat.values():
        assert req.level in ("MUST", "SHOULD", "MAY", "unspecified")
        assert req.anchor.startswith("#") and req.statement
        for version in (req.since, req.until):
            assert version is None or requirements.parse_version(version) is not None


@pytest.mark.skipif(not REFERENCE.exists(), reason="shared reference not present")
def test_catalogue_covers_every_reference_requirement():
    text = REFERENCE.read_text()
    section_a = text[text.index("## A. Requirements catalog") : text.index("## B.")]
    ids = set(re.findall(r"^\| \d+ \| ([A-Z0-9-]+) \|", section_a, re.MULTILINE))
    cat = requirements.catalogue()
    assert ids <= set(cat)
    # Our own additions split a reference row whose level is mixed; each names its parent.
    # The bad-input rows are ours: each says which spec text it rests on (ADDED_ROWS).
    for rid in set(cat) - ids - set(ADDED_ROWS):
        assert SPLIT_ROWS.get(rid) in ids and SPLIT_ROWS[rid] in cat[rid].statement, rid
    for rid, source in ADDED_ROWS.items():
        assert rid in cat and source in (cat[rid].gate_source or "") + cat[rid].statement, rid


SPLIT_ROWS = {
    "OAUTH-CORS": "API-CORS",  # the OAuth server's endpoints / the homeserver's responses
    "OAUTH-META-TYPES": "OAUTH-META-REQUIRED",  # the fields' types / their presence
    "VERSIONS-AUTH-SHAPE": "VERSIONS-OPTIONAL-AUTH",  # the answer's shape (MUST) / the MAY
    # the client's rule (MUST, on the metadata) / what the server may do about it (MAY)
    "OAUTH-DCR-COMMON-BASE-OTHER": "OAUTH-DCR-COMMON-BASE",
    "OAUTH-REFRESH-RETRY": "OAUTH-REFRESH-ROTATE",  # "SHOULD rotate / MUST allow retry"
    "XSIGN-UIA-EXEMPT": "XSIGN-UIA",  # UIA to replace keys (v1.1) / no UIA for a first (v1.11)
    "OAUTH-CODE-REUSE-REVOKE": "OAUTH-AC-GRANT",  # MUST single-use / SHOULD revoke (RFC 6749)
    "LOGIN-DEACTIVATED-403": "LOGIN-DEACTIVATED",  # refused with 403 (v1.1) / which code (v1.17)
}

ADDED_ROWS = {  # rows the reference does not list, and the text each rests on
    "API-BAD-JSON": "M_NOT_JSON",  # the common error codes for a body that is not valid
    "OAUTH-DCR-ERR": "RFC 7591",  # RFC 7591 §3.2.2, which the spec's DCR section adopts
    "OAUTH-TOKEN-ERR": "RFC 6749",  # RFC 6749 §5.2, which the spec's grants adopt
    # Interoperability rows (`basis: interop`): not Matrix rules, what OIDC clients need
    "OAUTH-OIDC-ID-TOKEN": "OpenID Connect Core 1.0",
    "OAUTH-OIDC-DISCOVERY": "OpenID Connect Discovery 1.0",
}


def test_interop_rows_never_grade_a_server_on_matrix_conformance():
    """A rule outside Matrix that clients rely on (`basis: interop`, OIDC's for now) is
    never a MUST or a SHOULD: broken, it is INFO, an interoperability finding."""
    from mxconform.oauth.oidc import INTEROP
    from mxconform.spec.verdicts import Verdict, verdict_for_level

    interop = [r for r in requirements.catalogue().values() if r.basis == INTEROP]
    assert {r.id for r in interop} == {"OAUTH-OIDC-ID-TOKEN", "OAUTH-OIDC-DISCOVERY"}
    for req in interop:
        assert verdict_for_level(req.level) is Verdict.INFO, req.id
        assert req.id in ADDED_ROWS and req.statement.startswith("Interoperability, not a")


@cache
def _spec_operations() -> dict[str, tuple[str, str, list]]:
    """Parsed once per process: the spec's files take seconds to read with the pure-Python
    loader, and every probe asks."""
    ops = {}
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    for path in SPEC_API.glob("*.yaml"):
        doc = yaml.load(path.read_text(), Loader=loader)
        base = (
            doc.get("servers", [{}])[0].get("variables", {}).get("basePath", {}).get("default", "")
        )
        for route, methods in (doc.get("paths") or {}).items():
            for method, op in methods.items():
                if isinstance(op, dict) and "operationId" in op:
                    ops[op["operationId"]] = (method.upper(), base + route, op.get("security", []))
    return ops


@pytest.mark.skipif(not SPEC_API.exists(), reason="matrix-spec data not present")
@pytest.mark.parametrize("probe", AUTHENTICATED_PROBES, ids=lambda p: p.id)
def test_probe_is_a_spec_operation_that_requires_a_token(probe):
    method, route, security = _spec_operations()[probe.operation_id]
    assert method == probe.method
    pattern = re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(route.split("/v3", 1)[-1]))
    assert re.fullmatch(pattern, probe.path), (route, probe.path)
    assert security and {} not in security, "the operation must not allow anonymous access"


SUITES = Path(__file__).resolve().parent.parent / "suites"
CAPABILITIES = {  # what a `needs:` row waits for (README, "Catalogue coverage")
    "admin",
    "appservice",
    "sso",
    "oauth-aware",
    "email",
    "multi-stage-uia",
    "uia-terms",
    "rate-limit",
    "guest-access",
    "password-policy",
}


@pytest.fixture(scope="module")
def cited() -> set[str]:
    """Every requirement the suites cite, collected through the plugin (markers, parameters
    with a rule of their own, literal `req=` citations), as `mxconform run` collects them."""
    from mxconform.plugin.state import get_run

    seen: set[str] = set()

    class Grab:
        @pytest.hookimpl(trylast=True)
        def pytest_collection_finish(self, session):
            seen.update(get_run(session.config).cited)

    code = pytest.main(
        [str(SUITES), "--collect-only", "-q", "-p", "no:cacheprovider", "--rootdir", str(SUITES)],
        plugins=[Grab()],
    )
    assert code == 0
    return seen


def test_every_catalogue_row_is_checked_untestable_or_needs_a_capability(cited):
    cat = requirements.catalogue()
    assert cited <= set(cat), cited - set(cat)
    uncovered = [r.id for r in cat.values() if r.id not in cited and not (r.untestable or r.needs)]
    assert uncovered == [], f"rows no check cites, without `untestable` or `needs`: {uncovered}"


def test_untestable_and_needs_are_honest(cited):
    cat = requirements.catalogue()
    for req in cat.values():
        assert not (req.untestable and req.needs), req.id
        assert req.needs is None or req.needs in CAPABILITIES, (req.id, req.needs)
        if req.binds == "client" and req.id not in cited:
            assert req.untestable, f"{req.id} binds clients: untestable, with the reason"
        if req.untestable:
            assert len(req.untestable) > 20, f"{req.id}: say why it cannot be observed"


def test_coverage_counts_add_up(cited):
    from mxconform.spec.coverage import coverage

    doc = coverage(cited)
    assert sum(doc["total"].values()) == len(requirements.catalogue())
    for kind in ("checked", "untestable", "needs", "uncovered"):
        assert doc["total"][kind] == sum(a[kind] for a in doc["areas"].values())


@pytest.mark.skipif(not SPEC_API.exists(), reason="matrix-spec data not present")
def test_the_metadata_arrays_checked_are_the_ones_the_spec_defines():
    """oauth.metadata.field-types judges exactly the arrays of strings that
    oauth_server_metadata.yaml defines."""
    import importlib.util

    schema = yaml.safe_load((SPEC_API / "oauth_server_metadata.yaml").read_text())
    response = schema["paths"]["/auth_metadata"]["get"]["responses"]["200"]
    props = response["content"]["application/json"]["schema"]["properties"]
    defined = {
        k for k, v in props.items() if v.get("type") == "array" and v["items"]["type"] == "string"
    }
    path = Path(__file__).resolve().parents[1] / "suites" / "oauth" / "check_metadata.py"
    spec = importlib.util.spec_from_file_location("check_metadata_for_test", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert set(module.ARRAYS_OF_STRINGS) == defined
