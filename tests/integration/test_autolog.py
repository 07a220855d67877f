"""`ll.autolog()` with real scikit-learn, XGBoost and LightGBM fits, on a real project
(SQLite and PostgreSQL): what a fit logs, that nested fits log once, that a fit's own
outcome is never changed by autologging, and the options' bad values."""

from __future__ import annotations

import logging
import subprocess
import sys
from collections.abc import Iterator

import lightgbm
import numpy as np
import pandas as pd
import pytest
import scipy.sparse
import xgboost
from sklearn.datasets import load_breast_cancer, load_iris
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.metrics import accuracy_score, r2_score
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import loopline as ll
from loopline.errors import InvalidInput, NotFound
from loopline.store import RunStatus
from loopline.tracking import Stores, list_inputs


@pytest.fixture
def autologging() -> Iterator[None]:
    """Autologging off again after the test, whatever it turned on."""
    yield
    ll.autolog(disable=True)


@pytest.fixture
def iris() -> tuple[pd.DataFrame, pd.Series]:
    X, y = load_iris(return_X_y=True, as_frame=True)
    return X, y


@pytest.fixture
def cancer() -> tuple[pd.DataFrame, pd.Series]:
    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    X.columns = [c.replace(" ", "_") for c in X.columns]
    return X, y


def _runs(experiment: str = "default") -> list[ll.Run]:
    try:
        return ll.search_runs(experiment=experiment)
    except NotFound:  # the experiment was never created: no run
        return []


def _only_run(experiment: str = "default") -> ll.Run:
    [run] = _runs(experiment)
    return run


def _history(run_id: str, key: str) -> list[tuple[int, float]]:
    return [(p.step, p.value) for p in ll.get_metric_history(run_id, key)]


# -- scikit-learn ----------------------------------------------------------------------------


def test_sklearn_fit_opens_a_run_with_params_metrics_model_and_input(
    project: Stores, autologging: None, iris: tuple[pd.DataFrame, pd.Series]
) -> None:
    X, y = iris
    ll.autolog()
    model = LogisticRegression(C=0.5, max_iter=1000).fit(X, y)

    assert ll.active_run() is None  # opened for the fit, ended after it
    run = _only_run()
    assert run.status == RunStatus.FINISHED
    assert run.tags["loopline.autolog"] == "sklearn"
    assert run.params["C"] == "0.5"
    assert run.params["max_iter"] == "1000"
    assert run.params["class_weight"] == "None"
    expected = accuracy_score(y, model.predict(X))
    assert run.metrics["training_accuracy_score"] == pytest.approx(expected)
    assert run.metrics["training_score"] == pytest.approx(expected)
    for key in ("training_f1_score", "training_precision_score", "training_recall_score"):
        assert 0.5 < run.metrics[key] <= 1.0
    assert run.metrics["training_log_loss"] > 0
    assert 0.5 < run.metrics["training_roc_auc"] <= 1.0

    [version] = project.metadata.models.list_versions("LogisticRegression")
    assert version.run_id == run.id
    assert version.signature["inputs"][0]["name"] == "sepal length (cm)"
    [data] = list_inputs(run.id)
    assert (data.name, data.context, data.rows) == ("train", "training", 150)
    assert [c["name"] for c in data.columns] == [*X.columns, "target"]


def test_the_logged_model_loads_and_predicts_as_the_fitted_one(
    project: Stores, autologging: None, iris: tuple[pd.DataFrame, pd.Series]
) -> None:
    X, y = iris
    ll.autolog()
    fitted = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(X, y)
    loaded = ll.models.load(f"runs:/{_only_run().id}/model")
    np.testing.assert_array_equal(np.asarray(loaded.predict(X)).ravel(), fitted.predict(X))


def test_regressor_logs_the_regression_metrics(project: Stores, autologging: None) -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(80, 3))
    y = X @ np.array([1.0, -2.0, 0.5]) + rng.normal(scale=0.1, size=80)
    ll.autolog()
    model = LinearRegression().fit(X, y)
    metrics = _only_run().metrics
    assert metrics["training_r2_score"] == pytest.approx(r2_score(y, model.predict(X)))
    assert metrics["training_root_mean_squared_error"] == pytest.approx(
        metrics["training_mean_squared_error"] ** 0.5
    )
    assert metrics["training_mean_absolute_error"] > 0
    assert "training_accuracy_score" not in metrics


