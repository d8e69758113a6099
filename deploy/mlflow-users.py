"""Create or update the MLflow server's logins, before it starts.

deploy/mlflow-server.sh runs this when ``MLFLOW_AUTH=basic-auth``, after writing the auth config
(``MLFLOW_AUTH_CONFIG_PATH``). It creates MLflow's user tables if missing (MLflow's own
migrations), then makes each login below match the environment: the admin
(``MLFLOW_AUTH_ADMIN_USERNAME``/``MLFLOW_AUTH_ADMIN_PASSWORD``) and one non-admin user per
client service. Run again, it resets their passwords, so rotating one is: change the variable,
restart the server and that client.

    user                 password variable              may (default_permission READ)
    fraud-code-location  MLFLOW_CODE_LOCATION_PASSWORD  read everything; manage the registered
                                                        model and what it creates (its
                                                        experiment, runs, versions, the alias)
    fraud-app            MLFLOW_APP_PASSWORD            read everything, change nothing it did
                                                        not create
    fraud-decisions      MLFLOW_DECISIONS_PASSWORD      the decision service: the same as
                                                        fraud-app (it reads the champion alias
                                                        and the model's files, nothing more)
    fraud-stream         MLFLOW_STREAM_PASSWORD         the stream consumers: the same as
                                                        fraud-decisions, under their own login

It also creates the registered model (``FRAUD_MODEL_NAME``, default ``fraud_rf`` as in
fraud_assets.settings) if missing, and grants the code location MANAGE on it. The auth app
answers 403, not 404, to a non-admin asking for a model that does not exist, and the platform
reads anything but "not found" as "registry unavailable": without the empty model, the first
training would never start. It also keeps any other login from taking the name first.

Each client service gets its user as MLFLOW_TRACKING_USERNAME and the password as
MLFLOW_TRACKING_PASSWORD. A new client adds a line here and the variable to the MLflow server's
environment. Passwords: at least 12 characters (MLflow's rule).
"""

from __future__ import annotations

import os
import sys

#: user -> the environment variable holding its password.
USERS = {
    "fraud-code-location": "MLFLOW_CODE_LOCATION_PASSWORD",
    "fraud-app": "MLFLOW_APP_PASSWORD",
    "fraud-decisions": "MLFLOW_DECISIONS_PASSWORD",
    "fraud-stream": "MLFLOW_STREAM_PASSWORD",
}
#: The user that trains and promotes models: MANAGE on the registered model.
MODEL_OWNER = "fraud-code-location"
DEFAULT_MODEL_NAME = "fraud_rf"
ADMIN_VARIABLES = ("MLFLOW_AUTH_ADMIN_USERNAME", "MLFLOW_AUTH_ADMIN_PASSWORD")


def wanted_logins(env: dict[str, str]) -> list[tuple[str, str, bool]]:
    """(user, password, is_admin) for every login, or SystemExit naming what is missing."""
    missing = [name for name in (*ADMIN_VARIABLES, *USERS.values()) if not env.get(name)]
    if missing:
        raise SystemExit(f"mlflow-users: set {', '.join(missing)}")
    admin = env["MLFLOW_AUTH_ADMIN_USERNAME"]
    if admin in USERS:
        raise SystemExit(f"mlflow-users: the admin may not be the client user {admin!r}")
    logins = [(admin, env["MLFLOW_AUTH_ADMIN_PASSWORD"], True)]
    logins += [(user, env[variable], False) for user, variable in USERS.items()]
    short = [user for user, password, _ in logins if len(password) < 12]
    if short:
        raise SystemExit(f"mlflow-users: passwords shorter than 12 characters for {short}")
    return logins


def main() -> int:
    env = dict(os.environ)
    logins = wanted_logins(env)
    if not env.get("MLFLOW_BACKEND_STORE_URI"):
        raise SystemExit("mlflow-users: set MLFLOW_BACKEND_STORE_URI")
    model_name = env.get("FRAUD_MODEL_NAME") or DEFAULT_MODEL_NAME
    # Imported late: the package reads MLFLOW_AUTH_CONFIG_PATH when it is imported.
    from mlflow.exceptions import MlflowException
    from mlflow.server.auth.config import read_auth_config
    from mlflow.server.auth.sqlalchemy_store import SqlAlchemyStore
    from mlflow.store.model_registry.sqlalchemy_store import SqlAlchemyStore as RegistryStore

    store = SqlAlchemyStore()
    store.init_db(read_auth_config().database_uri)
    for user, password, is_admin in logins:
        try:
            store.create_user(user, password, is_admin=is_admin)
            print(f"mlflow-users: created {user}")
        except MlflowException as exc:
            if exc.error_code != "RESOURCE_ALREADY_EXISTS":
                raise
            store.update_user(user, password=password, is_admin=is_admin)

    try:
        RegistryStore(env["MLFLOW_BACKEND_STORE_URI"]).create_registered_model(model_name)
        print(f"mlflow-users: created registered model {model_name}")
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
    store.grant_user_permission(MODEL_OWNER, "registered_model", model_name, "MANAGE")
    return 0


if __name__ == "__main__":
    sys.exit(main())
