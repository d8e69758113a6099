"""The champion model as the model tab shows it: version, dates, metrics, importances."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import polars as pl

from fraud_assets.lib.serving import ServingModel

#: Registry metric name -> what the tab calls it, in display order.
METRIC_LABELS: dict[str, str] = {
    "val_ap": "average precision (AP)",
    "val_roc_auc": "ROC-AUC",
    "val_precision": "precision at the decision",
    "val_recall": "recall at the decision",
    "val_f1": "F1 at the decision",
    "val_flag_rate": "flag rate",
    "val_fraud_rate": "fraud rate",
    "val_threshold": "review bound: expected loss ($)",
    "val_cost": "cost: fraud let through + reviews ($)",
    "val_brier": "Brier score",
    "val_ece": "expected calibration error",
    "val_rows": "validation rows",
    "val_frauds": "validation frauds",
    "fit_seconds": "fit time (s)",
}


@dataclass
class ModelCard:
    name: str
    version: str
    trained_at: str
    run_id: str
    threshold: float
    feature_set_version: str
    feed_semantics: str
    metrics: pl.DataFrame  # metric, value
    importances: pl.DataFrame  # feature, importance

    def markdown(self) -> str:
        protocol = "api" if self.feed_semantics == "arrival" else "replay"
        return (
            f"### Champion: `{self.name}` version **{self.version}**\n\n"
            f"Trained {self.trained_at} (MLflow run `{self.run_id}`) for **{self.feed_semantics}**"
            f" feeds · feature set `{self.feature_set_version}` · flags a transaction when its "
            f"calibrated fraud probability × amount reaches **${self.threshold:,.2f}**.\n\n"
            f"Validation figures below are measured as the feed serves (the `{protocol}` "
            "protocol): on the latest window of the training data, scored the way live rows "
            "are scored."
        )

    def as_dict(self) -> dict[str, object]:
        return {
            "name": self.name,
            "version": self.version,
            "trained_at": self.trained_at,
            "run_id": self.run_id,
            "threshold": self.threshold,
            "feature_set_version": self.feature_set_version,
            "feed_semantics": self.feed_semantics,
            "metrics": dict(zip(self.metrics["metric"], self.metrics["value"], strict=True)),
        }


def metrics_table(metrics: dict[str, float]) -> pl.DataFrame:
    rows = [
        (label, round(metrics[key], 4)) for key, label in METRIC_LABELS.items() if key in metrics
    ]
    return pl.DataFrame(rows, schema={"metric": pl.String, "value": pl.Float64}, orient="row")


def importances(model: ServingModel) -> pl.DataFrame:
    """Feature importances of the fitted classifier, largest first (empty if it has none)."""
    clf = model.pipeline.named_steps["model"]  # type: ignore[attr-defined]
    values = getattr(clf, "feature_importances_", None)
    if values is None:
        return pl.DataFrame(schema={"feature": pl.String, "importance": pl.Float64})
    return pl.DataFrame(
        {"feature": list(model.feature_set.features), "importance": [float(v) for v in values]}
    ).sort("importance", descending=True)


def model_card(tracking_uri: str, model: ServingModel, info) -> ModelCard:  # noqa: ANN001
    """Describe a loaded champion (``ServingModel``, ``registry.RegisteredModel``)."""
    import mlflow

    run = mlflow.MlflowClient(tracking_uri=tracking_uri).get_run(info.run_id)
    started = dt.datetime.fromtimestamp(run.info.start_time / 1000, dt.UTC)
    return ModelCard(
        name=info.name,
        version=info.version,
        trained_at=started.strftime("%Y-%m-%d %H:%M UTC"),
        run_id=info.run_id,
        threshold=info.threshold,
        feature_set_version=info.feature_set_version,
        feed_semantics=info.semantics,
        metrics=metrics_table({**dict(run.data.metrics), **info.metrics}),
        importances=importances(model),
    )
