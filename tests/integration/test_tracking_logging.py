"""log_text, log_dict, log_figure, log_table and log_input on a real project, with the bad
inputs each must refuse before anything is stored; directly and once more through the
platform server (`through_the_server_too`, fixtures/remote.py). SQLite only directly
(tests/conftest.py: what these store is checked on both back-ends elsewhere).

Neither matplotlib nor plotly is a dependency of loopline: the figure tests use small
classes with the methods log_figure calls (`savefig` as matplotlib's Figure has it,
`to_html`/`to_json`/`to_image` as plotly's), and the real libraries when installed.
"""

from __future__ import annotations

import io
import json
import math
import os
from datetime import timedelta
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml

import loopline as ll
from fixtures.remote import through_the_server_too
from loopline.cli.app import run as cli
from loopline.errors import InvalidInput, InvalidPath
from loopline.maintenance.gc import gc
from loopline.tracking import Stores, list_inputs

pytestmark = through_the_server_too


def _read(stores: Stores, run_id: str, path: str) -> bytes:
    [link] = [a for a in ll.list_artifacts(run_id) if a.name == path]
    return stores.artifacts.get_bytes(link.ref)


def _user_paths(run_id: str) -> list[str]:
    return sorted(a.name for a in ll.list_artifacts(run_id) if not a.name.startswith("_loopline"))


