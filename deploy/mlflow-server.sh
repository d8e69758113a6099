#!/usr/bin/env bash
# Run the MLflow tracking server for production: PostgreSQL backend store, S3 artifacts.
#
#   MLFLOW_BACKEND_STORE_URI   postgresql+psycopg2://user:password@host:5432/mlflow   (required)
#   MLFLOW_ARTIFACTS_DESTINATION  s3://bucket/mlflow                                  (required)
#   MLFLOW_HOST (default 0.0.0.0), MLFLOW_PORT (default 5000), MLFLOW_WORKERS (default 2)
#   AWS credentials and, for an S3-compatible store, MLFLOW_S3_ENDPOINT_URL.
#
# The server proxies artifacts (--serve-artifacts), so clients need only MLFLOW_TRACKING_URI,
# not S3 credentials. Stop it by signalling its process group (it forks workers).
set -euo pipefail
: "${MLFLOW_BACKEND_STORE_URI:?set MLFLOW_BACKEND_STORE_URI (postgresql+psycopg2://...)}"
: "${MLFLOW_ARTIFACTS_DESTINATION:?set MLFLOW_ARTIFACTS_DESTINATION (s3://bucket/prefix)}"
# Without this, mlflow 3.17 starts seven job-execution workers as well.
export MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false
exec mlflow server \
  --backend-store-uri "$MLFLOW_BACKEND_STORE_URI" \
  --artifacts-destination "$MLFLOW_ARTIFACTS_DESTINATION" \
  --serve-artifacts \
  --host "${MLFLOW_HOST:-0.0.0.0}" \
  --port "${MLFLOW_PORT:-5000}" \
  --workers "${MLFLOW_WORKERS:-2}" \
  --allowed-hosts "${MLFLOW_ALLOWED_HOSTS:-*}"
