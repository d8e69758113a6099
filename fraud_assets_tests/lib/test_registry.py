"""The registry's tags that steer decisions are checked when a model is loaded: a bad one makes
the model incompatible, never a model that silently flags nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from fraud_assets.lib import registry
from fraud_assets.lib.features import IncompatibleModel

GOOD_TAGS = {
    "feed_semantics": "arrival",
    "feature_set_version": "arrival-v1",
    "odds_factor": "0.5",
    "review_cost": "5.0",
    "min_expected_loss": "5.0",
}


def _store(root: Path) -> str:
    """An embedded MLflow store holding one registered version, made champion."""
    import mlflow

    uri = f"sqlite:///{root / 'mlflow.db'}"
    client = mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)
    experiment = client.create_experiment("t", artifact_location=(root / "a").as_uri())
    run = client.create_run(experiment)
    client.create_registered_model("fraud_rf")
    mv = client.create_model_version("fraud_rf", f"runs:/{run.info.run_id}/model", run.info.run_id)
    client.set_registered_model_alias("fraud_rf", registry.CHAMPION, mv.version)
    return uri


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> str:
    """One store for the module (making one takes seconds); each test sets every tag."""
    return _store(tmp_path_factory.mktemp("registry"))


def set_tags(uri: str, tags: dict[str, str]) -> None:
    registry.set_version_tags(uri, "fraud_rf", "1", tags)


def test_good_tags_load_as_the_decision(store: str) -> None:
    set_tags(store, GOOD_TAGS)
    for found in (
        registry.champion_pointer(store, "fraud_rf"),
        registry.get_champion(store, "fraud_rf"),
    ):
        assert found.calibration.odds_factor == 0.5
        assert found.decision.min_expected_loss == 5.0


@pytest.mark.parametrize(
    ("tag", "value", "reason"),
    [
        ("odds_factor", "nan", "not a finite number"),
        ("odds_factor", "inf", "not a finite number"),
        ("odds_factor", "0", "must be above 0"),
        ("odds_factor", "-2", "must be above 0"),
        ("odds_factor", "lots", "not a number"),
        ("min_expected_loss", "inf", "not a finite number"),
        ("min_expected_loss", "nan", "not a finite number"),
        ("min_expected_loss", "-5", "must be at least 0"),
        ("review_cost", "-1", "must be at least 0"),
    ],
)
def test_a_bad_decision_tag_makes_the_model_incompatible(
    store: str, tag: str, value: str, reason: str
) -> None:
    set_tags(store, GOOD_TAGS | {tag: value})
    for lookup in (registry.champion_pointer, registry.get_champion):
        with pytest.raises(IncompatibleModel, match=reason):
            lookup(store, "fraud_rf")


def test_a_champion_with_a_bad_tag_can_still_be_rolled_back(tmp_path: Path) -> None:
    import mlflow

    store = _store(tmp_path)
    client = mlflow.MlflowClient(tracking_uri=store, registry_uri=store)
    first = client.get_model_version("fraud_rf", "1")
    client.create_model_version("fraud_rf", first.source, first.run_id)
    registry.set_version_tags(store, "fraud_rf", "2", GOOD_TAGS | {"odds_factor": "nan"})
    registry.promote(store, "fraud_rf", "1", "first", "2026-01-01T00:00:00")
    registry.promote(store, "fraud_rf", "2", "second", "2026-01-02T00:00:00")
    assert registry.rollback(store, "fraud_rf", "v2 cannot be served", "2026-01-03") == ("2", "1")
