"""Production parts, switched on by environment variables alone: S3 (moto's real HTTP server),
PostgreSQL, an MLflow tracking server, and Dagster's own storage on PostgreSQL."""

import shutil
from pathlib import Path

import boto3
import dagster as dg
import psycopg
import pytest
from psycopg import sql

from fraud_assets.definitions import defs
from fraud_assets.lib import registry
from fraud_assets.testing.servers import fresh_database, mlflow_server, moto_s3
from fraud_assets_tests.helpers.platform import TRAIN_CONFIG, TRAINING_ASSETS, make_platform, sensor

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
BUCKET = "fraud-prod"
AWS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


@pytest.fixture(scope="module")
def production(tmp_path_factory, pg_url, standin_url, dataset):  # noqa: ANN001, ANN201
    """S3, PostgreSQL warehouse and MLflow server, and the environment that selects them."""
    mp = pytest.MonkeyPatch()
    for name, value in AWS.items():
        mp.setenv(name, value)
    admin = pg_url.rsplit("/", 1)[0] + "/postgres"
    with (
        moto_s3(BUCKET) as s3_url,
        fresh_database(admin, "mlflow") as mlflow_db,
        fresh_database(admin, "warehouse") as warehouse_db,
    ):
        s3 = boto3.client("s3", endpoint_url=s3_url)
        s3.upload_file(str(dataset.train_csv), BUCKET, "source/fraudTrain.csv")
        with mlflow_server(
            mlflow_db, f"s3://{BUCKET}/mlflow", {**AWS, "MLFLOW_S3_ENDPOINT_URL": s3_url}
        ) as mlflow_url:
            platform = make_platform(
                mp,
                tmp_path_factory.mktemp("prod"),
                standin_url,
                FRAUD_S3_BUCKET=BUCKET,
                AWS_ENDPOINT_URL=s3_url,
                FRAUD_DATABASE_URL=warehouse_db,
                FRAUD_DATABASE_SCHEMA="fraud",
                MLFLOW_TRACKING_URI=mlflow_url,
                FRAUD_TRAINING_DATA_URL=f"s3://{BUCKET}/source/fraudTrain.csv",
            )
            yield platform, s3, warehouse_db, mlflow_url
    mp.undo()


def _keys(s3, prefix: str) -> list[str]:  # noqa: ANN001
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix)
    return [o["Key"] for page in pages for o in page.get("Contents", [])]


def test_whole_pipeline_runs_on_s3_postgres_and_an_mlflow_server(production, dataset) -> None:
    platform, s3, warehouse_db, mlflow_url = production
    res = platform.resources
    assert res["object_store"].bucket == BUCKET
    assert res["warehouse"].process_config_and_initialize().warehouse().postgres

    training = [defs.get_assets_def(k) for k in TRAINING_ASSETS]
    assert dg.materialize(training, resources=res, run_config=TRAIN_CONFIG).success

    with dg.build_sensor_context(instance=dg.DagsterInstance.ephemeral(), resources=res) as context:
        result = sensor("transactions_sensor")(context)
    [request] = result.run_requests
    scoring = [defs.get_assets_def(k) for k in ("live_transactions", "scored_transactions")]
    assert dg.materialize(scoring, partition_key=request.partition_key, resources=res).success

    # The bucket holds the raw CSV bytes, Parquet assets, landed payloads and model artifacts.
    raw = s3.get_object(Bucket=BUCKET, Key="fraud/raw/training/fraudTrain.csv")["Body"].read()
    assert raw == dataset.train_csv.read_bytes()
    assert "fraud/assets/raw_training_data.parquet" in _keys(s3, "fraud/assets/")
    assert _keys(s3, "fraud/landing/transactions/")
    assert any(k.endswith("MLmodel") for k in _keys(s3, "mlflow/"))

    # The warehouse tables live in PostgreSQL, in the configured schema.
    with psycopg.connect(warehouse_db) as conn:
        live = conn.execute(
            sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier("fraud", "live_transactions"))
        ).fetchone()[0]
        scored = conn.execute(
            sql.SQL(
                "SELECT count(*), count(DISTINCT trans_num), min(model_version) FROM {}"
            ).format(sql.Identifier("fraud", "scored_transactions"))
        ).fetchone()
    assert live == scored[0] == scored[1] > 0 and scored[2] == "1"

    # The registry on the server has the champion, and it loads through the server.
    champ = registry.get_champion(mlflow_url, "fraud_rf")
    assert champ is not None and champ.version == "1"
    cache = Path(res["mlflow_registry"].cache_dir)
    model, _ = registry.load_champion(mlflow_url, "fraud_rf", cache)
    assert hasattr(model.pipeline, "predict_proba")
    assert (cache / "fraud_rf" / "1" / registry.MODEL_FILE).is_file()
    # the card state lives in PostgreSQL too, keyed and indexed by card
    with psycopg.connect(warehouse_db) as conn:
        profiles = conn.execute(
            sql.SQL("SELECT count(DISTINCT cc_num) FROM {}").format(
                sql.Identifier("fraud", "card_profiles")
            )
        ).fetchone()[0]
    assert profiles > 0


def test_production_dagster_yaml_stores_runs_in_postgres_and_output_in_s3(
    tmp_path, pg_url, standin_url, monkeypatch
) -> None:  # noqa: ANN001
    admin = pg_url.rsplit("/", 1)[0] + "/postgres"
    logs_bucket = "dagster-logs"
    for name, value in AWS.items():
        monkeypatch.setenv(name, value)
    with fresh_database(admin, "dagster") as dagster_db, moto_s3(logs_bucket) as s3_url:
        info = psycopg.conninfo.conninfo_to_dict(dagster_db)
        home = tmp_path / "dagster_home"
        home.mkdir()
        shutil.copyfile(ROOT / "dagster.yaml", home / "dagster.yaml")
        for name, value in {
            "DAGSTER_HOME": str(home),
            "DAGSTER_PG_HOST": info["host"],
            "DAGSTER_PG_PORT": str(info.get("port", 5432)),
            "DAGSTER_PG_USERNAME": info.get("user", "postgres"),
            "DAGSTER_PG_PASSWORD": info.get("password", ""),
            "DAGSTER_PG_DB": info["dbname"],
            "DAGSTER_COMPUTE_LOGS_BUCKET": logs_bucket,
            "DAGSTER_COMPUTE_LOGS_PREFIX": "compute-logs",
            "DAGSTER_COMPUTE_LOGS_ENDPOINT_URL": s3_url,
        }.items():
            monkeypatch.setenv(name, value)
        platform = make_platform(monkeypatch, tmp_path / "data", standin_url)
        with dg.DagsterInstance.get() as instance:
            result = dg.materialize(
                [defs.get_assets_def("raw_training_data")],
                resources=platform.resources,
                instance=instance,
            )
            assert result.success
        with psycopg.connect(dagster_db) as conn:
            row = conn.execute(
                "SELECT status FROM runs WHERE run_id = %s", (result.run_id,)
            ).fetchone()
            events = conn.execute(
                "SELECT count(*) FROM event_logs WHERE run_id = %s", (result.run_id,)
            ).fetchone()[0]
        listing = boto3.client("s3", endpoint_url=s3_url).list_objects_v2(
            Bucket=logs_bucket, Prefix="compute-logs/"
        )
        log_keys = [obj["Key"] for obj in listing.get("Contents", [])]
    assert row == ("SUCCESS",) and events > 5
    # The run's captured stdout/stderr went to the bucket (what the UI shows in production).
    assert any(result.run_id in key for key in log_keys), log_keys
