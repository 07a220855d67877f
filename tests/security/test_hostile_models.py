"""Hostile model files against every loader.

A model package is data someone else wrote: a teammate, an older loopline, a hand edit.
Each case below turns a good package into a hostile one (skops globals that run code,
pickles, ONNX external data, links, edited manifests) and every loader must refuse it
with its error class before anything in it runs or any file outside it is read:

- `loopline.packaging.load_model(folder)`, the folder loader (Ray batch workers too);
- `ll.models.load(ref)`, through the artifact store and the local model cache;
- `loopline.serving.runtime.load_served(ref)`, what `serve` and `deploy serve` run;
- `loopline.packaging.export.onnx_session(bytes)` and `log_model` for raw ONNX.

A case that edits a model file rewrites the manifest's hashes to match, as an attacker
who knows the format would: the hash check alone must not be what stops it.
"""

from __future__ import annotations

import os
import pickle
import subprocess
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import blake3
import numpy as np
import onnx
import pandas as pd
import pytest
import yaml
from onnx import TensorProto, helper
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import FunctionTransformer

import loopline as ll
from loopline.errors import CorruptedData, InvalidInput, LooplineError, UnsafeModel
from loopline.models._packages import store_package
from loopline.models.logging import register_package
from loopline.packaging import MANIFEST_NAME, load_model, save_model
from loopline.packaging._manifest import hash_file
from loopline.packaging._onnx import external_tensors
from loopline.packaging.export import onnx_session
from loopline.project import Stores
from loopline.serving.runtime import load_served

WIDTH = 16  # bytes the leaking ONNX graphs read from the external file
COLUMNS = [f"f{i}" for i in range(WIDTH)]


# ---------------------------------------------------------------- ONNX graphs that leak


def _external(name: str, location: str) -> TensorProto:
    """A uint8 tensor whose WIDTH bytes onnxruntime reads from `location`."""
    tensor = TensorProto(name=name, data_type=TensorProto.UINT8, dims=[WIDTH])
    tensor.data_location = TensorProto.EXTERNAL
    for key, value in (("location", location), ("offset", "0"), ("length", str(WIDTH))):
        tensor.external_data.add(key=key, value=value)
    return tensor


def _graph_model(nodes: list[Any], **graph: Any) -> onnx.ModelProto:
    """y = x + float(W): a prediction that hands back W's bytes for a row of zeros."""
    functions = graph.pop("functions", [])
    tail = [
        helper.make_node("Cast", ["W"], ["Wf"], to=TensorProto.FLOAT),
        helper.make_node("Add", ["x", "Wf"], ["y"]),
    ]
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, WIDTH])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, WIDTH])
    opsets = [helper.make_opsetid("", 17)] + [helper.make_opsetid("leak", 1)] * bool(functions)
    return helper.make_model(
        helper.make_graph([*nodes, *tail], "g", [x], [y], **graph),
        opset_imports=opsets,
        functions=functions,
        ir_version=8,
    )


def leaking_onnx(where: str, location: str = "loopline.toml") -> onnx.ModelProto:
    """A model whose tensor W (placed `where`) is read from `location`."""
    weight = _external("W", location)
    if where == "initializer":
        return _graph_model([], initializer=[weight])
    if where == "constant":
        return _graph_model([helper.make_node("Constant", [], ["W"], value=weight)])
    if where == "sparse_initializer":
        indices = helper.make_tensor("i", TensorProto.INT64, [WIDTH], list(range(WIDTH)))
        sparse = helper.make_sparse_tensor(weight, indices, [WIDTH])
        return _graph_model([], sparse_initializer=[sparse])
    if where == "if_branch":
        out = helper.make_tensor_value_info("W", TensorProto.UINT8, [WIDTH])
        zeros = helper.make_tensor("W", TensorProto.UINT8, [WIDTH], [0] * WIDTH)
        branch = {
            "then_branch": helper.make_graph(
                [helper.make_node("Constant", [], ["W"], value=weight)], "then", [], [out]
            ),
            "else_branch": helper.make_graph(
                [helper.make_node("Constant", [], ["W"], value=zeros)], "else", [], [out]
            ),
        }
        true = helper.make_tensor("c", TensorProto.BOOL, [], [True])
        nodes = [
            helper.make_node("Constant", [], ["c"], value=true),
            helper.make_node("If", ["c"], ["W"], **branch),
        ]
        return _graph_model(nodes)
    if where == "loop_body":
        body = helper.make_graph(
            [
                helper.make_node("Identity", ["cond"], ["cond_out"]),
                helper.make_node("Constant", [], ["W_scan"], value=weight),
            ],
            "body",
            [
                helper.make_tensor_value_info("i", TensorProto.INT64, []),
                helper.make_tensor_value_info("cond", TensorProto.BOOL, []),
            ],
            [
                helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
                helper.make_tensor_value_info("W_scan", TensorProto.UINT8, [WIDTH]),
            ],
        )
        once = helper.make_tensor("n", TensorProto.INT64, [], [1])
        nodes = [
            helper.make_node("Constant", [], ["n"], value=once),
            helper.make_node("Loop", ["n", ""], ["W"], body=body),
        ]
        return _graph_model(nodes)
    assert where == "function"
    function = helper.make_function(
        "leak",
        "Leak",
        [],
        ["W"],
        [helper.make_node("Constant", [], ["W"], value=weight)],
        [helper.make_opsetid("", 17)],
    )
    return _graph_model([helper.make_node("Leak", [], ["W"], domain="leak")], functions=[function])


