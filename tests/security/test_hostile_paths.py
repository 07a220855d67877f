"""Hostile paths against every path that comes from data.

A pointer's `path:`, a version's recorded source, a manifest's file names and a run's
artifact names may all have been written by someone else (a committed pointer, a pushed
version, a crafted manifest). None may make loopline write into `.git` (a `config` with
`core.fsmonitor` runs a command at the next `git status`) or `.loopline` (its database
and store), through a symbolic link, or outside the project; `--clean` deletes nothing
outside the checked-out folder. Checkouts run through the CLI, on the real stores.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import loopline as ll
from loopline import data
from loopline.cli.app import run as cli
from loopline.errors import InvalidInput, InvalidPath, NotFound
from loopline.project import Stores, configure
from loopline.store import Direction, LinkKind, resolve_under, validate_logical_path

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="symlinks need privileges")

GIT_CONFIG = "[core]\n\trepositoryformatversion = 0\n"
HOSTILE_CONFIG = "[core]\n\tfsmonitor = echo pwned-by-loopline\n"


@pytest.fixture(autouse=True)
def wide_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "250")


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A folder outside the project holding a file nobody may touch."""
    folder = tmp_path / "outside"
    folder.mkdir()
    (folder / "victim.txt").write_text("precious")
    return folder


def _hostile_version(project: Stores) -> data.AddResult:
    """A folder version a hostile teammate pushed: its `config` would take over git."""
    folder = project.settings.root / "payload"
    folder.mkdir()
    (folder / "config").write_text(HOSTILE_CONFIG)
    (folder / "HEAD").write_text("ref: refs/heads/main\n")
    return data.add(folder)


def _pointer(at: Path, result: data.AddResult, path: str) -> Path:
    version = result.version
    at.parent.mkdir(parents=True, exist_ok=True)
    at.write_text(
        f"dataset: {version.dataset}\nversion: {version.version}\n"
        f"manifest: {version.manifest_hash}\npath: {path}\n"
    )
    return at


