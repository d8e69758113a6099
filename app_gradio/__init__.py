"""The fraud analysts' web app: a dashboard over scored transactions."""
