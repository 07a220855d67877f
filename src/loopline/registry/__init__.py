"""The model registry: models, immutable versions, aliases, status and the audit log."""