def _checkout(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = cli(["data", "checkout", *argv])
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return code, err


def _tree(folder: Path) -> dict[str, bytes]:
    return {
        str(path.relative_to(folder)): path.read_bytes()
        for path in sorted(folder.rglob("*"))
        if path.is_file() and not path.is_symlink()
    }


def _git_init(root: Path) -> Path:
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    return root / ".git"


# -- pointer files ------------------------------------------------------------------------


@pytest.mark.parametrize("name", [".git", ".GIT", ".Git", ".git.", ".git ", "GIT~1"])
def test_pointer_path_into_dot_git_is_refused(
    project: Stores, capsys: pytest.CaptureFixture[str], name: str
) -> None:
    result = _hostile_version(project)
    git = _git_init(project.settings.root)
    before = _tree(git)
    pointer = _pointer(project.settings.root / "evil.loopline", result, name)
    code, err = _checkout(capsys, str(pointer), "--clean")
    assert code == 2, err
    assert "control folder" in err
    assert _tree(git) == before
    assert "fsmonitor" not in (git / "config").read_text()


@pytest.mark.parametrize("name", [".loopline", ".LOOPLINE", ".loopline."])
def test_pointer_path_into_dot_loopline_with_clean_is_refused(
    project: Stores, capsys: pytest.CaptureFixture[str], name: str
) -> None:
    result = _hostile_version(project)
    state = project.settings.state_dir
    before = sorted(p.relative_to(state) for p in state.rglob("*"))
    pointer = _pointer(project.settings.root / "evil.loopline", result, name)
    code, err = _checkout(capsys, str(pointer), "--clean")
    assert code == 2 and "control folder" in err
    assert sorted(p.relative_to(state) for p in state.rglob("*")) == before
    assert data.resolve(result.version.ref) == result.version  # the store still answers


def test_pointer_in_a_nested_dot_git_folder_is_refused(
    project: Stores, capsys: pytest.CaptureFixture[str]
) -> None:
    """A pointer committed inside `.git/` itself would restore `path:` beside it."""
    result = _hostile_version(project)
    git = _git_init(project.settings.root)
    pointer = _pointer(git / "hooks.loopline", result, "hooks")
    code, err = _checkout(capsys, str(pointer))
    assert code == 2 and "control folder" in err
    assert not (git / "hooks" / "config").exists()


def test_pointer_path_naming_a_symlink_to_outside_is_refused(
    project: Stores, capsys: pytest.CaptureFixture[str], outside: Path
) -> None:
    result = _hostile_version(project)
    (project.settings.root / "data").symlink_to(outside)
    pointer = _pointer(project.settings.root / "data.loopline", result, "data")
    code, err = _checkout(capsys, str(pointer), "--clean")
    assert code == 2 and "symbolic link" in err
    assert _tree(outside) == {"victim.txt": b"precious"}


def test_pointer_path_naming_a_symlink_inside_the_project_is_refused(
    project: Stores, capsys: pytest.CaptureFixture[str]
) -> None:
    """Even a link that stays inside is not followed: it could lead to `.git`, or be
    retargeted between two checkouts."""
    result = _hostile_version(project)
    git = _git_init(project.settings.root)
    (project.settings.root / "data").symlink_to(git)
    pointer = _pointer(project.settings.root / "data.loopline", result, "data")
    code, err = _checkout(capsys, str(pointer))
    assert code == 2 and "symbolic link" in err
    assert "fsmonitor" not in (git / "config").read_text()


def test_pointer_placed_in_a_symlinked_folder_is_refused(
    project: Stores, capsys: pytest.CaptureFixture[str], outside: Path
) -> None:
    result = _hostile_version(project)
    (project.settings.root / "sub").symlink_to(outside)
    pointer = _pointer(project.settings.root / "sub" / "payload.loopline", result, "payload")
    code, err = _checkout(capsys, str(pointer), "--clean")
    assert code == 2 and "symbolic link" in err
    assert not (outside / "payload").exists()
    assert _tree(outside) == {"victim.txt": b"precious", "payload.loopline": pointer.read_bytes()}


def test_pointer_outside_the_project_is_refused(
    project: Stores, capsys: pytest.CaptureFixture[str], outside: Path
) -> None:
    result = _hostile_version(project)
    pointer = _pointer(outside / "payload.loopline", result, "payload")
    code, err = _checkout(capsys, str(pointer))
    assert code == 2 and "outside the project" in err
    assert not (outside / "payload").exists()


def test_pointer_path_onto_the_project_config_is_refused(
    project: Stores, capsys: pytest.CaptureFixture[str]
) -> None:
    hostile = project.settings.root / "settings.toml"
    hostile.write_text('[store]\nartifacts = "/tmp/elsewhere"\n')
    result = data.add(hostile)
    config = project.settings.root / "loopline.toml"
    before = config.read_bytes()
    pointer = _pointer(project.settings.root / "x.loopline", result, "loopline.toml")
    code, err = _checkout(capsys, str(pointer))
    assert code == 2 and "configuration or store" in err
    assert config.read_bytes() == before


def test_pointer_path_onto_a_store_configured_inside_the_project_is_refused(
    project: Stores, capsys: pytest.CaptureFixture[str], clean_env: pytest.MonkeyPatch
) -> None:
    """`path: store` with `--clean`, where loopline.toml keeps the artifacts in `store/`."""
    root = project.settings.root
    clean_env.setenv("LOOPLINE_ARTIFACT_URI", str(root / "store"))
    opened = configure(project=root)
    result = _hostile_version(opened)
    before = sorted(p.relative_to(root / "store") for p in (root / "store").rglob("*"))
    pointer = _pointer(root / "evil.loopline", result, "store")
    code, err = _checkout(capsys, str(pointer), "--clean")
    assert code == 2 and "configuration or store" in err
    assert sorted(p.relative_to(root / "store") for p in (root / "store").rglob("*")) == before


@pytest.mark.parametrize(
    "path", ["../outside", "/etc", "a/b", "~", "%2e%2e", "file:///etc/x", "C:\\x", "x\ny"]
)
def test_pointer_paths_with_hostile_spellings_are_refused(
    project: Stores, capsys: pytest.CaptureFixture[str], path: str
) -> None:
    result = _hostile_version(project)
    pointer = project.settings.root / "evil.loopline"
    version = result.version
    pointer.write_text(
        f"dataset: {version.dataset}\nversion: {version.version}\n"
        f"manifest: {version.manifest_hash}\npath: {path}\n"
    )
    code, _err = _checkout(capsys, str(pointer))
    assert code == 2


@pytest.mark.parametrize("version", ["٣", "³", "1" * 40])
def test_pointer_versions_are_plain_numbers(
    project: Stores, capsys: pytest.CaptureFixture[str], version: str
) -> None:
    result = _hostile_version(project)
    pointer = project.settings.root / "evil.loopline"
    pointer.write_text(
        f"dataset: payload\nversion: {version}\nmanifest: {result.version.manifest_hash}\n"
        "path: payload\n"
    )
    code, err = _checkout(capsys, str(pointer))
    assert code == 2 and "malformed version" in err


# -- --clean ------------------------------------------------------------------------------


def test_clean_removes_links_inside_the_folder_but_nothing_they_point_to(
    project: Stores, capsys: pytest.CaptureFixture[str], outside: Path
) -> None:
    folder = project.settings.root / "corpus"
    folder.mkdir()
    (folder / "a.txt").write_text("a v1")
    (folder / "b.txt").write_text("b v1")
    data.add(folder)
    (outside / "deep").mkdir()
    (outside / "deep" / "kept.txt").write_text("kept")
    (folder / "linked-folder").symlink_to(outside)
    (folder / "linked-file").symlink_to(outside / "victim.txt")
    (folder / "b.txt").unlink()
    (folder / "b.txt").symlink_to(outside / "victim.txt")  # a wanted name that is a link
    (folder / "local.txt").write_text("not in the version")

    code, err = _checkout(capsys, str(project.settings.root / "corpus.loopline"), "--clean")
    assert code == 0, err
    assert _tree(outside) == {"victim.txt": b"precious", "deep/kept.txt": b"kept"}
    assert not (folder / "linked-folder").exists() and not (folder / "linked-file").is_symlink()
    assert not (folder / "local.txt").exists()
    assert not (folder / "b.txt").is_symlink() and (folder / "b.txt").read_text() == "b v1"
    assert (outside / "victim.txt").read_text() == "precious"


def test_clean_of_a_folder_behind_a_link_deletes_nothing(
    project: Stores, capsys: pytest.CaptureFixture[str], outside: Path
) -> None:
    """The checked-out folder itself replaced by a link (`corpus -> /somewhere`)."""
    folder = project.settings.root / "corpus"
    folder.mkdir()
    (folder / "a.txt").write_text("a v1")
    data.add(folder)
    (folder / "a.txt").unlink()
    folder.rmdir()
    folder.symlink_to(outside)
    for target in (str(project.settings.root / "corpus.loopline"), "corpus@1"):
        code, err = _checkout(capsys, target, "--clean")
        assert code == 2 and "symbolic link" in err
        assert _tree(outside) == {"victim.txt": b"precious"}


# -- a version's source and its manifest ---------------------------------------------------


def _forged_version(project: Stores, files: dict[str, bytes], source: str) -> str:
    """Register a version whose manifest (or source) a hostile teammate wrote by hand."""
    entries = []
    for path, content in sorted(files.items()):
        blob = project.artifacts.put_bytes(content)
        entries.append({"path": path, "size": blob.size, "hash": blob.hash})
    body = {"format": "loopline-manifest-1", "layout": "folder", "files": entries}
    manifest = project.artifacts.put_bytes(json.dumps(body, separators=(",", ":")).encode())
    version, _ = project.metadata.datasets.add_version(
        "forged",
        manifest_hash=manifest.hash,
        author="mallory",
        file_count=len(entries),
        total_size=sum(len(c) for c in files.values()),
        source=source,
    )
    return version.ref


@pytest.mark.parametrize(
    "source", [".git", ".GIT/hooks", ".loopline", "../outside", "/etc", "a/../../x", "~", "%2e%2e"]
)
def test_hostile_version_source_is_refused(
    project: Stores, capsys: pytest.CaptureFixture[str], source: str
) -> None:
    _git_init(project.settings.root)
    ref = _forged_version(project, {"config": HOSTILE_CONFIG.encode()}, source)
    before = _tree(project.settings.root / ".git")
    code, _err = _checkout(capsys, ref, "--clean")
    assert code == 2
    assert _tree(project.settings.root / ".git") == before


def test_version_source_through_a_symlink_is_refused(
    project: Stores, capsys: pytest.CaptureFixture[str], outside: Path
) -> None:
    (project.settings.root / "data").symlink_to(outside)
    ref = _forged_version(project, {"victim.txt": b"overwritten"}, "data/forged")
    code, err = _checkout(capsys, ref, "--clean")
    assert code == 2 and "symbolic link" in err
    assert _tree(outside) == {"victim.txt": b"precious"}


@pytest.mark.parametrize(
    "entry", [".git/config", "sub/.git/config", "sub/.GIT/config", ".loopline/loopline.db"]
)
def test_manifest_entries_into_control_folders_are_refused(
    project: Stores, capsys: pytest.CaptureFixture[str], tmp_path: Path, entry: str
) -> None:
    ref = _forged_version(project, {"ok.txt": b"fine", entry: HOSTILE_CONFIG.encode()}, "forged")
    code, err = _checkout(capsys, ref)
    assert code == 2 and "control folder" in err
    assert not (project.settings.root / "forged").exists()  # nothing half-restored
    assert cli(["data", "get", ref, str(tmp_path / "copy")]) == 2
    assert not (tmp_path / "copy" / entry).exists()
    with pytest.raises(InvalidPath):
        data.load(ref)  # the verified cache copy under .loopline/cache goes the same way


@pytest.mark.parametrize("entry", ["~/x", "%2e%2e/x", "file:///etc/x", "s3://b/k", "a\\b"])
def test_manifest_entries_with_hostile_spellings_are_refused(
    project: Stores, capsys: pytest.CaptureFixture[str], entry: str
) -> None:
    ref = _forged_version(project, {entry: b"x"}, "forged")
    code, err = _checkout(capsys, ref)
    assert code == 2 and "invalid artifact path" in err
    assert not (project.settings.root / "forged").exists()


def test_gitignore_that_is_a_symlink_is_not_written_through(
    project: Stores, capsys: pytest.CaptureFixture[str], outside: Path
) -> None:
    (project.settings.root / "data").mkdir()
    credit = project.settings.root / "data" / "credit.csv"
    credit.write_text("id\n1\n")
    data.add(credit)
    gitignore = credit.parent / ".gitignore"
    gitignore.unlink()
    gitignore.symlink_to(outside / "victim.txt")
    code, err = _checkout(capsys, "credit.csv@1")
    assert code == 2 and "symbolic link" in err
    assert (outside / "victim.txt").read_text() == "precious"


def test_data_add_refuses_what_a_checkout_would_refuse(project: Stores) -> None:
    folder = project.settings.root / "repo"
    (folder / ".git").mkdir(parents=True)
    (folder / ".git" / "config").write_text(GIT_CONFIG)
    with pytest.raises(InvalidPath, match="control folder"):
        data.add(folder)
    tilde = project.settings.root / "lock"
    tilde.mkdir()
    (tilde / "~$report.docx").write_text("x")
    with pytest.raises(InvalidPath, match="'~'"):
        data.add(tilde)
    assert data.list_datasets() == []


# -- run artifacts -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "artifact_path",
    ["file:///etc/x", "file:/etc/x", "s3://bucket/k", "%2e%2e", "a/%2F", "~", "~/x"],
)
def test_artifact_paths_spelled_as_uris_are_refused(
    project: Stores, tmp_path: Path, artifact_path: str
) -> None:
    file = tmp_path / "f.txt"
    file.write_text("x")
    with ll.start_run() as run:
        with pytest.raises(InvalidPath):
            ll.log_artifact(file, artifact_path=artifact_path)
    assert [link.name for link in ll.list_artifacts(run.id) if "f.txt" in link.name] == []


