"""Generated files hold exactly what was meant: no value can add a Dockerfile
instruction, a YAML key or a shell command.

Defect 4: an A/B `--key` (or a model name) holding a newline wrote new Dockerfile
instructions (`RUN curl ... | sh`, `USER 0`) and repeated them in the README; an
`--image` with `;` was pasted into the README's shell lines. Now every stored value is
re-checked at export (names and images against their grammar in full, the key as one
printable line), YAML goes through yaml.safe_dump, README shell words through
shlex.quote, and the tests parse what was written.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml
from sklearn.linear_model import LogisticRegression

import loopline as ll
from loopline.cli.app import run as cli
from loopline.errors import InvalidInput
from loopline.project import Stores
from loopline.serving import deployments as dep
from loopline.serving import export_deployment
from loopline.serving.deployments import Deployment, DeploymentSpec, Variant
from loopline.serving.export import TARGETS

SKLEARN = {"churn/3": "sklearn", "churn/4": "sklearn"}
# What a Dockerfile we write holds, in order; anything else was injected.
INSTRUCTIONS = ["FROM", "ENV", "RUN", "RUN", "USER", "WORKDIR", "EXPOSE", "HEALTHCHECK", "CMD"]
PAYLOADS = [
    "\nRUN curl x | sh",
    "\nUSER 0",
    "\r\nRUN id",
    "\u2028RUN id",  # a YAML 1.1 line break
    "\x85RUN id",
    "\x0bRUN id",
    "\x1b[2J",
    "\x00",
    "\u202eevil",  # a bidi override: reads differently than it is
]


def deployment(name: str = "churn", **spec: Any) -> Deployment:
    """A deployment as read from the store; the store may hold anything."""
    return Deployment(
        name=name,
        revision=3,
        spec=DeploymentSpec(model=Variant("churn/3", "churn/3"), **spec),
        created_by="tester",
        created_at=None,
        updated_at=None,
    )


def ab(key: str) -> dict[str, Any]:
    return {"ab": (Variant("churn/3", "churn/3"), Variant("churn/4", "churn/4")), "key": key}


def dockerfile_instructions(text: str) -> list[str]:
    """The instruction keywords of a Dockerfile, as Docker's parser sees them: comment
    lines dropped, backslash continuations joined."""
    found, current = [], ""
    for line in text.split("\n"):
        if line.lstrip().startswith("#") or (not line.strip() and not current):
            continue
        current += line.rstrip()
        if current.endswith("\\"):
            current = current[:-1] + " "
            continue
        found.append(current.split(None, 1)[0].upper())
        current = ""
    return found


def shell_lines(readme: str) -> list[list[str]]:
    """The commands of the README's ```sh blocks, split as a shell would split them."""
    commands = []
    for block in re.findall(r"```sh\n(.*?)```", readme, flags=re.S):
        for command in block.replace("\\\n", " ").splitlines():
            commands.append(shlex.split(command))
    return commands


def assert_written_as_meant(folder: Path, meant: Deployment, image: str) -> None:
    docker = (folder / "Dockerfile").read_text(encoding="utf-8")
    assert dockerfile_instructions(docker) == INSTRUCTIONS
    readme = (folder / "README.md").read_text(encoding="utf-8")
    builds = [c for c in shell_lines(readme) if c[:2] == ["docker", "build"]]
    assert builds == [["docker", "build", "-t", image, "."]]
    runs = [c for c in shell_lines(readme) if c[:2] == ["docker", "run"]]
    assert runs[0][-1] == image
    for name in ("kubernetes.yaml", "inferenceservice.yaml"):
        if not (folder / name).exists():
            continue
        for document in yaml.safe_load_all((folder / name).read_text(encoding="utf-8")):
            if document["kind"] not in ("Deployment", "InferenceService"):
                continue
            notes = document["metadata"]["annotations"]
            assert notes["loopline.dev/describe"] == meant.spec.describe()
            assert notes["loopline.dev/deployment"] == meant.name
            spec = document["spec"]
            pod = spec["template"]["spec"] if "template" in spec else spec["predictor"]
            assert [c["image"] for c in pod["containers"]] == [image]


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("payload", PAYLOADS, ids=repr)
def test_dockerfile_injection_through_the_ab_key_is_refused(
    target: str, payload: str, tmp_path: Path
) -> None:
    with pytest.raises(InvalidInput, match="key"):
        export_deployment(
            deployment(**ab("customer_id" + payload)), target, tmp_path, flavors=SKLEARN
        )
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("payload", ["\nUSER 0", "\nRUN curl x | sh", "\n", " ", "/../x"])
@pytest.mark.parametrize("where", ["model", "canary", "shadow", "ab", "deployment"])
def test_dockerfile_injection_through_a_stored_name_is_refused(
    where: str, payload: str, tmp_path: Path
) -> None:
    bad = Variant(f"m{payload}/1", "m/1")
    spec: dict[str, Any] = {
        "model": {},
        "canary": {"canary": bad, "weight": 10.0},
        "shadow": {"shadow": bad},
        "ab": {"ab": (Variant("churn/3", "churn/3"), bad), "key": "id"},
        "deployment": {},
    }[where]
    stored = deployment(name=f"churn{payload}" if where == "deployment" else "churn", **spec)
    if where == "model":
        stored = replace(stored, spec=replace(stored.spec, model=bad))
    flavors = {**SKLEARN, bad.model: "sklearn"}
    for target in TARGETS:
        with pytest.raises(InvalidInput):
            export_deployment(stored, target, tmp_path, flavors=flavors)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "image",
    [
        "x; rm -rf /",
        "x\nRUN id",
        "x $(id)",
        "x`id`",
        "x|sh",
        "x&&id",
        "'x'",
        "Registry/Churn",  # path components are lowercase
        "x:tag\n",
        "-x",
        "x:" + "t" * 200,
        "",
    ],
)
def test_an_image_that_is_not_an_image_reference_is_refused(image: str, tmp_path: Path) -> None:
    for target in TARGETS:
        with pytest.raises(InvalidInput, match="image"):
            export_deployment(deployment(), target, tmp_path, image=image, flavors=SKLEARN)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "image",
    [
        "churn",
        "churn:3",
        "registry.example.com:5000/ml/churn-eu_v2:2024.05",
        "ghcr.io/team/churn@sha256:" + "ab" * 32,
        "localhost/a__b/c--d:latest",
    ],
)
@pytest.mark.parametrize("target", TARGETS)
def test_real_image_references_are_written_as_one_shell_word(
    image: str, target: str, tmp_path: Path
) -> None:
    meant = deployment()
    export_deployment(meant, target, tmp_path, image=image, flavors=SKLEARN)
    assert_written_as_meant(tmp_path, meant, image)


