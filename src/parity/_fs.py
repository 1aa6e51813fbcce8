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
    import pyarrow.fs as pafs
    from fsspec import AbstractFileSystem

__all__ = [
    "REMOTE_SCHEMES",
    "arrow_filesystem",
    "cache_root",
    "filesystem",
    "is_remote",
    "join",
    "mirror",
    "s3_options",
]

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


def _endpoint() -> str | None:
    return os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")


def s3_options(endpoint: str | None = None) -> dict[str, Any]:
    """Keyword arguments of ``s3fs.S3FileSystem`` (endpoint: given or from the environment; bounded timeouts)."""
    endpoint = endpoint or _endpoint()
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
    fs: AbstractFileSystem = s3fs.S3FileSystem(**s3_options(endpoint))
    return fs


def filesystem(location: str | os.PathLike[str]) -> tuple[AbstractFileSystem, str]:
    """Return ``(filesystem, path)`` for a local path or an ``s3://`` URL (path without the scheme)."""
    if is_remote(location):
        text = str(location)
        return _s3(_endpoint()), text[len("s3://") :].rstrip("/")
    from fsspec.implementations.local import LocalFileSystem

    return LocalFileSystem(), str(Path(location).expanduser().absolute())


def arrow_filesystem(location: str | os.PathLike[str]) -> tuple[pafs.FileSystem, str]:
    """Return ``(pyarrow filesystem, path)``: the same s3fs as :func:`filesystem`, wrapped for pyarrow."""
    import pyarrow.fs as pafs

    if is_remote(location):
        fs, path = filesystem(location)
        return pafs.PyFileSystem(pafs.FSSpecHandler(fs)), path
    return pafs.LocalFileSystem(), str(Path(location).expanduser().absolute())


def cache_root() -> Path:
    """Local cache of remote data: ``$PARITY_CACHE``, default ``~/.cache/parity``."""
    return Path(os.environ.get("PARITY_CACHE") or Path.home() / ".cache" / "parity").expanduser().absolute()


def mirror(location: str | os.PathLike[str], *, under: str | None = None) -> Path:
    """Return a local path holding ``location``: itself if local, else a synced copy of the remote files.

    Meant for lakes and datasets of immutable, uniquely named files (the lake's ``part-<uuid>``):
    files already mirrored with the same size are not downloaded again, files gone remotely are
    removed locally, and each download lands in a temp file renamed into place. ``under`` limits the
    sync to one sub-folder (e.g. ``model=churn``), so a skew run fetches only its model's partitions.
    """
    if not is_remote(location):
        return Path(location)
    fs, path = filesystem(location)
    local = cache_root() / "mirror" / path
    try:
        if fs.isfile(path):
            remote = {"": fs.info(path)}
            local.parent.mkdir(parents=True, exist_ok=True)
        else:
            base = f"{path}/{under}" if under else path
            found = fs.find(base, detail=True) if fs.exists(base) else {}
            remote = {k[len(path) + 1 :]: v for k, v in found.items() if v.get("type") != "directory"}
            if not remote and not fs.exists(path):
                raise FileNotFoundError(f"{location} does not exist")
    except OSError as exc:
        if isinstance(exc, FileNotFoundError):
            raise
        raise OSError(f"cannot list {location}: {exc}") from exc
    targets = {rel: (local / rel if rel else local) for rel in remote}
    for rel, info in remote.items():
        target = targets[rel]
        if target.is_file() and target.stat().st_size == int(info.get("size") or 0):
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.{os.getpid()}.download")
        fs.get_file(f"{path}/{rel}" if rel else path, str(tmp))
        os.replace(tmp, target)
    if local.is_dir():
        scope = local / under if under else local
        keep = set(targets.values())
        for old in [p for p in scope.rglob("*") if p.is_file()] if scope.is_dir() else []:
            if old not in keep:
                old.unlink()
    return local
