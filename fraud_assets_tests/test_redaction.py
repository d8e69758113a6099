"""The one redactor: URLs, query credentials and environment secrets never leak."""

import pytest

from fraud_assets.lib.redaction import redact


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ("API request to http://user:PASSWORD1@host:5000/api failed", "PASSWORD1"),
        ("postgresql://fraud:s3cr3t@db:5432/w?sslmode=require", "s3cr3t"),
        ("https://x.com/f.csv?X-Amz-Signature=abcdef&X-Amz-Credential=AKIA1", "abcdef"),
        ("postgresql://h/db?password=hunter2&user=u", "hunter2"),
        ("connect failed: password=topsecret host=db", "topsecret"),
        ("http://tok123456@github.com/x", "tok123456"),
    ],
)
def test_credentials_in_urls_and_messages_are_masked(text: str, secret: str) -> None:
    out = redact(text)
    assert secret not in out and "***" in out


def test_secret_values_from_the_environment_are_masked_anywhere(monkeypatch) -> None:
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI")
    monkeypatch.setenv("FRAUD_DATABASE_URL", "postgresql://app:pa55word@db/w")
    out = redact("boto said wJalrXUtnFEMI; psycopg said pa55word was wrong")
    assert "wJalrXUtnFEMI" not in out and "pa55word" not in out


def test_harmless_text_is_left_alone() -> None:
    text = "s3://bucket/raw/training/fraudTrain.csv and http://127.0.0.1:8765/files/x.csv"
    assert redact(text) == text
