"""The `static` login driver: tokens the operator obtained by hand."""

from __future__ import annotations

from mxconform.oauth.drivers.base import DRIVER_GRANTS, LoginDriver


class StaticDriver(LoginDriver):
    """Tokens the operator obtained by hand and gave through ${ENV} references."""

    name = "static"
    grant = DRIVER_GRANTS["static"]
