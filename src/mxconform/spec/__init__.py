"""The spec side: the requirement catalogue, version gates, verdicts and matchers."""
