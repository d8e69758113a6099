#!/bin/sh
# The MinIO set-up job (docker-compose.yml's minio-setup runs it with the MinIO image's own `mc`):
# the bucket, then one MinIO user per service, each with only its own policy. It is the one
# thing that uses the root credentials. Safe to run again: it creates what is missing, resets
# every user's secret key and rewrites every policy.
#
#   user                 secret key variable             policy (./<user>.json) lets it
#   fraud-code-location  MINIO_CODE_LOCATION_SECRET_KEY  read, write, list fraud/ (FRAUD_S3_PREFIX)
#                                                        and dagster/compute-logs/; read source/
#   fraud-webserver      MINIO_WEBSERVER_SECRET_KEY      read, list dagster/compute-logs/
#   fraud-daemon         MINIO_DAEMON_SECRET_KEY         read, write, list dagster/compute-logs/
#   fraud-mlflow         MINIO_MLFLOW_SECRET_KEY         read, write, list mlflow/
#
# The web app gets no user: it reads PostgreSQL, and models through the MLflow server, which
# proxies artifacts. MC_HOST_minio=http://ROOT_USER:ROOT_PASSWORD@minio:9000 is the server and
# its root login (mc's own variable; no config file is written). Secret keys reach mc on its
# command line, visible only inside this short-lived container.
set -eu
: "${MC_HOST_minio:?set MC_HOST_minio=http://ROOT_USER:ROOT_PASSWORD@minio:9000}"
: "${MINIO_CODE_LOCATION_SECRET_KEY:?set MINIO_CODE_LOCATION_SECRET_KEY}"
: "${MINIO_WEBSERVER_SECRET_KEY:?set MINIO_WEBSERVER_SECRET_KEY}"
: "${MINIO_DAEMON_SECRET_KEY:?set MINIO_DAEMON_SECRET_KEY}"
: "${MINIO_MLFLOW_SECRET_KEY:?set MINIO_MLFLOW_SECRET_KEY}"
BUCKET=fraud
POLICIES=$(dirname "$0")

# MinIO may still be starting: wait up to 120 s for it to answer.
tries=0
until mc ls minio >/dev/null 2>&1; do
  tries=$((tries + 1))
  if [ "$tries" -ge 120 ]; then
    echo "MinIO did not answer in 120 s" >&2
    exit 1
  fi
  sleep 1
done

mc mb --ignore-existing "minio/$BUCKET"

# user secret_key: the policy named after the user, the user, and the one attached to the other.
user_with_policy() {
  mc admin policy create minio "$1" "$POLICIES/$1.json"
  mc admin user add minio "$1" "$2"
  if ! out=$(mc admin policy attach minio "$1" --user "$1" 2>&1); then
    case "$out" in
      *"already in effect"*) ;;  # attached on an earlier run
      *) echo "$out" >&2; exit 1 ;;
    esac
  fi
}

user_with_policy fraud-code-location "$MINIO_CODE_LOCATION_SECRET_KEY"
user_with_policy fraud-webserver "$MINIO_WEBSERVER_SECRET_KEY"
user_with_policy fraud-daemon "$MINIO_DAEMON_SECRET_KEY"
user_with_policy fraud-mlflow "$MINIO_MLFLOW_SECRET_KEY"
echo "bucket $BUCKET and 4 service users ready"