def test_a_pipeline_logs_once_for_the_outer_fit(
    project: Stores, autologging: None, iris: tuple[pd.DataFrame, pd.Series]
) -> None:
    X, y = iris
    ll.autolog()
    make_pipeline(StandardScaler(), LogisticRegression(C=2.0, max_iter=1000)).fit(X, y)
    run = _only_run()  # not one per step
    assert run.params["logisticregression__C"] == "2.0"
    assert "standardscaler__with_mean" in run.params
    [version] = project.metadata.models.versions_for_run(run.id)  # the pipeline, not its steps
    assert (version.model, version.version) == ("Pipeline", 1)


def test_grid_search_logs_best_params_and_a_child_run_per_best_candidate(
    project: Stores, autologging: None, iris: tuple[pd.DataFrame, pd.Series]
) -> None:
    X, y = iris
    ll.autolog(max_tuning_runs=2)
    grid = {"C": [0.01, 0.1, 1.0, 10.0]}
    search = GridSearchCV(LogisticRegression(max_iter=1000), grid, cv=3).fit(X, y)

    runs = _runs()
    [parent] = [r for r in runs if r.parent_id is None]  # the refit and the 12 fits: not runs
    assert parent.params["best_C"] == str(search.best_params_["C"])
    assert parent.metrics["best_cv_score"] == pytest.approx(search.best_score_)
    assert parent.params["estimator__max_iter"] == "1000"
    children = sorted((r for r in runs if r.parent_id == parent.id), key=lambda r: r.name)
    assert len(children) == 2
    results = pd.DataFrame(search.cv_results_).sort_values("rank_test_score", kind="stable")
    assert [c.params["C"] for c in children] == [str(c) for c in results["param_C"][:2]]
    assert children[0].metrics["mean_test_score"] == pytest.approx(search.best_score_)
    assert all(c.status == RunStatus.FINISHED for c in children)
    names = {a.name for a in ll.list_artifacts(parent.id)}
    assert "cv_results.csv" in names
    loaded = ll.models.load(f"runs:/{parent.id}/model")  # the refitted best estimator
    np.testing.assert_array_equal(np.asarray(loaded.predict(X)).ravel(), search.predict(X))


def test_max_tuning_runs_none_logs_every_candidate(
    project: Stores, autologging: None, iris: tuple[pd.DataFrame, pd.Series]
) -> None:
    X, y = iris
    ll.autolog(max_tuning_runs=None, log_models=False, log_datasets=False)
    GridSearchCV(LogisticRegression(max_iter=1000), {"C": [0.1, 1.0, 10.0]}, cv=2).fit(X, y)
    assert sum(r.parent_id is not None for r in _runs()) == 3


# -- XGBoost and LightGBM --------------------------------------------------------------------


def test_xgb_classifier_with_an_eval_set_logs_each_iteration(
    project: Stores, autologging: None, cancer: tuple[pd.DataFrame, pd.Series]
) -> None:
    X, y = cancer
    train, valid = slice(0, 400), slice(400, None)
    ll.autolog()
    model = xgboost.XGBClassifier(n_estimators=6, max_depth=2)
    model.fit(X[train], y[train], eval_set=[(X[valid], y[valid])], verbose=False)

    run = _only_run()
    assert run.tags["loopline.autolog"] == "xgboost"
    assert run.params["n_estimators"] == "6"
    expected = model.evals_result()["validation_0"]["logloss"]
    assert _history(run.id, "validation_0-logloss") == [
        (step, pytest.approx(value)) for step, value in enumerate(expected)
    ]
    assert 0.5 < run.metrics["training_accuracy_score"] <= 1.0
    assert {i.context for i in list_inputs(run.id)} == {"training", "validation"}
    loaded = ll.models.load(f"runs:/{run.id}/model")
    np.testing.assert_array_equal(
        np.asarray(loaded.predict(X[valid])).ravel(), model.predict(X[valid])
    )


