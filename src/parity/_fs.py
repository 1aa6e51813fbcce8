"""One place that turns a location (local path or ``s3://bucket/prefix`` URL) into a filesystem.

Registry, lake, skew and batch all call :func:`filesystem`, so every layer reads and writes object
storage the same way (fsspec + s3fs, imported only when a URL is used). The S3 endpoint comes from
the standard ``AWS_ENDPOINT_URL_S3`` / ``AWS_ENDPOINT_URL`` variables (for MinIO, moto, Ceph...),
credentials from the usual AWS chain. Listing caches are off: registries and lakes change under us.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from parity.errors import MissingDependencyError

if TYPE_CHECKING:
    from fsspec import AbstractFileSystem

__all__ = ["REMOTE_SCHEMES", "filesystem", "is_remote", "join", "s3_options"]

REMOTE_SCHEMES = ("s3://",)
"""URL schemes parity treats as object storage (anything else is a local path)."""

_TIMEOUTS = {"connect_timeout": 5, "read_timeout": 30, "retries": {"max_attempts": 3, "mode": "standard"}}


def is_remote(location: str | os.PathLike[str] | None) -> bool:
    """True for an object-storage URL such as ``s3://bucket/prefix``."""
    return isinstance(location, str) and location.startswith(REMOTE_SCHEMES)


def join(location: str, *parts: str) -> str:
    """Join key parts onto a URL (``/`` separated) or a local path."""
    if is_remote(location):
        return "/".join([location.rstrip("/"), *(p.strip("/") for p in parts)])
    return str(Path(location, *parts))


def s3_options() -> dict[str, Any]:
    """Keyword arguments of ``s3fs.S3FileSystem`` (endpoint from the environment, bounded timeouts)."""
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    options: dict[str, Any] = {"use_listings_cache": False, "config_kwargs": dict(_TIMEOUTS)}
    if endpoint:
        options["client_kwargs"] = {"endpoint_url": endpoint}
    return options


@lru_cache(maxsize=8)
def _s3(endpoint: str | None) -> AbstractFileSystem:
    try:
        import s3fs
    except ModuleNotFoundError as exc:
        raise MissingDependencyError(
            f"s3:// locations need the 's3' extra ({exc.name} is not installed): pip install 'parity[s3]'"
        ) from exc
    fs: AbstractFileSystem = s3fs.S3FileSystem(**s3_options())
    return fs


def filesystem(location: str | os.PathLike[str]) -> tuple[AbstractFileSystem, str]:
    """Return ``(filesystem, path)`` for a local path or an ``s3://`` URL (path without the scheme)."""
    if is_remote(location):
        text = str(location)
        endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
        return _s3(endpoint), text[len("s3://") :].rstrip("/")
    from fsspec.implementations.local import LocalFileSystem

    return LocalFileSystem(), str(Path(location).expanduser().absolute())
