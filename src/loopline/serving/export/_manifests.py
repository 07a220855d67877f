"""What `export_deployment` writes: a Dockerfile, Kubernetes objects and a KServe
InferenceService, built as plain Python values (dicts for YAML, text for the Dockerfile).

Nothing here touches the store or the disk; `loopline.serving.export` decides what to
render and writes it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from loopline.errors import InvalidInput

if TYPE_CHECKING:
    from loopline.serving.deployments import Deployment

BASE_IMAGE = "python:3.11-slim"
IMAGE_EXTRAS = ("serve", "postgres", "s3", "onnx")
PORT = 8080
WORKERS = 2
USER_ID = 10001
HOME = "/srv/loopline"
# loopline keeps its model cache in <working directory>/.loopline/cache
CACHE_DIR = f"{HOME}/.loopline"
ANNOTATION = "loopline.dev/"
KSERVE_CONTAINER = "kserve-container"  # the name KServe expects for a custom predictor

# Environment variable -> key in the `<name>-loopline-stores` Secret, and whether required.
STORE_ENV = (
    ("LOOPLINE_STORE_URI", "store-uri", True),
    ("LOOPLINE_ARTIFACT_URI", "artifact-uri", True),
    ("LOOPLINE_S3_ENDPOINT_URL", "s3-endpoint-url", False),
    ("AWS_ACCESS_KEY_ID", "aws-access-key-id", False),
    ("AWS_SECRET_ACCESS_KEY", "aws-secret-access-key", False),
)


@dataclass(frozen=True)
class ExportPlan:
    """What every rendered file needs: the deployment, its Kubernetes name, the image."""

    deployment: Deployment
    k8s_name: str
    image: str
    replicas: tuple[int, int]
    loopline_version: str

    @property
    def secret(self) -> str:
        return f"{self.k8s_name}-loopline-stores"

    @property
    def labels(self) -> dict[str, str]:
        return {"app.kubernetes.io/name": self.k8s_name, "app.kubernetes.io/part-of": "loopline"}


def serve_command(name: str) -> list[str]:
    """The server for a stored deployment; it follows the deployment's later revisions."""
    return ["loopline", "deploy", "serve", name, *_listen()]


def pinned_command(
    name: str,
    version: str,
    *,
    prefer_onnx: bool,
    strict_inputs: bool = False,
    runtime: str = "auto",
) -> list[str]:
    """The server for one pinned version under the deployment's name (a KServe revision),
    with the deployment's options."""
    native = ["--runtime", "onnx"] if runtime == "onnx" else [] if prefer_onnx else ["--native"]
    strict = ["--strict-inputs"] if strict_inputs else []
    return ["loopline", "serve", version, "--name", name, *_listen(), *native, *strict]


def _listen() -> list[str]:
    return ["--host", "0.0.0.0", "--port", str(PORT), "--workers", str(WORKERS)]


def dockerfile(plan: ExportPlan, extras: Sequence[str]) -> str:
    """The image: loopline with the extras the served flavors need, run unprivileged."""
    deployment = plan.deployment
    requirement = f"loopline[{','.join(extras)}]=={plan.loopline_version}"
    if not _REQUIREMENT.fullmatch(requirement):  # goes into a shell command line
        raise InvalidInput(f"cannot write {requirement!r} into a Dockerfile's RUN line")
    title = _comment_text(
        f"loopline deployment '{deployment.name}' (revision {deployment.revision}): "
        f"{deployment.spec.describe()}"
    )
    check = (
        "import urllib.request; "
        f"urllib.request.urlopen('http://127.0.0.1:{PORT}/health/ready', timeout=4)"
    )
    return f"""\
# {title}
# Written by `loopline deploy export`; export again rather than edit.
FROM {BASE_IMAGE}

ENV PYTHONDONTWRITEBYTECODE=1 \\
    PYTHONUNBUFFERED=1 \\
    PIP_NO_CACHE_DIR=1 \\
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN pip install {json.dumps(requirement)}

# An unprivileged user (numeric, so that Kubernetes can check runAsNonRoot); loopline's
# model cache lives in its working directory.
RUN groupadd --gid {USER_ID} loopline \\
    && useradd --uid {USER_ID} --gid {USER_ID} --create-home --home-dir {HOME} \\
       --shell /usr/sbin/nologin loopline
USER {USER_ID}:{USER_ID}
WORKDIR {HOME}

# The stores are given at run time, never baked in: LOOPLINE_STORE_URI (metadata
# database) and LOOPLINE_ARTIFACT_URI (artifact store), plus LOOPLINE_S3_ENDPOINT_URL
# and AWS credentials for an S3-compatible artifact store.
EXPOSE {PORT}
# /health/ready answers 200 once the models are loaded and warmed up (slim has no curl).
HEALTHCHECK --interval=30s --timeout=5s --start-period=300s --retries=3 \\
    CMD {json.dumps(["python", "-c", check])}
CMD {json.dumps(serve_command(deployment.name))}
"""


