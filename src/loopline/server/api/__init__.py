"""The platform server's routes, one module per area; each has a `router` (an APIRouter)
and, if not under /api/v1, a `PREFIX`. `create_app` mounts every module named here."""

ROUTERS: tuple[str, ...] = (
    "system",
    "tokens",
    "mlflow",
    "experiments",
    "runs",
    "metrics",
    "datasets",
    "models",
    "reviews",
    "deployments",
    "predictions",
    "monitoring",
    "audit",
    "blobs",
)
