"""Signatures: inferred from examples, and enforced on every prediction."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.datasets import load_breast_cancer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from loopline.errors import InvalidInput, SignatureMismatch
from loopline.packaging import (
    ColumnSpec,
    LoadedModel,
    Signature,
    SignatureWarning,
    infer_signature,
    load_model,
    save_model,
)


class RowCount:
    """A pyfunc model that accepts anything and predicts zeros (to test checks alone)."""

    def predict(self, frame: pd.DataFrame) -> np.ndarray[Any, Any]:
        return np.zeros(len(frame))


def _customers(rows: int = 120) -> tuple[pd.DataFrame, np.ndarray[Any, Any]]:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {
            "age": rng.integers(18, 90, rows),
            "income": rng.normal(50_000, 15_000, rows).round(2),
            "city": rng.choice(["paris", "lyon", "nice"], rows),
            "member": rng.random(rows) > 0.5,
        }
    )
    frame.loc[::7, "income"] = np.nan
    target = ((frame["age"] > 50) ^ frame["member"]).to_numpy().astype(int)
    return frame, target


@pytest.fixture(scope="module")
def customers() -> pd.DataFrame:
    return _customers()[0]


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, LoadedModel]:
    frame, target = _customers()
    numeric = make_pipeline(SimpleImputer(), StandardScaler())
    encode = ColumnTransformer(
        [
            ("numbers", numeric, ["age", "income"]),
            ("city", OneHotEncoder(handle_unknown="ignore"), ["city"]),
            ("member", "passthrough", ["member"]),
        ]
    )
    pipeline = make_pipeline(encode, LogisticRegression(max_iter=1000)).fit(frame, target)
    folder = tmp_path_factory.mktemp("signature") / "pkg"
    save_model(pipeline, folder, input_example=frame)
    # skops 0.16 does not trust the numpy.dtype that SimpleImputer keeps (`_fit_dtype`)
    return pipeline, load_model(folder, trusted=["numpy.dtype"])


def test_signature_is_inferred_from_the_example(model: tuple[Any, LoadedModel]) -> None:
    _, loaded = model
    assert loaded.signature.inputs == (
        ColumnSpec("age", "long", nullable=False),
        ColumnSpec("income", "double", nullable=True),
        ColumnSpec("city", "string", nullable=False),
        ColumnSpec("member", "boolean", nullable=False),
    )


def test_conforming_frame_passes_through_without_a_copy(
    model: tuple[Any, LoadedModel], customers: pd.DataFrame
) -> None:
    pipeline, loaded = model
    assert loaded.check_input(customers) is customers
    assert np.array_equal(loaded.predict(customers), pipeline.predict(customers))


def test_missing_column_names_the_field(
    model: tuple[Any, LoadedModel], customers: pd.DataFrame
) -> None:
    with pytest.raises(SignatureMismatch, match=r"missing column 'age' \(expected long\)") as info:
        model[1].predict(customers.drop(columns="age"))
    assert info.value.field == "age"


@pytest.mark.parametrize(
    ("column", "value", "received"),
    [
        ("income", "lots", "string"),
        ("age", "old", "string"),
        ("city", 3, "long"),
        ("member", "yes", "string"),
        ("member", 1, "long"),
    ],
)
def test_wrong_type_names_the_field_and_both_types(
    model: tuple[Any, LoadedModel], customers: pd.DataFrame, column: str, value: Any, received: str
) -> None:
    frame = customers.head(3).astype({column: object})
    frame.loc[1, column] = value
    frame = frame.infer_objects() if column != "member" else frame
    expected = next(spec.type for spec in model[1].signature.inputs if spec.name == column)
    with pytest.raises(SignatureMismatch, match=f"expects {expected} values, received") as info:
        model[1].predict(frame)
    assert info.value.field == column
    assert received in info.value.message


def test_missing_value_in_a_non_nullable_column_is_refused(
    model: tuple[Any, LoadedModel], customers: pd.DataFrame
) -> None:
    frame = customers.head(3).astype({"age": "float64"})
    frame.loc[1, "age"] = np.nan
    with pytest.raises(SignatureMismatch, match="'age' has missing values") as info:
        model[1].predict(frame)
    assert info.value.field == "age"
    rows = customers.head(2).to_dict("records")
    rows[0]["city"] = None
    with pytest.raises(SignatureMismatch, match="'city' has missing values"):
        model[1].predict(rows)


def test_missing_value_in_a_nullable_double_column_is_fine(
    model: tuple[Any, LoadedModel], customers: pd.DataFrame
) -> None:
    frame = customers.head(3).copy()
    frame.loc[:, "income"] = np.nan
    assert model[1].predict(frame).shape == (3,)


def test_fractional_float_in_a_long_column_is_refused_whole_floats_accepted(
    model: tuple[Any, LoadedModel], customers: pd.DataFrame
) -> None:
    frame = customers.head(3).astype({"age": "float64"})
    checked = model[1].check_input(frame)
    assert checked["age"].dtype == np.int64
    frame.loc[2, "age"] = 1.5
    with pytest.raises(SignatureMismatch, match=r"fractional part such as 1.5") as info:
        model[1].predict(frame)
    assert info.value.field == "age"


def test_int_data_widens_into_a_double_column(
    model: tuple[Any, LoadedModel], customers: pd.DataFrame
) -> None:
    frame = customers.head(3).assign(income=[1, 2, 3])
    checked = model[1].check_input(frame)
    assert checked["income"].dtype == np.float64
    assert checked["income"].tolist() == [1.0, 2.0, 3.0]


def test_extra_columns_are_dropped_with_a_warning(
    model: tuple[Any, LoadedModel], customers: pd.DataFrame
) -> None:
    pipeline, loaded = model
    frame = customers.assign(note="x", score=1.0)
    with pytest.warns(SignatureWarning, match=r"\['note', 'score'\]"):
        predicted = loaded.predict(frame)
    assert np.array_equal(predicted, pipeline.predict(customers))


def test_reordered_columns_are_put_back_in_signature_order(
    model: tuple[Any, LoadedModel], customers: pd.DataFrame
) -> None:
    pipeline, loaded = model
    shuffled = customers[["member", "city", "income", "age"]]
    assert list(loaded.check_input(shuffled).columns) == ["age", "income", "city", "member"]
    assert np.array_equal(loaded.predict(shuffled), pipeline.predict(customers))


def test_row_dicts_and_column_dicts_predict_like_the_frame(
    model: tuple[Any, LoadedModel], customers: pd.DataFrame
) -> None:
    pipeline, loaded = model
    head = customers.head(5)
    expected = pipeline.predict(head)
    assert np.array_equal(loaded.predict(head.to_dict("records")), expected)
    assert np.array_equal(loaded.predict(head.to_dict("list")), expected)
    assert np.array_equal(loaded.predict(head.iloc[0].to_dict()), expected[:1])


def test_numpy_rows_are_taken_in_signature_order(tmp_path: Path) -> None:
    features, target = load_breast_cancer(as_frame=True, return_X_y=True)
    model = LogisticRegression(max_iter=5000).fit(features, target)
    save_model(model, tmp_path / "pkg", input_example=features.head())
    loaded = load_model(tmp_path / "pkg")
    assert np.array_equal(loaded.predict(features.to_numpy()), model.predict(features))
    with pytest.raises(SignatureMismatch, match=r"expected 30 columns .* received rows of 29"):
        loaded.predict(features.to_numpy()[:, :29])
    with pytest.raises(SignatureMismatch, match="2-D"):
        loaded.predict(features.to_numpy()[0])


def test_unusable_input_is_invalid(model: tuple[Any, LoadedModel]) -> None:
    with pytest.raises(InvalidInput, match="cannot use an empty list"):
        model[1].predict([])
    with pytest.raises(InvalidInput, match="cannot use str"):
        model[1].predict("age=3")


def test_datetime_columns_accept_iso_strings(tmp_path: Path) -> None:
    example = pd.DataFrame({"when": pd.to_datetime(["2024-01-01", "2024-02-01"]), "n": [1, 2]})
    save_model(RowCount(), tmp_path / "pkg", input_example=example)
    loaded = load_model(tmp_path / "pkg", allow_pickle=True)
    assert loaded.signature.inputs[0] == ColumnSpec("when", "datetime")
    checked = loaded.check_input([{"when": "2024-03-01T10:00:00", "n": 3}])
    assert checked["when"].dtype.kind == "M"
    with pytest.raises(SignatureMismatch, match="ISO 8601"):
        loaded.check_input([{"when": "yesterday", "n": 3}])


def test_infer_signature_reads_frames_arrays_and_rows() -> None:
    frame = pd.DataFrame({"a": [1, 2], "b": [0.5, None], "c": ["x", "y"], "d": [True, False]})
    assert infer_signature(frame).inputs == (
        ColumnSpec("a", "long"),
        ColumnSpec("b", "double", nullable=True),
        ColumnSpec("c", "string"),
        ColumnSpec("d", "boolean"),
    )
    from_array = infer_signature(np.zeros((2, 3), dtype=np.float32))
    assert from_array.input_names == ["f0", "f1", "f2"]
    assert {spec.type for spec in from_array.inputs} == {"float"}
    from_rows = infer_signature([{"a": 1, "c": "x"}, {"a": 2, "c": None}])
    assert from_rows.inputs == (ColumnSpec("a", "long"), ColumnSpec("c", "string", True))
    with_output = infer_signature(frame, output=np.array(["yes", "no"]))
    assert with_output.outputs == (ColumnSpec("prediction", "string"),)


def test_infer_signature_refuses_what_it_cannot_type() -> None:
    with pytest.raises(InvalidInput, match="every value is missing"):
        infer_signature(pd.DataFrame({"a": [None, None]}))
    with pytest.raises(InvalidInput, match="must be strings"):
        infer_signature(pd.DataFrame(np.zeros((2, 2))))
    with pytest.raises(InvalidInput, match="unknown type"):
        ColumnSpec("a", "decimal")
    with pytest.raises(InvalidInput, match="twice"):
        Signature(inputs=(ColumnSpec("a", "long"), ColumnSpec("a", "double")))


def test_given_signature_wins_and_the_example_must_fit_it(tmp_path: Path) -> None:
    signature = Signature(inputs=(ColumnSpec("n", "long"),))
    manifest = save_model(RowCount(), tmp_path / "ok", signature=signature)
    assert manifest.signature == signature
    with pytest.raises(SignatureMismatch, match="missing column 'n'"):
        save_model(RowCount(), tmp_path / "bad", signature=signature, input_example={"m": [1]})
    assert not (tmp_path / "bad").exists()


def test_model_that_refuses_nan_itself_still_reports_the_column(tmp_path: Path) -> None:
    # A plain LogisticRegression scans for NaN on predict, so LoadedModel does not scan
    # first; the model's refusal must still come back as a SignatureMismatch.
    features, target = load_breast_cancer(as_frame=True, return_X_y=True)
    model = LogisticRegression(max_iter=5000).fit(features, target)
    save_model(model, tmp_path / "pkg", input_example=features.head())
    loaded = load_model(tmp_path / "pkg")
    frame = features.head(3).copy()
    frame.loc[1, "mean area"] = np.nan
    with pytest.raises(SignatureMismatch, match="'mean area' has missing values") as info:
        loaded.predict(frame)
    assert info.value.field == "mean area"
    with pytest.raises(SignatureMismatch, match="'mean area'"):
        loaded.predict_proba(frame)
    with pytest.raises(SignatureMismatch, match="'mean area'"):
        loaded.check_input(frame)
    frame.loc[1, "mean area"] = np.inf
    with pytest.raises(InvalidInput, match=r"the model rejected the input: .*infinity"):
        loaded.predict(frame)


@pytest.mark.parametrize("scaled", [True, False])
def test_scaled_pipelines_refuse_nan_by_their_last_step_and_name_the_column(
    tmp_path: Path, scaled: bool
) -> None:
    # StandardScaler keeps NaN in place, so the pipeline's LogisticRegression refuses it
    # and LoadedModel skips its own scan; an imputer in front would accept it, so then
    # LoadedModel scans first. Either way the caller learns which column is missing.
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    features, target = load_breast_cancer(as_frame=True, return_X_y=True)
    first = StandardScaler() if scaled else SimpleImputer()
    model = make_pipeline(first, LogisticRegression(max_iter=5000)).fit(features, target)
    save_model(model, tmp_path / "pkg", input_example=features.head())
    loaded = load_model(tmp_path / "pkg", trusted=["numpy.dtype"])
    frame = features.head(3).copy()
    frame.loc[2, "mean texture"] = np.nan
    with pytest.raises(SignatureMismatch, match="'mean texture'") as info:
        loaded.predict(frame)
    assert info.value.field == "mean texture"
    assert loaded.predict(features.head(3)).tolist() == model.predict(features.head(3)).tolist()
