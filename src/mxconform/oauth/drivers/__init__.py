"""Login drivers, one module each: `form`, `browser`, `mas-admin`, `static` (see base)."""

from __future__ import annotations

from pathlib import Path

from mxconform.http.client import MatrixClient
from mxconform.http.redact import SecretRegistry
from mxconform.targets.config import OAuthConfig

from .base import LoginDriver
from .form import FormDriver
from .mas_admin import MasAdminDriver
from .static import StaticDriver


def make_driver(
    config: OAuthConfig,
    template: MatrixClient,
    secrets_: SecretRegistry,
    artifacts_dir: Path | None,
    origins: frozenset[str],
    own_ca: bool = False,
) -> LoginDriver:
    """The configured driver; `origins`: where it may post what a user types."""
    if config.driver == "form":
        return FormDriver(template, origins)
    if config.driver == "mas-admin":
        return MasAdminDriver()
    if config.driver == "static":
        return StaticDriver()
    from .browser import BrowserDriver  # Playwright is only needed by this driver

    return BrowserDriver(
        config.browser,
        secrets=secrets_,
        artifacts_dir=artifacts_dir,
        origins=origins,
        accept_own_ca=own_ca,
    )
