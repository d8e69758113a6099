#!/usr/bin/env bash
# One login role per service, each with only what that service needs (docker-compose.yml mounts
# this file into /docker-entrypoint-initdb.d, so the postgres image runs it as the superuser the
# first time it starts on an empty volume). Safe to run again by hand: it creates what is
# missing and resets passwords and grants.
#
#   role          password variable             may
#   dagster       DAGSTER_DB_PASSWORD           own database dagster (runs, event logs, schedules)
#   mlflow        MLFLOW_DB_PASSWORD            own database mlflow (MLflow's backend store)
#   fraud_writer  WAREHOUSE_WRITER_DB_PASSWORD  own schema warehouse in database warehouse: the
#                                               code location creates and upserts its tables
#   fraud_app     APP_DB_PASSWORD               read every warehouse table; insert and update
#                                               analyst_labels, insert (only) analyst_verdicts;
#                                               no DDL anywhere
#
# Passwords reach psql through the environment (\getenv), never its command line. Use URL-safe
# passwords (e.g. `openssl rand -hex 32`): services receive them inside connection URLs.
set -eo pipefail
: "${DAGSTER_DB_PASSWORD:?set DAGSTER_DB_PASSWORD}"
: "${MLFLOW_DB_PASSWORD:?set MLFLOW_DB_PASSWORD}"
: "${WAREHOUSE_WRITER_DB_PASSWORD:?set WAREHOUSE_WRITER_DB_PASSWORD}"
: "${APP_DB_PASSWORD:?set APP_DB_PASSWORD}"

psql -v ON_ERROR_STOP=1 --no-psqlrc --quiet \
  --username "${POSTGRES_USER:-postgres}" --dbname "${POSTGRES_DB:-postgres}" <<'SQL'
\getenv dagster_password DAGSTER_DB_PASSWORD
\getenv mlflow_password MLFLOW_DB_PASSWORD
\getenv writer_password WAREHOUSE_WRITER_DB_PASSWORD
\getenv app_password APP_DB_PASSWORD

SELECT format('CREATE ROLE %I', name)
  FROM unnest(ARRAY['dagster', 'mlflow', 'fraud_writer', 'fraud_app']) AS name
 WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = name) \gexec
ALTER ROLE dagster WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS
  PASSWORD :'dagster_password';
ALTER ROLE mlflow WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS
  PASSWORD :'mlflow_password';
ALTER ROLE fraud_writer WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS
  PASSWORD :'writer_password';
ALTER ROLE fraud_app WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS
  PASSWORD :'app_password';

SELECT format('CREATE DATABASE %I', name)
  FROM unnest(ARRAY['dagster', 'mlflow', 'warehouse']) AS name
 WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = name) \gexec
ALTER DATABASE dagster OWNER TO dagster;
ALTER DATABASE mlflow OWNER TO mlflow;
-- Nobody connects to a database unless granted here (owners may connect to their own).
REVOKE ALL ON DATABASE postgres, dagster, mlflow, warehouse FROM PUBLIC;
-- The writer's CREATE is for its `CREATE SCHEMA IF NOT EXISTS` (PostgreSQL checks it even when
-- the schema exists); TEMPORARY is for the COPY-then-upsert staging table both roles use.
GRANT CONNECT, TEMPORARY, CREATE ON DATABASE warehouse TO fraud_writer;
GRANT CONNECT, TEMPORARY ON DATABASE warehouse TO fraud_app;

\connect warehouse
REVOKE ALL ON SCHEMA public FROM PUBLIC;
CREATE SCHEMA IF NOT EXISTS warehouse AUTHORIZATION fraud_writer;
ALTER SCHEMA warehouse OWNER TO fraud_writer;
REVOKE ALL ON SCHEMA warehouse FROM PUBLIC;
GRANT USAGE ON SCHEMA warehouse TO fraud_app;
-- Tables the writer creates later (live_transactions, scored_transactions, ...) are readable
-- by the app as soon as they exist; those that exist already are granted now.
ALTER DEFAULT PRIVILEGES FOR ROLE fraud_writer IN SCHEMA warehouse
  GRANT SELECT ON TABLES TO fraud_app;
GRANT SELECT ON ALL TABLES IN SCHEMA warehouse TO fraud_app;

-- analyst_labels is the one table the app writes. It is created here, owned by the writer and
-- with the columns the app's warehouse code would give it, so the grant can name it.
SET ROLE fraud_writer;
CREATE TABLE IF NOT EXISTS warehouse.analyst_labels (
    trans_num TEXT NOT NULL,
    is_fraud BIGINT,
    analyst TEXT,
    labelled_at TIMESTAMP,
    PRIMARY KEY (trans_num)
);
-- analyst_verdicts keeps every verdict ever given: the app may add to it, never change or
-- remove one (append-only, enforced here).
CREATE TABLE IF NOT EXISTS warehouse.analyst_verdicts (
    verdict_id TEXT NOT NULL,
    trans_num TEXT,
    is_fraud BIGINT,
    analyst TEXT,
    labelled_at TIMESTAMP,
    PRIMARY KEY (verdict_id)
);
CREATE INDEX IF NOT EXISTS analyst_verdicts_trans_num_idx ON warehouse.analyst_verdicts (trans_num);
RESET ROLE;
GRANT SELECT, INSERT, UPDATE ON warehouse.analyst_labels TO fraud_app;
GRANT SELECT, INSERT ON warehouse.analyst_verdicts TO fraud_app;
SQL