def clean_onnx() -> onnx.ModelProto:
    """The same graph with W stored inside the model: it adds zeros."""
    zeros = helper.make_tensor("W", TensorProto.UINT8, [WIDTH], [0] * WIDTH)
    return _graph_model([], initializer=[zeros])


PLACES = ["initializer", "constant", "sparse_initializer", "if_branch", "loop_body", "function"]
LEAKS_IN_ONNXRUNTIME = ["initializer", "constant", "sparse_initializer", "if_branch", "function"]


def onnxruntime_output(model: onnx.ModelProto) -> bytes:
    import onnxruntime

    session = onnxruntime.InferenceSession(
        model.SerializeToString(), providers=["CPUExecutionProvider"]
    )
    (out,) = session.run(None, {"x": np.zeros((1, WIDTH), np.float32)})
    return bytes(np.asarray(out).astype(np.uint8)[0])


def example() -> pd.DataFrame:
    return pd.DataFrame(np.zeros((2, WIDTH), np.float32), columns=COLUMNS)


# ---------------------------------------------------------------- hostile packages


class Tripwire:
    """Unpickling this creates the folder `path`: proof that a pickle ran."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.mkdir, (self.path,))


def _manifest(folder: Path) -> dict[str, Any]:
    body: dict[str, Any] = yaml.safe_load((folder / MANIFEST_NAME).read_text())
    return body


def _write_manifest(folder: Path, body: dict[str, Any]) -> None:
    (folder / MANIFEST_NAME).write_text(yaml.safe_dump(body), encoding="utf-8")


def _rehash(folder: Path, **changes: Any) -> None:
    """Rewrite the manifest's hashes to the files now there (what an attacker would do)."""
    body = _manifest(folder)
    body.update(changes)
    for name in body["files"]:
        path = folder / name
        if path.is_file():
            entry = hash_file(path)
            body["files"][name] = {"blake3": entry.blake3, "size": entry.size}
    _write_manifest(folder, body)


def _list_file(folder: Path, name: str, content: bytes | None = None) -> None:
    """Add `name` to the manifest, hashed as `content` (default: the file's own bytes)."""
    data = (folder / name).read_bytes() if content is None else content
    body = _manifest(folder)
    body["files"][name] = {"blake3": blake3.blake3(data).hexdigest(), "size": len(data)}
    _write_manifest(folder, body)


def skops_global(function: Callable[..., Any]) -> Callable[[Path, Path], None]:
    """model.skops holding a FunctionTransformer that would call `function`."""

    def build(folder: Path, scratch: Path) -> None:
        import skops.io

        (folder / "model.skops").write_bytes(skops.io.dumps(FunctionTransformer(func=function)))
        _rehash(folder)

    return build


def pickle_package(*, flag: bool) -> Callable[[Path, Path], None]:
    def build(folder: Path, scratch: Path) -> None:
        (folder / "model.skops").unlink()
        (folder / "model.pkl").write_bytes(pickle.dumps(Tripwire(scratch / "pickle-ran")))
        body = _manifest(folder)
        body["files"] = {"model.pkl": body["files"]["model.skops"]}
        _write_manifest(folder, body)
        _rehash(folder, flavor="pyfunc", pickle=flag)

    return build


