"""The fraud analysts' web app: dashboard, model card, manual scoring, analyst feedback."""
