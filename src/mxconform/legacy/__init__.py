"""The legacy auth API: typed calls, test-user provisioning, the UIA operations."""
