"""The metadata store: one SQL database, with a sub-store per area over it.

`MetadataStore` opens the database (and migrates it) once, and assembles the stores
that share that handle: `runs` (experiments, runs and what is logged to them),
`datasets`, `models`, `reviews`, `deployments`, `servers`, `predictions`, `monitoring`,
`audit` and `tokens` (the platform server's API tokens).
One implementation serves SQLite and PostgreSQL (SQLAlchemy Core); the same
conformance checks (loopline.testing) run against both.
"""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING

from loopline.redact import redact_uri
from loopline.store._db import Database
from loopline.store.runs import RunStore

if TYPE_CHECKING:  # each area's store is imported on first use (CLI start-up)
    from loopline.store.audit import AuditLog
    from loopline.store.datasets import DatasetStore
    from loopline.store.deployments import DeploymentStore
    from loopline.store.model_registry import ModelStore
    from loopline.store.monitoring import MonitorStore
    from loopline.store.predictions import PredictionStore
    from loopline.store.reviews import ReviewStore
    from loopline.store.servers import ServerStore
    from loopline.store.tokens import TokenStore


class MetadataStore:
    """Experiments, runs, models and every other record, in one SQL database."""

    def __init__(self, uri: str, *, migrate: bool = True) -> None:
        self.uri = uri
        self.db = Database(uri)
        if migrate:
            self.db.upgrade()
        self.runs = RunStore(self.db)

    def close(self) -> None:
        self.db.close()

    @cached_property
    def datasets(self) -> DatasetStore:
        """Datasets and their versions (the data area's tables)."""
        from loopline.store.datasets import DatasetStore

        return DatasetStore(self.db)

    @cached_property
    def models(self) -> ModelStore:
        """Registered models, versions, aliases and status (the registry's tables)."""
        from loopline.store.model_registry import ModelStore

        return ModelStore(self.db)

    @cached_property
    def reviews(self) -> ReviewStore:
        """Evaluations, gate checks and approvals of model versions."""
        from loopline.store.reviews import ReviewStore

        return ReviewStore(self.db)

    @cached_property
    def deployments(self) -> DeploymentStore:
        """Deployments and their revision history."""
        from loopline.store.deployments import DeploymentStore

        return DeploymentStore(self.db)

    @cached_property
    def servers(self) -> ServerStore:
        """Heartbeats of running servers: which revision each one actually serves."""
        from loopline.store.servers import ServerStore

        return ServerStore(self.db)

    @cached_property
    def predictions(self) -> PredictionStore:
        """The prediction log's index of Parquet files, and feedback labels."""
        from loopline.store.predictions import PredictionStore

        return PredictionStore(self.db)

    @cached_property
    def monitoring(self) -> MonitorStore:
        """Monitoring reports' index, alerts and the watcher's state."""
        from loopline.store.monitoring import MonitorStore

        return MonitorStore(self.db)

    @cached_property
    def audit(self) -> AuditLog:
        """The append-only log of registry changes."""
        from loopline.store.audit import AuditLog

        return AuditLog(self.db)

    @cached_property
    def tokens(self) -> TokenStore:
        """The platform server's API tokens (stored as hashes)."""
        from loopline.store.tokens import TokenStore

        return TokenStore(self.db)

    def __repr__(self) -> str:
        return f"MetadataStore({redact_uri(self.uri)!r})"
