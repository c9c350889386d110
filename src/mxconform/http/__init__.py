"""The HTTP layer: one client per target, every exchange kept as redacted evidence."""
