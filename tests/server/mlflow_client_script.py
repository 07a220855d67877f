"""An ordinary MLflow logging script, nothing loopline in it: test_mlflow_rest.py runs it
unmodified, with MLFLOW_TRACKING_URI pointing at a loopline server, and reads the ids
it prints (one JSON line) to find what it logged.
"""

import json
import time

import mlflow
from mlflow import MlflowClient
from mlflow.entities import Metric

LOSS_POINTS = 2500  # MlflowClient.log_batch sends these in chunks of 1000 (log-batch)

mlflow.set_experiment("mlflow-compat")
with mlflow.start_run(run_name="baseline") as baseline:
    mlflow.log_param("model", "rf")
    mlflow.log_params({"max_depth": 6, "n_estimators": 100})
    mlflow.log_metric("auc", 0.91)
    for step in range(3):
        mlflow.log_metric("acc", 0.5 + step / 10, step=step)
        mlflow.log_metrics({"precision": 0.6 + step / 10, "recall": 0.7}, step=step)
    now = int(time.time() * 1000)
    points = [Metric("loss", 1.0 / (step + 1), now + step, step) for step in range(LOSS_POINTS)]
    MlflowClient().log_batch(baseline.info.run_id, metrics=points)
    mlflow.set_tag("team", "fraud")
    mlflow.set_tags({"stage": "dev", "data": "v1"})
    with mlflow.start_run(run_name="fold-1", nested=True) as child:
        mlflow.log_metric("auc", 0.89)

with mlflow.start_run(run_name="tuned") as tuned:
    mlflow.log_params({"model": "xgb", "max_depth": 4})
    mlflow.log_metric("auc", 0.95)
    mlflow.set_tag("team", "fraud")

found = mlflow.search_runs(filter_string="metrics.auc > 0.9", order_by=["metrics.auc DESC"])
print(
    json.dumps(
        {
            "experiment_id": baseline.info.experiment_id,
            "baseline": baseline.info.run_id,
            "child": child.info.run_id,
            "tuned": tuned.info.run_id,
            "search_runs": list(found["run_id"]),
            "search_columns": sorted(found.columns),
        }
    )
)