class SavefigFigure:
    """What log_figure needs of a matplotlib Figure: savefig(file, format=..., **kw)."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    def savefig(self, fname: Any, *, format: str, **kwargs: Any) -> None:
        self.calls.append({"format": format, **kwargs})
        if format == "tiff":
            raise ValueError("Format 'tiff' is not supported (supported formats: png, svg)")
        fname.write(f"<{format} dpi={kwargs.get('dpi', 100)}>".encode())


class PlotlyLikeFigure:
    """What log_figure needs of a plotly Figure: to_html, to_json, to_image."""

    def to_html(self, include_plotlyjs: Any = True, full_html: bool = True, **_: Any) -> str:
        return f"<html><script src='{include_plotlyjs}'></script>plot ü</html>"

    def write_html(self, file: Any, **kwargs: Any) -> None:
        file.write(self.to_html(**kwargs))

    def to_json(self, **_: Any) -> str:
        return json.dumps({"data": [{"type": "scatter", "x": [1, 2]}]})

    def to_image(self, format: str, **_: Any) -> bytes:
        raise ValueError('Image export using the "kaleido" engine requires the kaleido package')


# -- log_text ------------------------------------------------------------------------------


def test_log_text_stores_the_text_as_utf8(project: Stores) -> None:
    with ll.start_run() as run:
        assert ll.log_text("héllo\nwörld", "notes/readme.txt") == "notes/readme.txt"
        assert run.log_text("second", "b.md") == "b.md"
    assert _read(project, run.id, "notes/readme.txt").decode() == "héllo\nwörld"
    assert _read(project, run.id, "b.md") == b"second"


@pytest.mark.parametrize("text", [b"bytes", 3, None, ["a"]])
def test_log_text_refuses_what_is_not_a_str(project: Stores, text: object) -> None:
    with ll.start_run() as run:
        with pytest.raises(InvalidInput, match="log_text takes a str"):
            ll.log_text(text, "a.txt")  # type: ignore[arg-type]
    assert _user_paths(run.id) == []


def test_log_text_refuses_a_lone_surrogate(project: Stores) -> None:
    with ll.start_run() as run, pytest.raises(InvalidInput, match="lone surrogate"):
        ll.log_text("a\ud800b", "a.txt")
    assert _user_paths(run.id) == []


def test_logging_without_an_active_run_is_refused(project: Stores) -> None:
    with pytest.raises(InvalidInput, match="no active run"):
        ll.log_text("x", "a.txt")
    with pytest.raises(InvalidInput, match="no active run"):
        ll.log_input(pd.DataFrame({"a": [1]}))


# -- hostile artifact names, for every function that takes one ---------------------------

HOSTILE = [
    "../x",
    "a/../../x",
    "file:///x",
    "s3://bucket/x",
    ".git/x",
    "a/.git/config",
    ".loopline/x",
    "a\nb",
    "a\x00b",
    "/etc/x",
    "~/x",
    "%2e%2e/x",
    "a\\b",
]


def _log_each(name: str) -> list[tuple[str, Any]]:
    """Each logging call with `name` given the extension it needs."""
    return [
        ("log_text", lambda: ll.log_text("x", name + ".txt")),
        ("log_dict", lambda: ll.log_dict({"a": 1}, name + ".json")),
        ("log_figure", lambda: ll.log_figure(SavefigFigure(), name + ".png")),
        ("log_table", lambda: ll.log_table({"a": [1]}, name + ".parquet")),
    ]


@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_artifact_file_is_refused_and_nothing_stored(project: Stores, name: str) -> None:
    with ll.start_run() as run:
        for function, call in _log_each(name):
            with pytest.raises(InvalidPath):
                call()
            assert _user_paths(run.id) == [], function


@pytest.mark.parametrize("name", ["", ".", "./", "//"])
def test_artifact_file_that_names_no_file_is_refused(project: Stores, name: str) -> None:
    with ll.start_run() as run, pytest.raises(InvalidPath):
        ll.log_text("x", name)
    assert _user_paths(run.id) == []


@pytest.mark.parametrize("name", [None, 7, b"a.txt", ["a.txt"]])
def test_artifact_file_that_is_not_a_string_is_refused(project: Stores, name: object) -> None:
    with ll.start_run() as run:
        for function in (ll.log_text, ll.log_dict):
            with pytest.raises(InvalidPath, match="must be a string"):
                function("x" if function is ll.log_text else {}, name)  # type: ignore[operator]
    assert _user_paths(run.id) == []


def test_nothing_is_written_into_the_working_directory(project: Stores) -> None:
    before = sorted(os.listdir("."))
    with ll.start_run():
        ll.log_text("x", "a.txt")
        ll.log_dict({"a": 1}, "a.yaml")
        ll.log_figure(SavefigFigure(), "a.png")
        ll.log_figure(PlotlyLikeFigure(), "a.html")
        ll.log_table(pd.DataFrame({"a": [1.0]}), "a.parquet")
        ll.log_input(pd.DataFrame({"a": [1.0]}))
    assert sorted(os.listdir(".")) == before


# -- log_dict ------------------------------------------------------------------------------


def test_log_dict_writes_json_or_yaml_by_extension(project: Stores) -> None:
    config = {"model": "rf", "depth": 6, "layers": [1, 2], "nested": {"lr": 0.1, "x": None}}
    with ll.start_run() as run:
        ll.log_dict(config, "config.json")
        ll.log_dict(config, "config.yaml")
        run.log_dict(config, "sub/config.yml")
    assert json.loads(_read(project, run.id, "config.json")) == config
    assert yaml.safe_load(_read(project, run.id, "config.yaml")) == config
    assert yaml.safe_load(_read(project, run.id, "sub/config.yml")) == config


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -math.inf])
def test_log_dict_refuses_nan_and_inf_in_json(project: Stores, value: float) -> None:
    with ll.start_run() as run:
        with pytest.raises(InvalidInput, match=r"cannot write 'm\.json'"):
            ll.log_dict({"metrics": {"auc": value}}, "m.json")
        ll.log_dict({"auc": value}, "m.yaml")  # YAML has .nan and .inf
    assert _user_paths(run.id) == ["m.yaml"]
    loaded = yaml.safe_load(_read(project, run.id, "m.yaml"))["auc"]
    assert (math.isnan(loaded) and math.isnan(value)) or loaded == value


@pytest.mark.parametrize(
    ("dictionary", "message"),
    [
        ([1, 2], "takes a dict"),
        ("a=1", "takes a dict"),
        (None, "takes a dict"),
        ({"a": object()}, "cannot be written as JSON"),
        ({"a": {1, 2}}, "cannot be written as JSON"),
        ({"a": np.int64(3)}, "cannot be written as JSON"),
    ],
)
def test_log_dict_refuses_what_json_cannot_hold(
    project: Stores, dictionary: object, message: str
) -> None:
    with ll.start_run() as run, pytest.raises(InvalidInput, match=message):
        ll.log_dict(dictionary, "a.json")  # type: ignore[arg-type]
    assert _user_paths(run.id) == []


def test_log_dict_refuses_what_yaml_cannot_hold(project: Stores) -> None:
    with ll.start_run() as run, pytest.raises(InvalidInput, match="cannot be written as YAML"):
        ll.log_dict({"a": object()}, "a.yaml")
    assert _user_paths(run.id) == []


def test_log_dict_refuses_a_circular_dict(project: Stores) -> None:
    looped: dict[str, Any] = {}
    looped["self"] = looped
    with ll.start_run(), pytest.raises(InvalidInput, match="ircular"):
        ll.log_dict(looped, "a.json")


@pytest.mark.parametrize("name", ["config.txt", "config", "config.json.bak", "config.parquet"])
def test_log_dict_refuses_an_extension_that_is_neither_json_nor_yaml(
    project: Stores, name: str
) -> None:
    with ll.start_run(), pytest.raises(InvalidInput, match="JSON or YAML"):
        ll.log_dict({"a": 1}, name)


# -- log_figure ----------------------------------------------------------------------------


def test_log_figure_saves_a_matplotlib_figure_in_the_extensions_format(project: Stores) -> None:
    figure = SavefigFigure()
    with ll.start_run() as run:
        ll.log_figure(figure, "plots/roc.png")
        run.log_figure(figure, "plots/roc.SVG", save_kwargs={"dpi": 300})
    assert [call["format"] for call in figure.calls] == ["png", "svg"]
    assert _read(project, run.id, "plots/roc.png") == b"<png dpi=100>"
    assert _read(project, run.id, "plots/roc.SVG") == b"<svg dpi=300>"


def test_log_figure_saves_a_plotly_figure_as_html_or_json(project: Stores) -> None:
    with ll.start_run() as run:
        ll.log_figure(PlotlyLikeFigure(), "plots/scatter.html")
        ll.log_figure(PlotlyLikeFigure(), "offline.html", save_kwargs={"include_plotlyjs": True})
        ll.log_figure(PlotlyLikeFigure(), "plots/scatter.json")
    assert "src='cdn'" in _read(project, run.id, "plots/scatter.html").decode()
    assert "src='True'" in _read(project, run.id, "offline.html").decode()
    assert json.loads(_read(project, run.id, "plots/scatter.json"))["data"][0]["x"] == [1, 2]


def test_log_figure_plotly_image_without_kaleido_is_a_clear_error(project: Stores) -> None:
    with ll.start_run() as run, pytest.raises(InvalidInput, match="kaleido"):
        ll.log_figure(PlotlyLikeFigure(), "scatter.png")
    assert _user_paths(run.id) == []


@pytest.mark.parametrize(
    ("figure", "name"),
    [
        (SavefigFigure(), "roc.html"),  # matplotlib cannot write HTML
        (SavefigFigure(), "roc.txt"),
        (SavefigFigure(), "roc"),
        (PlotlyLikeFigure(), "scatter.eps"),
        (PlotlyLikeFigure(), "scatter"),
    ],
)
def test_log_figure_unknown_extension_is_invalid_input(
    project: Stores, figure: object, name: str
) -> None:
    with ll.start_run() as run, pytest.raises(InvalidInput, match="cannot write"):
        ll.log_figure(figure, name)
    assert _user_paths(run.id) == []


@pytest.mark.parametrize("figure", [None, "plot.png", b"\x89PNG", {"data": []}, io.BytesIO()])
def test_log_figure_refuses_what_is_not_a_figure(project: Stores, figure: object) -> None:
    with ll.start_run(), pytest.raises(InvalidInput, match="matplotlib or plotly Figure"):
        ll.log_figure(figure, "a.png")


@pytest.mark.parametrize(
    ("save_kwargs", "message"),
    [
        ({"format": "svg"}, "extension picks the format"),
        ({"fname": "elsewhere.png"}, "extension picks the format"),
        ("dpi=300", "must be a dict"),
        ({1: 2}, "must be a dict"),
        ({"no_such_option": 1}, "could not write"),
    ],
)
def test_log_figure_refuses_bad_save_kwargs(
    project: Stores, save_kwargs: Any, message: str
) -> None:
    class Strict(SavefigFigure):
        def savefig(self, fname: Any, *, format: str, dpi: int = 100) -> None:
            fname.write(b"ok")

    with ll.start_run() as run, pytest.raises(InvalidInput, match=message):
        ll.log_figure(Strict(), "a.png", save_kwargs=save_kwargs)
    assert _user_paths(run.id) == []


def test_log_figure_error_raised_by_the_figure_is_invalid_input(project: Stores) -> None:
    with ll.start_run(), pytest.raises(InvalidInput, match="'tiff' is not supported"):
        ll.log_figure(SavefigFigure(), "a.tiff")


def test_log_figure_with_real_matplotlib(project: Stores) -> None:
    pytest.importorskip("matplotlib")
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    figure = Figure()
    figure.add_subplot().plot([1, 2, 3], [3, 1, 2])
    with ll.start_run() as run:
        ll.log_figure(figure, "plot.png")
        ll.log_figure(figure, "plot.svg")
    assert _read(project, run.id, "plot.png").startswith(b"\x89PNG")
    assert b"<svg" in _read(project, run.id, "plot.svg")


def test_log_figure_with_real_plotly(project: Stores) -> None:
    go = pytest.importorskip("plotly.graph_objects")
    with ll.start_run() as run:
        ll.log_figure(go.Figure(go.Scatter(x=[1, 2], y=[3, 4])), "plot.html")
    assert b"plotly" in _read(project, run.id, "plot.html")


# -- log_table -----------------------------------------------------------------------------


def test_log_table_stores_parquet_that_reads_back_with_its_types(project: Stores) -> None:
    frame = pd.DataFrame(
        {
            "id": np.array([1, 2, 3], dtype="int64"),
            "score": [0.5, float("nan"), float("inf")],
            "label": ["a", "b", None],
            "flag": [True, False, True],
            "when": pd.to_datetime(["2026-01-01", "2026-01-02", "2026-01-03"], utc=True),
        },
        index=pd.Index([10, 20, 30], name="row"),
    )
    with ll.start_run() as run:
        assert ll.log_table(frame, "tables/preds.parquet") == "tables/preds.parquet"
        run.log_table({"a": [1, 2], "b": ["x", "y"]}, "from_dict.parquet")
    back = pd.read_parquet(io.BytesIO(_read(project, run.id, "tables/preds.parquet")))
    pd.testing.assert_frame_equal(back, frame, check_dtype=False)
    assert back["id"].dtype == "int64" and math.isinf(back["score"].iloc[2])
    from_dict = pd.read_parquet(io.BytesIO(_read(project, run.id, "from_dict.parquet")))
    assert from_dict.to_dict("list") == {"a": [1, 2], "b": ["x", "y"]}


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (pd.DataFrame({"a": [1, "x"]}), "Arrow cannot store"),
        (pd.DataFrame({"a": [2**70, 1]}), "Arrow cannot store"),
        ({"a": [2**64]}, "Arrow cannot store"),
        ({"a": ["ok", "\ud800"]}, "lone surrogate"),
        (pd.DataFrame({"a": [object(), object()]}), "Arrow cannot store"),
        (pd.DataFrame({1: [1], 2: [2]}), "column names must be strings"),
        ({("a", "b"): [1]}, "column names must be strings"),
        (pd.DataFrame([[1, 2]], columns=["a", "a"]), "column names repeat"),
        ({"a": [1, 2], "b": [1]}, "not a table of columns"),
        ({"a": 1}, "not a table of columns"),
        ([[1, 2], [3, 4]], "DataFrame or a dict of columns"),
        (np.zeros((2, 2)), "DataFrame or a dict of columns"),
        ("a,b\n1,2", "DataFrame or a dict of columns"),
        (None, "DataFrame or a dict of columns"),
    ],
)
def test_log_table_refuses_values_arrow_cannot_hold(
    project: Stores, data: object, message: str
) -> None:
    with ll.start_run() as run, pytest.raises(InvalidInput, match=message):
        ll.log_table(data, "t.parquet")
    assert _user_paths(run.id) == []


@pytest.mark.parametrize("name", ["table.json", "table.csv", "table", "table.parquet.txt"])
def test_log_table_refuses_a_name_that_is_not_parquet(project: Stores, name: str) -> None:
    with ll.start_run(), pytest.raises(InvalidInput, match=r"\*\.parquet"):
        ll.log_table(pd.DataFrame({"a": [1]}), name)


# -- log_input -----------------------------------------------------------------------------


def _frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "age": [31, 45, 27, 60],
            "income": [52_000.0, float("nan"), float("inf"), 71_500.0],
            "city": ["Lyon", "Paris", "Lyon", None],
        }
    )


def test_log_input_records_digest_schema_and_profile(project: Stores) -> None:
    with ll.start_run() as run:
        found = ll.log_input(_frame(), context="training", tags={"source": "crm"}, name="train")
    [stored] = list_inputs(run.id)
    assert stored == found
    assert stored.name == "train" and stored.context == "training"
    assert stored.tags == {"source": "crm"} and stored.rows == 4 and len(stored.digest) == 64
    age, income, city = stored.columns
    assert (age["name"], age["min"], age["max"], age["mean"]) == ("age", 27, 60, 40.75)
    assert (income["nulls"], income["non_finite"], income["max"]) == (1, 1, 71_500.0)
    assert (city["nulls"], city["distinct"]) == (1, 2)
    assert _user_paths(run.id) == []  # an input, not an artifact: the rows are not stored


def test_log_input_profiles_dates_and_empty_frames(project: Stores) -> None:
    dated = pd.DataFrame({"when": pd.to_datetime(["2026-01-02", "2025-12-31"], utc=True)})
    with ll.start_run():
        [when] = ll.log_input(dated).columns
        empty = ll.log_input(pd.DataFrame({"a": pd.Series([], dtype="float64")}))
        nested = ll.log_input(pd.DataFrame({"tags": [["a", "b"], []]}))
    assert when["min"].startswith("2025-12-31") and when["max"].startswith("2026-01-02")
    assert empty.rows == 0 and empty.columns[0]["min"] is None
    assert nested.columns == [{"name": "tags", "type": "list<item: string>", "nulls": 0}]


def test_runs_show_lists_the_logged_input(
    project: Stores, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "250")
    with ll.start_run() as run:
        found = run.log_input(_frame(), context="validation")
    capsys.readouterr()
    assert cli(["runs", "show", run.id[:8], "--json"]) == 0
    [link] = json.loads(capsys.readouterr().out)["lineage"]
    assert (link["direction"], link["kind"]) == ("input", "dataframe")
    assert link["name"].startswith(f"dataframe@{found.digest[:12]}")
    assert "4 rows x 3 columns, validation" in link["name"]
    # the table, where the console is wide enough (it is created once per process, so an
    # earlier test in this worker may have fixed its width): the words, not the layout
    assert cli(["runs", "show", run.id[:8]]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "dataframe@" in out


def test_log_input_same_dataframe_twice_records_one_input(project: Stores) -> None:
    with ll.start_run() as run:
        first = ll.log_input(_frame(), context="training")
        again = ll.log_input(_frame().copy(), context="training")
        ll.log_input(_frame(), context="training")
    assert first.digest == again.digest
    assert [i.digest for i in list_inputs(run.id)] == [first.digest]


def test_log_input_different_content_or_name_records_another_input(project: Stores) -> None:
    changed = _frame()
    changed.loc[0, "age"] = 32
    with ll.start_run() as run:
        one = ll.log_input(_frame())
        two = ll.log_input(changed)
        ll.log_input(_frame(), name="holdout")
    assert one.digest != two.digest
    assert sorted(i.name for i in list_inputs(run.id)) == ["dataframe", "dataframe", "holdout"]


def test_log_input_digest_follows_content_not_index_or_object(project: Stores) -> None:
    base = _frame()
    with ll.start_run():
        digest = ll.log_input(base).digest
        assert ll.log_input(base.set_axis([7, 8, 9, 10])).digest == digest  # index left out
        assert ll.log_input(dict(base.to_dict("list"))).digest == digest
        assert ll.log_input(base.rename(columns={"age": "years"})).digest != digest
        assert ll.log_input(base.astype({"age": "float64"})).digest != digest
        assert ll.log_input(base.iloc[::-1].reset_index(drop=True)).digest != digest
        assert ll.log_input(base[["income", "age", "city"]]).digest != digest


def test_logged_input_survives_garbage_collection(project: Stores, holding_stores: Stores) -> None:
    with ll.start_run() as run:
        ll.log_input(_frame(), context="training")
    gc(grace=timedelta(0), stores=holding_stores)  # where the records are: gc runs there
    [stored] = list_inputs(run.id)
    assert stored.rows == 4


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"dataset": [1, 2, 3]}, "DataFrame or a dict of columns"),
        ({"dataset": np.arange(3)}, "DataFrame or a dict of columns"),
        ({"dataset": pd.Series([1, 2])}, "DataFrame or a dict of columns"),
        ({"dataset": pd.DataFrame({"a": [2**64]})}, "Arrow cannot store"),
        ({"dataset": pd.DataFrame({"a": [1, "x"]})}, "Arrow cannot store"),
        ({"context": "train\ning"}, "invalid input context key"),
        ({"context": 3}, "input context key must be a string"),
        ({"name": "../x"}, "input name"),
        ({"name": "a\nb"}, "invalid input name key"),
        ({"tags": "source=crm"}, "tags must be a dict"),
        ({"tags": {"source": 3}}, "must be a str"),
        ({"tags": {"a\nb": "x"}}, "invalid input tag key"),
        ({"tags": {"source": "a\x00b"}}, "NUL"),
    ],
)
def test_log_input_refuses_bad_input(project: Stores, kwargs: dict[str, Any], message: str) -> None:
    arguments = {"dataset": _frame(), **kwargs}
    with ll.start_run() as run, pytest.raises(InvalidInput, match=message):
        ll.log_input(**arguments)
    assert list_inputs(run.id) == []
