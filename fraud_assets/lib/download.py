"""Fetch a training file from http(s)://, s3:// or a local path into a local file."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import requests


def source_name(url: str) -> str:
    """The file name of a source URL or path (used as the stable raw-copy key)."""
    name = Path(urlparse(url).path).name
    if not name:
        raise ValueError(f"cannot tell a file name from {url!r}")
    return name


def fetch_to_file(
    url: str, dest: Path, s3_client: Callable[[], Any] | None = None, timeout: float = 60.0
) -> int:
    """Copy the source to ``dest`` by streaming; return its size in bytes."""
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
