"""Target configuration: servers.yaml, validated with pydantic into clear, user-facing errors."""

from __future__ import annotations

import os
import re
import ssl
from collections.abc import Iterable
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    GetCoreSchemaHandler,
    field_validator,
    model_validator,
)
from pydantic_core import core_schema

from mxconform.http.client import MAX_RESPONSE_BYTES, RequestPolicy, tls_context
from mxconform.http.limits import origin
from mxconform.targets.embedded.dendrite_builds import version_problem
from mxconform.targets.embedded.releases import oauth_problem, spec_problem
from mxconform.targets.keys import known_keys

AuthApi = Literal["legacy", "oauth"]
EmbeddedKind = Literal["synapse-legacy", "synapse-oauth", "synapse-stock", "dendrite"]
LoginDriverName = Literal["form", "mas-admin", "browser", "static"]

_ENV_REF = re.compile(r"^\$\{([A-Za-z_][A-Za-z0-9_]*)\}$")


class ConfigError(Exception):
    """A problem in the user's configuration or command line: printed as one line, no traceback."""


class SecretRef(str):
    """A secret given as `${ENV_VAR}`; the value is read from the environment only when needed."""

    @property
    def variable(self) -> str:
        match = _ENV_REF.match(self)
        assert match is not None
        return match.group(1)

    @classmethod
    def __get_pydantic_core_schema__(
        cls,
        source: Any,
        handler: GetCoreSchemaHandler,
    ) -> core_schema.CoreSchema:
        return core_schema.no_info_plain_validator_function(_secret_ref)

    def resolve(self, where: str) -> str:
        value = os.environ.get(self.variable)
        if value is None or value == "":
            raise ConfigError(f"{where}: environment variable {self.variable} is not set")
        return value


def _secret_ref(value: Any) -> SecretRef:
    if not isinstance(value, str) or not _ENV_REF.match(value):
        raise ValueError("secrets must be given as an environment reference like ${MY_SECRET}")
    return SecretRef(value)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    @model_validator(mode="before")
    @classmethod
    def _known_keys(cls, data: Any) -> Any:
        return known_keys(data, cls.model_fields)  # a typo named with the key it may mean


class OpenRegistration(_Strict):
    """Register users through the full UIA dance on POST /register (m.login.dummy)."""

    method: Literal["open-registration"]


class SynapseSharedSecret(_Strict):
    """Register users through Synapse's shared-secret admin endpoint (nonce + HMAC)."""

    method: Literal["synapse-shared-secret"]
    # Required for remote targets; embedded targets generate their own secret.
    shared_secret: SecretRef | None = None


class RegistrationToken(_Strict):
    """Register users through the UIA dance on /register with m.login.registration_token."""

    method: Literal["registration-token"]
    token: SecretRef


class StaticUser(_Strict):
    user_id: Annotated[str, Field(pattern=r"^@[^:]+:.+$")]
    password: SecretRef


class StaticUsers(_Strict):
    """Accounts given by the operator: logged in to, never changed or destroyed."""

    method: Literal["static-users"]
    users: Annotated[list[StaticUser], Field(min_length=1)]


Provisioning = Annotated[
    OpenRegistration | SynapseSharedSecret | RegistrationToken | StaticUsers,
    Field(discriminator="method"),
]


class MasAdmin(_Strict):
    """A client allowed `urn:mas:admin` through client credentials (MAS's admin API)."""

    # Where /api/admin/v1 lives; oauth.issuer when not given (never the metadata's issuer).
    url: Annotated[str | None, Field(pattern=r"^https?://")] = None
    client_id: Annotated[str, Field(min_length=1)]
    client_secret: SecretRef


class OAuthAccount(_Strict):
    """An account on the authorisation server, given by the operator (never changed)."""

    username: Annotated[str, Field(min_length=1)]  # a name, or ${ENV_VAR} read when used
    password: SecretRef

    def resolved_username(self, where: str) -> str:
        """The account's name: `${ENV_VAR}` is read from the environment, as for the secrets
        (a CI job keeps the whole account in its secrets), anything else is the name."""
        if _ENV_REF.match(self.username):
            return SecretRef(self.username).resolve(where)
        return self.username


class StaticToken(_Strict):
    """A token pair obtained by hand, for the `static` driver."""

    access_token: SecretRef
    refresh_token: SecretRef | None = None