def pickle_as_skops(folder: Path, scratch: Path) -> None:
    (folder / "model.skops").write_bytes(pickle.dumps(Tripwire(scratch / "pickle-ran")))
    _rehash(folder)


def onnx_external(location: str) -> Callable[[Path, Path], None]:
    def build(folder: Path, scratch: Path) -> None:
        (folder / "model.onnx").write_bytes(
            leaking_onnx("initializer", location).SerializeToString()
        )
        if location == "weights.bin":  # the external file is in the package, hashed
            (folder / "weights.bin").write_bytes(b"package weights!")
            _list_file(folder, "weights.bin")
        _rehash(folder)

    return build


def edit_manifest(change: Callable[[dict[str, Any]], None]) -> Callable[[Path, Path], None]:
    def build(folder: Path, scratch: Path) -> None:
        body = _manifest(folder)
        change(body)
        _write_manifest(folder, body)

    return build


def _flip_hash(body: dict[str, Any]) -> None:
    entry = body["files"]["model.skops"]
    entry["blake3"] = ("0" if entry["blake3"][0] != "0" else "1") + entry["blake3"][1:]


def _listed(name: str) -> Callable[[dict[str, Any]], None]:
    def change(body: dict[str, Any]) -> None:
        body["files"][name] = {"blake3": "a" * 64, "size": 3}

    return change


def link_to_copy(name: str) -> Callable[[Path, Path], None]:
    """`name` replaced by a link to an identical copy outside: same bytes, same hash."""

    def build(folder: Path, scratch: Path) -> None:
        outside = scratch / f"outside-{name}"
        outside.write_bytes((folder / name).read_bytes())
        (folder / name).unlink()
        (folder / name).symlink_to(outside)

    return build


def linked_folder_on_the_way(folder: Path, scratch: Path) -> None:
    """A listed file under `data/`, where `data` is a link to a folder outside."""
    outside = scratch / "outside-data"
    outside.mkdir()
    (outside / "extra.bin").write_bytes(b"outside bytes")
    (folder / "data").symlink_to(outside, target_is_directory=True)
    _list_file(folder, "data/extra.bin", b"outside bytes")


@dataclass(frozen=True)
class Case:
    build: Callable[[Path, Path], None]
    error: type[LooplineError]
    match: str
    base: str = "sklearn"  # the flavor of the good package the case starts from
    stored: bool = True  # also through the artifact store (links exist only in folders)


CASES = {
    "skops_os_system": Case(skops_global(os.system), UnsafeModel, "system"),
    "skops_builtins_eval": Case(skops_global(eval), UnsafeModel, "builtins.eval"),
    "skops_builtins_exec": Case(skops_global(exec), UnsafeModel, "builtins.exec"),
    "skops_subprocess_popen": Case(skops_global(subprocess.Popen), UnsafeModel, "Popen"),
    "pickle_without_allow_pickle": Case(pickle_package(flag=True), UnsafeModel, "pickle"),
    "pickle_with_its_flag_cleared": Case(pickle_package(flag=False), UnsafeModel, "pickle"),
    "pickle_posing_as_skops": Case(pickle_as_skops, InvalidInput, "not a readable skops"),
    "onnx_external_data_in_the_working_dir": Case(
        onnx_external("loopline.toml"), UnsafeModel, "external data", base="onnx"
    ),
    "onnx_external_data_in_the_database": Case(
        onnx_external(".loopline/loopline.db"), UnsafeModel, "external data", base="onnx"
    ),
    "onnx_external_data_listed_in_the_manifest": Case(
        onnx_external("weights.bin"), UnsafeModel, "external data", base="onnx"
    ),
    "manifest_hash_mismatch": Case(edit_manifest(_flip_hash), CorruptedData, "does not match"),
    "manifest_lists_a_missing_file": Case(
        edit_manifest(_listed("extra.bin")), CorruptedData, "missing"
    ),
    "manifest_path_with_dotdot": Case(
        edit_manifest(_listed("../loopline.toml")), InvalidInput, "invalid file name"
    ),
    "manifest_absolute_path": Case(
        edit_manifest(_listed("/etc/passwd")), InvalidInput, "invalid file name"
    ),
    "manifest_path_into_dot_git": Case(
        edit_manifest(_listed(".git/config")), InvalidInput, "invalid file name"
    ),
    "manifest_path_with_a_newline": Case(
        edit_manifest(_listed("model.skops\n")), InvalidInput, "invalid file name"
    ),
    # the rules of every other path from data (loopline.pathnames), not a looser copy
    "manifest_path_spelled_as_a_uri": Case(
        edit_manifest(_listed("file:///etc/passwd")), InvalidInput, "invalid file name"
    ),
    "manifest_path_percent_encoded": Case(
        edit_manifest(_listed("%2e%2e/loopline.toml")), InvalidInput, "invalid file name"
    ),
    "manifest_path_into_a_home_folder": Case(
        edit_manifest(_listed("~/.ssh/id_rsa")), InvalidInput, "invalid file name"
    ),
    "manifest_path_into_dot_git_spelled_for_windows": Case(
        edit_manifest(_listed(".GIT./config")), InvalidInput, "invalid file name"
    ),
    "manifest_path_not_in_normal_form": Case(
        edit_manifest(_listed("./extra//model.bin")), InvalidInput, "invalid file name"
    ),
    "symlink_model_file": Case(
        link_to_copy("model.skops"), CorruptedData, "symbolic link", stored=False
    ),
    "symlink_manifest": Case(
        link_to_copy(MANIFEST_NAME), CorruptedData, "symbolic link", stored=False
    ),
    "symlinked_folder_inside": Case(
        linked_folder_on_the_way, CorruptedData, "symbolic link", stored=False
    ),
}
STORED = [name for name, case in CASES.items() if case.stored]


