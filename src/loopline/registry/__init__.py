"""The model registry: models, immutable versions, aliases, status and the audit log."""

from loopline.registry.changes import (
    archive,
    audit_log,
    audit_page,
    delete_alias,
    describe,
    describe_model,
    set_alias,
    set_status,
    verify_audit_log,
)
from loopline.registry.listing import aliases_of, get_model, list_models, list_versions
from loopline.registry.refs import ModelRef, parse_ref, resolve
from loopline.store import (
    AuditChainReport,
    AuditEvent,
    AuditPage,
    ModelStatus,
    ModelVersion,
    RegisteredModel,
)

__all__ = [
    "AuditChainReport",
    "AuditEvent",
    "AuditPage",
    "ModelRef",
    "ModelStatus",
    "ModelVersion",
    "RegisteredModel",
    "aliases_of",
    "archive",
    "audit_log",
    "audit_page",
    "delete_alias",
    "describe",
    "describe_model",
    "get_model",
    "list_models",
    "list_versions",
    "parse_ref",
    "resolve",
    "set_alias",
    "set_status",
    "verify_audit_log",
]
