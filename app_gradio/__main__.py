"""``python -m app_gradio``: serve the app (GRADIO_SERVER_NAME/PORT are honoured)."""

from app_gradio.config import disable_telemetry

disable_telemetry()

from app_gradio.app import build_app, launch  # noqa: E402

if __name__ == "__main__":
    launch(build_app())
