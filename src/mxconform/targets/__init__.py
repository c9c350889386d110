"""Targets: servers.yaml models, starting and stopping them, the embedded servers."""
