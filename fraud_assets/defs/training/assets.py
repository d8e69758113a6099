"""Training: fetch the labelled data, train and register a model, promote it if it is good."""

import base64
import tempfile
from pathlib import Path

import dagster as dg
import polars as pl

from fraud_assets.defs.resources import (
    MlflowResource,
    ObjectStoreResource,
    TrainingSourceResource,
)
from fraud_assets.lib import registry
from fraud_assets.lib.download import fetch_to_file, source_name
from fraud_assets.lib.model import TrainParams, predict_proba, train
from fraud_assets.lib.plots import importances_png, pr_curve_png
from fraud_assets.lib.schema import read_training_csv, validate_transactions

RAW_PREFIX = "raw/training"


def column_schema(frame: pl.DataFrame) -> dg.TableSchema:
    return dg.TableSchema(columns=[dg.TableColumn(c, str(t)) for c, t in frame.schema.items()])


def _md_image(png: bytes, alt: str) -> dg.MetadataValue:
    return dg.MetadataValue.md(f"![{alt}](data:image/png;base64,{base64.b64encode(png).decode()})")


@dg.asset(
    group_name="training",
    kinds={"polars", "parquet"},
    io_manager_key="parquet_io_manager",
    retry_policy=dg.RetryPolicy(max_retries=2, delay=10, backoff=dg.Backoff.EXPONENTIAL),
)
def raw_training_data(
    context: dg.AssetExecutionContext,
    training_source: TrainingSourceResource,
    object_store: ObjectStoreResource,
) -> pl.DataFrame:
    """Labelled card transactions in the public fraudTrain/fraudTest layout, fetched from
    FRAUD_TRAINING_DATA_URL (http, s3 or a path). The original CSV bytes are kept unchanged in
    object storage under ``raw/training/<file name>``; the asset itself is the parsed frame."""
    url = training_source.url
    name = source_name(url)
    store = object_store.store()
    with tempfile.TemporaryDirectory() as tmp:
        local = Path(tmp) / name
        size = fetch_to_file(url, local, s3_client=object_store.s3.get_client)
        raw_key = f"{RAW_PREFIX}/{name}"
        store.put_file(raw_key, local)
        frame = read_training_csv(local)
    reasons = validate_transactions(frame)
    bad = int(reasons.is_not_null().sum())
    if bad:
        context.log.warning(f"dropping {bad} invalid rows: {reasons.drop_nulls().value_counts()}")
        frame = frame.filter(reasons.is_null())
    frame = frame.sort("event_time", "trans_num")
    context.add_output_metadata(
        {
            "dagster/row_count": frame.height,
            "dagster/column_schema": column_schema(frame),
            "source": registry.redact(url.split("?")[0]),
            "raw_copy": dg.MetadataValue.path(store.uri(raw_key)),
            "raw_bytes": size,
            "frauds": int(frame["is_fraud"].sum()),
            "fraud_rate": round(float(frame["is_fraud"].mean()), 5),
            "cards": frame["cc_num"].n_unique(),
            "invalid_rows_dropped": bad,
            "first_event": str(frame["event_time"].min()),
            "last_event": str(frame["event_time"].max()),
        }
    )
    return frame


class RfModelConfig(dg.Config):
    """RandomForest hyperparameters and business settings (defaults are the tested ones)."""

    n_estimators: int = 100
    max_depth: int = 16
    min_samples_leaf: int = 3
    max_features: float = 0.5
    max_samples: float = 0.5
    class_weight: str | None = "balanced_subsample"
    validation_fraction: float = 0.2
    review_cost: float = 5.0
    cards_per_day_k: int = 100
    n_jobs: int = -1
    random_state: int = 7
    # The gate: a first model needs these; a later one must match the champion's AP within
    # ``ap_tolerance`` on the same validation window.
    min_ap: float = 0.3
    min_roc_auc: float = 0.8
    ap_tolerance: float = 0.01

    def params(self) -> TrainParams:
        return TrainParams(
            model="rf",
            n_estimators=self.n_estimators,
            max_depth=self.max_depth,
            min_samples_leaf=self.min_samples_leaf,
            max_features=self.max_features,
            max_samples=self.max_samples,
            class_weight=self.class_weight,
            validation_fraction=self.validation_fraction,
            review_cost=self.review_cost,
            cards_per_day_k=self.cards_per_day_k,
            n_jobs=self.n_jobs,
            random_state=self.random_state,
        )


def gate(
    candidate_ap: float, candidate_auc: float, champion_ap: float | None, config: RfModelConfig
) -> tuple[bool, str]:
    """Whether a candidate may become champion, and why."""
    if champion_ap is None:
        ok = candidate_ap >= config.min_ap and candidate_auc >= config.min_roc_auc
        return ok, (
            f"first model: AP {candidate_ap:.4f} (min {config.min_ap}), "
            f"ROC-AUC {candidate_auc:.4f} (min {config.min_roc_auc})"
        )
    ok = candidate_ap >= champion_ap - config.ap_tolerance
    return ok, (
        f"candidate AP {candidate_ap:.4f} vs champion AP {champion_ap:.4f} on the same "
        f"validation window (tolerance {config.ap_tolerance})"
    )


