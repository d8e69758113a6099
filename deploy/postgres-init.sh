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
#   fraud_decisions
#                 DECISIONS_DB_PASSWORD         the decision service: read the card state
#                                               (card_profiles, card_history, card_state_meta)
#                                               and live_transactions; insert (only) into
#                                               decision_log; nothing else, no DDL anywhere
#   fraud_stream  STREAM_DB_PASSWORD            the stream consumers (python -m decision_api
#                                               consume): exactly fraud_decisions' grants, under
#                                               a login of their own
#
# Passwords reach psql through the environment (\getenv), never its command line. Use URL-safe
# passwords (e.g. `openssl rand -hex 32`): services receive them inside connection URLs.
set -eo pipefail
: "${DAGSTER_DB_PASSWORD:?set DAGSTER_DB_PASSWORD}"
: "${MLFLOW_DB_PASSWORD:?set MLFLOW_DB_PASSWORD}"
: "${WAREHOUSE_WRITER_DB_PASSWORD:?set WAREHOUSE_WRITER_DB_PASSWORD}"
: "${APP_DB_PASSWORD:?set APP_DB_PASSWORD}"
: "${DECISIONS_DB_PASSWORD:?set DECISIONS_DB_PASSWORD}"
: "${STREAM_DB_PASSWORD:?set STREAM_DB_PASSWORD}"

psql -v ON_ERROR_STOP=1 --no-psqlrc --quiet \
  --username "${POSTGRES_USER:-postgres}" --dbname "${POSTGRES_DB:-postgres}" <<'SQL'
\getenv dagster_password DAGSTER_DB_PASSWORD
\getenv mlflow_password MLFLOW_DB_PASSWORD
\getenv writer_password WAREHOUSE_WRITER_DB_PASSWORD
\getenv app_password APP_DB_PASSWORD
\getenv decisions_password DECISIONS_DB_PASSWORD
\getenv stream_password STREAM_DB_PASSWORD

SELECT format('CREATE ROLE %I', name)
  FROM unnest(ARRAY['dagster', 'mlflow', 'fraud_writer', 'fraud_app', 'fraud_decisions',
                    'fraud_stream']) AS name
 WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = name) \gexec
ALTER ROLE dagster WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS
  PASSWORD :'dagster_password';
ALTER ROLE mlflow WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS
  PASSWORD :'mlflow_password';
ALTER ROLE fraud_writer WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS
  PASSWORD :'writer_password';
ALTER ROLE fraud_app WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS
  PASSWORD :'app_password';
ALTER ROLE fraud_decisions WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS
  PASSWORD :'decisions_password';
ALTER ROLE fraud_stream WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS
  PASSWORD :'stream_password';

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
-- The decision service inserts its rows directly (no staging table): no TEMPORARY.
GRANT CONNECT ON DATABASE warehouse TO fraud_decisions;
GRANT CONNECT ON DATABASE warehouse TO fraud_stream;

\connect warehouse
REVOKE ALL ON SCHEMA public FROM PUBLIC;
CREATE SCHEMA IF NOT EXISTS warehouse AUTHORIZATION fraud_writer;
ALTER SCHEMA warehouse OWNER TO fraud_writer;
REVOKE ALL ON SCHEMA warehouse FROM PUBLIC;
GRANT USAGE ON SCHEMA warehouse TO fraud_app;
GRANT USAGE ON SCHEMA warehouse TO fraud_decisions;
GRANT USAGE ON SCHEMA warehouse TO fraud_stream;
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