def test_symlink_inside_a_logged_folder_is_refused(project: Stores, tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("root:x:0:0")
    plots = tmp_path / "plots"
    plots.mkdir()
    (plots / "roc.png").write_bytes(b"png")
    (plots / "passwd").symlink_to(secret)
    with ll.start_run() as run:
        with pytest.raises(InvalidPath, match="passwd is a symbolic link"):
            ll.log_artifact(plots)
        assert [link.name for link in ll.list_artifacts(run.id, "plots")] == []  # none stored
        assert sorted(ll.log_artifact(plots, follow_links=True)) == [
            "plots/passwd",
            "plots/roc.png",
        ]
    out = tmp_path / "out"
    ll.download_artifacts(run.id, "plots/passwd", out)
    assert (out / "passwd").read_text() == "root:x:0:0"
    assert not (out / "passwd").is_symlink()


def test_symlinked_folder_inside_a_logged_folder_is_refused(
    project: Stores, tmp_path: Path, outside: Path
) -> None:
    plots = tmp_path / "plots"
    plots.mkdir()
    (plots / "home").symlink_to(outside)
    (plots / "loop").symlink_to(plots)
    with ll.start_run():
        with pytest.raises(InvalidPath, match="symbolic link"):
            ll.log_artifact(plots)
        with pytest.raises(InvalidInput, match="loop"):
            ll.log_artifact(plots, follow_links=True)


def test_symlink_given_as_the_artifact_is_refused(project: Stores, tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("token")
    link = tmp_path / "model.txt"
    link.symlink_to(secret)
    dangling = tmp_path / "gone.txt"
    dangling.symlink_to(tmp_path / "nothing")
    with ll.start_run() as run:
        with pytest.raises(InvalidPath, match=r"model\.txt is a symbolic link"):
            ll.log_artifact(link)
        with pytest.raises(InvalidPath):
            ll.log_artifact(dangling)
        assert ll.log_artifact(link, follow_links=True) == ["model.txt"]  # the name given
    assert [link.name for link in ll.list_artifacts(run.id, "model.txt")] == ["model.txt"]


def test_logged_folder_holding_a_dot_git_folder_is_refused(project: Stores, tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    (repo / ".git").mkdir(parents=True)
    (repo / ".git" / "config").write_text(HOSTILE_CONFIG)
    with ll.start_run():
        with pytest.raises(InvalidPath, match="control folder"):
            ll.log_artifact(repo)


def test_artifacts_get_refuses_stored_names_into_control_folders(
    project: Stores, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A run row written by an older version (or by hand) naming `.git/config`."""
    with ll.start_run() as run:
        pass
    blob = project.artifacts.put_bytes(HOSTILE_CONFIG.encode())
    project.metadata.runs.add_links(
        run.id, Direction.OUTPUT, LinkKind.ARTIFACT, [("bundle/.git/config", blob.hash, blob.size)]
    )
    out = tmp_path / "out"
    assert cli(["artifacts", "get", run.id, "bundle", str(out)]) == 2
    err = capsys.readouterr().err
    assert "control folder" in err and "Traceback" not in err
    assert not (out / "bundle" / ".git").exists()


def test_artifacts_get_does_not_write_through_a_link_in_the_destination(
    project: Stores, tmp_path: Path, outside: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plots = tmp_path / "plots"
    plots.mkdir()
    (plots / "victim.txt").write_text("from the run")
    with ll.start_run() as run:
        ll.log_artifact(plots)
    out = tmp_path / "out"
    out.mkdir()
    (out / "plots").symlink_to(outside)
    assert cli(["artifacts", "get", run.id, "plots", str(out)]) == 2
    assert "symbolic link" in capsys.readouterr().err
    assert (outside / "victim.txt").read_text() == "precious"


# -- the resolver itself -------------------------------------------------------------------


@pytest.mark.parametrize(
    "logical",
    [
        ".git",
        "a/.git/b",
        ".GIT",
        ".Git/config",
        ".git.",
        ".git ",
        "GIT~1",
        ".g\u200cit",
        ".loopline",
    ],
)
def test_resolver_refuses_control_folders_in_any_spelling(tmp_path: Path, logical: str) -> None:
    with pytest.raises(InvalidPath, match="control folder"):
        resolve_under(tmp_path, logical)


def test_resolver_refuses_a_link_at_any_depth(tmp_path: Path, outside: Path) -> None:
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "a" / "b" / "c").symlink_to(outside)
    (tmp_path / "a" / "file").symlink_to(outside / "victim.txt")
    for logical in ("a/b/c", "a/b/c/d/e", "a/file"):
        with pytest.raises(InvalidPath, match="symbolic link"):
            resolve_under(tmp_path, logical)
    assert resolve_under(tmp_path, "a/b/new/file") == tmp_path.resolve() / "a/b/new/file"


def test_resolver_accepts_a_root_reached_through_a_link(tmp_path: Path) -> None:
    """The root is the caller's choice (macOS's /tmp is a link); only below it counts."""
    (tmp_path / "real").mkdir()
    (tmp_path / "alias").symlink_to(tmp_path / "real")
    assert resolve_under(tmp_path / "alias", "x/y") == (tmp_path / "real" / "x" / "y").resolve()


@pytest.mark.parametrize(
    "logical",
    [
        "file:///etc/x",
        "file:/etc/x",
        "s3://bucket/key",
        "a/http://x",
        "./s3://b",
        "%2e%2e/x",
        "a%2Fb",
        "%00",
        "~",
        "~root/x",
        "a/~b",
        "\ud800",
        "a\x85b",
        "a\u2028b",
        "x" * 256,
        "a/" * 2100,
    ],
)
def test_logical_paths_with_uri_spellings_are_refused(logical: str) -> None:
    with pytest.raises(InvalidPath):
        validate_logical_path(logical)


@pytest.mark.parametrize(
    "logical", ["epoch:1/plot.png", "ab:c:d", "file:", "x~y", "100%.csv", "a.git", ".gitignore"]
)
def test_logical_paths_that_only_look_alike_still_pass(logical: str) -> None:
    assert validate_logical_path(logical) == logical


def test_not_found_is_still_not_found(project: Stores, capsys: pytest.CaptureFixture[str]) -> None:
    code, err = _checkout(capsys, str(project.settings.root / "missing.loopline"))
    assert code == NotFound.exit_code and "no pointer file" in err
