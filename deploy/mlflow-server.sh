#!/usr/bin/env bash
# Run the MLflow tracking server for production: PostgreSQL backend store, S3 artifacts.
#
#   MLFLOW_BACKEND_STORE_URI   postgresql+psycopg2://user:password@host:5432/mlflow   (required)
#   MLFLOW_ARTIFACTS_DESTINATION  s3://bucket/mlflow                                  (required)
#   MLFLOW_HOST (default 0.0.0.0), MLFLOW_PORT (default 5000), MLFLOW_WORKERS (default 2)
#   MLFLOW_ALLOWED_HOSTS  the Host headers it answers, comma-separated (e.g. mlflow:5000);
#                         unset, MLflow's default (localhost and private addresses); never "*"
#   AWS credentials and, for an S3-compatible store, MLFLOW_S3_ENDPOINT_URL.
#
# MLFLOW_AUTH=basic-auth (docker-compose.yml and the Kubernetes Deployment set it) runs MLflow's
# basic-auth app: every request but /health, static files and server-info needs a login, and a
# route without an authorization rule is refused (fail-closed). It then also needs
#   MLFLOW_AUTH_ADMIN_USERNAME, MLFLOW_AUTH_ADMIN_PASSWORD  the admin login (the UI's operators)
#   MLFLOW_FLASK_SERVER_SECRET_KEY                          signs the UI's CSRF tokens
#   the client passwords deploy/mlflow-users.py lists, which it (re)sets before the server starts
#   MLFLOW_AUTH_DATABASE_URI  where users and permissions live (default: the backend store; its
#                             tables, alembic_version_auth included, do not clash with MLflow's)
# Without MLFLOW_AUTH the server has no login: the test suite runs it so, on loopback only.
#
# The server proxies artifacts (--serve-artifacts), so clients need only MLFLOW_TRACKING_URI
# (and their login), not S3 credentials. Stop it by signalling its process group (it forks
# workers).
set -euo pipefail
: "${MLFLOW_BACKEND_STORE_URI:?set MLFLOW_BACKEND_STORE_URI (postgresql+psycopg2://...)}"
: "${MLFLOW_ARTIFACTS_DESTINATION:?set MLFLOW_ARTIFACTS_DESTINATION (s3://bucket/prefix)}"
# Without this, mlflow 3.17 starts seven job-execution workers as well.
export MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false

args=(
  --backend-store-uri "$MLFLOW_BACKEND_STORE_URI"
  --artifacts-destination "$MLFLOW_ARTIFACTS_DESTINATION"
  --serve-artifacts
  --host "${MLFLOW_HOST:-0.0.0.0}"
  --port "${MLFLOW_PORT:-5000}"
  --workers "${MLFLOW_WORKERS:-2}"
)
if [[ -n "${MLFLOW_ALLOWED_HOSTS:-}" ]]; then
  if [[ ",${MLFLOW_ALLOWED_HOSTS// /}," == *",*,"* ]]; then
    echo "MLFLOW_ALLOWED_HOSTS must name hosts, not '*'" >&2
    exit 2
  fi
  args+=(--allowed-hosts "$MLFLOW_ALLOWED_HOSTS")
fi

case "${MLFLOW_AUTH:-}" in
  "") ;;
  basic-auth)
    : "${MLFLOW_AUTH_ADMIN_USERNAME:?set MLFLOW_AUTH_ADMIN_USERNAME}"
    : "${MLFLOW_AUTH_ADMIN_PASSWORD:?set MLFLOW_AUTH_ADMIN_PASSWORD}"
    : "${MLFLOW_FLASK_SERVER_SECRET_KEY:?set MLFLOW_FLASK_SERVER_SECRET_KEY}"
    auth_uri="${MLFLOW_AUTH_DATABASE_URI:-$MLFLOW_BACKEND_STORE_URI}"
    # The config file holds the database URI (with its password): private to this user, and
    # `%` doubled for MLflow's configparser. The admin login stays in the environment.
    config_dir=$(mktemp -d)
    (
      umask 077
      printf '[mlflow]\ndefault_permission = READ\ndatabase_uri = %s\n' "${auth_uri//%/%%}" \
        >"$config_dir/basic_auth.ini"
    )
    export MLFLOW_AUTH_CONFIG_PATH="$config_dir/basic_auth.ini"
    export MLFLOW_BASIC_AUTH_FAIL_CLOSED=true
    python "$(dirname "$0")/mlflow-users.py"
    args+=(--app-name basic-auth)
    ;;
  *)
    echo "MLFLOW_AUTH must be basic-auth or unset, not '$MLFLOW_AUTH'" >&2
    exit 2
    ;;
esac

exec mlflow server "${args[@]}"
