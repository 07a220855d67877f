"""Finding the project and reading loopline.toml and LOOPLINE_* variables."""

from __future__ import annotations

from pathlib import Path

import pytest

from loopline.config import find_project_root, init_project, load_settings
from loopline.errors import InvalidInput, ProjectNotFound


def test_project_is_found_by_walking_up(tmp_path: Path, clean_env: pytest.MonkeyPatch) -> None:
    init_project(tmp_path)
    deep = tmp_path / "a" / "b"
    deep.mkdir(parents=True)
    assert find_project_root(deep) == tmp_path.resolve()
    settings = load_settings(deep)
    assert settings.root == tmp_path.resolve()
    assert settings.store_uri == f"sqlite:///{tmp_path.resolve()}/.loopline/loopline.db"
    assert settings.artifact_uri == str(tmp_path.resolve() / ".loopline" / "artifacts")


def test_environment_overrides_the_file(tmp_path: Path, clean_env: pytest.MonkeyPatch) -> None:
    init_project(tmp_path)
    clean_env.setenv("LOOPLINE_STORE_URI", "postgresql+psycopg://u@h/db")
    clean_env.setenv("LOOPLINE_ARTIFACT_URI", "s3://bucket/prefix")
    clean_env.setenv("LOOPLINE_METRIC_FLUSH_INTERVAL", "0.25")
    settings = load_settings(tmp_path)
    assert settings.store_uri == "postgresql+psycopg://u@h/db"
    assert settings.artifact_uri == "s3://bucket/prefix"
    assert settings.metric_flush_interval == 0.25


def test_without_a_project_the_default_is_local_unless_one_is_required(
    tmp_path: Path, clean_env: pytest.MonkeyPatch
) -> None:
    assert load_settings(tmp_path).root == tmp_path.resolve()
    with pytest.raises(ProjectNotFound, match="loopline init"):
        load_settings(tmp_path, require_project=True)


@pytest.mark.parametrize(
    "text",
    [
        "[store\nuri = 1",
        "store = 3",
        "[tracking]\nmetric_flush_interval = 'soon'",
        "[tracking]\nmetric_flush_interval = nan",
        "[tracking]\nmetric_flush_interval = -1",
    ],
)
def test_malformed_config_is_a_clear_error(
    tmp_path: Path, clean_env: pytest.MonkeyPatch, text: str
) -> None:
    (tmp_path / "loopline.toml").write_text(text)
    with pytest.raises(InvalidInput):
        load_settings(tmp_path)


def test_init_keeps_an_existing_config(tmp_path: Path) -> None:
    (tmp_path / "loopline.toml").write_text("# mine\n")
    init_project(tmp_path)
    assert (tmp_path / "loopline.toml").read_text() == "# mine\n"
    assert (tmp_path / ".loopline" / "artifacts").is_dir()
