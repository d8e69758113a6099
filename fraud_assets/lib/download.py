"""Fetch a training file from http(s)://, s3:// or a local path into a local file."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import requests

from fraud_assets.lib.redaction import redact


class DownloadError(ValueError):
    """A source could not be fetched. The message is redacted and no original error is chained,
    so no presigned URL or credential reaches a log or a traceback."""


def source_name(url: str) -> str:
    """The file name of a source URL or path (used as the stable raw-copy key)."""
    name = Path(urlparse(url).path).name
    if not name:
        raise ValueError(redact(f"cannot tell a file name from {url!r}"))
    return name


def fetch_to_file(
    url: str, dest: Path, s3_client: Callable[[], Any] | None = None, timeout: float = 60.0
) -> int:
    """Copy the source to ``dest`` by streaming; return its size in bytes. Any failure is
    raised as a redacted, unchained ``DownloadError``."""
    try:
        return _fetch(url, dest, s3_client, timeout)
    except Exception as exc:  # every failure: its message may quote a presigned URL
        error = DownloadError(redact(f"{_describe(url)} failed: {type(exc).__name__}: {exc}"))
    # Raised outside the handler, so neither __cause__ nor __context__ holds the original.
    raise error from None


def _describe(url: str) -> str:
    """What the download was, for its error message (redacted by the caller)."""
    scheme = url.partition("://")[0].lower() if "://" in url else ""
    if scheme in ("", "file"):
        return f"copy of the local file {url}"
    label = {"http": "HTTP", "https": "HTTPS", "s3": "S3"}.get(scheme, scheme)
    return f"{label} download of {url.split('?', 1)[0]}"


def _fetch(url: str, dest: Path, s3_client: Callable[[], Any] | None, timeout: float) -> int:
    parsed = urlparse(url)
    dest.parent.mkdir(parents=True, exist_ok=True)
    if parsed.scheme in ("http", "https"):
        with requests.get(url, stream=True, timeout=timeout) as resp:
            resp.raise_for_status()
            with open(dest, "wb") as fh:
                for chunk in resp.iter_content(chunk_size=1 << 20):
                    fh.write(chunk)
    elif parsed.scheme == "s3":
        if s3_client is None:
            raise ValueError("an s3:// source needs an S3 client")
        s3_client().download_file(parsed.netloc, parsed.path.lstrip("/"), str(dest))
    elif parsed.scheme in ("", "file"):
        src = Path(parsed.path if parsed.scheme == "file" else url).expanduser()
        if not src.is_file():
            raise FileNotFoundError(f"training data not found: {src}")
        shutil.copyfile(src, dest)
    else:
        raise ValueError(f"unsupported training data source scheme {parsed.scheme!r} in {url!r}")
    return dest.stat().st_size
