"""``python -m fraud_assets.rollback --reason "..."``: restore the previous champion.

The champion alias goes back to the version that was champion before the current one (from
the champion history the registry keeps), and the reason is recorded there. Scoring loads the
restored champion at its next run; re-score past hours with a backfill of
``scored_transactions``. The Dagster job ``rollback_job`` does the same from the UI.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys

from fraud_assets.lib import registry
from fraud_assets.lib.redaction import redact
from fraud_assets.settings import load_settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m fraud_assets.rollback",
        description=__doc__.split("\n\n")[1],
    )
    parser.add_argument("--reason", required=True, help="why (kept in the champion history)")
    parser.add_argument("--model-name", help="registered model (default: FRAUD_MODEL_NAME)")
    args = parser.parse_args(argv)
    settings = load_settings()
    name = args.model_name or settings.model_name
    at = dt.datetime.now(dt.UTC).replace(tzinfo=None).isoformat(timespec="seconds")
    try:
        before, after = registry.rollback(settings.mlflow_tracking_uri, name, args.reason, at)
    except (ValueError, registry.RegistryUnavailable) as exc:
        print(f"rollback failed: {redact(exc)}", file=sys.stderr)
        return 1
    print(f"{name}: champion rolled back from version {before} to version {after}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
