"""Hugging Face Space entry point: the same app as ``python -m app_gradio``."""

import os

os.environ.setdefault("GRADIO_SERVER_NAME", "0.0.0.0")  # a Space serves on every interface

from app_gradio.config import disable_telemetry  # noqa: E402

disable_telemetry()

from app_gradio.app import build_app, launch  # noqa: E402

launch(build_app())
