"""``python -m app_gradio``: serve the app (GRADIO_SERVER_NAME/PORT are honoured)."""

import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

from app_gradio.app import build_app  # noqa: E402

if __name__ == "__main__":
    build_app().launch(server_name=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"))
