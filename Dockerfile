# One image for the code location, webserver, daemon and the Gradio app.
# Installs exactly as the README does: uv from the same lock, then the project itself.
FROM python:3.11-slim
ENV PYTHONUNBUFFERED=1 DAGSTER_HOME=/opt/dagster/home GRADIO_ANALYTICS_ENABLED=False
WORKDIR /app
COPY requirements.lock pyproject.toml README.md ./
RUN pip install --no-cache-dir uv==0.13.9 \
 && uv pip install --system --no-cache -r requirements.lock
COPY fraud_assets ./fraud_assets
COPY app_gradio ./app_gradio
RUN uv pip install --system --no-cache --no-deps .
COPY dagster.yaml workspace.yaml ${DAGSTER_HOME}/
EXPOSE 3000 4000 7860
# Webserver by default; run the daemon with `dagster-daemon run -w $DAGSTER_HOME/workspace.yaml`
# and the app with `python -m app_gradio` (set GRADIO_SERVER_NAME=0.0.0.0 in a container).
CMD ["sh", "-c", "dagster-webserver -h 0.0.0.0 -p 3000 -w $DAGSTER_HOME/workspace.yaml"]
