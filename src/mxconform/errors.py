"""Errors that decide a verdict by their kind, not by where they were raised.

HarnessError: the harness could not carry a check out (ERROR, never FAIL).
Unsupported: what a check needs is not there (SKIP, with the reason).
"""

from __future__ import annotations


class HarnessError(Exception):
    """The harness could not carry out a check: the verdict is ERROR, never FAIL."""


class Unsupported(Exception):
    """What a check needs is beyond this driver; the reason becomes the SKIP message."""
