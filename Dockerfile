# One image for the code location, webserver, daemon, MLflow server, bucket set-up and the
# Gradio app (docker-compose.yml), and for the Helm chart's code-server and run pods.
# It installs the runtime lock only: no test or lint tools, and never the dev lock.
#
# Base pinned by digest (the multi-arch index of python:3.11.14-slim-bookworm). It could not be
# pulled here; it is the digest that several independent public Dockerfiles pin for this tag,
# one of them naming it the tag's multi-architecture index. Refresh tag and digest together.
FROM python:3.11.14-slim-bookworm@sha256:65a93d69fa75478d554f4ad27c85c1e69fa184956261b4301ebaf6dbb0a3543d

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    DAGSTER_HOME=/opt/dagster/dagster_home \
    FRAUD_DATA_DIR=/var/lib/fraud \
    GRADIO_ANALYTICS_ENABLED=False
WORKDIR /app

# Every dependency is pinned with its sha256 hashes (`make lock`), and pip, the base image's own,
# checks them: --require-hashes refuses any file whose hash is not in the lock, and --no-deps any
# package the lock does not name. Then the project itself, again without dependencies. pip
# byte-compiles as it installs: the unprivileged user cannot write .pyc files at run time.
COPY requirements.runtime.lock pyproject.toml README.md ./
RUN pip install --no-cache-dir --disable-pip-version-check --require-hashes --no-deps \
      -r requirements.runtime.lock
COPY fraud_assets ./fraud_assets
COPY app_gradio ./app_gradio
COPY decision_api ./decision_api
RUN pip install --no-cache-dir --disable-pip-version-check --no-deps . \
 && python -m compileall -q fraud_assets app_gradio decision_api
COPY deploy ./deploy
COPY dagster.yaml workspace.yaml ${DAGSTER_HOME}/

# The services run as this user. It can write only its home, DAGSTER_HOME (Dagster's local
# artifact and log staging) and FRAUD_DATA_DIR; the code stays root's. The uid matches
# runAsUser in deploy/helm/values.yaml.
RUN groupadd --system --gid 10001 fraud \
 && useradd --system --uid 10001 --gid fraud --create-home --home-dir /home/fraud \
      --shell /usr/sbin/nologin fraud \
 && mkdir -p "$FRAUD_DATA_DIR" \
 && chown fraud:fraud "$DAGSTER_HOME" "$FRAUD_DATA_DIR"
USER 10001:10001

EXPOSE 3000 4000 5000 7860
# Webserver by default; docker-compose.yml runs the other services from the same image.
CMD ["dagster-webserver", "-h", "0.0.0.0", "-p", "3000", "-w", "/opt/dagster/dagster_home/workspace.yaml"]