def test_xgboost_train_logs_the_evals_per_iteration(
    project: Stores, autologging: None, cancer: tuple[pd.DataFrame, pd.Series]
) -> None:
    X, y = cancer
    train = xgboost.DMatrix(X[:400], label=y[:400])
    valid = xgboost.DMatrix(X[400:], label=y[400:])
    mine: dict[str, dict[str, list[float]]] = {}
    ll.autolog()
    params = {"objective": "binary:logistic", "max_depth": 2, "eval_metric": "auc"}
    booster = xgboost.train(
        params, train, 4, evals=[(valid, "eval")], evals_result=mine, verbose_eval=False
    )

    run = _only_run()
    assert run.params["max_depth"] == "2"
    assert run.params["num_boost_round"] == "4"
    assert [v for _, v in _history(run.id, "eval-auc")] == pytest.approx(mine["eval"]["auc"])
    assert len(mine["eval"]["auc"]) == 4  # the caller's own dict is still filled
    loaded = ll.models.load(f"runs:/{run.id}/model")
    np.testing.assert_allclose(
        np.asarray(loaded.predict(X[400:])).ravel(), booster.predict(valid), rtol=1e-6
    )


def test_lightgbm_train_with_valid_sets_logs_each_iteration(
    project: Stores, autologging: None, cancer: tuple[pd.DataFrame, pd.Series]
) -> None:
    X, y = cancer
    train = lightgbm.Dataset(X[:400], label=y[:400])
    valid = lightgbm.Dataset(X[400:], label=y[400:], reference=train)
    callbacks: list[object] = []
    ll.autolog()
    params = {"objective": "binary", "num_leaves": 4, "verbose": -1}
    booster = lightgbm.train(params, train, 5, valid_sets=[valid], callbacks=callbacks)

    run = _only_run()
    assert run.tags["loopline.autolog"] == "lightgbm"
    assert run.params["num_leaves"] == "4"
    assert run.params["num_boost_round"] == "5"
    steps = _history(run.id, "valid_0-binary_logloss")
    assert [s for s, _ in steps] == [0, 1, 2, 3, 4]
    assert steps[-1][1] < steps[0][1]
    assert callbacks == []  # the recorder went into a copy of the caller's list
    contexts = sorted((i.context, i.rows) for i in list_inputs(run.id))
    assert contexts == [("training", 400), ("validation", 169)]
    loaded = ll.models.load(f"runs:/{run.id}/model")
    np.testing.assert_allclose(
        np.asarray(loaded.predict(X[400:])).ravel(), booster.predict(X[400:]), rtol=1e-6
    )


def test_lgbm_classifier_logs_its_eval_results(
    project: Stores, autologging: None, cancer: tuple[pd.DataFrame, pd.Series]
) -> None:
    X, y = cancer
    ll.autolog()
    model = lightgbm.LGBMClassifier(n_estimators=3, num_leaves=4, verbose=-1)
    model.fit(X[:400], y[:400], eval_X=(X[400:],), eval_y=(y[400:],), eval_names=["holdout"])
    run = _only_run()
    expected = model.evals_result_["holdout"]["binary_logloss"]
    assert [v for _, v in _history(run.id, "holdout-binary_logloss")] == pytest.approx(expected)
    assert [i.name for i in list_inputs(run.id) if i.context == "validation"] == ["holdout"]


# -- runs: the user's own, failures, exclusivity, disabling ------------------------------------


def test_a_fit_inside_an_active_run_logs_into_it_and_leaves_it_open(
    project: Stores, autologging: None, iris: tuple[pd.DataFrame, pd.Series]
) -> None:
    X, y = iris
    ll.autolog()
    with ll.start_run(experiment="mine") as run:
        LogisticRegression(max_iter=1000).fit(X, y)
        assert ll.active_run() is run
        assert ll.get_run(run.id).status == RunStatus.RUNNING
        ll.log_metric("after", 1.0)
    stored = _only_run("mine")
    assert stored.status == RunStatus.FINISHED
    assert "training_accuracy_score" in stored.metrics and "after" in stored.metrics
    assert _runs() == []  # no run of its own


def test_exclusive_never_logs_into_a_run_the_user_started(
    project: Stores, autologging: None, iris: tuple[pd.DataFrame, pd.Series]
) -> None:
    X, y = iris
    ll.autolog(exclusive=True)
    with ll.start_run(experiment="mine") as run:
        LogisticRegression(max_iter=1000).fit(X, y)
    assert ll.get_run(run.id).params == {}
    LogisticRegression(max_iter=1000).fit(X, y)  # outside a run: logs as usual
    assert "C" in _only_run().params


