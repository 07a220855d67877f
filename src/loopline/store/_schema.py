"""The metadata tables. Alembic migrations in `migrations/versions` create them; this
module is the single description the queries are written against."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
)


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC timestamp on every back-end (SQLite drops the zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store; use UTC-aware times")
        return value.astimezone(UTC)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        moment: datetime = datetime.fromisoformat(value) if isinstance(value, str) else value
        return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


# An auto-incrementing 64-bit key; SQLite only auto-increments an INTEGER PRIMARY KEY.
BigId = BigInteger().with_variant(Integer(), "sqlite")

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

experiments = Table(
    "experiments",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("name", String(256), nullable=False, unique=True),
    Column("description", Text, nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("deleted_at", UTCDateTime, nullable=True),
)

runs = Table(
    "runs",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("experiment_id", String(32), ForeignKey("experiments.id"), nullable=False),
    Column("name", String(256), nullable=False),
    Column("status", String(16), nullable=False),
    Column("start_time", BigInteger, nullable=False),  # epoch milliseconds, UTC
    Column("end_time", BigInteger, nullable=True),
    Column("parent_id", String(32), ForeignKey("runs.id"), nullable=True),
    Column("user", String(256), nullable=False),
    Column("source", Text, nullable=False),  # the command line that started the run
    Column("error", Text, nullable=True),  # why a FAILED run failed
    Column("git_commit", String(64), nullable=True),
    Column("git_branch", String(256), nullable=True),
    Column("git_dirty", Boolean, nullable=True),
    Column("git_patch_hash", String(64), nullable=True),
    Column("python_version", String(32), nullable=True),
    Column("packages_hash", String(64), nullable=True),
    Column("deleted_at", UTCDateTime, nullable=True),
    Index(None, "experiment_id", "start_time"),
    Index(None, "parent_id"),
)

params = Table(
    "params",
    metadata,
    Column("run_id", String(32), ForeignKey("runs.id"), primary_key=True),
    Column("key", String(256), primary_key=True),
    Column("value", Text, nullable=False),
    Index(None, "key", "value"),
)

tags = Table(
    "tags",
    metadata,
    Column("run_id", String(32), ForeignKey("runs.id"), primary_key=True),
    Column("key", String(256), primary_key=True),
    Column("value", Text, nullable=False),
    Index(None, "key", "value"),
)

# Every point ever logged. `value` is NULL for NaN: SQLite cannot store a NaN REAL, so
# both back-ends use NULL for it (a point's value is otherwise never missing).
metric_points = Table(
    "metric_points",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("run_id", String(32), ForeignKey("runs.id"), nullable=False),
    Column("key", String(256), nullable=False),
    Column("step", BigInteger, nullable=False),
    Column("timestamp", BigInteger, nullable=False),  # epoch milliseconds, UTC
    Column("value", Float(53), nullable=True),
    Index(None, "run_id", "key", "step"),
)

# The latest point of each (run, key): maintained on every flush so that search filters
# and sorts touch one row per run and key instead of scanning every point.
latest_metrics = Table(
    "latest_metrics",
    metadata,
    Column("run_id", String(32), ForeignKey("runs.id"), primary_key=True),
    Column("key", String(256), primary_key=True),
    Column("step", BigInteger, nullable=False),
    Column("timestamp", BigInteger, nullable=False),
    Column("value", Float(53), nullable=True),
    Index(None, "key", "value"),
)

# The ids of the metric batches applied (migration 0011): a batch sent again after its
# answer was lost (a dropped connection, a killed server) is acknowledged, not stored
# twice. Kept for a day (`_metrics.BATCH_ID_DAYS`), pruned by the writes themselves.
metric_batches = Table(
    "metric_batches",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("applied_at", UTCDateTime, nullable=False),
    Index(None, "applied_at"),
)

# Typed lineage links: what a run read (inputs) and wrote (outputs). kind is one of
# "artifact", "dataset_version", "model_version", "feature_view"; `name` is the logical
# name within the run (an artifact path, a dataset name) and `ref` what it points at
# (a blob hash, a version id).
run_links = Table(
    "run_links",
    metadata,
    Column("run_id", String(32), ForeignKey("runs.id"), primary_key=True),
    Column("direction", String(8), primary_key=True),
    Column("kind", String(32), primary_key=True),
    Column("name", String(1024), primary_key=True),
    Column("ref", String(256), nullable=False),
    Column("size", BigInteger, nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Index(None, "kind", "ref"),
)

# -- datasets (migration 0002) -------------------------------------------------------------

datasets = Table(
    "datasets",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("name", String(128), nullable=False, unique=True),
    Column("description", Text, nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
)

# One immutable version of a dataset: its manifest (paths -> content ids) is a blob in
# the artifact store, addressed by manifest_hash. Tabular versions also carry their
# schema (JSON text) and a profile (a JSON blob).
dataset_versions = Table(
    "dataset_versions",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("dataset_id", String(32), ForeignKey("datasets.id"), nullable=False),
    Column("version", Integer, nullable=False),
    Column("manifest_hash", String(64), nullable=False),
    Column("message", Text, nullable=True),
    Column("author", String(256), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("file_count", Integer, nullable=False),
    Column("total_size", BigInteger, nullable=False),
    Column("row_count", BigInteger, nullable=True),
    Column("schema_json", Text, nullable=True),
    Column("profile_hash", String(64), nullable=True),
    Column("source", Text, nullable=True),
    Index(None, "dataset_id", "version", unique=True),
    Index(None, "manifest_hash"),
)

validation_results = Table(
    "validation_results",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("version_id", String(32), ForeignKey("dataset_versions.id"), nullable=False),
    Column("suite_name", String(256), nullable=False),
    Column("suite_hash", String(64), nullable=False),
    Column("success", Boolean, nullable=False),
    Column("failed", Integer, nullable=False),
    Column("result_hash", String(64), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Index(None, "version_id", "created_at"),
)

# -- model registry (migration 0003) --------------------------------------------------------

registered_models = Table(
    "registered_models",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("name", String(128), nullable=False, unique=True),
    Column("description", Text, nullable=True),
    Column("tags_json", Text, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
)

# One immutable packaged model. Its files live in the artifact store; `package_hash`
# addresses the JSON index of them (path -> content id). Only status, description,
# tags and the generated card change after creation.
model_versions = Table(
    "model_versions",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("model_id", String(32), ForeignKey("registered_models.id"), nullable=False),
    Column("version", Integer, nullable=False),
    Column("status", String(16), nullable=False),
    Column("flavor", String(32), nullable=False),
    Column("package_hash", String(64), nullable=False),
    Column("size_bytes", BigInteger, nullable=False),
    Column("signature_json", Text, nullable=False),
    Column("manifest_json", Text, nullable=False),
    Column("run_id", String(32), ForeignKey("runs.id"), nullable=True),
    Column("source_version_id", String(32), ForeignKey("model_versions.id"), nullable=True),
    Column("extra_json", Text, nullable=False),  # e.g. an ONNX export's parity report
    Column("description", Text, nullable=True),
    Column("tags_json", Text, nullable=False),
    Column("card_hash", String(64), nullable=True),
    Column("created_by", String(256), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Index(None, "model_id", "version", unique=True),
    Index(None, "run_id"),
    Index(None, "source_version_id"),
)

model_aliases = Table(
    "model_aliases",
    metadata,
    Column("model_id", String(32), ForeignKey("registered_models.id"), primary_key=True),
    Column("alias", String(64), primary_key=True),
    Column("version_id", String(32), ForeignKey("model_versions.id"), nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
)

model_evaluations = Table(
    "model_evaluations",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("version_id", String(32), ForeignKey("model_versions.id"), nullable=False),
    Column("data_ref", Text, nullable=False),  # "credit@3", or "dataframe:<hash>"
    Column("dataset_version_id", String(32), ForeignKey("dataset_versions.id"), nullable=True),
    Column("target", String(256), nullable=False),
    Column("config_hash", String(64), nullable=False),  # slices, sensitive, task
    Column("report_hash", String(64), nullable=False),
    Column("html_hash", String(64), nullable=False),
    Column("metrics_json", Text, nullable=False),
    Column("created_by", String(256), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Index(None, "version_id", "created_at"),
)

gate_checks = Table(
    "gate_checks",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("version_id", String(32), ForeignKey("model_versions.id"), nullable=False),
    Column("evaluation_id", String(32), ForeignKey("model_evaluations.id"), nullable=True),
    Column("policy_json", Text, nullable=False),
    Column("passed", Boolean, nullable=False),
    Column("results_json", Text, nullable=False),
    Column("created_by", String(256), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Index(None, "version_id", "created_at"),
)

approvals = Table(
    "approvals",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("version_id", String(32), ForeignKey("model_versions.id"), nullable=False),
    Column("stage", String(16), nullable=False),
    Column("actor", String(256), nullable=False),
    Column("reason", Text, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Index(None, "version_id"),
)

# Every change to a registry object: who did what to which object, the state before and
# after (JSON) and why. Append-only and hash-chained (store/_audit_chain.py, migration
# 0010): `seq` is the event's position in the chain (1, 2, 3, ... with no gap), `hash` the
# BLAKE3 of its fields and `prev_hash` the hash of the event before it (unique: the chain
# cannot fork). `audit_head` is the chain's end, one row, locked by each appending writer.
audit_events = Table(
    "audit_events",
    metadata,
    Column("seq", BigId, primary_key=True, autoincrement=True),
    Column("id", String(32), nullable=False, unique=True),
    Column("time", UTCDateTime, nullable=False),
    Column("actor", String(256), nullable=False),
    Column("action", String(64), nullable=False),
    Column("object_type", String(32), nullable=False),
    Column("object_id", String(256), nullable=False),
    Column("before_json", Text, nullable=True),
    Column("after_json", Text, nullable=True),
    Column("reason", Text, nullable=True),
    Column("prev_hash", String(64), nullable=False, unique=True),
    Column("hash", String(64), nullable=False),
    Index(None, "object_type", "object_id"),
    Index(None, "time"),
    # the web UI's audit table, filtered by user, action or object, newest first (0012);
    # text_pattern_ops: PostgreSQL serves `object_id LIKE 'churn/%'` from it whatever
    # the database's collation
    Index(None, "actor", "seq"),
    Index(None, "action", "seq"),
    Index(None, "object_id", "seq", postgresql_ops={"object_id": "text_pattern_ops"}),
)

audit_head = Table(
    "audit_head",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),  # always 1
    Column("seq", BigInteger, nullable=False),  # the last event's seq (0: no event yet)
    Column("hash", String(64), nullable=False),  # the last event's hash (GENESIS: none)
)

# -- deployments and the prediction log (migration 0004) -----------------------------------

# A named serving endpoint. `config_json` is its current configuration (model versions
# and strategy, see serving.deployments); every change appends a row to
# `deployment_revisions` with the whole configuration, so history and rollback are reads.
deployments = Table(
    "deployments",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("name", String(128), nullable=False, unique=True),
    Column("revision", Integer, nullable=False),
    Column("config_json", Text, nullable=False),
    Column("created_by", String(256), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
)

deployment_revisions = Table(
    "deployment_revisions",
    metadata,
    Column("deployment_id", String(32), ForeignKey("deployments.id"), primary_key=True),
    Column("revision", Integer, primary_key=True),
    Column("action", String(32), nullable=False),
    Column("config_json", Text, nullable=False),
    Column("actor", String(256), nullable=False),
    Column("reason", Text, nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
)

# One Parquet file of logged predictions (a batch of one deployment within one UTC hour),
# stored as a blob; the monitor reads the files of a time window through this index.
prediction_log_files = Table(
    "prediction_log_files",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("deployment", String(128), nullable=False),
    Column("hour", UTCDateTime, nullable=False),
    Column("blob_hash", String(64), nullable=False),
    Column("rows", BigInteger, nullable=False),
    Column("first_time", UTCDateTime, nullable=False),
    Column("last_time", UTCDateTime, nullable=False),
    Column("size_bytes", BigInteger, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Index(None, "deployment", "hour"),
    Index(None, "deployment", "blob_hash", unique=True),  # a redelivered file is indexed once
)

# A log file's membership filter of request ids (predictions/_request_filter.py): `bits`
# is `blocks` blocks of 64 bytes; files indexed before filters existed have no row here.
prediction_log_request_filters = Table(
    "prediction_log_request_filters",
    metadata,
    Column(
        "file_id",
        String(32),
        ForeignKey("prediction_log_files.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("blocks", Integer, nullable=False),
    Column("bits", LargeBinary, nullable=False),
)

# A log file's mergeable sketches (predictions/_sketch.py): `sketch_hash` is the blob of
# all its columns' sketches, `format` that blob's layout version; files delivered before
# sketches existed, or whose sketching failed, have no row here (the monitor reads them).
prediction_log_sketches = Table(
    "prediction_log_sketches",
    metadata,
    Column(
        "file_id",
        String(32),
        ForeignKey("prediction_log_files.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("sketch_hash", String(64), nullable=False),
    Column("format", Integer, nullable=False),
)

# Ground truth sent back for a logged request (row: which row of a multi-row request).
prediction_feedback = Table(
    "prediction_feedback",
    metadata,
    Column("seq", BigId, primary_key=True, autoincrement=True),
    Column("deployment", String(128), nullable=False),
    Column("request_id", String(64), nullable=False),
    Column("row", Integer, nullable=False),
    Column("label_json", Text, nullable=False),
    Column("time", UTCDateTime, nullable=False),
    Index(None, "deployment", "request_id"),
    Index(None, "deployment", "time"),
)

# A running server's heartbeat: one row per (server process, deployment it serves), with
# the revision it actually serves and its last load error; rewritten every few seconds,
# removed on a clean shutdown (see serving/online/_heartbeat.py).
server_heartbeats = Table(
    "server_heartbeats",
    metadata,
    Column("server_id", String(32), primary_key=True),
    Column("deployment", String(128), primary_key=True),
    Column("host", String(256), nullable=False),
    Column("address", String(300), nullable=False),
    Column("pid", Integer, nullable=False),
    Column("started_at", UTCDateTime, nullable=False),
    Column("last_seen", UTCDateTime, nullable=False),
    Column("interval_s", Float, nullable=False),
    Column("state", String(16), nullable=False),
    Column("revision", Integer, nullable=True),
    Column("models_json", Text, nullable=False),
    Column("error", Text, nullable=True),
    Column("error_revision", Integer, nullable=True),
    Column("error_at", UTCDateTime, nullable=True),
    Index(None, "deployment"),
)

# -- monitoring (migration 0007) ------------------------------------------------------------

# One monitoring report of a deployment over a window of its prediction log. The whole
# report is a JSON blob in the artifact store (`report_hash`), its page another
# (`html_hash`); `scores_json` keeps the few figures that /metrics and the time series of
# later reports need without fetching blobs. A scheduled run is stored once per window:
# `(deployment, schedule_key)` is unique when `schedule_key` is set (a watcher killed after
# storing a report and run again finds it instead of storing a second).
monitor_reports = Table(
    "monitor_reports",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("deployment", String(128), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("since", UTCDateTime, nullable=True),
    Column("until", UTCDateTime, nullable=False),
    Column("rows", BigInteger, nullable=False),
    Column("status", String(16), nullable=False),
    Column("failed_json", Text, nullable=False),
    Column("reference", String(300), nullable=True),
    Column("report_hash", String(64), nullable=False),
    Column("html_hash", String(64), nullable=True),
    Column("scores_json", Text, nullable=False),
    Column("schedule_key", String(64), nullable=True),
    Column("created_by", String(256), nullable=False),
    Index(None, "deployment", "created_at"),
    Index(None, "deployment", "schedule_key", unique=True),
)

# Alerts: at most one open alert per deployment and check (`open_key` is set only while
# the alert is open, and unique: NULLs never collide). `pending` marks an alert whose
# notification is still to be delivered (an outbox: a watcher that dies between deciding
# and sending delivers it when it starts again).
monitor_alerts = Table(
    "monitor_alerts",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("deployment", String(128), nullable=False),
    Column("check_name", String(64), nullable=False),
    Column("open_key", String(200), nullable=True, unique=True),
    Column("status", String(16), nullable=False),
    Column("summary", Text, nullable=False),
    Column("report_id", String(32), nullable=True),
    Column("opened_at", UTCDateTime, nullable=False),
    Column("last_sent_at", UTCDateTime, nullable=True),
    Column("resolved_at", UTCDateTime, nullable=True),
    Column("sends", Integer, nullable=False),
    Column("pending", Boolean, nullable=False),
    Index(None, "deployment", "opened_at"),
)

# What the watcher has done per deployment: the end of the last window it completed.
monitor_state = Table(
    "monitor_state",
    metadata,
    Column("deployment", String(128), primary_key=True),
    Column("last_until", UTCDateTime, nullable=True),
    Column("last_run_at", UTCDateTime, nullable=True),
    Column("last_report_id", String(32), nullable=True),
)

# -- API tokens of the platform server (migration 0009) ------------------------------------

# A bearer token is `llt_<id>_<secret>`: the id finds the row without a scan, and only a
# SHA-256 of the whole token is kept (the secret is 32 random bytes: no need for a slow
# hash). `revoked_at` set means revoked; `last_used_at` is refreshed at most once a minute.
api_tokens = Table(
    "api_tokens",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("user", String(128), nullable=False),
    Column("role", String(16), nullable=False),
    Column("token_hash", String(64), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("created_by", String(256), nullable=False),
    Column("expires_at", UTCDateTime, nullable=True),
    Column("revoked_at", UTCDateTime, nullable=True),
    Column("last_used_at", UTCDateTime, nullable=True),
    Index(None, "user"),
)
