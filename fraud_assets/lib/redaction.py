"""The one redactor: every message, metadata value and alert that may carry a URL or a secret
goes through ``redact`` before anyone can see it.

Two layers. Secrets known from the environment (``SECRET_ENV``) are masked wherever they
appear: whole, in their percent-encoded and percent-decoded forms, and by their parts (a URL's
password). Common secret shapes are masked even when no variable holds them: URL passwords,
credential query parameters, ``password=…`` / ``"token": "…"``, ``Authorization:`` and
``Bearer …``. When in doubt the redactor masks: a lost word in a log is cheap, a leak is not."""

from __future__ import annotations

import functools
import os
import re
from urllib.parse import quote, quote_plus, unquote, unquote_plus

MASK = "***"
#: Query parameters whose values are credentials (compared case-insensitively).
SENSITIVE_PARAMS = frozenset(
    {
        "password",
        "passwd",
        "pwd",
        "pass",
        "secret",
        "client_secret",
        "token",
        "access_token",
        "refresh_token",
        "id_token",
        "session_token",
        "api_key",
        "apikey",
        "key",
        "access_key",
        "access-key",
        "accesskey",
        "private_key",
        "auth",
        "authorization",
        "credential",
        "credentials",
        "signature",
        "sig",
        "x-amz-signature",
        "x-amz-credential",
        "x-amz-security-token",
        "x-goog-signature",
        "x-goog-credential",
        "aws_secret_access_key",
        "aws_session_token",
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
    "FRAUD_STREAM_URL",
    "FRAUD_DECISION_CLIENTS",
    "FRAUD_DECISION_METRICS_TOKEN",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "MINIO_ROOT_PASSWORD",
    "MINIO_CODE_LOCATION_SECRET_KEY",
    "MINIO_DAEMON_SECRET_KEY",
    "MINIO_MLFLOW_SECRET_KEY",
    "MINIO_WEBSERVER_SECRET_KEY",
    "MLFLOW_ADMIN_PASSWORD",
    "MLFLOW_APP_PASSWORD",
    "MLFLOW_DECISIONS_PASSWORD",
    "DECISIONS_DB_PASSWORD",
    "MLFLOW_STREAM_PASSWORD",
    "STREAM_DB_PASSWORD",
    "MLFLOW_CODE_LOCATION_PASSWORD",
    "MLFLOW_FLASK_SECRET_KEY",
    "DAGSTER_PG_PASSWORD",
    "PGPASSWORD",
    "POSTGRES_PASSWORD",
    "APP_DB_PASSWORD",
    "DAGSTER_DB_PASSWORD",
    "MLFLOW_DB_PASSWORD",
    "WAREHOUSE_WRITER_DB_PASSWORD",
    "FRAUD_STANDIN_PUSH_TOKEN",
    "OPS_PASSWORD_HASH",
    "FRAUD_APP_USERS",
)
#: URL-valued variables that are a secret as a whole even without a password: a webhook's
#: path is its key, so it is masked entirely, not just its userinfo and query.
WHOLE_URL_SECRET_ENV = frozenset({"FRAUD_ALERT_WEBHOOK_URL"})
#: Environment values shorter than this are not masked as literals (they would mask words).
MIN_SECRET_LEN = 4

_STOP = r"\s'\"<>`"  # characters that end a URL or an unquoted value in text
# scheme://user:password@host. The password runs to the LAST "@" before the query, so one
# holding an unencoded "/" or "@" (as people paste them) is masked whole, not cut at the first.
_CRED_URL = re.compile(
    rf"(?P<head>[A-Za-z][A-Za-z0-9+.\-]*://[^{_STOP}:@/?#]*:)(?P<password>[^{_STOP}?#]*)@"
)
_PORT_PATH = re.compile(r"\d*/")  # "host:8080/a/@b": a port and a path, not a password
# http(s)://TOKEN@host: a bare user name before "@" is how tokens ride in http URLs.
_TOKEN_URL = re.compile(rf"(?i)(?P<head>https?://)[^{_STOP}:@/?#]+@")
# name=value after "?", "&", "#" or ";" (a query, a fragment, HTML's "&amp;"), anywhere: error
# messages often quote a URL's path and query without its scheme and host.
_QUERY_PARAM = re.compile(rf"(?P<head>[?&#;](?P<name>[^{_STOP}=&#?;]+)=)(?P<value>[^{_STOP}&#]*)")
# password=…, password: …, "password": "…", aws_secret_access_key = …, X-Amz-Signature=… in
# free text: a secret word ends the name (so max_tokens=5 and "tokens per second" stay).
_SECRET_NAMES = (
    r"password|passwd|pwd|secret|token|api[_-]?key|apikey|access[_-]?key|secret[_-]?key"
    r"|private[_-]?key|credentials?|signature|sig"
)
_KEY_VALUE = re.compile(
    rf"(?i)(?<![\w-])(?P<head>(?:[\w-]*[_-])?(?:{_SECRET_NAMES})\\?[\"']?[ \t]*[=:][ \t]*"
    r"(?:(?:bearer|basic|token)[ \t]+)?)(?!\*\*\*)"
    r"(?P<value>\"(?:[^\"\\]|\\.)*\"|'(?:[^'\\]|\\.)*'|\\\"(?:[^\"\\]|\\[^\"])*\\\""
    rf"|[^{_STOP}&,;\\]+)"
)
# Authorization: <scheme> <credentials> (headers, dumped dicts); the scheme word is kept.
_AUTH_HEADER = re.compile(
    r"(?i)(?<![\w-])(?P<head>(?:proxy-)?authorization\\?[\"']?[ \t]*[:=][ \t]*\\?[\"']?"
    r"(?:(?:bearer|basic|digest|token|negotiate|ntlm|dpop|aws4-hmac-sha256)[ \t]+)?)"
    r"(?!\*\*\*)[^\s'\"\\]+"
)
# A bare "Bearer <token68>" (RFC 6750): 8+ characters with a digit, or 20+, so that prose
# ("bearer of bad news", "token_type=bearer secret_count") is left alone.
_BEARER = re.compile(
    r"(?i)(?<![\w-])(?P<head>bearer[ \t]+)(?!\*\*\*)"
    r"(?:(?=[A-Za-z\-._~+/]*\d)[A-Za-z0-9\-._~+/]{8,}|[A-Za-z0-9\-._~+/]{20,})=*"
)


def _mask_password(match: re.Match[str]) -> str:
    if not match["password"] or _PORT_PATH.match(match["password"]):
        return match[0]
    return f"{match['head']}{MASK}@"


def _sensitive(match: re.Match[str]) -> bool:
    value = match["value"]
    return bool(value) and value != MASK and unquote_plus(match["name"]).lower() in SENSITIVE_PARAMS


def _mask_param(match: re.Match[str]) -> str:
    return match["head"] + MASK if _sensitive(match) else match[0]


def _mask_value(match: re.Match[str]) -> str:
    value = match["value"]
    quote_mark = next((q for q in ('\\"', '"', "'") if value.startswith(q)), "")
    return f"{match['head']}{quote_mark}{MASK}{quote_mark}"


def _forms(value: str) -> list[str]:
    """``value`` as it may appear in text: as is, percent-decoded and percent-encoded."""
    return list(dict.fromkeys((value, unquote(value), quote(value, safe=""), quote_plus(value))))


def _url_secret(value: str, whole: bool) -> tuple[str, list[str]]:
    """How a secret URL is shown (``MASK`` if the whole URL is the secret), and its secret
    parts. The value is known whole, so its password is everything up to the last "@"."""
    scheme, _, rest = value.partition("://")
    authority = re.split(r"[/?#]", rest, maxsplit=1)[0]
    head = re.split(r"[?#]", rest, maxsplit=1)[0]
    userinfo, at, _ = head.rpartition("@")
    parts = [m["value"] for m in _QUERY_PARAM.finditer(rest) if _sensitive(m)]
    shown = rest
    if at:
        user, colon, password = userinfo.partition(":")
        if colon:
            parts.append(password)
            shown = f"{user}:{MASK}@{rest[len(userinfo) + 1 :]}"
        elif scheme.lower() in ("http", "https"):
            parts.append(userinfo)
            shown = f"{MASK}@{rest[len(userinfo) + 1 :]}"
        authority = head[len(userinfo) + 1 :].split("/", 1)[0]
    if whole:  # the path is the key: also mask it where it is quoted without the host
        parts.append(rest[rest.find(authority) + len(authority) :])
        return MASK, parts
    return f"{scheme}://{_QUERY_PARAM.sub(_mask_param, shown)}", parts


def _list_parts(value: str) -> list[str]:
    """A plain secret, and the secrets of a ``name:secret,name:secret`` list."""
    parts = [value]
    for item in value.split(","):
        parts += [item.strip(), re.split(r"[:=]", item, maxsplit=1)[-1].strip(" \t\"'{}[]")]
    return parts


@functools.lru_cache(maxsize=8)
def _env_secrets(env: tuple[tuple[str, str], ...]) -> tuple[re.Pattern[str] | None, dict[str, str]]:
    """One alternation of every secret form from the environment, longest first, and what
    each is replaced by. Cached per environment, so ``redact`` compiles nothing per call."""
    replace: dict[str, str] = {}
    for name, value in env:
        if "://" in value:
            shown, parts = _url_secret(value, name in WHOLE_URL_SECRET_ENV)
            if shown != value:
                for form in _forms(value):
                    replace.setdefault(form, shown if form in (value, unquote(value)) else MASK)
        else:
            parts = _list_parts(value)
        for part in parts:
            for form in _forms(part):
                replace.setdefault(form, MASK)
    replace = {k: v for k, v in replace.items() if len(k) >= MIN_SECRET_LEN}
    if not replace:
        return None, {}
    return re.compile("|".join(map(re.escape, sorted(replace, key=len, reverse=True)))), replace


def redact(text: object) -> str:
    """``text`` with environment secrets, URL passwords, credential parameters, ``key=value``
    secrets and authorization tokens replaced by ``***``."""
    out = str(text)
    env = tuple((n, v) for n in SECRET_ENV if (v := os.environ.get(n, "").strip()))
    pattern, replace = _env_secrets(env)
    if pattern is not None:
        out = pattern.sub(lambda m: replace[m[0]], out)
    out = _AUTH_HEADER.sub(rf"\g<head>{MASK}", out)
    out = _CRED_URL.sub(_mask_password, out)
    out = _TOKEN_URL.sub(rf"\g<head>{MASK}@", out)
    out = _QUERY_PARAM.sub(_mask_param, out)
    out = _KEY_VALUE.sub(_mask_value, out)
    return _BEARER.sub(rf"\g<head>{MASK}", out)
