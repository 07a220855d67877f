"""Exporting a deployment to run elsewhere: a Docker image, Kubernetes, or KServe.

    export_deployment(get_deployment("churn"), "kubernetes", "deploy/churn")

Every target writes a Dockerfile, a .dockerignore and a README.md (the image must come
from somewhere); `kubernetes` adds `kubernetes.yaml` (a Deployment, a Service and a
HorizontalPodAutoscaler, in one multi-document file); `kserve` adds
`inferenceservice.yaml`, and for a canary `inferenceservice-stable.yaml` too.

The Docker image and the Kubernetes pods run `loopline deploy serve NAME`: they read the
deployment from the metadata store and follow its later revisions, so a canary, a shadow
or an A/B split runs inside loopline's server. KServe splits traffic itself, between the
revisions of one InferenceService, so its predictor serves one pinned version
(`loopline serve churn/4 --name churn`): the canary's manifest carries
`canaryTrafficPercent`; shadows and A/B splits have no KServe equivalent and are left out,
with a warning. Nothing here runs a container or a cluster.

Every value written into a generated file is checked again here, whatever the store
says: a Dockerfile line, a YAML comment or a README shell line that a stored name or key
could break would let whoever edited the store add instructions (`RUN curl ... | sh`) to
an image that someone else builds. Names and images must match their grammar in full;
the A/B key (a request field name, shown only in comments) must be one printable line;
YAML goes through yaml.safe_dump and README shell words through shlex.quote.
"""

from __future__ import annotations

import math
import os
import re
import shlex
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from loopline.errors import InvalidInput
from loopline.serving.export import _manifests as manifests
from loopline.store.deployments import check_deployment_name

if TYPE_CHECKING:
    from loopline.serving.deployments import Deployment

__all__ = ["TARGETS", "ExportResult", "export_deployment", "kubernetes_name"]

TARGETS = ("docker", "kubernetes", "kserve")
K8S_NAME_LIMIT = 63
# The extra each flavor needs beyond IMAGE_EXTRAS (scikit-learn is a core dependency,
# onnxruntime comes with [onnx]).
FLAVOR_EXTRAS = {"sklearn": None, "onnx": None, "xgboost": "xgboost", "lightgbm": "lightgbm"}
STABLE_FILE = "inferenceservice-stable.yaml"
KEY_LIMIT = 128  # as loopline.serving.deployments.KEY_NAME_LIMIT
# A pinned version: a model name (loopline.store's MODEL_NAME) and a version number.
VERSION_REF = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}/[1-9][0-9]{0,17}")
# Docker's image reference grammar (github.com/distribution/reference):
# [host[:port]/]path[/path...][:tag][@digest], lowercase path components.
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
_HOST = rf"{_LABEL}(?:\.{_LABEL})*"
IMAGE = re.compile(
    rf"(?:{_HOST}(?::[0-9]+)?/)?{_COMPONENT}(?:/{_COMPONENT})*"
    r"(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?"
    r"(?:@[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9A-Fa-f]{32,})?",
    re.ASCII,
)
IMAGE_LIMIT = 255


@dataclass(frozen=True)
class ExportResult:
    """The files written (in writing order) and what the user should know about them."""

    files: list[Path] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def export_deployment(
    deployment: Deployment,
    target: str,
    out_dir: str | Path,
    *,
    image: str | None = None,
    flavors: Mapping[str, str] | None = None,
    replicas: tuple[int, int] = (1, 4),
) -> ExportResult:
    """Write what runs `deployment` on `target` ("docker", "kubernetes" or "kserve")
    into `out_dir` (created if missing; our own files in it are overwritten).

    `image` names the image in the manifests (default `loopline-<name>:<revision>`);
    `flavors` maps each version ("churn/3") to its flavor, looked up in the registry when
    missing; `replicas` is the (minimum, maximum) for autoscaling. Raises InvalidInput for
    an unknown target, a bad image or replica range, or an `out_dir` that is a file.
    """
    from loopline._version import __version__

    if target not in TARGETS:
        raise InvalidInput(
            f"unknown export target {target!r}", hint=f"choose one of {', '.join(TARGETS)}"
        )
    low, high = _check_replicas(replicas)
    _check_exportable(deployment)
    folder = Path(out_dir)
    if folder.exists() and not folder.is_dir():
        raise InvalidInput(f"cannot export into {folder}: it is a file, not a folder")
    k8s_name = kubernetes_name(deployment.name)
    default_image = f"loopline-{k8s_name}:{deployment.revision}"
    plan = manifests.ExportPlan(
        deployment=deployment,
        k8s_name=k8s_name,
        image=default_image if image is None else _check_image(image),
        replicas=(low, high),
        loopline_version=__version__,
    )
    warnings: list[str] = []
    if k8s_name != deployment.name and target != "docker":
        warnings.append(f"deployment '{deployment.name}' is named '{k8s_name}' in Kubernetes")
    extras, flavor_warnings = _image_extras(_flavors(deployment, flavors))
    warnings += flavor_warnings
    texts = {
        "Dockerfile": manifests.dockerfile(plan, extras),
        ".dockerignore": manifests.DOCKERIGNORE,
    }
    if target == "kubernetes":
        texts["kubernetes.yaml"] = _kubernetes_yaml(plan)
    elif target == "kserve":
        kserve, kserve_warnings = _kserve_yaml(plan)
        texts.update(kserve)
        warnings += kserve_warnings
    texts["README.md"] = _readme(plan, target, list(texts))
    _create(folder)
    files = [_write(folder / name, text) for name, text in texts.items()]
    return ExportResult(files=files, warnings=warnings)


