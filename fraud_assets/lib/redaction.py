"""The one redactor: every message, metadata value and alert that may carry a URL or a secret
goes through ``redact`` before anyone can see it."""

from __future__ import annotations

import os
import re
from urllib.parse import parse_qsl, urlencode

MASK = "***"
#: Query parameters whose values are credentials (compared case-insensitively).
SENSITIVE_PARAMS = frozenset(
    {
        "password",
        "passwd",
        "pwd",
        "pass",
        "secret",
        "token",
        "access_token",
        "refresh_token",
        "id_token",
        "api_key",
        "apikey",
        "key",
        "auth",
        "authorization",
        "credential",
        "credentials",
        "signature",
        "sig",
        "x-amz-signature",
        "x-amz-credential",
        "x-amz-security-token",
        "sslpassword",
    }
)
#: Environment variables whose values are secrets themselves, or URLs that may hold one.
SECRET_ENV = (
    "FRAUD_DATABASE_URL",
    "MLFLOW_TRACKING_URI",
    "MLFLOW_TRACKING_PASSWORD",
    "MLFLOW_TRACKING_TOKEN",
    "FRAUD_TRAINING_DATA_URL",
    "FRAUD_ALERT_WEBHOOK_URL",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "DAGSTER_PG_PASSWORD",
    "PGPASSWORD",
    "FRAUD_APP_USERS",
)
_URL = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]*://)(?P<rest>[^\s'\"<>`]+)")
_USERINFO = re.compile(r"^(?P<user>[^:@/]*)(?::(?P<password>[^@/]*))?@")


def _redact_url(match: re.Match[str]) -> str:
    scheme, rest = match["scheme"], match["rest"]
    userinfo = _USERINFO.match(rest)
    if userinfo and userinfo["password"] is not None:
        rest = f"{userinfo['user']}:{MASK}@" + rest[userinfo.end() :]
    elif userinfo and "@" in rest.split("/", 1)[0] and scheme.startswith("http"):
        rest = f"{MASK}@" + rest[userinfo.end() :]  # a bare token as user name
    base, sep, query = rest.partition("?")
    if sep:
        query, hashsep, fragment = query.partition("#")
        pairs = parse_qsl(query, keep_blank_values=True)
        if any(k.lower() in SENSITIVE_PARAMS for k, _ in pairs):
            query = urlencode(
                [(k, MASK if k.lower() in SENSITIVE_PARAMS else v) for k, v in pairs], safe="*"
            )
        rest = base + sep + query + hashsep + fragment
    return scheme + rest


def _secret_values() -> list[str]:
    """Secret values from the environment, and the passwords inside secret URLs."""
    values: list[str] = []
    for name in SECRET_ENV:
        value = (os.environ.get(name) or "").strip()
        if not value:
            continue
        if "://" in value:
            userinfo = _USERINFO.match(value.split("://", 1)[1])
            if userinfo and userinfo["password"]:
                values.append(userinfo["password"])
            for key, param in parse_qsl(value.partition("?")[2]):
                if key.lower() in SENSITIVE_PARAMS and param:
                    values.append(param)
        else:
            values.append(value)
    return sorted({v for v in values if len(v) >= 4}, key=len, reverse=True)


def redact(text: object) -> str:
    """``text`` with URL passwords, credential query parameters and any secret value from the
    environment replaced by ``***``."""
    out = _URL.sub(_redact_url, str(text))
    for secret in _secret_values():
        out = out.replace(secret, MASK)
    return re.sub(
        r"(?i)(password|passwd|pwd|secret|token)(\s*[=:]\s*)(?!\*\*\*)([^\s&,;'\"]+)",
        rf"\1\2{MASK}",
        out,
    )
