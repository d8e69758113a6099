"""Training assets through dg.materialize: real HTTP download, MLflow store and registry."""

import dagster as dg

from fraud_assets.definitions import defs
from fraud_assets.lib import registry
from fraud_assets_tests.conftest import Platform


def _registry(platform: Platform) -> tuple[str, str]:
    res = platform.resources["mlflow_registry"]
    return res.tracking_uri, res.model_name


def test_raw_training_data_keeps_the_original_bytes_in_object_storage(trained, dataset) -> None:
    store = trained.resources["object_store"].store()
    assert store.get_bytes("raw/training/fraudTrain.csv") == dataset.train_csv.read_bytes()
    frame = store.get_parquet("assets/raw_training_data.parquet")
    assert frame.height == dataset.train_csv.read_text().count("\n") - 1


def test_first_model_is_logged_registered_and_made_champion(trained) -> None:
    uri, name = _registry(trained)
    champ = registry.get_champion(uri, name)
    assert champ is not None and champ.version == "1"
    assert 0 < champ.threshold <= 1 and champ.feature_set_version == "v1"
    assert champ.metrics["val_ap"] > 0.5
    pipeline, _ = registry.load_champion(uri, name)
    assert hasattr(pipeline, "predict_proba")


def test_champion_gate_promotes_only_a_model_at_least_as_good(trained) -> None:
    uri, name = _registry(trained)
    assets = [defs.get_assets_def(k) for k in ("raw_training_data", "rf_model", "champion_model")]
    selection = ["rf_model", "champion_model"]
    weak = {
        "ops": {
            "rf_model": {
                "config": {"n_estimators": 1, "max_depth": 1, "max_features": 0.05, "n_jobs": 1}
            }
        }
    }
    result = dg.materialize(
        assets,
        selection=selection,
        resources=trained.resources,
        run_config=weak,
        raise_on_error=False,
    )
    checks = result.get_asset_check_evaluations()
    assert [c.passed for c in checks] == [False]
    assert registry.get_champion(uri, name).version == "1"  # the weak model was not promoted

    strong = {"ops": {"rf_model": {"config": {"n_estimators": 30, "n_jobs": 2}}}}
    result = dg.materialize(
        assets, selection=selection, resources=trained.resources, run_config=strong
    )
    assert result.success and result.get_asset_check_evaluations()[0].passed
    assert registry.get_champion(uri, name).version == "3"
