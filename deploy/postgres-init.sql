-- Databases for the compose stack: Dagster's instance (created by POSTGRES_DB), MLflow, warehouse.
CREATE DATABASE mlflow;
CREATE DATABASE warehouse;