-- The decision service's tables, created here for the same reason: its grants name them, and
-- it may run no DDL. Each has exactly the columns, key and indexes the code location's
-- warehouse code gives it (fraud_assets_tests/test_deploy.py compares them), so the writer's
-- Warehouse.ensure_table finds them complete and leaves them alone, and adds any column a later
-- release declares (the writer owns them). The card state (lib/card_state.py): a card's
-- profile for arrival feeds, its training history for event-time feeds, and the version row.
CREATE TABLE IF NOT EXISTS warehouse.card_profiles (
    profile_key TEXT NOT NULL,
    cc_num TEXT,
    category TEXT,
    n DOUBLE PRECISION,
    amt_sum DOUBLE PRECISION,
    amt_sumsq DOUBLE PRECISION,
    log_sum DOUBLE PRECISION,
    log_sumsq DOUBLE PRECISION,
    amt_max DOUBLE PRECISION,
    night_n DOUBLE PRECISION,
    night_amt_sum DOUBLE PRECISION,
    big_n DOUBLE PRECISION,
    n_categories DOUBLE PRECISION,
    as_of TIMESTAMP,
    PRIMARY KEY (profile_key)
);
CREATE INDEX IF NOT EXISTS card_profiles_cc_num_idx ON warehouse.card_profiles (cc_num);
CREATE TABLE IF NOT EXISTS warehouse.card_history (
    trans_num TEXT NOT NULL,
    event_time TIMESTAMP,
    cc_num TEXT,
    category TEXT,
    amt DOUBLE PRECISION,
    gender TEXT,
    dob TEXT,
    city_pop BIGINT,
    lat DOUBLE PRECISION,
    long DOUBLE PRECISION,
    merch_lat DOUBLE PRECISION,
    merch_long DOUBLE PRECISION,
    PRIMARY KEY (trans_num)
);
CREATE INDEX IF NOT EXISTS card_history_cc_num_idx ON warehouse.card_history (cc_num);
CREATE TABLE IF NOT EXISTS warehouse.card_state_meta (
    name TEXT NOT NULL,
    version TEXT,
    feature_set_version TEXT,
    written_at TIMESTAMP,
    PRIMARY KEY (name)
);
-- The polled transactions (lib/ingest.py): an event-time card's live history.
CREATE TABLE IF NOT EXISTS warehouse.live_transactions (
    trans_num TEXT NOT NULL,
    event_time TIMESTAMP,
    cc_num TEXT,
    merchant TEXT,
    category TEXT,
    amt DOUBLE PRECISION,
    first TEXT,
    last TEXT,
    gender TEXT,
    street TEXT,
    city TEXT,
    state TEXT,
    zip BIGINT,
    lat DOUBLE PRECISION,
    long DOUBLE PRECISION,
    city_pop BIGINT,
    job TEXT,
    dob TEXT,
    merch_lat DOUBLE PRECISION,
    merch_long DOUBLE PRECISION,
    is_fraud BIGINT,
    batch_hour TEXT,
    arrived_at TIMESTAMP,
    event_time_source TEXT,
    payload_key TEXT,
    row_hash TEXT,
    PRIMARY KEY (trans_num)
);
CREATE INDEX IF NOT EXISTS live_transactions_batch_hour_idx ON warehouse.live_transactions (batch_hour);
CREATE INDEX IF NOT EXISTS live_transactions_cc_num_idx ON warehouse.live_transactions (cc_num);
-- Every decision the service answered (lib/decision_log.py), one row per trans_num: the
-- service adds rows, never changes or removes one (append-only, enforced here).
CREATE TABLE IF NOT EXISTS warehouse.decision_log (
    trans_num TEXT NOT NULL,
    event_time TIMESTAMP,
    cc_num TEXT,
    merchant TEXT,
    category TEXT,
    amt DOUBLE PRECISION,
    first TEXT,
    last TEXT,
    gender TEXT,
    street TEXT,
    city TEXT,
    state TEXT,
    zip BIGINT,
    lat DOUBLE PRECISION,
    long DOUBLE PRECISION,
    city_pop BIGINT,
    job TEXT,
    dob TEXT,
    merch_lat DOUBLE PRECISION,
    merch_long DOUBLE PRECISION,
    is_fraud BIGINT,
    event_time_source TEXT,
    arrived_at TIMESTAMP,
    fraud_probability DOUBLE PRECISION,
    expected_loss DOUBLE PRECISION,
    is_flagged BOOLEAN,
    threshold DOUBLE PRECISION,
    model_name TEXT,
    model_version TEXT,
    feature_set_version TEXT,
    feed_semantics TEXT,
    scored_at TIMESTAMP,
    label_is_fraud BIGINT,
    batch_hour TEXT,
    decided_by TEXT,
    client TEXT,
    server_ms DOUBLE PRECISION,
    logged_at TIMESTAMP,
    features_json TEXT,
    PRIMARY KEY (trans_num)
);
CREATE INDEX IF NOT EXISTS decision_log_batch_hour_idx ON warehouse.decision_log (batch_hour);
CREATE INDEX IF NOT EXISTS decision_log_cc_num_idx ON warehouse.decision_log (cc_num);
CREATE INDEX IF NOT EXISTS decision_log_logged_at_idx ON warehouse.decision_log (logged_at);
RESET ROLE;
GRANT SELECT, INSERT, UPDATE ON warehouse.analyst_labels TO fraud_app;
GRANT SELECT, INSERT ON warehouse.analyst_verdicts TO fraud_app;
-- The decision service reads only what it decides with (it gets no default privileges, so no
-- table the writer creates later), and appends to the log: SELECT too, for ON CONFLICT ...
-- RETURNING and for reading a decision made before.
GRANT SELECT ON warehouse.card_profiles, warehouse.card_history, warehouse.card_state_meta,
  warehouse.live_transactions TO fraud_decisions;
GRANT SELECT, INSERT ON warehouse.decision_log TO fraud_decisions;
-- The stream consumers decide through the same code: the same grants, their own login (so
-- either can be rotated or revoked without the other).
GRANT SELECT ON warehouse.card_profiles, warehouse.card_history, warehouse.card_state_meta,
  warehouse.live_transactions TO fraud_stream;
GRANT SELECT, INSERT ON warehouse.decision_log TO fraud_stream;
SQL