def test_a_failing_fit_ends_the_autolog_run_failed_and_raises_unchanged(
    project: Stores, autologging: None, iris: tuple[pd.DataFrame, pd.Series]
) -> None:
    X, y = iris
    ll.autolog()
    with pytest.raises(ValueError, match="C"):
        LogisticRegression(C=-1.0).fit(X, y)
    assert ll.active_run() is None
    run = _only_run()
    assert run.status == RunStatus.FAILED
    assert "C" in (run.error or "")
    assert run.params["C"] == "-1.0"  # logged before the fit


def test_disable_puts_the_library_functions_back(
    project: Stores, autologging: None, iris: tuple[pd.DataFrame, pd.Series]
) -> None:
    original_fit, original_train = LogisticRegression.fit, lightgbm.train
    ll.autolog()
    assert LogisticRegression.fit is not original_fit
    ll.autolog(disable=True)
    assert LogisticRegression.fit is original_fit
    assert lightgbm.train is original_train
    LogisticRegression(max_iter=1000).fit(*iris)
    assert _runs() == []


def test_disable_of_one_flavor_keeps_the_others(
    project: Stores, autologging: None, iris: tuple[pd.DataFrame, pd.Series]
) -> None:
    from loopline.models.autolog import patched_flavors

    ll.autolog(flavors=["sklearn", "lightgbm"])
    ll.autolog(disable=True, flavors=["lightgbm"])
    assert patched_flavors() == ["sklearn"]
    LogisticRegression(max_iter=1000).fit(*iris)
    assert len(_runs()) == 1


def test_log_models_and_log_datasets_false_log_neither(
    project: Stores, autologging: None, iris: tuple[pd.DataFrame, pd.Series]
) -> None:
    ll.autolog(log_models=False, log_datasets=False)
    LogisticRegression(max_iter=1000).fit(*iris)
    run = _only_run()
    assert "training_score" in run.metrics
    assert list_inputs(run.id) == []
    assert not any(a.name.startswith("model/") for a in ll.list_artifacts(run.id))


def test_the_input_example_gives_the_signature_unless_turned_off(
    project: Stores, autologging: None, iris: tuple[pd.DataFrame, pd.Series]
) -> None:
    array, y = iris[0].to_numpy(), iris[1].to_numpy()
    ll.autolog(log_input_examples=False)
    LogisticRegression(max_iter=1000).fit(array, y)
    ll.autolog()
    LogisticRegression(max_iter=1000).fit(array, y)
    without, with_example = project.metadata.models.list_versions("LogisticRegression")[::-1]
    assert without.signature.get("inputs") in (None, [])  # an array has no column names
    assert [c["name"] for c in with_example.signature["inputs"]] == ["f0", "f1", "f2", "f3"]


def test_registered_model_name_and_experiment_are_used(
    project: Stores, autologging: None, iris: tuple[pd.DataFrame, pd.Series]
) -> None:
    ll.autolog(experiment="iris-models", registered_model_name="iris")
    LogisticRegression(max_iter=1000).fit(*iris)
    run = _only_run("iris-models")
    [version] = project.metadata.models.list_versions("iris")
    assert version.run_id == run.id


# -- inputs autologging cannot profile, and its own failures ---------------------------------


def test_a_sparse_matrix_fit_is_logged_without_example_or_input(
    project: Stores, autologging: None, iris: tuple[pd.DataFrame, pd.Series]
) -> None:
    X, y = iris
    sparse = scipy.sparse.csr_matrix(X.to_numpy())
    ll.autolog()
    model = LogisticRegression(max_iter=1000).fit(sparse, y)
    assert model.predict(sparse).shape == (150,)
    run = _only_run()
    assert run.status == RunStatus.FINISHED
    assert "training_accuracy_score" in run.metrics
    assert list_inputs(run.id) == []
    assert project.metadata.models.list_versions("LogisticRegression")