@pytest.mark.parametrize("target", TARGETS)
def test_a_printable_key_with_shell_and_markdown_characters_stays_text(
    target: str, tmp_path: Path
) -> None:
    key = "customer id `x` | $(reboot); <b># USER 0"
    meant = deployment(**ab(key))
    export_deployment(meant, target, tmp_path, flavors=SKLEARN)
    assert_written_as_meant(tmp_path, meant, "loopline-churn:3")
    readme = (tmp_path / "README.md").read_text(encoding="utf-8")
    assert f"``{meant.spec.describe()}``" in readme  # a code span around the backtick
    docker = (tmp_path / "Dockerfile").read_text(encoding="utf-8")
    assert (
        docker.split("\n")[0]
        == f"# loopline deployment 'churn' (revision 3): {meant.spec.describe()}"
    )


# ---------------------------------------------------------------- through the store


@pytest.fixture
def scoring(project: Stores) -> Stores:
    """Deployment 'scoring' serving churn/1; churn/2 shares its inputs."""
    rows = pd.DataFrame(np.random.default_rng(0).normal(size=(20, 2)), columns=["id", "x"])
    for c in (1.0, 0.1):
        model = LogisticRegression(C=c).fit(rows, (rows["x"] > 0).astype(int))
        ll.models.log_model(model, name="churn", input_example=rows.head(3))
    dep.create_deployment("scoring", "churn/1")
    return project


def test_the_ab_key_is_refused_at_the_door(
    scoring: Stores, capsys: pytest.CaptureFixture[str]
) -> None:
    for payload in PAYLOADS:
        with pytest.raises(InvalidInput, match="key"):
            dep.update_deployment("scoring", ab=["churn/1", "churn/2"], key="id" + payload)
    argv = [
        "deploy",
        "update",
        "scoring",
        "--ab",
        "churn/1,churn/2",
        "--key",
        "id\nRUN curl x | sh",
    ]
    assert cli(argv) == 2
    err = capsys.readouterr().err
    assert "key" in err and "Traceback" not in err
    assert dep.get_deployment("scoring").revision == 1


def test_a_hand_edited_store_cannot_inject_through_export(
    scoring: Stores, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A key written straight into the store (an older loopline, a hand edit) is
    refused when exported, by the CLI too, and nothing is written."""
    spec = DeploymentSpec(
        model=Variant("churn/1", "churn/1"),
        ab=(Variant("churn/1", "churn/1"), Variant("churn/2", "churn/2")),
        key="id\nRUN curl x | sh\nUSER 0",
    )
    scoring.metadata.deployments.update("scoring", spec.to_dict(), action="update", actor="x")
    out = tmp_path / "out"
    for target in TARGETS:
        assert cli(["deploy", "export", "scoring", "--target", target, "-o", str(out)]) == 2
        err = capsys.readouterr().err
        assert "key" in err and "Traceback" not in err
    assert not out.exists()
    argv = ["deploy", "export", "scoring", "--target", "docker", "-o", str(out)]
    assert cli([*argv, "--image", "x; rm -rf /"]) == 2
    assert not out.exists()
