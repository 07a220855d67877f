"""Hostile names against every name checker: one shared list, every checker, one verdict.

A name checker that uses `re.match` with `^...$` accepts `"churn\\n"` (`$` matches before
a trailing newline), which gave two identical-looking `churn` rows in `models ls` and a
pointer file named `ds1\\n.loopline`. Every checker must refuse every name below with its
error class, unless the table `ALLOWED` says why that checker may accept it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from loopline import data, registry
from loopline.cli.app import run as cli
from loopline.errors import InvalidField, InvalidInput
from loopline.predictions import record_feedback
from loopline.project import Stores
from loopline.registry import rules
from loopline.store import (
    MetadataStore,
    check_alias,
    check_dataset_name,
    check_key,
    check_model_name,
)
from loopline.store._names import check_experiment_name, check_id, check_run_name
from loopline.store.deployments import check_deployment_name
from loopline.store.model_records import check_model_tags

HOSTILE_NAMES: list[str] = [
    "churn\n",  # the reproduced defect
    "churn\r\n",
    "a\r",
    "\n",
    "\x00",
    "a\x00b",
    "\t",
    "a\x1b[31mred",  # terminal escape
    "a\x85b",  # NEL: a C1 control, a line break to some readers
    "a\u2028b",  # LINE SEPARATOR
    "\x7f",
    "\ud800",  # lone surrogate: no UTF-8 form, PostgreSQL cannot store it
    "a\udfffb",
    "",
    " ",
    " churn",
    "churn ",
    ".",
    "..",
    "../x",
    "a/../b",
    ".git",
    ".GIT",
    ".loopline",
    "/etc/passwd",
    "a/b",
    "C:\\x",
    "C:x",
    "a\\b",
    "%2e%2e",
    "%2F",
    "~",
    "~root",
    "file:///etc/x",
    "s3://bucket/key",
    "x" * 1000,
]

KEYS_ARE_NOT_PATHS = "keys are MLflow's charset (letters, digits, _ - . / : space); never paths"
NAMES_ARE_NOT_PATHS = "experiment names are display text and lookup keys, never paths"
RUN_NAMES_ARE_TEXT = "a run name is free display text; the run id names the run, never the name"

# checker -> {hostile name it accepts: why}
ALLOWED: dict[str, dict[str, str]] = {
    "experiment": dict.fromkeys((".git", ".GIT", ".loopline", "C:x"), NAMES_ARE_NOT_PATHS),
    "run name": dict.fromkeys(
        (
            ".",
            "..",
            "../x",
            "a/../b",
            ".git",
            ".GIT",
            ".loopline",
            "/etc/passwd",
            "a/b",
            "C:\\x",
            "C:x",
            "a\\b",
            "%2e%2e",
            "%2F",
            "~",
            "~root",
            "file:///etc/x",
            "s3://bucket/key",
        ),
        RUN_NAMES_ARE_TEXT,
    ),
    **{
        kind: dict.fromkeys((".git", ".GIT", ".loopline", "a/b", "C:x"), KEYS_ARE_NOT_PATHS)
        for kind in ("param key", "metric key", "tag key", "model tag key")
    },
}


def _feedback_request_id(name: str) -> object:
    return record_feedback("churn-api", {"request_id": name, "label": 1})


CHECKERS: dict[str, tuple[Callable[[str], object], type[Exception]]] = {
    "experiment": (check_experiment_name, InvalidInput),
    "run name": (check_run_name, InvalidInput),
    "param key": (lambda n: check_key("param", n), InvalidInput),
    "metric key": (lambda n: check_key("metric", n), InvalidInput),
    "tag key": (lambda n: check_key("tag", n), InvalidInput),
    "model tag key": (lambda n: check_model_tags({n: "v"}), InvalidInput),
    "run id": (lambda n: check_id("run", n), InvalidInput),
    "model": (check_model_name, InvalidInput),
    "alias": (check_alias, InvalidInput),
    "dataset": (check_dataset_name, InvalidInput),
    "deployment": (check_deployment_name, InvalidInput),
    "request id": (_feedback_request_id, InvalidField),
}


def _cases() -> list[Any]:
    return [
        pytest.param(kind, name, id=f"{kind}-{name[:20]!r}")
        for kind in CHECKERS
        for name in HOSTILE_NAMES
    ]


@pytest.mark.parametrize(("kind", "name"), _cases())
def test_every_name_checker_refuses_every_hostile_name(kind: str, name: str) -> None:
    check, error = CHECKERS[kind]
    why = ALLOWED.get(kind, {}).get(name)
    if why is not None:
        check(name)  # allowed on purpose: see ALLOWED for the reason
        return
    with pytest.raises(error) as caught:
        check(name)
    message = caught.value.message  # type: ignore[attr-defined]
    assert "\n" not in message.replace(repr(name), ""), "the error must stay on one line"


def test_allowed_table_names_only_known_checkers_and_names() -> None:
    """The exceptions stay honest: each one names a real checker and a listed name."""
    for kind, names in ALLOWED.items():
        assert kind in CHECKERS
        assert set(names) <= set(HOSTILE_NAMES)
        assert all(reason for reason in names.values())


def test_names_with_control_characters_are_refused_by_every_checker() -> None:
    """No exception in ALLOWED may ever include a control character or a surrogate."""
    for names in ALLOWED.values():
        for name in names:
            assert name.isprintable() and name.strip() == name


@pytest.mark.parametrize("name", HOSTILE_NAMES, ids=lambda n: repr(n[:20]))
def test_run_id_prefixes_refuse_hostile_names(store: MetadataStore, name: str) -> None:
    with pytest.raises(InvalidInput):
        store.runs.resolve_run_id(name)


@pytest.mark.parametrize(
    "name",
    ["churn\n", "churn\r\n", "churn ", " churn"],
    ids=repr,
)
def test_references_strip_surrounding_space_then_check_the_name(name: str) -> None:
    """A typed reference may carry the shell's spaces around it; the name left is
    checked, never kept with them. Inside the reference, they are refused."""
    assert data.parse_ref(name) == ("churn", None)
    assert registry.parse_ref(name).name == "churn"
    if name.rstrip() == name:
        return  # a leading space is around the reference, not inside it
    with pytest.raises(InvalidInput):
        data.parse_ref(f"{name}@2")
    with pytest.raises(InvalidInput):
        registry.parse_ref(f"{name}@champion")
    with pytest.raises(InvalidInput):
        registry.parse_ref(f"{name}/2")


@pytest.mark.parametrize(
    "name",
    [n for n in HOSTILE_NAMES if n.strip() and n.strip() == n],
    ids=lambda n: repr(n[:20]),
)
def test_references_refuse_hostile_names(name: str) -> None:
    with pytest.raises(InvalidInput):
        data.parse_ref(f"{name}@1")
    with pytest.raises(InvalidInput):
        registry.parse_ref(f"{name}@champion")


@pytest.mark.parametrize("version", ["٣", "³", "3\n4", "1e3"])
def test_reference_versions_are_ascii_digits(version: str) -> None:
    with pytest.raises(InvalidInput, match="positive number"):
        registry.parse_ref(f"churn/{version}")


def test_model_name_with_trailing_newline_is_refused(store: MetadataStore) -> None:
    """The defect: `churn\\n` was registered beside `churn`, two identical-looking rows."""
    fields: dict[str, Any] = {
        "flavor": "sklearn",
        "package_hash": "0" * 64,
        "size_bytes": 1,
        "signature": {},
        "manifest": {},
        "created_by": "t",
    }
    store.models.create_version("churn", **fields)
    with pytest.raises(InvalidInput, match="invalid model name"):
        store.models.create_version("churn\n", **fields)
    with pytest.raises(InvalidInput, match="invalid alias"):
        rules.move_alias(store.models, "churn", "champion\n", 1, actor="t")
    with pytest.raises(InvalidInput, match="tag key"):
        store.models.update_model("churn", actor="t", tags={"team\n": "risk"})
    assert [model.name for model in store.models.list_models()] == ["churn"]


def test_dataset_name_with_trailing_newline_is_refused(store: MetadataStore) -> None:
    with pytest.raises(InvalidInput, match="invalid dataset name"):
        store.datasets.add_version(
            "ds1\n", manifest_hash="0" * 64, author="t", file_count=1, total_size=1
        )
    assert store.datasets.list_datasets() == []


def test_experiment_and_keys_with_trailing_newline_are_refused(store: MetadataStore) -> None:
    with pytest.raises(InvalidInput):
        store.runs.get_or_create_experiment("churn\n")
    experiment = store.runs.get_or_create_experiment("churn")
    run = store.runs.create_run(experiment.id, name="first")
    with pytest.raises(InvalidInput):
        store.runs.log_params(run.id, {"lr\n": 0.1})
    with pytest.raises(InvalidInput):
        store.runs.set_tags(run.id, {"team\n": "risk"})
    with pytest.raises(InvalidInput):
        store.runs.create_run(experiment.id, name="second\n")
    assert [e.name for e in store.runs.list_experiments()] == ["churn"]


def test_data_add_with_a_newline_name_writes_no_pointer(
    project: Stores, capsys: pytest.CaptureFixture[str]
) -> None:
    """Through the CLI: exit 2, one line, and no `ds1\\n.loopline` beside the data."""
    credit = project.settings.root / "credit.csv"
    credit.write_text("id,age\n1,20\n")
    assert cli(["data", "add", str(credit), "--name", "ds1\n"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("Error:") and "invalid dataset name" in err and "Traceback" not in err
    assert sorted(p.name for p in Path(project.settings.root).iterdir()) == [
        ".loopline",
        "credit.csv",
        "loopline.toml",
    ]