class BrowserStep(_Strict):
    """One step of a browser login script; `{username}` and `{password}` are filled in."""

    wait_url: str | None = None  # a regular expression the page URL must match first
    fill: dict[str, str] | None = None  # CSS selector -> value
    click: str | None = None  # CSS selector
    optional: bool = False  # skip the step when its selector is not on the page

    @model_validator(mode="after")
    def _one_action(self) -> BrowserStep:
        if self.wait_url is None and self.fill is None and self.click is None:
            raise ValueError("a browser step needs wait_url, fill or click")
        return self


class OAuthConfig(_Strict):
    """How the harness gets OAuth tokens for its users on this target."""

    driver: LoginDriverName = "form"
    admin: MasAdmin | None = None
    accounts: list[OAuthAccount] = []
    browser: list[BrowserStep] = []
    tokens: list[StaticToken] = []
    # How long to keep asking the homeserver after a revocation (it may cache introspection).
    revocation_grace_s: Annotated[float, Field(ge=0, le=600)] = 10.0
    # The OAuth server's issuer, as its metadata names it (e.g. https://auth.example.org/):
    # its origin may receive credentials. Embedded targets set their own.
    issuer: Annotated[str | None, Field(pattern=r"^https?://[^/\s?#]+(/[^\s?#]*)?$")] = None
    # More origins that may receive credentials (login pages, endpoints on another host).
    login_origins: list[str] = []

    @field_validator("login_origins")
    @classmethod
    def _origins(cls, values: list[str]) -> list[str]:
        for value in values:
            if not re.match(r"^https?://[^/\s?#]+/?$", value):
                raise ValueError(f"{value!r} is not an origin like https://login.example.org")
        return [origin(v) for v in values]

    @model_validator(mode="after")
    def _admin_url(self) -> OAuthConfig:
        if self.admin is not None and self.admin.url is None and self.issuer is None:
            raise ValueError(
                "oauth.admin needs its url, or oauth.issuer to stand for it: the admin client "
                "secret goes only where servers.yaml says, never where the server's metadata does"
            )
        return self


class TlsOptions(_Strict):
    """How the target's certificates are checked: the system's trust store by default."""

    ca_file: str | None = None  # a CA bundle (PEM), relative to the servers file
    verify: bool = True

    @model_validator(mode="after")
    def _consistent(self) -> TlsOptions:
        if self.ca_file is not None and not self.verify:
            raise ValueError("ca_file has no effect with verify: false")
        return self