def good_package(folder: Path, flavor: str) -> Path:
    if flavor == "onnx":
        save_model(clean_onnx().SerializeToString(), folder, flavor="onnx", input_example=example())
    else:
        frame = example().assign(f0=[0.0, 1.0])
        model = LogisticRegression().fit(frame, [0, 1])
        save_model(model, folder, input_example=frame)
    return folder


def hostile_package(name: str, where: Path) -> Path:
    case = CASES[name]
    scratch = where / "scratch"
    scratch.mkdir()
    folder = good_package(where / "package", case.base)
    case.build(folder, scratch)
    return folder


def register(folder: Path, opened: Stores, name: str = "hostile") -> str:
    """Store a package folder as it is and register it: what an older loopline or a
    teammate with write access to the store could have put there."""
    package = store_package(folder, opened)
    return register_package(
        name, package.hash, _manifest(folder), size=package.size, opened=opened
    ).ref


@pytest.fixture
def secret_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working directory holding the files a server should never hand out."""
    work = tmp_path / "work"
    (work / ".loopline").mkdir(parents=True)
    (work / "loopline.toml").write_text('store_uri = "postgresql://admin:hunter2@db/x"\n')
    (work / ".loopline" / "loopline.db").write_bytes(b"SQLite format 3\x00 secret rows")
    monkeypatch.chdir(work)
    return work


def _secrets(root: Path) -> list[bytes]:
    return [
        (root / "loopline.toml").read_bytes()[:WIDTH],
        (root / ".loopline" / "loopline.db").read_bytes()[:WIDTH],
    ]


# ---------------------------------------------------------------- every loader


@pytest.mark.parametrize("name", list(CASES))
def test_the_folder_loader_refuses_hostile_packages(
    name: str, tmp_path: Path, secret_dir: Path
) -> None:
    folder = hostile_package(name, tmp_path)
    case = CASES[name]
    with pytest.raises(case.error, match=case.match):
        load_model(folder)
    assert not (tmp_path / "scratch" / "pickle-ran").exists()


@pytest.mark.parametrize("name", STORED)
def test_the_registry_loader_refuses_hostile_packages(
    name: str, tmp_path: Path, project: Stores
) -> None:
    ref = register(hostile_package(name, tmp_path), project)
    case = CASES[name]
    with pytest.raises(case.error, match=case.match):
        ll.models.load(ref)
    assert not (tmp_path / "scratch" / "pickle-ran").exists()


@pytest.mark.parametrize("name", STORED)
def test_the_serving_loader_refuses_hostile_packages(
    name: str, tmp_path: Path, project: Stores
) -> None:
    ref = register(hostile_package(name, tmp_path), project)
    case = CASES[name]
    with pytest.raises(case.error, match=case.match):
        load_served(ref, warm_up=False)
    assert not (tmp_path / "scratch" / "pickle-ran").exists()


def test_allow_pickle_is_what_runs_a_pickle(tmp_path: Path) -> None:
    """The pickle case is hostile because of the pickle, not a broken package."""
    folder = hostile_package("pickle_without_allow_pickle", tmp_path)
    with pytest.raises(InvalidInput):  # None has no predict, but the pickle ran
        load_model(folder, allow_pickle=True)
    assert (tmp_path / "scratch" / "pickle-ran").exists()


def test_a_fifo_in_a_package_is_refused_without_blocking(tmp_path: Path) -> None:
    folder = good_package(tmp_path / "package", "sklearn")
    os.mkfifo(folder / "extra.bin")
    _list_file(folder, "extra.bin", b"abc")
    outcome: list[BaseException] = []

    def load() -> None:
        try:
            load_model(folder)
        except BaseException as exc:
            outcome.append(exc)

    thread = threading.Thread(target=load, daemon=True)
    thread.start()
    thread.join(20)
    if thread.is_alive():  # blocked opening the FIFO: release it, then fail
        os.close(os.open(folder / "extra.bin", os.O_WRONLY | os.O_NONBLOCK))
        pytest.fail("loading blocked on a FIFO inside the package")
    assert len(outcome) == 1 and isinstance(outcome[0], CorruptedData), outcome


# ---------------------------------------------------------------- ONNX external data


@pytest.mark.parametrize("where", LEAKS_IN_ONNXRUNTIME)
def test_the_crafted_onnx_models_do_leak_under_plain_onnxruntime(
    where: str, secret_dir: Path
) -> None:
    """The control: without loopline's check these graphs hand out loopline.toml."""
    assert onnxruntime_output(leaking_onnx(where)) == _secrets(secret_dir)[0]


