"""FastAPI's native OpenTelemetry, off unless the environment configures OpenTelemetry.

FastAPI (from 0.16x) asks on every request whether a global tracer, meter or logger
provider is configured: ~25 µs of a one-row prediction's ~200 µs of Python here, for
providers `loopline serve` never sets up. So the service turns it off, unless an
`OTEL_*` environment variable says the deployment uses OpenTelemetry (the standard way
to configure it, e.g. `opentelemetry-instrument loopline serve ...`); older FastAPI
versions have no such option and are left as they are.
"""

from __future__ import annotations

import inspect
import os
from typing import Any

OFF = {"tracing": False, "metrics": False, "logs": False}


def telemetry_options(fastapi_class: type[Any]) -> dict[str, Any]:
    """The keyword arguments for `FastAPI(...)` that turn its telemetry off, or {}."""
    if any(name.startswith("OTEL_") for name in os.environ):
        return {}
    if "telemetry" not in inspect.signature(fastapi_class.__init__).parameters:
        return {}
    return {"telemetry": dict(OFF)}
