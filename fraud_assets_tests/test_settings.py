"""The one configuration layer: every setting has its variable listed in .env.example."""

from pathlib import Path

from fraud_assets.settings import Settings

ROOT = Path(__file__).resolve().parents[1]


def test_every_setting_is_listed_in_env_example() -> None:
    listed = (ROOT / ".env.example").read_text()
    missing = []
    for name, field in Settings.model_fields.items():
        variables = field.validation_alias.choices  # type: ignore[union-attr]
        if not any(f"{v}=" in listed for v in variables):
            missing.append(f"{name} ({variables[0]})")
    assert not missing, f".env.example lacks: {', '.join(missing)}"


def test_every_secret_variable_in_env_example_is_redacted() -> None:
    import re

    from fraud_assets.lib.redaction import SECRET_ENV

    names = re.findall(r"^#?\s*([A-Z][A-Z0-9_]*)=", (ROOT / ".env.example").read_text(), re.M)
    secret_shape = re.compile(r"PASSWORD|SECRET|TOKEN|_USERS$|_CLIENTS$")
    not_secret = {"FRAUD_DECISION_DISABLED_CLIENTS"}  # client names, refused with 403
    shaped = {n for n in names if secret_shape.search(n)} - not_secret
    unredacted = sorted(shaped - set(SECRET_ENV))
    assert not unredacted, f"redaction.SECRET_ENV lacks: {', '.join(unredacted)}"
