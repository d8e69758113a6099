"""``python -m app_gradio``: serve the app (GRADIO_SERVER_NAME/PORT are honoured).

Refuses to start, with exit status 2 and a message naming the variables to set, when it would
serve beyond loopback without a login (see ``auth.py``)."""

import sys

from app_gradio.config import disable_telemetry

disable_telemetry()

from app_gradio.auth import InsecureStartup, UsersError, login_policy  # noqa: E402
from fraud_assets.settings import load_settings  # noqa: E402


def main() -> None:
    try:
        login_policy(load_settings())  # fail before building anything
    except (InsecureStartup, UsersError) as exc:
        print(f"app_gradio: {exc}", file=sys.stderr)
        sys.exit(2)
    from app_gradio.app import build_app, launch

    launch(build_app())


if __name__ == "__main__":
    main()
