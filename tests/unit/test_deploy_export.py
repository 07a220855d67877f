"""`export_deployment`: Dockerfile, Kubernetes manifests and KServe InferenceServices.

No container or cluster runs here: every YAML file is parsed and checked field by field,
and every Kubernetes object is checked structurally (names, labels, probes, ports).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from loopline import __version__
from loopline.errors import InvalidInput
from loopline.serving import ExportResult, export_deployment
from loopline.serving.deployments import Deployment, DeploymentSpec, Variant
from loopline.serving.export import TARGETS, kubernetes_name
from loopline.store.deployments import DEPLOYMENT_NAME

DNS_1035_LABEL = re.compile(r"[a-z]([-a-z0-9]{0,61}[a-z0-9])?")
DNS_1123_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?")
LABEL_VALUE = re.compile(r"(([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9])?")
SKLEARN = {"churn/3": "sklearn", "churn/4": "sklearn", "churn/5": "sklearn"}


def deployment(name: str = "churn", revision: int = 3, **spec: Any) -> Deployment:
    return Deployment(
        name=name,
        revision=revision,
        spec=DeploymentSpec(model=Variant("churn/3", "churn@champion"), **spec),
        created_by="tester",
        created_at=None,
        updated_at=None,
    )


CANARY = {"canary": Variant("churn/4", "churn@challenger"), "weight": 10.0}
SHADOW = {"shadow": Variant("churn/5", "churn/5")}
AB = {
    "ab": (Variant("churn/3", "churn/3"), Variant("churn/4", "churn/4")),
    "key": "customer_id",
}


def load_all(path: Path) -> list[dict[str, Any]]:
    documents = [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc]
    for document in documents:
        check_k8s_object(document)
    return documents


def check_k8s_object(document: dict[str, Any]) -> None:
    """What the API server would refuse before any controller looks at the object."""
    assert set(document) >= {"apiVersion", "kind", "metadata", "spec"}
    metadata = document["metadata"]
    assert DNS_1035_LABEL.fullmatch(metadata["name"]), metadata["name"]
    for key, value in metadata.get("labels", {}).items():
        assert isinstance(value, str) and LABEL_VALUE.fullmatch(value), (key, value)
    for key, value in metadata.get("annotations", {}).items():
        assert isinstance(key, str) and isinstance(value, str), (key, value)


def containers(document: dict[str, Any]) -> list[dict[str, Any]]:
    if document["kind"] == "Deployment":
        found: list[dict[str, Any]] = document["spec"]["template"]["spec"]["containers"]
    else:
        found = document["spec"]["predictor"]["containers"]
    for container in found:
        assert container["image"] and container["command"]
        assert all(isinstance(arg, str) for arg in container["command"])
        for variable in container["env"]:
            reference = variable["valueFrom"]["secretKeyRef"]
            assert DNS_1123_SUBDOMAIN.fullmatch(reference["name"])
    return found


def secret_keys(container: dict[str, Any]) -> dict[str, tuple[str, str, bool]]:
    return {
        env["name"]: (
            env["valueFrom"]["secretKeyRef"]["name"],
            env["valueFrom"]["secretKeyRef"]["key"],
            env["valueFrom"]["secretKeyRef"]["optional"],
        )
        for env in container["env"]
    }


def by_kind(documents: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    kinds = {doc["kind"]: doc for doc in documents}
    assert len(kinds) == len(documents)
    return kinds


def dockerfile_instruction(text: str, instruction: str) -> str:
    lines = [line for line in text.splitlines() if line.startswith(instruction + " ")]
    assert len(lines) == 1, lines
    return lines[0][len(instruction) + 1 :]


# Docker


def test_docker_writes_a_pinned_non_root_image_that_serves_the_deployment(
    tmp_path: Path,
) -> None:
    result = export_deployment(deployment(), "docker", tmp_path / "out", flavors=SKLEARN)

    assert isinstance(result, ExportResult)
    assert [path.name for path in result.files] == ["Dockerfile", ".dockerignore", "README.md"]
    assert all(path.parent == tmp_path / "out" for path in result.files)
    assert result.warnings == []
    text = (tmp_path / "out" / "Dockerfile").read_text(encoding="utf-8")
    assert dockerfile_instruction(text, "FROM") == "python:3.11-slim"
    assert f'pip install "loopline[serve,postgres,s3,onnx]=={__version__}"' in text
    assert dockerfile_instruction(text, "USER") == "10001:10001"
    assert dockerfile_instruction(text, "EXPOSE") == "8080"
    assert json.loads(dockerfile_instruction(text, "CMD")) == [
        "loopline", "deploy", "serve", "churn",
        "--host", "0.0.0.0", "--port", "8080", "--workers", "2",
    ]  # fmt: skip
    healthcheck = text.split("HEALTHCHECK ", 1)[1].split("\nCMD ", 1)[0]
    check = json.loads(healthcheck.split("CMD ", 1)[1])
    assert check[:2] == ["python", "-c"] and "/health/ready" in check[2]
    compile(check[2], "<healthcheck>", "exec")
    assert "LOOPLINE_STORE_URI" in text and "LOOPLINE_ARTIFACT_URI" in text
    readme = (tmp_path / "out" / "README.md").read_text(encoding="utf-8")
    assert "docker build -t loopline-churn:3 ." in readme
    assert "LOOPLINE_STORE_URI=" in readme and "LOOPLINE_ARTIFACT_URI=" in readme


def test_the_image_gets_the_extras_its_flavors_need(tmp_path: Path) -> None:
    flavors = {"churn/3": "xgboost", "churn/4": "lightgbm", "churn/5": "xgboost"}
    spec = {**CANARY, **SHADOW}
    export_deployment(deployment(**spec), "docker", tmp_path, flavors=flavors)

    text = (tmp_path / "Dockerfile").read_text(encoding="utf-8")
    assert f'"loopline[serve,postgres,s3,onnx,xgboost,lightgbm]=={__version__}"' in text


def test_a_flavor_without_an_extra_is_a_warning(tmp_path: Path) -> None:
    flavors = {"churn/3": "sklearn", "churn/5": "pyfunc"}
    result = export_deployment(deployment(**SHADOW), "docker", tmp_path, flavors=flavors)

    assert len(result.warnings) == 1
    assert "churn/5 is a pyfunc model" in result.warnings[0]
    text = (tmp_path / "Dockerfile").read_text(encoding="utf-8")
    assert f'"loopline[serve,postgres,s3,onnx]=={__version__}"' in text


# Kubernetes


def test_kubernetes_writes_a_deployment_service_and_autoscaler(tmp_path: Path) -> None:
    result = export_deployment(
        deployment(revision=7, **CANARY), "kubernetes", tmp_path, flavors=SKLEARN
    )

    assert [path.name for path in result.files] == [
        "Dockerfile", ".dockerignore", "kubernetes.yaml", "README.md",
    ]  # fmt: skip
    assert result.warnings == []
    kinds = by_kind(load_all(tmp_path / "kubernetes.yaml"))
    assert {kind: doc["apiVersion"] for kind, doc in kinds.items()} == {
        "Deployment": "apps/v1",
        "Service": "v1",
        "HorizontalPodAutoscaler": "autoscaling/v2",
    }
    server = kinds["Deployment"]
    assert server["metadata"]["name"] == "churn"
    assert server["metadata"]["labels"] == {
        "app.kubernetes.io/name": "churn",
        "app.kubernetes.io/part-of": "loopline",
    }
    notes = server["metadata"]["annotations"]
    assert notes["loopline.dev/revision"] == "7"
    assert notes["loopline.dev/models"] == "churn/3,churn/4"
    assert "replicas" not in server["spec"]  # the autoscaler owns them

    pod = server["spec"]["template"]
    assert server["spec"]["selector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
    assert pod["metadata"]["annotations"]["prometheus.io/scrape"] == "true"
    assert pod["metadata"]["annotations"]["prometheus.io/port"] == "8080"
    assert pod["metadata"]["annotations"]["prometheus.io/path"] == "/metrics"
    (container,) = containers(server)
    assert container["image"] == "loopline-churn:7"
    assert " deploy serve churn " in " ".join(container["command"]) + " "
    assert container["command"][container["command"].index("--port") + 1] == "8080"
    assert container["ports"] == [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]
    assert container["readinessProbe"]["httpGet"] == {"path": "/health/ready", "port": "http"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/health/live", "port": "http"}
    startup = container["startupProbe"]
    assert startup["httpGet"]["port"] == "http"
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 120
    assert set(container["resources"]) == {"requests", "limits"}
    assert container["resources"]["requests"]["cpu"]  # the autoscaler divides by it
    assert container["securityContext"]["runAsNonRoot"] is True
    keys = secret_keys(container)
    assert keys["LOOPLINE_STORE_URI"] == ("churn-loopline-stores", "store-uri", False)
    assert keys["LOOPLINE_ARTIFACT_URI"] == ("churn-loopline-stores", "artifact-uri", False)
    volumes = {volume["name"] for volume in pod["spec"]["volumes"]}
    assert {mount["name"] for mount in container["volumeMounts"]} <= volumes

    service = kinds["Service"]
    assert service["spec"]["type"] == "ClusterIP"
    assert service["spec"]["selector"].items() <= pod["metadata"]["labels"].items()
    assert service["spec"]["ports"] == [
        {"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}
    ]

    scaler = kinds["HorizontalPodAutoscaler"]["spec"]
    assert scaler["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": server["metadata"]["name"],
    }
    assert (scaler["minReplicas"], scaler["maxReplicas"]) == (1, 4)
    (metric,) = scaler["metrics"]
    assert metric["resource"]["name"] == "cpu"
    assert metric["resource"]["target"]["type"] == "Utilization"


def test_kubernetes_takes_the_image_and_replicas_given(tmp_path: Path) -> None:
    export_deployment(
        deployment(),
        "kubernetes",
        tmp_path,
        image="registry.example.com/ml/churn:2024-05",
        flavors=SKLEARN,
        replicas=(2, 10),
    )

    kinds = by_kind(load_all(tmp_path / "kubernetes.yaml"))
    (container,) = containers(kinds["Deployment"])
    assert container["image"] == "registry.example.com/ml/churn:2024-05"
    scaler = kinds["HorizontalPodAutoscaler"]["spec"]
    assert (scaler["minReplicas"], scaler["maxReplicas"]) == (2, 10)
    readme = (tmp_path / "README.md").read_text(encoding="utf-8")
    assert "kubectl create secret generic churn-loopline-stores" in readme
    assert "store-uri" in readme and "artifact-uri" in readme


def test_kubernetes_keeps_shadow_and_ab_in_loopline_s_server(tmp_path: Path) -> None:
    for number, spec in enumerate((SHADOW, AB)):
        out = tmp_path / str(number)
        result = export_deployment(deployment(**spec), "kubernetes", out, flavors=SKLEARN)

        assert result.warnings == []
        server = by_kind(load_all(out / "kubernetes.yaml"))["Deployment"]
        assert " deploy serve churn " in " ".join(containers(server)[0]["command"]) + " "


def test_the_secret_is_named_in_a_yaml_comment(tmp_path: Path) -> None:
    export_deployment(deployment(), "kubernetes", tmp_path, flavors=SKLEARN)

    comments = [
        line
        for line in (tmp_path / "kubernetes.yaml").read_text(encoding="utf-8").splitlines()
        if line.startswith("#")
    ]
    assert any("churn-loopline-stores" in line for line in comments)


# KServe


def test_kserve_serves_the_pinned_model_without_a_canary(tmp_path: Path) -> None:
    result = export_deployment(deployment(), "kserve", tmp_path, flavors=SKLEARN)

    assert [path.name for path in result.files] == [
        "Dockerfile", ".dockerignore", "inferenceservice.yaml", "README.md",
    ]  # fmt: skip
    assert result.warnings == []
    (service,) = load_all(tmp_path / "inferenceservice.yaml")
    assert service["apiVersion"] == "serving.kserve.io/v1beta1"
    assert service["kind"] == "InferenceService"
    assert service["metadata"]["name"] == "churn"
    predictor = service["spec"]["predictor"]
    assert "canaryTrafficPercent" not in predictor
    assert (predictor["minReplicas"], predictor["maxReplicas"]) == (1, 4)
    (container,) = containers(service)
    assert container["name"] == "kserve-container"
    assert container["image"] == "loopline-churn:3"
    assert container["command"][:5] == ["loopline", "serve", "churn/3", "--name", "churn"]
    assert container["ports"] == [{"containerPort": 8080, "protocol": "TCP"}]
    assert container["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
    assert container["livenessProbe"]["httpGet"]["path"] == "/v2/health/live"
    assert secret_keys(container)["LOOPLINE_STORE_URI"][:2] == (
        "churn-loopline-stores",
        "store-uri",
    )


def test_kserve_canary_sets_the_traffic_percent_on_the_canary_revision(tmp_path: Path) -> None:
    result = export_deployment(deployment(**CANARY), "kserve", tmp_path, flavors=SKLEARN)

    assert [path.name for path in result.files] == [
        "Dockerfile", ".dockerignore", "inferenceservice-stable.yaml",
        "inferenceservice.yaml", "README.md",
    ]  # fmt: skip
    assert result.warnings == []
    (canary,) = load_all(tmp_path / "inferenceservice.yaml")
    assert canary["spec"]["predictor"]["canaryTrafficPercent"] == 10
    assert canary["metadata"]["annotations"]["loopline.dev/models"] == "churn/4"
    assert containers(canary)[0]["command"][:5] == [
        "loopline", "serve", "churn/4", "--name", "churn",
    ]  # fmt: skip
    text = (tmp_path / "inferenceservice.yaml").read_text(encoding="utf-8")
    assert "last ready revision" in text.split("apiVersion:", 1)[0]

    (stable,) = load_all(tmp_path / "inferenceservice-stable.yaml")
    assert stable["metadata"]["name"] == canary["metadata"]["name"]
    assert "canaryTrafficPercent" not in stable["spec"]["predictor"]
    assert containers(stable)[0]["command"][2] == "churn/3"


def test_kserve_canary_percent_is_a_whole_number(tmp_path: Path) -> None:
    spec = {**CANARY, "weight": 2.5}
    result = export_deployment(deployment(**spec), "kserve", tmp_path, flavors=SKLEARN)

    (canary,) = load_all(tmp_path / "inferenceservice.yaml")
    percent = canary["spec"]["predictor"]["canaryTrafficPercent"]
    assert isinstance(percent, int) and percent in (2, 3)
    assert result.warnings == [
        f"KServe takes a whole canaryTrafficPercent: 2.5% becomes {percent}%"
    ]


def test_kserve_warns_that_shadow_and_ab_are_left_out(tmp_path: Path) -> None:
    shadow = export_deployment(deployment(**SHADOW), "kserve", tmp_path / "s", flavors=SKLEARN)
    ab = export_deployment(deployment(**AB), "kserve", tmp_path / "ab", flavors=SKLEARN)

    assert len(shadow.warnings) == 1 and "shadow churn/5" in shadow.warnings[0]
    assert len(ab.warnings) == 1 and "customer_id" in ab.warnings[0]
    for folder, left_out in (("s", "shadow"), ("ab", "A/B")):
        path = tmp_path / folder / "inferenceservice.yaml"
        (service,) = load_all(path)
        assert "canaryTrafficPercent" not in service["spec"]["predictor"]
        assert containers(service)[0]["command"][2] == "churn/3"
        header = path.read_text(encoding="utf-8").split("apiVersion:", 1)[0]
        assert f"Not exported: the {left_out}" in header


# Names


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("churn", "churn"),
        ("Churn_EU.v2", "churn-eu-v2"),
        ("fraud-model-", "fraud-model"),
        ("3d_scoring", "loopline-3d-scoring"),
        ("A" * 128, "a" * 63),
        ("x" + "_" * 70 + "yz", "x"),
    ],
)
def test_kubernetes_names_are_dns_labels(name: str, expected: str) -> None:
    assert kubernetes_name(name) == expected


@given(st.from_regex(DEPLOYMENT_NAME, fullmatch=True))
def test_every_deployment_name_has_a_valid_kubernetes_name(name: str) -> None:
    assert DNS_1035_LABEL.fullmatch(kubernetes_name(name))


@pytest.mark.parametrize("target", ["kubernetes", "kserve"])
def test_an_unusual_name_gives_valid_objects_and_keeps_the_loopline_name(
    tmp_path: Path, target: str
) -> None:
    result = export_deployment(
        deployment(name="Churn_EU.v2", **CANARY), target, tmp_path, flavors=SKLEARN
    )

    assert result.warnings == ["deployment 'Churn_EU.v2' is named 'churn-eu-v2' in Kubernetes"]
    for path in tmp_path.glob("*.yaml"):
        for document in load_all(path):  # checks every name and label
            assert document["metadata"]["name"] == "churn-eu-v2"
            assert document["metadata"]["labels"]["app.kubernetes.io/name"] == "churn-eu-v2"
            if document["kind"] in ("Deployment", "InferenceService"):
                assert document["metadata"]["annotations"]["loopline.dev/deployment"] == (
                    "Churn_EU.v2"
                )
                (container,) = containers(document)
                assert "Churn_EU.v2" in container["command"]
                assert container["image"] == "loopline-churn-eu-v2:3"
                secret = secret_keys(container)["LOOPLINE_STORE_URI"][0]
                assert secret == "churn-eu-v2-loopline-stores"


# Refusals and files


def test_an_unknown_target_is_refused_naming_the_valid_ones(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput) as caught:
        export_deployment(deployment(), "helm", tmp_path / "out", flavors=SKLEARN)

    assert "helm" in caught.value.message
    assert all(target in str(caught.value) for target in TARGETS)
    assert not (tmp_path / "out").exists()


def test_an_out_dir_that_is_a_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "taken"
    path.write_text("mine", encoding="utf-8")

    with pytest.raises(InvalidInput, match="is a file"):
        export_deployment(deployment(), "docker", path, flavors=SKLEARN)
    assert path.read_text(encoding="utf-8") == "mine"


@pytest.mark.parametrize("replicas", [(0, 4), (5, 2), (1.5, 4), (1,)])
def test_a_bad_replica_range_is_refused(tmp_path: Path, replicas: Any) -> None:
    with pytest.raises(InvalidInput, match="replicas"):
        export_deployment(deployment(), "kubernetes", tmp_path, flavors=SKLEARN, replicas=replicas)


def test_an_image_with_spaces_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="image"):
        export_deployment(deployment(), "kubernetes", tmp_path, image="a b", flavors=SKLEARN)


def test_exporting_again_replaces_our_files_and_keeps_others(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("keep me", encoding="utf-8")
    export_deployment(deployment(revision=3), "kubernetes", tmp_path, flavors=SKLEARN)
    export_deployment(deployment(revision=4), "kubernetes", tmp_path, flavors=SKLEARN)

    server = by_kind(load_all(tmp_path / "kubernetes.yaml"))["Deployment"]
    assert server["metadata"]["annotations"]["loopline.dev/revision"] == "4"
    assert (tmp_path / "notes.txt").read_text(encoding="utf-8") == "keep me"
    # and no temporary file is left behind
    assert sorted(path.name for path in tmp_path.iterdir()) == [
        ".dockerignore", "Dockerfile", "README.md", "kubernetes.yaml", "notes.txt",
    ]  # fmt: skip


def test_flavors_are_looked_up_in_the_registry_when_not_given(project: Any, tmp_path: Path) -> None:
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    import loopline as ll

    features, target = load_iris(return_X_y=True, as_frame=True)
    features.columns = [column.replace(" ", "_") for column in features.columns]
    model = LogisticRegression(max_iter=500).fit(features, target)
    ll.models.log_model(model, name="churn", input_example=features.head(3))
    ll.models.log_model(model, name="churn", input_example=features.head(3))
    exported = Deployment(
        name="churn",
        revision=1,
        spec=DeploymentSpec(
            model=Variant("churn/1", "churn/1"), canary=Variant("churn/2", "churn/2"), weight=5
        ),
        created_by="tester",
        created_at=None,
        updated_at=None,
    )

    result = export_deployment(exported, "docker", tmp_path / "out", flavors={"churn/1": "xgboost"})

    assert result.warnings == []
    text = (tmp_path / "out" / "Dockerfile").read_text(encoding="utf-8")
    assert f'"loopline[serve,postgres,s3,onnx,xgboost]=={__version__}"' in text