@dg.asset(
    group_name="training",
    kinds={"sklearn", "mlflow"},
    check_specs=[
        dg.AssetCheckSpec(
            "beats_champion",
            asset="rf_model",
            blocking=True,
            description="Candidate AP at least the champion's "
            "(or the minimum bars, for a first model).",
        )
    ],
)
def rf_model(
    context: dg.AssetExecutionContext,
    config: RfModelConfig,
    mlflow_registry: MlflowResource,
    raw_training_data: pl.DataFrame,
) -> dg.MaterializeResult:
    """A RandomForest on the shared features, validated on the latest window of the data,
    with a cost-based decision threshold. It is logged to MLflow and registered as a candidate
    version; the blocking check compares it with the champion on the same window."""
    params = config.params()
    result = train(raw_training_data, params)
    valid = result.validation_features
    reg = registry.log_and_register(
        result,
        valid.head(5),
        tracking_uri=mlflow_registry.tracking_uri,
        experiment=mlflow_registry.experiment,
        model_name=mlflow_registry.model_name,
        artifact_location=mlflow_registry.artifact_location,
        tags={"dagster_run_id": context.run.run_id},
    )
    champion = registry.get_champion(mlflow_registry.tracking_uri, mlflow_registry.model_name)
    champion_ap = None
    if champion is not None:
        from sklearn.metrics import average_precision_score

        pipe = registry.load_pipeline(mlflow_registry.tracking_uri, champion.name, champion.version)
        champion_ap = float(average_precision_score(valid["is_fraud"], predict_proba(pipe, valid)))
    v = result.validation
    passed, why = gate(v.ap, v.roc_auc, champion_ap, config)
    context.log.info(f"model version {reg.version}: {why} -> {'pass' if passed else 'fail'}")
    metadata = {
        "model_name": reg.name,
        "model_version": reg.version,
        "mlflow_run_id": reg.run_id,
        "mlflow_tracking": mlflow_registry.describe(),
        "ap": v.ap,
        "roc_auc": v.roc_auc,
        "precision": v.precision,
        "recall": v.recall,
        "f1": v.f1,
        "threshold": v.threshold,
        "cost_at_threshold": v.cost,
        "cost_at_0_5": v.cost_at_half,
        "card_precision_at_k": v.card_precision_at_k,
        "validation_rows": v.rows,
        "validation_frauds": v.frauds,
        "train_rows": result.train_rows,
        "fit_seconds": round(result.fit_seconds, 2),
        "validation_start": str(result.validation_start),
        "pr_curve": _md_image(pr_curve_png(*result.pr_curve, v.ap), "PR curve"),
        "feature_importance": _md_image(importances_png(result.importances), "importances"),
    }
    if champion is not None:
        metadata["champion_version"] = champion.version
        metadata["champion_ap_same_window"] = champion_ap
    exp = registry.ensure_experiment(
        mlflow_registry.tracking_uri, mlflow_registry.experiment, mlflow_registry.artifact_location
    )
    url = mlflow_registry.run_url(exp, reg.run_id)
    if url:
        metadata["mlflow_run"] = dg.MetadataValue.url(url)
    return dg.MaterializeResult(
        metadata=metadata,
        check_results=[
            dg.AssetCheckResult(
                check_name="beats_champion",
                passed=passed,
                metadata={"reason": why, "candidate_version": reg.version},
            )
        ],
    )


@dg.asset(group_name="training", kinds={"mlflow"}, deps=[rf_model])
def champion_model(
    context: dg.AssetExecutionContext, mlflow_registry: MlflowResource
) -> dg.MaterializeResult:
    """The registry's ``champion`` alias, moved to the newest model version that passed the
    gate. Scoring always loads ``models:/<name>@champion``."""
    uri, name = mlflow_registry.tracking_uri, mlflow_registry.model_name
    event = context.instance.get_latest_materialization_event(dg.AssetKey("rf_model"))
    if event is None or event.asset_materialization is None:
        raise dg.Failure("rf_model has no materialization to promote")
    version = str(event.asset_materialization.metadata["model_version"].value)
    previous = registry.get_champion(uri, name)
    registry.promote(uri, name, version)
    champ = registry.get_version(uri, name, version)
    return dg.MaterializeResult(
        metadata={
            "model_name": name,
            "champion_version": version,
            "previous_champion": previous.version if previous else "none",
            "threshold": champ.threshold,
            "feature_set_version": champ.feature_set_version,
        }
    )
