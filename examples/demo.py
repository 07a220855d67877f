"""The end-to-end demo on the embedded default (SQLite + a local artifact folder).

Stage 1 (experiment tracking): train several real scikit-learn models on the
breast-cancer data with different hyper-parameters, each as a tracked run, then show
the runs sorted by ROC AUC and compare the two best side by side.

Run with `make demo`, or `python examples/demo.py [PROJECT_DIR]` (default `.demo/`,
recreated on each run).
"""

from __future__ import annotations

import csv
import os
import shutil
import sys
import tempfile
from pathlib import Path

from sklearn.datasets import load_breast_cancer
from sklearn.ensemble import GradientBoostingClassifier, RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score, log_loss, roc_auc_score, roc_curve
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import loopline as ll
from loopline.cli.app import run as loopline_cli

CANDIDATES = [
    ("logreg", {"C": 0.01}),
    ("logreg", {"C": 1.0}),
    ("logreg", {"C": 100.0}),
    ("forest", {"n_estimators": 50, "max_depth": 3}),
    ("forest", {"n_estimators": 200, "max_depth": None}),
    ("boosting", {"n_estimators": 100, "learning_rate": 0.1, "max_depth": 2}),
    ("boosting", {"n_estimators": 100, "learning_rate": 0.5, "max_depth": 4}),
]


def build(kind: str, params: dict[str, object]) -> object:
    if kind == "logreg":
        return make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000, **params))
    if kind == "forest":
        return RandomForestClassifier(random_state=0, n_jobs=2, **params)
    return GradientBoostingClassifier(random_state=0, **params)


def train_all(workdir: Path) -> None:
    data = load_breast_cancer(as_frame=True)
    x_train, x_test, y_train, y_test = train_test_split(
        data.data, data.target, test_size=0.25, random_state=42, stratify=data.target
    )
    for kind, params in CANDIDATES:
        with ll.start_run(experiment="breast-cancer", params={"model": kind, **params}) as run:
            ll.set_tags({"dataset": "sklearn.load_breast_cancer", "stage": "demo"})
            model = build(kind, params)
            model.fit(x_train, y_train)  # type: ignore[attr-defined]
            if kind == "boosting":  # a learning curve: one point per boosting stage
                for step, proba in enumerate(model.staged_predict_proba(x_test)):  # type: ignore[attr-defined]
                    ll.log_metric("test_log_loss", log_loss(y_test, proba), step=step)
            proba = model.predict_proba(x_test)[:, 1]  # type: ignore[attr-defined]
            predicted = (proba >= 0.5).astype(int)
            ll.log_metrics(
                {
                    "roc_auc": roc_auc_score(y_test, proba),
                    "accuracy": accuracy_score(y_test, predicted),
                    "f1": f1_score(y_test, predicted),
                    "log_loss": log_loss(y_test, proba),
                }
            )
            curve = workdir / "roc_curve.csv"
            fpr, tpr, thresholds = roc_curve(y_test, proba)
            with curve.open("w", newline="") as fh:
                writer = csv.writer(fh)
                writer.writerow(["fpr", "tpr", "threshold"])
                writer.writerows(zip(fpr, tpr, thresholds, strict=True))
            ll.log_artifact(curve, artifact_path="evaluation")
        print(f"  trained {run.name:<22} {kind:<9} {params}")


def main() -> int:
    if not sys.stdout.isatty():  # logs and pipes: tables as wide as a typical terminal
        os.environ.setdefault("COLUMNS", "140")
    project = Path(sys.argv[1] if len(sys.argv) > 1 else ".demo").resolve()
    shutil.rmtree(project, ignore_errors=True)
    project.mkdir(parents=True)
    print(f"== loopline demo in {project}\n")
    if loopline_cli(["init", str(project)]) != 0:
        return 1
    ll.configure(project=project)

    print("\n== 1. Training tracked runs on the breast-cancer data")
    with tempfile.TemporaryDirectory() as workdir:
        train_all(Path(workdir))

    print("\n== 2. Runs sorted by ROC AUC (loopline runs ls)")
    os.chdir(project)
    loopline_cli(["runs", "ls", "-e", "breast-cancer", "-o", "metrics.roc_auc desc"])
    best = ll.search_runs(
        "breast-cancer", filter="metrics.roc_auc > 0.9", order_by=["metrics.roc_auc desc"]
    )
    print("\n== 3. The two best runs side by side (loopline runs compare)")
    loopline_cli(["runs", "compare", best[0].id, best[1].id])
    print(
        f"\nBest run: {best[0].name} ({best[0].id[:8]}), ROC AUC {best[0].metrics['roc_auc']:.4f}"
    )
    print(f"Try: cd {project} && loopline runs show {best[0].id[:8]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
