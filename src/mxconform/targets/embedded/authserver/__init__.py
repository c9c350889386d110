"""A small MAS-shaped OAuth 2.0 authorisation server for Synapse's delegated-auth mode.

It lets the OAuth half of the suites run locally and in CI, and gives the login drivers a
server to meet before they meet MAS. The differences from MAS are listed in the README.
"""

from .server import EmbeddedAuthServer

__all__ = ["EmbeddedAuthServer"]