def test_a_numpy_fit_logs_columns_f0_to_fn(
    project: Stores, autologging: None, iris: tuple[pd.DataFrame, pd.Series]
) -> None:
    X, y = iris
    array = X.to_numpy()
    ll.autolog()
    fitted = LogisticRegression(max_iter=1000).fit(array, y.to_numpy())
    run = _only_run()
    [data] = list_inputs(run.id)
    assert [c["name"] for c in data.columns] == ["f0", "f1", "f2", "f3", "target"]
    loaded = ll.models.load(f"runs:/{run.id}/model")
    frame = pd.DataFrame(array, columns=["f0", "f1", "f2", "f3"])
    np.testing.assert_array_equal(np.asarray(loaded.predict(frame)).ravel(), fitted.predict(array))


def test_integer_column_names_and_a_2d_target_do_not_break_the_fit(
    project: Stores, autologging: None, iris: tuple[pd.DataFrame, pd.Series]
) -> None:
    X, y = iris
    frame = pd.DataFrame(X.to_numpy())  # columns 0..3, not strings
    ll.autolog()
    LinearRegression().fit(frame, np.column_stack([y, y]))
    run = _only_run()
    assert run.status == RunStatus.FINISHED
    assert "training_score" in run.metrics


def test_an_autolog_failure_warns_and_the_fit_goes_on(
    project: Stores,
    autologging: None,
    iris: tuple[pd.DataFrame, pd.Series],
    caplog: pytest.LogCaptureFixture,
) -> None:
    X, y = iris
    ll.autolog()
    with caplog.at_level(logging.WARNING), ll.start_run() as run:
        ll.log_param("C", "not the model's")  # the autologged params now conflict
        model = LogisticRegression(max_iter=1000).fit(X, y)
    assert model.predict(X).shape == (150,)
    assert any("logging params failed" in r.getMessage() for r in caplog.records)
    stored = ll.get_run(run.id)
    assert stored.params["C"] == "not the model's"
    assert "training_accuracy_score" in stored.metrics  # the rest is still logged


def test_silent_turns_the_warnings_into_debug_lines(
    project: Stores,
    autologging: None,
    iris: tuple[pd.DataFrame, pd.Series],
    caplog: pytest.LogCaptureFixture,
) -> None:
    ll.autolog(silent=True)
    with caplog.at_level(logging.WARNING), ll.start_run():
        ll.log_param("C", "conflicting")
        LogisticRegression(max_iter=1000).fit(*iris)
    assert not [r for r in caplog.records if r.name.startswith("loopline.models.autolog")]


# -- bad options -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "options",
    [
        {"log_models": "yes"},
        {"disable": 1},
        {"silent": None},
        {"max_tuning_runs": -1},
        {"max_tuning_runs": 2.5},
        {"max_tuning_runs": True},
        {"flavors": ["torch"]},
        {"flavors": "sklearn"},
        {"flavors": 3},
        {"experiment": "a/b"},
        {"experiment": ""},
        {"registered_model_name": "../escape"},
        {"registered_model_name": 7},
    ],
)
def test_autolog_refuses_bad_options(autologging: None, options: dict[str, object]) -> None:
    with pytest.raises(InvalidInput):
        ll.autolog(**options)  # type: ignore[arg-type]
    from loopline.models.autolog import patched_flavors

    assert patched_flavors() == []


def test_a_named_flavor_that_is_not_installed_is_a_missing_extra() -> None:
    script = (  # a Python that cannot find xgboost: site-packages left off its path
        "import sys, loopline as ll\n"
        "from loopline.errors import MissingExtra\n"
        "autolog = ll.autolog\n"
        "sys.path = [p for p in sys.path if 'site-packages' not in p]\n"
        "try:\n"
        "    autolog(flavors=['xgboost'])\n"
        "except MissingExtra as exc:\n"
        "    print(exc.exit_code, exc.hint)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.stdout.strip() == "8 pip install 'loopline[xgboost]'", done.stderr


def test_import_loopline_and_autolog_import_no_ml_library() -> None:
    script = (
        "import sys, loopline as ll\n"
        "ll.autolog\n"
        "print(sorted(m for m in ('sklearn', 'xgboost', 'lightgbm') if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.stdout.strip() == "[]", done.stderr


def test_autolog_of_one_flavor_does_not_import_the_others() -> None:
    script = (
        "import sys, loopline as ll\n"
        "ll.autolog(flavors=['sklearn'])\n"
        "print(sorted(m for m in ('xgboost', 'lightgbm') if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.stdout.strip() == "[]", done.stderr