@pytest.mark.parametrize("where", PLACES)
def test_onnx_external_data_is_found_anywhere_in_the_graph(where: str) -> None:
    assert external_tensors(leaking_onnx(where)) == ["W"]
    assert external_tensors(clean_onnx()) == []


@pytest.mark.parametrize("where", PLACES)
def test_onnx_external_data_reads_no_server_files(
    where: str, tmp_path: Path, secret_dir: Path
) -> None:
    """Defect 2: `location=loopline.toml` came back in the predictions. Packaging refuses
    it, a package edited to hold it is refused at load, and so are the raw bytes."""
    leaking = leaking_onnx(where).SerializeToString()
    with pytest.raises(InvalidInput, match=r"tensor 'W'.*external data"):
        save_model(leaking, tmp_path / "saved", flavor="onnx", input_example=example())
    assert not (tmp_path / "saved").exists()

    folder = good_package(tmp_path / "edited", "onnx")
    assert load_model(folder).predict(example()).tolist() == [[0.0] * WIDTH] * 2
    (folder / "model.onnx").write_bytes(leaking)
    _rehash(folder)
    with pytest.raises(UnsafeModel, match="external data for tensor 'W'"):
        load_model(folder)
    with pytest.raises(InvalidInput, match="external data"):
        onnx_session(leaking)


def test_log_model_refuses_onnx_external_data_and_registers_nothing(
    project: Stores, tmp_path: Path
) -> None:
    for where in PLACES:
        with pytest.raises(InvalidInput, match="tensor 'W'"):
            ll.models.log_model(leaking_onnx(where), "leak", input_example=example())
    assert project.metadata.models.list_models() == []
    # a package edited after logging, registered behind log_model's back
    good = ll.models.log_model(clean_onnx(), "leak", input_example=example())
    assert ll.models.load(good.ref).predict(example()).tolist() == [[0.0] * WIDTH] * 2
    folder = good_package(tmp_path / "edited", "onnx")
    (folder / "model.onnx").write_bytes(leaking_onnx("initializer").SerializeToString())
    _rehash(folder)
    ref = register(folder, project, name="leak")
    with pytest.raises(UnsafeModel, match="external data"):
        ll.models.load(ref)
    with pytest.raises(UnsafeModel, match="external data"):
        load_served(ref, warm_up=False)
