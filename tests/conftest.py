"""Shared fixtures live in tests/fixtures/ (one module per back-end), loaded here.

Hypothesis runs under one of two profiles: "ci" when the CI variable is set, "dev"
otherwise (HYPOTHESIS_PROFILE names one explicitly). Neither has a deadline: a
wall-clock limit per example, on a 2-core machine shared with the suite's own servers
and subprocesses, measures the load, not the code; a test that means a time bound
states it. CI also prints the blob that reproduces a failure, keeps no example
database, and does not fail a test because its strategy is slow to generate data.
"""

import os

# Two test processes share two cores. Libraries that start a thread per core and spin
# between calls (OpenMP in LightGBM, XGBoost and scikit-learn; OpenBLAS; onnxruntime)
# make each process steal the other's core: one thread each, set before they load.
# Subprocesses (CLI, servers) inherit it.
for _name in (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "LOOPLINE_ONNX_THREADS",
):
    os.environ.setdefault(_name, "1")

from hypothesis import HealthCheck, settings  # noqa: E402

pytest_plugins = ["fixtures.s3", "fixtures.stores", "fixtures.remote", "fixtures.ray"]

settings.register_profile("dev", deadline=None)
settings.register_profile(
    "ci",
    deadline=None,
    print_blob=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile(
    os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if os.environ.get("CI") else "dev")
)


# Modules whose subject is not the metadata store: models, serving, security of files and
# paths, the CLI's output, monitoring flows. What they write to the store is checked on
# both back-ends by the store conformance checks (loopline.testing, also through the
# server) and by the modules about records (tracking, data versioning, registry,
# promotion, deployments, the prediction log, the audit chain, maintenance); these run on
# SQLite only, which keeps CI within its 15 minutes. A module about storing something
# new stays on both back-ends.
ONE_BACKEND_MODULES = {
    "tests/integration/test_autolog.py",
    "tests/integration/test_batch_predict.py",
    "tests/integration/test_cli.py",
    "tests/integration/test_deploy_heartbeat.py",
    "tests/integration/test_model_trust.py",
    "tests/integration/test_models_cli.py",
    "tests/integration/test_monitoring.py",
    "tests/integration/test_monitoring_sketches.py",
    "tests/integration/test_serving_runtime.py",
    "tests/integration/test_system_metrics.py",
    "tests/integration/test_trace.py",
    "tests/integration/test_tracking_logging.py",
    "tests/security/test_hostile_models.py",
    "tests/security/test_hostile_paths.py",
    "tests/security/test_model_cache.py",
}


def pytest_collection_modifyitems(config, items):  # type: ignore[no-untyped-def]
    """Deselect the PostgreSQL half of the modules in ONE_BACKEND_MODULES."""
    kept, dropped = [], []
    for item in items:
        callspec = getattr(item, "callspec", None)
        on_postgres = callspec is not None and callspec.params.get("store_uri") == "postgresql"
        module = item.nodeid.split("::", 1)[0]
        (dropped if on_postgres and module in ONE_BACKEND_MODULES else kept).append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept
