"""Training: fetch the labelled data, train and register a model, promote it if it is good."""

import base64
import dataclasses
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
from fraud_assets.lib.features import FEATURE_SET_VERSION
from fraud_assets.lib.model import TrainParams, default_params, predict_proba, train
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


_RF = default_params("rf")
_HGB = default_params("hgb")


class CandidateConfig(dg.Config):
    """Settings every candidate shares: validation, business cost and the champion gate.

    Defaults come from ``TrainParams`` (lib/model.py), the single home of model defaults.
    """

    validation_fraction: float = _RF.validation_fraction
    review_cost: float = _RF.review_cost
    cards_per_day_k: int = _RF.cards_per_day_k
    n_jobs: int = _RF.n_jobs
    random_state: int = _RF.random_state
    # The gate: a first model needs these; a later one must match the champion's AP within
    # ``ap_tolerance`` on the same validation window.
    min_ap: float = 0.3
    min_roc_auc: float = 0.8
    ap_tolerance: float = 0.01

    def model_kind(self) -> str:
        raise NotImplementedError

    def params(self) -> TrainParams:
        known = {f.name for f in dataclasses.fields(TrainParams)}
        values = {k: v for k, v in self.model_dump().items() if k in known}
        return default_params(self.model_kind(), **values)


class RfModelConfig(CandidateConfig):
    """RandomForest hyperparameters and business settings (defaults chosen on validation)."""

    n_estimators: int = _RF.n_estimators
    max_depth: int | None = _RF.max_depth
    min_samples_leaf: int = _RF.min_samples_leaf
    max_features: float = _RF.max_features
    max_samples: float | None = _RF.max_samples
    criterion: str = _RF.criterion
    legit_sample_rate: float = _RF.legit_sample_rate
    class_weight: str | None = _RF.class_weight

    def model_kind(self) -> str:
        return "rf"


class HgbModelConfig(CandidateConfig):
    """HistGradientBoosting challenger hyperparameters (defaults chosen on validation)."""

    max_iter: int = _HGB.max_iter
    learning_rate: float = _HGB.learning_rate
    max_leaf_nodes: int = _HGB.max_leaf_nodes
    l2_regularization: float = _HGB.l2_regularization
    legit_sample_rate: float = _HGB.legit_sample_rate
    class_weight: str | None = _HGB.class_weight

    def model_kind(self) -> str:
        return "hgb"


def gate(
    candidate_ap: float, candidate_auc: float, champion_ap: float | None, config: CandidateConfig
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


def _check_spec(asset: str) -> dg.AssetCheckSpec:
    return dg.AssetCheckSpec(
        "beats_champion",
        asset=asset,
        blocking=True,
        description="Candidate AP at least the champion's on the same validation window "
        "(or the minimum bars, for a first model).",
    )


def _train_candidate(
    context: dg.AssetExecutionContext,
    config: CandidateConfig,
    mlflow_registry: MlflowResource,
    raw_training_data: pl.DataFrame,
) -> dg.MaterializeResult:
    """Train, log and register one candidate, then gate it against the champion."""
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
        tags={"dagster_run_id": context.run.run_id, "dagster_asset": context.asset_key.path[-1]},
    )
    champion = registry.get_champion(mlflow_registry.tracking_uri, mlflow_registry.model_name)
    champion_ap = None
    if champion is not None:
        from sklearn.metrics import average_precision_score

        pipe = registry.load_pipeline(mlflow_registry.tracking_uri, champion.name, champion.version)
        champion_ap = float(average_precision_score(valid["is_fraud"], predict_proba(pipe, valid)))
    v = result.validation
    passed, why = gate(v.ap, v.roc_auc, champion_ap, config)
    # Imported here so that scoring runs, which load these definitions too, skip matplotlib.
    from fraud_assets.lib.plots import importances_png, pr_curve_png

    context.log.info(f"model version {reg.version}: {why} -> {'pass' if passed else 'fail'}")
    metadata = {
        "model_name": reg.name,
        "model_version": reg.version,
        "model_kind": params.model,
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
        "fit_rows": result.fit_rows,
        "fit_seconds": round(result.fit_seconds, 2),
        "validation_start": str(result.validation_start),
        "feature_set_version": FEATURE_SET_VERSION,
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


@dg.asset(group_name="training", kinds={"sklearn", "mlflow"}, check_specs=[_check_spec("rf_model")])
def rf_model(
    context: dg.AssetExecutionContext,
    config: RfModelConfig,
    mlflow_registry: MlflowResource,
    raw_training_data: pl.DataFrame,
) -> dg.MaterializeResult:
    """A RandomForest on the shared features, validated on the latest window of the data,
    with a cost-based decision threshold. It is logged to MLflow and registered as a candidate
    version; the blocking check compares it with the champion on the same window."""
    return _train_candidate(context, config, mlflow_registry, raw_training_data)


@dg.asset(
    group_name="training", kinds={"sklearn", "mlflow"}, check_specs=[_check_spec("hgb_model")]
)
def hgb_model(
    context: dg.AssetExecutionContext,
    config: HgbModelConfig,
    mlflow_registry: MlflowResource,
    raw_training_data: pl.DataFrame,
) -> dg.MaterializeResult:
    """The challenger: HistGradientBoosting on the same features, split, threshold and gate as
    ``rf_model``, registered under the same model name so the two compete for ``champion``."""
    return _train_candidate(context, config, mlflow_registry, raw_training_data)


CANDIDATES = ("rf_model", "hgb_model")


def choose_candidate(candidates: dict[str, tuple[str, float]]) -> tuple[str, str]:
    """The asset whose candidate ``(version, validation AP)`` is best, and why."""
    if not candidates:
        raise ValueError("no candidate")
    best = max(candidates, key=lambda k: (candidates[k][1], k))
    version, ap = candidates[best]
    others = [f"{k} version {v} (AP {a:.4f})" for k, (v, a) in candidates.items() if k != best]
    why = f"{best} version {version} passed the gate with validation AP {ap:.4f}"
    if others:
        why += f", the best on the same window; also passed: {', '.join(others)}"
    return best, why


@dg.asset(group_name="training", kinds={"mlflow"}, deps=[*CANDIDATES])
def champion_model(
    context: dg.AssetExecutionContext, mlflow_registry: MlflowResource
) -> dg.MaterializeResult:
    """The registry's ``champion`` alias, moved to the best candidate trained in this run (it
    only runs when every candidate in the run passed its blocking ``beats_champion`` check).
    Scoring always loads ``models:/<name>@champion``."""
    uri, name = mlflow_registry.tracking_uri, mlflow_registry.model_name
    candidates: dict[str, tuple[str, float]] = {}
    for key in CANDIDATES:
        event = context.instance.get_latest_materialization_event(dg.AssetKey(key))
        if event is None or event.asset_materialization is None or event.run_id != context.run_id:
            continue
        meta = event.asset_materialization.metadata
        candidates[key] = (str(meta["model_version"].value), float(meta["ap"].value))
    if not candidates:
        raise dg.Failure(
            f"no candidate ({', '.join(CANDIDATES)}) was trained in this run; "
            "materialize one together with champion_model"
        )
    chosen, why = choose_candidate(candidates)
    version = candidates[chosen][0]
    previous = registry.get_champion(uri, name)
    registry.promote(uri, name, version)
    champ = registry.get_version(uri, name, version)
    context.log.info(f"champion -> version {version}: {why}")
    return dg.MaterializeResult(
        metadata={
            "model_name": name,
            "champion_version": version,
            "champion_asset": chosen,
            "reason": why,
            "previous_champion": previous.version if previous else "none",
            "threshold": champ.threshold,
            "feature_set_version": champ.feature_set_version,
        }
    )
