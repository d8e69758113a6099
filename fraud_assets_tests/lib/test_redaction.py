"""The one redactor: URLs, query credentials and environment secrets never leak."""

import threading
import traceback
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import quote, unquote

import pytest

from fraud_assets.lib.redaction import SECRET_ENV, redact


@pytest.fixture(autouse=True)
def _no_secrets_in_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test sees only the secrets it sets, whatever the shell or other tests exported."""
    for name in SECRET_ENV:
        monkeypatch.delenv(name, raising=False)


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ("API request to http://user:PASSWORD1@host:5000/api failed", "PASSWORD1"),
        ("postgresql://fraud:s3cr3t@db:5432/w?sslmode=require", "s3cr3t"),
        ("https://x.com/f.csv?X-Amz-Signature=abcdef&X-Amz-Credential=AKIA1", "abcdef"),
        ("postgresql://h/db?password=hunter2&user=u", "hunter2"),
        ("connect failed: password=topsecret host=db", "topsecret"),
        ("http://tok123456@github.com/x", "tok123456"),
        # URL passwords holding "/" or "@", or percent-encoded
        ("postgresql://u:p@ss/w@rd@db/x failed", "ss/w"),
        ("postgresql://u:p@ss/w@rd@db/x failed", "rd@db"),
        ("postgresql://u:Zq9/Wx@db/x", "Wx"),
        ("postgresql://u:p%40ssWx@db/x", "ssWx"),
        # key=value secrets in free text, quoted and in JSON
        ("password=hunter22 host=db", "hunter22"),
        ("password: hunter22", "hunter22"),
        ("password='correct horse'", "horse"),
        ('password="correct horse"', "horse"),
        ('{"password": "hunter22", "user": "u"}', "hunter22"),
        ("{'password': 'correct horse'}", "horse"),
        ('payload {\\"password\\": \\"hunter22\\"}', "hunter22"),
        ("passwd=hunter22", "hunter22"),
        ("pwd: hunter22", "hunter22"),
        ("secret=s3kr1tval", "s3kr1tval"),
        ("client_secret: s3kr1tval", "s3kr1tval"),
        ('"token": "tok-98765"', "tok-98765"),
        ("api_key=ak_98765", "ak_98765"),
        ("apikey: ak_98765", "ak_98765"),
        ("access_token=at.98765", "at.98765"),
        ("FRAUD_DECISION_METRICS_TOKEN=mt98765", "mt98765"),
        # AWS credentials in botocore config files and environment dumps
        ("aws_secret_access_key = wJalrXUtnFEMI/K7MDENG", "wJalrXUtnFEMI"),
        ("AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG", "wJalrXUtnFEMI"),
        ("aws_session_token = FQoGZXIvYXdzEJr", "FQoGZXIvYXdzEJr"),
        ("AWS_SESSION_TOKEN=FQoGZXIvYXdzEJr", "FQoGZXIvYXdzEJr"),
        # authorization headers and bearer tokens
        ("Authorization: Bearer eyJhbGciOi.e30.c2ln", "eyJhbGciOi"),
        ("Authorization: Basic dXNlcjpwYXNz", "dXNlcjpwYXNz"),
        ("headers {'Authorization': 'Bearer abcdef12', 'Accept': '*/*'}", "abcdef12"),
        ("authorization=tok98765", "tok98765"),
        ("sent Bearer eyJhbGciOiJIUzI1NiJ9.e30.c2ln", "eyJhbGciOiJIUzI1NiJ9"),
        ("sent bearer abcdefghijklmnopqrstuvwx", "abcdefghijklmnopqrstuvwx"),
        # signed URLs: S3, GCS, Azure SAS, generic; any case; in a URL or on their own
        ("https://b.s3.amazonaws.com/f.csv?X-Amz-Signature=deadbeef01&X-Amz-Date=1", "deadbeef01"),
        ("https://b.s3.amazonaws.com/f.csv?X-Amz-Credential=AKIAEX%2F2024", "AKIAEX"),
        ("https://b.s3.amazonaws.com/f.csv?X-Amz-Security-Token=FwoGZXsec", "FwoGZXsec"),
        ("https://storage.googleapis.com/b/f.csv?X-Goog-Signature=0a1b2c3d4e", "0a1b2c3d4e"),
        ("https://storage.googleapis.com/b/f.csv?X-Goog-Credential=svc%40p.iam", "svc%40p"),
        ("https://x.example/f.csv?Expires=1&Signature=ZZsig98765", "ZZsig98765"),
        ("https://x.example/f.csv?access-key=AK98765", "AK98765"),
        ("https://x.example/f.csv?access_key=AK98765", "AK98765"),
        ("https://acct.blob.core.windows.net/c/f.csv?sv=2022-11-02&sig=AbCd%2BEf9", "AbCd"),
        ("https://x.example/f.csv?x-amz-signature=lowersig98", "lowersig98"),
        ("https://x.example/f.csv?SIG=UpperSig98", "UpperSig98"),
        ("https://x.example/cb#access_token=frag98765&token_type=bearer", "frag98765"),
        ("Max retries exceeded with url: /f.csv?X-Amz-Signature=abcd1234 (Caused by)", "abcd1234"),
        ("url: /f.csv?sv=2022-11-02&sig=AzureSig98", "AzureSig98"),
        ("X-Goog-Signature=0a1b2c3d4e", "0a1b2c3d4e"),
        ("X-Amz-Credential=AKIAEX/2024/us-east-1", "AKIAEX"),
        ("sig=AzureSig98 sv=2022-11-02", "AzureSig98"),
        ("access-key: AK98765", "AK98765"),
    ],
)
def test_credentials_in_urls_and_messages_are_masked(text: str, secret: str) -> None:
    out = redact(text)
    assert secret not in out and "***" in out


@pytest.mark.parametrize(
    "text",
    [
        "s3://bucket/raw/training/fraudTrain.csv",
        "http://127.0.0.1:8765/files/x.csv",
        "s3://bucket/raw/training/fraudTrain.csv and http://127.0.0.1:8765/files/x.csv",
        "tokens per second: 1200",
        "the password is wrong",
        'FATAL:  password authentication failed for user "fraud"',
        "max_tokens=100",
        "token_type=bearer",
        "token_type=bearer secret_count: 0",
        "secret_count: 0",
        "raw_key=raw/training/x.csv",
        "postgresql://fraud@db:5432/w",
        "sqlite:////tmp/mlflow.db",
        "http://mlflow:5000/#/experiments/1/runs/abc",
        "http://host:8080/npm/@scope/pkg",
        "https://medium.com/@fraud/post",
        "https://acct.blob.core.windows.net/c/f.csv?sv=2022-11-02&sp=r",
        "a bearer of bad news",
    ],
)
def test_harmless_text_is_left_alone(text: str) -> None:
    assert redact(text) == text


def test_secret_values_from_the_environment_are_masked_anywhere(monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI")
    monkeypatch.setenv("FRAUD_DATABASE_URL", "postgresql://app:pa55word@db/w")
    out = redact("boto said wJalrXUtnFEMI; psycopg said pa55word was wrong")
    assert "wJalrXUtnFEMI" not in out and "pa55word" not in out


#: A database URL whose password (Zq@9/Wx) holds "@" and "/", percent-encoded as it should be.
ENCODED_DB_URL = "postgresql://u:Zq%409%2FWx@db/x"


@pytest.mark.parametrize(
    "text",
    [
        f"cannot connect to {ENCODED_DB_URL}: timeout",
        f"cannot connect to {unquote(ENCODED_DB_URL)}: timeout",  # percent-decoded
        f"?next={quote(ENCODED_DB_URL, safe='')}",  # percent-encoded
        f"?next={quote(unquote(ENCODED_DB_URL), safe='')}",  # decoded, then encoded once
        "psycopg: password Zq@9/Wx rejected",  # the password alone
        "psycopg: password Zq%409%2FWx rejected",
    ],
)
def test_a_url_secret_from_the_environment_is_masked_in_every_form(
    monkeypatch: pytest.MonkeyPatch, text: str
) -> None:
    monkeypatch.setenv("FRAUD_DATABASE_URL", ENCODED_DB_URL)
    out = redact(text)
    assert "Zq" not in out and "Wx" not in out and "***" in out


def test_a_url_secret_with_raw_slashes_and_ats_is_masked_whole(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url = "postgresql://u:p@ss/w@rd@db/x"
    monkeypatch.setenv("FRAUD_DATABASE_URL", url)
    out = redact(f"connect {url} failed; {quote(url, safe='')}; password p@ss/w@rd")
    assert url not in out and "ss/w" not in out and "w@rd" not in out and "%2Fw" not in out
    # Still readable: the safe form of the URL is shown where the URL was.
    assert redact(url) == "postgresql://u:***@db/x"


def test_a_webhook_url_from_the_environment_is_masked_whole(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    webhook = "https://hooks.slack.com/services/T0AAAA/B0BBBB/XXXXSECRET"
    monkeypatch.setenv("FRAUD_ALERT_WEBHOOK_URL", webhook)
    for text in (
        f"POST {webhook} failed: 404",
        f"POST {quote(webhook, safe='')} failed",
        "Max retries exceeded with url: /services/T0AAAA/B0BBBB/XXXXSECRET",
    ):
        out = redact(text)
        assert "XXXXSECRET" not in out and "B0BBBB" not in out and "***" in out, text


@pytest.mark.parametrize(
    ("name", "value", "text", "secret"),
    [
        ("FRAUD_DECISION_METRICS_TOKEN", "mtok-4711-zz", "scrape with mtok-4711-zz", "4711"),
        ("MINIO_ROOT_PASSWORD", "minio-pw-4711", "login minio-pw-4711 refused", "4711"),
        ("MLFLOW_TRACKING_PASSWORD", "mlflow-pw-4711", "basic auth mlflow-pw-4711", "4711"),
        ("FRAUD_STREAM_URL", "kafka://app:strm4711@broker:9092", "strm4711 refused", "4711"),
        ("FRAUD_DECISION_CLIENTS", "acme:ctok4711,bank:ctok4712", "client ctok4712 bad", "4712"),
    ],
)
def test_new_service_secrets_are_masked(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, text: str, secret: str
) -> None:
    monkeypatch.setenv(name, value)
    out = redact(text)
    assert secret not in out and "***" in out


# --- downloads: errors carry presigned URLs; the raised error must carry none of it ----------

SIGNATURE = "5ec2e7f0deadbeef0123"
PRESIGNED_QUERY = (
    "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAEXAMPLE%2F20240101%2Fus-east-1"
    f"%2Fs3%2Faws4_request&X-Amz-Date=20240101T000000Z&X-Amz-Signature={SIGNATURE}"
)


def _assert_carries_no_secret(error: BaseException, *secrets: str) -> None:
    shown = [str(error), repr(error), "".join(traceback.format_exception(error))]
    for secret in secrets:
        assert all(secret not in s for s in shown), (secret, shown)
    assert error.__cause__ is None and error.__context__ is None


class _Forbidden(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        self.send_response(403)
        self.end_headers()
        self.wfile.write(b"<Error><Code>SignatureDoesNotMatch</Code></Error>")

    def log_message(self, *args: object) -> None:  # quiet test output
        pass


@pytest.fixture
def forbidding_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Forbidden)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def test_a_failed_presigned_download_raises_a_redacted_unchained_error(
    forbidding_server: str, tmp_path
) -> None:  # noqa: ANN001
    from fraud_assets.lib.download import DownloadError, fetch_to_file

    url = f"{forbidding_server}/bucket/fraudTrain.csv?{PRESIGNED_QUERY}"
    with pytest.raises(DownloadError) as info:
        fetch_to_file(url, tmp_path / "out.csv", timeout=10)
    error = info.value
    assert isinstance(error, ValueError)
    assert "403" in str(error) and f"{forbidding_server}/bucket/fraudTrain.csv" in str(error)
    _assert_carries_no_secret(error, SIGNATURE, "AKIAEXAMPLE")


def test_failed_s3_and_local_copies_raise_redacted_unchained_errors(tmp_path) -> None:  # noqa: ANN001
    from botocore.exceptions import ClientError

    from fraud_assets.lib.download import DownloadError, fetch_to_file

    class FailingS3:
        def download_file(self, bucket: str, key: str, dest: str) -> None:
            raise ClientError(
                {"Error": {"Code": "403", "Message": f"Forbidden for {PRESIGNED_QUERY}"}},
                "HeadObject",
            )

    with pytest.raises(DownloadError) as info:
        fetch_to_file("s3://bucket/raw/f.csv", tmp_path / "a.csv", s3_client=FailingS3)
    assert "s3://bucket/raw/f.csv" in str(info.value) and "403" in str(info.value)
    _assert_carries_no_secret(info.value, SIGNATURE, "AKIAEXAMPLE")

    missing = tmp_path / "token=tok4711" / "f.csv"
    with pytest.raises(DownloadError, match="FileNotFoundError") as info:
        fetch_to_file(str(missing), tmp_path / "b.csv")
    _assert_carries_no_secret(info.value, "tok4711")
