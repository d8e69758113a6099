"""The decision service: approve or review a card transaction in milliseconds, on the one
serving path (``fraud_assets/lib/serving.py``), every decision recorded in the decision log that
Dagster imports (``python -m decision_api --help``)."""