def kubernetes_name(name: str) -> str:
    """The Kubernetes name for a deployment name: lowercase, '_' and '.' turned into '-',
    at most 63 characters, starting with a letter and ending with a letter or digit (a
    DNS-1035 label, which Services require, so also a DNS-1123 one)."""
    text = re.sub(r"[^a-z0-9-]", "-", name.lower()).strip("-")
    if not text[:1].isalpha():
        text = f"loopline-{text}"
    return text[:K8S_NAME_LIMIT].rstrip("-")


def _check_replicas(replicas: tuple[int, int]) -> tuple[int, int]:
    try:
        low, high = replicas
    except (TypeError, ValueError):
        raise InvalidInput(f"replicas is a (minimum, maximum) pair, got {replicas!r}") from None
    if any(isinstance(n, bool) or not isinstance(n, int) for n in (low, high)):
        raise InvalidInput(f"replicas must be whole numbers, got {replicas!r}")
    if not 1 <= low <= high:
        raise InvalidInput(f"replicas need 1 <= minimum <= maximum, got {low} and {high}")
    return low, high


def _check_image(image: str) -> str:
    if not isinstance(image, str) or len(image) > IMAGE_LIMIT or not IMAGE.fullmatch(image):
        raise InvalidInput(
            f"an image is a name like 'registry/team/churn:3', got {image!r}",
            hint="lowercase path, optional registry host, :tag and @sha256:digest",
        )
    return image


def _check_exportable(deployment: Deployment) -> None:
    """Every stored value that the generated files hold, checked against its grammar:
    the store may hold what an older loopline or a hand edit let in."""
    check_deployment_name(deployment.name)
    if isinstance(deployment.revision, bool) or not isinstance(deployment.revision, int):
        raise InvalidInput(f"deployment revision must be a number, got {deployment.revision!r}")
    spec = deployment.spec
    variants = [spec.model, *spec.ab, spec.canary, spec.shadow]
    for variant in (v for v in variants if v is not None):
        if not isinstance(variant.model, str) or not VERSION_REF.fullmatch(variant.model):
            raise InvalidInput(
                f"deployment '{deployment.name}' names the version {variant.model!r}, which is "
                "not a model version such as 'churn/3'",
                hint="update the deployment with `loopline deploy update` before exporting",
            )
    key = spec.key
    if key is not None and not (
        isinstance(key, str) and 0 < len(key) <= KEY_LIMIT and key.isprintable()
    ):
        raise InvalidInput(
            f"deployment '{deployment.name}' splits by the key {key!r}, which is not a request "
            "field name on one line of printable characters",
            hint="set another key with `loopline deploy update NAME --key FIELD`",
        )
    weight = spec.weight
    if (
        isinstance(weight, bool)
        or not isinstance(weight, int | float)
        or not (math.isfinite(weight) and 0 <= weight <= 100)
    ):
        raise InvalidInput(f"deployment '{deployment.name}' has a canary weight of {weight!r}")


def _flavors(deployment: Deployment, given: Mapping[str, str] | None) -> dict[str, str]:
    """Each served version's flavor, from `given` or else from the registry."""
    known = dict(given or {})
    missing = [ref for ref in deployment.spec.versions if ref not in known]
    if missing:
        from loopline.registry import resolve

        known.update({ref: resolve(ref).flavor for ref in missing})
    return {ref: known[ref] for ref in deployment.spec.versions}