_REQUIREMENT = re.compile(r"loopline\[[a-z0-9,-]+\]==[A-Za-z0-9.+!-]+", re.ASCII)


def _comment_text(text: str) -> str:
    """`text` for a one-line comment: a line break would start a new Dockerfile instruction
    or YAML key, a control character makes YAML unreadable."""
    if not text.isprintable():
        raise InvalidInput(f"cannot write {text!r} into a generated file's comment")
    return text


DOCKERIGNORE = """\
# The image is built from the package index alone: nothing in this folder belongs in it.
# To install loopline from a local wheel, put it here, add a line `!loopline-*.whl` and
# COPY it in the Dockerfile.
*
"""


def loopline_annotations(plan: ExportPlan, versions: Sequence[str]) -> dict[str, str]:
    """What the objects record of the deployment: name, revision, versions, strategy."""
    deployment = plan.deployment
    return {
        f"{ANNOTATION}deployment": deployment.name,
        f"{ANNOTATION}revision": str(deployment.revision),
        f"{ANNOTATION}models": ",".join(versions),
        f"{ANNOTATION}strategy": deployment.spec.strategy,
        f"{ANNOTATION}describe": deployment.spec.describe(),
    }


def store_env(plan: ExportPlan) -> list[dict[str, Any]]:
    """The stores' locations and credentials, from the deployment's Secret."""
    return [
        {
            "name": variable,
            "valueFrom": {
                "secretKeyRef": {"name": plan.secret, "key": key, "optional": not required}
            },
        }
        for variable, key, required in STORE_ENV
    ]


def _probe(path: str, port: int | str | None, *, period: int, failures: int) -> dict[str, Any]:
    get: dict[str, Any] = {"path": path}
    if port is not None:
        get["port"] = port
    return {
        "httpGet": get,
        "periodSeconds": period,
        "timeoutSeconds": 3,
        "failureThreshold": failures,
    }


RESOURCES = {
    "requests": {"cpu": "500m", "memory": "1Gi"},
    "limits": {"cpu": "2", "memory": "2Gi"},
}
CONTAINER_SECURITY = {
    "runAsNonRoot": True,
    "runAsUser": USER_ID,
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
    "seccompProfile": {"type": "RuntimeDefault"},
}
SCRAPE = {
    "prometheus.io/scrape": "true",
    "prometheus.io/port": str(PORT),
    "prometheus.io/path": "/metrics",
}


