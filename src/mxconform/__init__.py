"""mxconform: evidence-backed conformance checks for Matrix homeserver authentication."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("mxconform")
except PackageNotFoundError:  # running from a checkout without an install
    __version__ = "0.0.0+checkout"