def _image_extras(flavors: Mapping[str, str]) -> tuple[list[str], list[str]]:
    """loopline's extras for the image, and warnings for flavors no extra covers."""
    extras = list(manifests.IMAGE_EXTRAS)
    warnings = []
    for ref, flavor in flavors.items():
        if flavor not in FLAVOR_EXTRAS:
            warnings.append(
                f"{ref} is a {flavor} model: add the packages its code imports to the "
                "Dockerfile's pip install line"
            )
            continue
        extra = FLAVOR_EXTRAS[flavor]
        if extra is not None and extra not in extras:
            extras.append(extra)
    return extras, warnings


def _kubernetes_yaml(plan: manifests.ExportPlan) -> str:
    deployment = plan.deployment
    header = (
        f"Kubernetes objects for loopline deployment '{deployment.name}' "
        f"(revision {deployment.revision}): {deployment.spec.describe()}.\n"
        "Written by `loopline deploy export --target kubernetes`; apply with\n"
        "`kubectl apply -f kubernetes.yaml`. The pods run `loopline deploy serve`, which\n"
        "follows the deployment's later revisions without a redeploy.\n"
        f"The stores come from the Secret '{plan.secret}' (keys store-uri and\n"
        "artifact-uri; optional s3-endpoint-url, aws-access-key-id, aws-secret-access-key),\n"
        "which this file does not create: see README.md.\n\n"
    )
    return manifests.render_yaml(
        [
            (
                header + "The server; no replicas field: the autoscaler below sets them.",
                manifests.k8s_deployment(plan),
            ),
            ("Port 80 inside the cluster, to the pods' http port.", manifests.k8s_service(plan)),
            ("Scales the Deployment on CPU.", manifests.k8s_autoscaler(plan)),
        ]
    )


def _kserve_yaml(plan: manifests.ExportPlan) -> tuple[dict[str, str], list[str]]:
    """inferenceservice.yaml (and the stable revision's manifest for a canary)."""
    spec = plan.deployment.spec
    name = plan.deployment.name
    warnings = []
    header = (
        f"KServe InferenceService for loopline deployment '{name}' "
        f"(revision {plan.deployment.revision}): {spec.describe()}.\n"
        "The predictor is loopline's server for one pinned version; it answers KServe's\n"
        "V2 (Open Inference Protocol) at /v2/models/NAME/infer. The stores come from the\n"
        f"Secret '{plan.secret}' (keys store-uri and artifact-uri): see README.md.\n"
    )
    if spec.shadow is not None:
        warnings.append(
            f"KServe has no shadow traffic within one InferenceService: the shadow "
            f"{spec.shadow.model} is left out (--target kubernetes keeps it)"
        )
        header += f"Not exported: the shadow {spec.shadow.model} (KServe has no equivalent).\n"
    if spec.ab:
        warnings.append(
            f"KServe cannot split traffic by the request field '{spec.key}': only "
            f"{spec.model.model}, the first A/B variant, is served (--target kubernetes "
            "keeps the split)"
        )
        header += f"Not exported: the A/B split by '{spec.key}' (KServe has no equivalent).\n"
    if spec.canary is None:
        return {"inferenceservice.yaml": _one(header, plan, spec.model.model)}, warnings
    percent = min(max(round(spec.weight), 1), 99)
    if percent != spec.weight:
        warnings.append(
            f"KServe takes a whole canaryTrafficPercent: {spec.weight:g}% becomes {percent}%"
        )
    canary_header = header + (
        f"The canary revision: {spec.canary.model} takes {percent}% of the traffic.\n"
        "KServe canaries roll the revisions of one InferenceService: applying this\n"
        "manifest splits traffic between the last ready revision and the new one. If the\n"
        f"InferenceService does not exist yet, apply {STABLE_FILE} first (a first\n"
        "revision takes all traffic). Promote: remove canaryTrafficPercent and apply;\n"
        "roll back: set it to 0 and apply.\n"
    )
    stable_header = header + (
        f"The stable revision serving {spec.model.model}: apply it before\n"
        "inferenceservice.yaml when the InferenceService is new.\n"
    )
    files = {
        STABLE_FILE: _one(stable_header, plan, spec.model.model),
        "inferenceservice.yaml": _one(canary_header, plan, spec.canary.model, percent),
    }
    return files, warnings