def k8s_deployment(plan: ExportPlan) -> dict[str, Any]:
    """apps/v1 Deployment running `loopline deploy serve`; the HPA owns its replicas."""
    deployment = plan.deployment
    notes = loopline_annotations(plan, deployment.spec.versions)
    container = {
        "name": "server",
        "image": plan.image,
        "imagePullPolicy": "IfNotPresent",
        "command": serve_command(deployment.name),
        "ports": [{"name": "http", "containerPort": PORT, "protocol": "TCP"}],
        "env": store_env(plan),
        # /health/ready is 200 only once every model is loaded and warmed up; the startup
        # probe gives loading five minutes before the liveness probe may restart the pod.
        "startupProbe": _probe("/health/ready", "http", period=5, failures=60),
        "readinessProbe": _probe("/health/ready", "http", period=5, failures=3),
        "livenessProbe": _probe("/health/live", "http", period=10, failures=3),
        "resources": RESOURCES,
        "securityContext": {**CONTAINER_SECURITY, "readOnlyRootFilesystem": True},
        "volumeMounts": [
            {"name": "model-cache", "mountPath": CACHE_DIR},
            {"name": "tmp", "mountPath": "/tmp"},
        ],
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": plan.k8s_name, "labels": plan.labels, "annotations": notes},
        "spec": {
            "revisionHistoryLimit": 5,
            "selector": {"matchLabels": plan.labels},
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0},
            },
            "template": {
                "metadata": {"labels": plan.labels, "annotations": {**notes, **SCRAPE}},
                "spec": {
                    "securityContext": {"fsGroup": USER_ID},
                    "terminationGracePeriodSeconds": 30,
                    "containers": [container],
                    "volumes": [
                        {"name": "model-cache", "emptyDir": {}},
                        {"name": "tmp", "emptyDir": {}},
                    ],
                },
            },
        },
    }


def k8s_service(plan: ExportPlan) -> dict[str, Any]:
    """v1 Service: port 80 of a ClusterIP to the pods' `http` port."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": plan.k8s_name, "labels": plan.labels},
        "spec": {
            "type": "ClusterIP",
            "selector": plan.labels,
            "ports": [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}],
        },
    }


def k8s_autoscaler(plan: ExportPlan) -> dict[str, Any]:
    """autoscaling/v2 HorizontalPodAutoscaler on CPU utilization."""
    low, high = plan.replicas
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": plan.k8s_name, "labels": plan.labels},
        "spec": {
            "scaleTargetRef": {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "name": plan.k8s_name,
            },
            "minReplicas": low,
            "maxReplicas": high,
            "metrics": [
                {
                    "type": "Resource",
                    "resource": {
                        "name": "cpu",
                        "target": {"type": "Utilization", "averageUtilization": 70},
                    },
                }
            ],
        },
    }


def inference_service(
    plan: ExportPlan, version: str, *, canary_percent: int | None = None
) -> dict[str, Any]:
    """serving.kserve.io/v1beta1 InferenceService whose predictor serves one pinned
    version with loopline's own server (the V2 protocol is its /v2 endpoints)."""
    deployment = plan.deployment
    low, high = plan.replicas
    container = {
        "name": KSERVE_CONTAINER,
        "image": plan.image,
        "command": pinned_command(
            deployment.name,
            version,
            prefer_onnx=deployment.spec.prefer_onnx,
            strict_inputs=deployment.spec.strict_inputs,
            runtime=deployment.spec.runtime,
        ),
        "ports": [{"containerPort": PORT, "protocol": "TCP"}],
        "env": store_env(plan),
        # Knative probes the serving port itself: no port here
        "readinessProbe": _probe("/v2/health/ready", None, period=5, failures=3),
        "livenessProbe": {
            **_probe("/v2/health/live", None, period=10, failures=3),
            "initialDelaySeconds": 10,
        },
        "resources": RESOURCES,
        "securityContext": CONTAINER_SECURITY,
    }
    predictor: dict[str, Any] = {"minReplicas": low, "maxReplicas": high}
    if canary_percent is not None:
        predictor["canaryTrafficPercent"] = canary_percent
    predictor["annotations"] = SCRAPE
    predictor["containers"] = [container]
    return {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {
            "name": plan.k8s_name,
            "labels": plan.labels,
            "annotations": loopline_annotations(plan, [version]),
        },
        "spec": {"predictor": predictor},
    }


def render_yaml(documents: Sequence[tuple[str, dict[str, Any]]]) -> str:
    """YAML documents, each preceded by its comment (a block of lines; may be empty)."""
    import yaml

    parts = []
    for comment, document in documents:
        lines = [_comment_text(line) for line in comment.splitlines()]
        header = "".join(f"# {line}".rstrip() + "\n" for line in lines)
        body = yaml.safe_dump(document, sort_keys=False, default_flow_style=False, width=1000)
        parts.append(header + body)
    return "---\n".join(parts)
