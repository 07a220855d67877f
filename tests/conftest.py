"""Shared fixtures live in tests/fixtures/ (one module per back-end), loaded here."""

pytest_plugins = ["fixtures.s3", "fixtures.stores"]