def _one(header: str, plan: manifests.ExportPlan, version: str, percent: int | None = None) -> str:
    document = manifests.inference_service(plan, version, canary_percent=percent)
    return manifests.render_yaml([(header, document)])


def _readme(plan: manifests.ExportPlan, target: str, files: list[str]) -> str:
    deployment = plan.deployment
    name = deployment.name
    image = shlex.quote(plan.image)
    lines = [
        f"# loopline deployment `{name}` for {target}",
        "",
        f"Exported from revision {deployment.revision}: {_code(deployment.spec.describe())}.",
        f"Files: {', '.join(f'`{file}`' for file in files)}.",
        "",
        "## The image",
        "",
        "```sh",
        f"docker build -t {image} .",
        f"docker run --rm -p {manifests.PORT}:{manifests.PORT} \\",
        "  -e LOOPLINE_STORE_URI=postgresql+psycopg://user:password@db:5432/loopline \\",
        "  -e LOOPLINE_ARTIFACT_URI=s3://bucket/loopline \\",
        f"  {image}",
        f"curl http://localhost:{manifests.PORT}/health/ready",
        "```",
        "",
        "The container reaches the project's stores through LOOPLINE_STORE_URI and",
        "LOOPLINE_ARTIFACT_URI (LOOPLINE_S3_ENDPOINT_URL and AWS_ACCESS_KEY_ID /",
        "AWS_SECRET_ACCESS_KEY for an S3-compatible store); nothing is baked into the image.",
        "The image holds the libraries of the versions served at export time: export",
        "again when a new version needs another flavor's library (xgboost, lightgbm).",
    ]
    if target in ("kubernetes", "kserve"):
        lines += [
            "",
            "## The stores' Secret",
            "",
            f"The manifests read the stores from the Secret `{plan.secret}` (keys",
            "`store-uri` and `artifact-uri` are required; `s3-endpoint-url`,",
            "`aws-access-key-id` and `aws-secret-access-key` are optional). Create it first:",
            "",
            "```sh",
            f"kubectl create secret generic {shlex.quote(plan.secret)} \\",
            "  --from-literal=store-uri=postgresql+psycopg://user:password@db:5432/loopline \\",
            "  --from-literal=artifact-uri=s3://bucket/loopline",
            "```",
            "",
            f"Push the image where the cluster can pull it ({_code(plan.image)} by default).",
        ]
    if target == "kubernetes":
        lines += [
            "",
            "## Kubernetes",
            "",
            "`kubectl apply -f kubernetes.yaml` creates a Deployment (probes on",
            "/health/ready and /health/live), a Service on port 80 and a",
            "HorizontalPodAutoscaler. The pods run `loopline deploy serve`, which follows",
            f"the deployment: `loopline deploy update {name} ...` takes effect without",
            "applying anything again.",
        ]
    if target == "kserve":
        lines += ["", "## KServe", "", "Each revision serves one pinned version."]
        if STABLE_FILE in files:
            lines += [
                f"For a new InferenceService, apply `{STABLE_FILE}` first, then",
                "`inferenceservice.yaml`, whose canaryTrafficPercent splits traffic between",
                "the last ready revision and the canary. Promote by removing",
                "canaryTrafficPercent and applying again; roll back by setting it to 0.",
            ]
        else:
            lines += ["`kubectl apply -f inferenceservice.yaml`."]
        lines += [
            f"After a `loopline deploy` change to `{name}`, export and apply again.",
        ]
    return "\n".join(lines) + "\n"


def _code(text: str) -> str:
    """`text` as a Markdown code span, whatever backticks it holds (CommonMark: a fence
    longer than any run inside, padded when the text starts or ends with a backtick)."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * (longest + 1)
    padded = f" {text} " if text.startswith("`") or text.endswith("`") else text
    return f"{fence}{padded}{fence}"


def _create(folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InvalidInput(f"cannot create the folder {folder}: {exc.strerror}") from exc


def _write(path: Path, text: str) -> Path:
    """Replace `path` atomically: readers see the old file or the new one, never half."""
    if path.is_dir():
        raise InvalidInput(f"cannot write {path}: a folder is in the way")
    temp: str | None = None
    try:
        fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as fh:
            fh.write(text)
        os.chmod(temp, 0o644)  # mkstemp's 0600 would hide the files from a build user
        os.replace(temp, path)
    except OSError as exc:
        if temp is not None:
            Path(temp).unlink(missing_ok=True)
        raise InvalidInput(f"cannot write {path}: {exc.strerror}") from exc
    return path
