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

pytest_plugins = ["fixtures.s3", "fixtures.stores", "fixtures.remote"]

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