class Target(_Strict):
    """One homeserver under test, as declared by its operator."""

    name: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9._-]*$")]
    embedded: EmbeddedKind | None = None
    base_url: str | None = None
    server_name: str | None = None
    auth: Annotated[list[AuthApi], Field(min_length=1)]
    # How the harness creates legacy users; required when `legacy` is declared.
    provisioning: Provisioning | None = None
    oauth: OAuthConfig | None = None
    spec_version: Annotated[str | None, Field(pattern=r"^(v\d+\.\d+|r0\.\d+\.\d+)$")] = None
    known_issues: str | None = None
    timeout_s: Annotated[float, Field(gt=0, le=300)] = 10.0
    # Default: 20/s for remote targets (be polite to shared servers), none for embedded ones.
    max_requests_per_second: Annotated[float | None, Field(gt=0)] = None
    # Housekeeping requests in flight at once (accounts registered ahead of the checks, and
    # cleanup); every one still waits its turn under max_requests_per_second.
    housekeeping_concurrency: Annotated[int, Field(ge=1, le=64)] = 4
    # At the end of the run: deactivate every account the run created (the default for a
    # remote target), or leave them to be discarded with the server (the default for an
    # embedded one, whose database is deleted when it stops; a throwaway CI server may say so).
    cleanup: Literal["deactivate", "discard"] | None = None
    # A Synapse server admin's access token, for the checks that lock, suspend or deactivate
    # the run's own accounts. Not needed with synapse-shared-secret provisioning: the harness
    # then registers an admin account of its own.
    admin_token: SecretRef | None = None
    # Where Synapse's admin API and shared-secret registration are reached, when a reverse
    # proxy keeps `/_synapse/admin` off base_url (Synapse's proxy documentation does): an
    # internal listener. Credentials for them go there only.
    admin_url: str | None = None
    max_rate_limit_retries: Annotated[int, Field(ge=0, le=10)] = 3
    max_retry_wait_s: Annotated[float, Field(gt=0, le=3600)] = 600.0
    # Hard limits: one request as a whole (connect and all reads); the largest body read.
    deadline_s: Annotated[float, Field(gt=0, le=900)] = 30.0
    max_response_bytes: Annotated[int, Field(ge=1024, le=1024**3)] = MAX_RESPONSE_BYTES
    # Rate limiting the run accepts before it stops asking this target (every request ERROR).
    rate_limit_budget_429: Annotated[int, Field(ge=1, le=10_000)] = 10
    rate_limit_budget_s: Annotated[float, Field(gt=0, le=86_400)] = 120.0
    # Time-outs and connection failures in a row before the target is given up (every
    # remaining check ERROR at once), and its wall-clock budget from its first check
    # (`run --target-timeout` overrides it; none by default).
    failure_budget: Annotated[int, Field(ge=1, le=10_000)] = 5
    time_budget_s: Annotated[float | None, Field(gt=0, le=604_800)] = None
    tls: TlsOptions = TlsOptions()
    # Embedded targets only: the Python that runs Synapse (another venv runs another version).
    synapse_python: str | None = None
    # Embedded targets only: a release (1.70.1) or line (1.130.*) installed into the cache.
    synapse_version: str | None = None
    # synapse-stock only (tests): the shipped login and registration rates multiplied by this,
    # their bursts left as shipped.
    synapse_rate_scale: Annotated[float | None, Field(gt=0, le=10_000)] = None
    # The dendrite kind only: the release built from the Go module proxy (default 0.13.8).
    dendrite_version: str | None = None

    @field_validator("dendrite_version")
    @classmethod
    def _dendrite_version(cls, value: str | None) -> str | None:
        problem = version_problem(value) if value is not None else None
        if problem:
            raise ValueError(problem)
        return value

    @field_validator("synapse_version")
    @classmethod
    def _release_spec(cls, value: str | None) -> str | None:
        problem = spec_problem(value) if value is not None else None
        if problem:
            raise ValueError(problem)
        return value

    @field_validator("base_url", "admin_url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^https?://[^/\s]+/?$", value):
            raise ValueError("expected http(s)://host[:port] without a path")
        return value.rstrip("/") if value else value

    @model_validator(mode="after")
    def _remote_needs_address(self) -> Target:
        if self.embedded is None:
            missing = [k for k in ("base_url", "server_name") if getattr(self, k) is None]
            if missing:
                raise ValueError(f"a non-embedded target needs {' and '.join(missing)}")
            if (
                isinstance(self.provisioning, SynapseSharedSecret)
                and self.provisioning.shared_secret is None
            ):
                raise ValueError("synapse-shared-secret provisioning needs shared_secret")
        else:
            if self.base_url is not None:
                raise ValueError("an embedded target gets its base_url when it starts")
            if self.admin_url is not None:
                raise ValueError("an embedded target gets its admin_url when it starts")
        if "legacy" in self.auth and self.provisioning is None:
            raise ValueError("a target declaring the legacy API needs provisioning")
        if self.embedded == "synapse-oauth" and "legacy" in self.auth:
            raise ValueError("the synapse-oauth embedded target offers only the oauth API")
        if self.embedded in ("synapse-legacy", "synapse-stock") and "oauth" in self.auth:
            raise ValueError(f"the {self.embedded} embedded target offers only the legacy API")
        if self.embedded == "dendrite" and "oauth" in self.auth:
            raise ValueError("the dendrite embedded target offers only the legacy API")
        if self.dendrite_version is not None and self.embedded != "dendrite":
            raise ValueError("dendrite_version only applies to the dendrite target")
        if self.embedded == "dendrite" and (self.synapse_version or self.synapse_python):
            raise ValueError("synapse_version and synapse_python do not apply to dendrite")
        if self.synapse_rate_scale is not None and self.embedded != "synapse-stock":
            raise ValueError("synapse_rate_scale only applies to the synapse-stock target")
        if self.synapse_python is not None and self.embedded is None:
            raise ValueError("synapse_python only applies to embedded targets")
        if self.synapse_version is not None:
            if self.embedded is None:
                raise ValueError("synapse_version only applies to embedded targets")
            if self.synapse_python is not None:
                raise ValueError("give synapse_version or synapse_python, not both")
            if self.embedded == "synapse-oauth" and (why := oauth_problem(self.synapse_version)):
                raise ValueError(why)
        return self

    def policy(self) -> RequestPolicy:
        """The request limits this target is held to."""
        return RequestPolicy(
            timeout_s=self.timeout_s,
            max_rate_limit_retries=self.max_rate_limit_retries,
            max_retry_wait_s=self.max_retry_wait_s,
            deadline_s=max(self.deadline_s, self.timeout_s),
            max_response_bytes=self.max_response_bytes,
            rate_limit_budget_429=self.rate_limit_budget_429,
            rate_limit_budget_s=self.rate_limit_budget_s,
            failure_budget=self.failure_budget,
            time_budget_s=self.time_budget_s,
        )

    def limits(self) -> dict[str, Any]:
        """The limits as results.json shows them with the target."""
        policy = self.policy()
        return {
            "timeout_s": policy.timeout_s,
            "deadline_s": policy.deadline_s,
            "max_response_bytes": policy.max_response_bytes,
            "max_requests_per_second": self.request_rate,
            "housekeeping_concurrency": self.housekeeping_concurrency,
            "rate_limit_budget_429": policy.rate_limit_budget_429,
            "rate_limit_budget_s": policy.rate_limit_budget_s,
            "failure_budget": policy.failure_budget,
            "time_budget_s": policy.time_budget_s,
        }

    def ssl_context(self) -> ssl.SSLContext | bool:
        """The SSL context (or False) every client the harness makes for this target uses."""
        try:
            return tls_context(self.tls.ca_file, self.tls.verify)
        except (ssl.SSLError, OSError) as exc:
            raise ConfigError(
                f"target {self.name}: tls.ca_file {self.tls.ca_file}: not a usable CA bundle "
                f"({exc})"
            ) from None

    @property
    def discards_accounts(self) -> bool:
        """Whether the run's accounts go with the server instead of being deactivated."""
        return (self.cleanup or ("discard" if self.embedded else "deactivate")) == "discard"

    @property
    def request_rate(self) -> float:
        if self.max_requests_per_second is not None:
            return self.max_requests_per_second
        return 1000.0 if self.embedded else 20.0

    def secret_refs(self) -> list[tuple[str, SecretRef]]:
        """Every secret the target's provisioning names, with where it is named."""
        refs: list[tuple[str, SecretRef]] = []
        p = self.provisioning
        where = f"target {self.name}: provisioning"
        if isinstance(p, SynapseSharedSecret) and p.shared_secret is not None:
            refs.append((f"{where}.shared_secret", p.shared_secret))
        if isinstance(p, RegistrationToken):
            refs.append((f"{where}.token", p.token))
        if isinstance(p, StaticUsers):
            refs += [(f"{where}.users[{i}].password", u.password) for i, u in enumerate(p.users)]
        if self.admin_token is not None:
            refs.append((f"target {self.name}: admin_token", self.admin_token))
        o = self.oauth
        where = f"target {self.name}: oauth"
        if o is not None:
            if o.admin is not None:
                refs.append((f"{where}.admin.client_secret", o.admin.client_secret))
            for i, a in enumerate(o.accounts):
                refs.append((f"{where}.accounts[{i}].password", a.password))
            for i, t in enumerate(o.tokens):
                refs.append((f"{where}.tokens[{i}].access_token", t.access_token))
                if t.refresh_token is not None:
                    refs.append((f"{where}.tokens[{i}].refresh_token", t.refresh_token))
        return refs

    def offers(self, api: AuthApi) -> bool:
        return api in self.auth


class ServersFile(_Strict):
    defaults: Annotated[list[str], Field(min_length=1)]
    targets: Annotated[list[Target], Field(min_length=1)]

    @model_validator(mode="after")
    def _consistent(self) -> ServersFile:
        names = [t.name for t in self.targets]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"target names must be unique; repeated: {', '.join(dupes)}")
        unknown = [d for d in self.defaults if d not in names]
        if unknown:
            raise ValueError(f"defaults name unknown targets: {', '.join(unknown)}")
        return self

    def select(self, names: Iterable[str]) -> list[Target]:
        """The targets named (the defaults when none), in the order given."""
        wanted = list(names) or list(self.defaults)
        by_name = {t.name: t for t in self.targets}
        unknown = [n for n in wanted if n not in by_name]
        if unknown:
            raise ConfigError(
                f"unknown target {', '.join(repr(n) for n in unknown)}; "
                f"targets in this file: {', '.join(by_name)}"
            )
        return [by_name[n] for n in dict.fromkeys(wanted)]
