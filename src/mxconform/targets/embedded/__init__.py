"""Embedded targets: real homeservers that the harness starts on loopback itself."""
