"""The one URL -> filesystem seam of batch scoring: every engine reads and writes through it.

``resolve("data/in.parquet")`` is the local filesystem; a URL with a scheme (``s3://bucket/key``,
``gs://``...) goes to ``pyarrow.fs.FileSystem.from_uri``. Callers (and the object-storage layer) may
pass their own ``filesystem`` (any ``pyarrow.fs.FileSystem``, e.g. an fsspec one wrapped in
``PyFileSystem(FSSpecHandler(...))``) to use endpoints and credentials of their choosing.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pyarrow.dataset as ds
import pyarrow.fs as pafs

from parity._fs import arrow_filesystem, is_remote
from parity.errors import SchemaError

__all__ = ["FORMATS", "atomic_dir", "atomic_file", "open_dataset", "resolve"]

FORMATS = {".parquet": "parquet", ".pq": "parquet", ".csv": "csv"}


def resolve(url: str | os.PathLike[str], filesystem: pafs.FileSystem | None = None) -> tuple[pafs.FileSystem, str]:
    """Return ``(filesystem, path)`` for a local path or a URL."""
    text = os.fspath(url)
    if filesystem is not None:
        return filesystem, text.split("://", 1)[1] if "://" in text else text
    if is_remote(text):
        return arrow_filesystem(text)  # the s3fs every parity layer uses (endpoint, credentials, timeouts)
    if "://" in text:
        try:
            return pafs.FileSystem.from_uri(text)
        except (ValueError, OSError) as exc:  # pyarrow.ArrowInvalid is a ValueError
            raise FileNotFoundError(f"cannot open {text!r}: {exc}") from exc
    return pafs.LocalFileSystem(), str(Path(text).absolute())


def _format(path: str, info: pafs.FileInfo, fs: pafs.FileSystem) -> str:
    if info.type == pafs.FileType.Directory:
        names = [f.path for f in fs.get_file_info(pafs.FileSelector(path, recursive=True)) if f.is_file]
        suffixes = {os.path.splitext(n)[1].lower() for n in names if not os.path.basename(n).startswith((".", "_"))}
        known = {FORMATS[s] for s in suffixes if s in FORMATS}
        if len(known) != 1:
            raise SchemaError(
                f"{path}: a directory input must hold only .parquet or only .csv files, found {sorted(suffixes)}"
            )
        return known.pop()
    suffix = os.path.splitext(path)[1].lower()
    if suffix not in FORMATS:
        raise SchemaError(f"cannot tell the format of {path!r}: use one of the extensions {', '.join(FORMATS)}")
    return FORMATS[suffix]


def open_dataset(
    url: str | os.PathLike[str],
    *,
    filesystem: pafs.FileSystem | None = None,
    csv_format: ds.FileFormat | None = None,
    parquet_format: ds.FileFormat | None = None,
) -> tuple[ds.Dataset, str]:
    """Open a Parquet/CSV file or directory as a dataset; return it with its format name."""
    fs, path = resolve(url, filesystem)
    info = fs.get_file_info(path)
    if info.type == pafs.FileType.NotFound:
        raise FileNotFoundError(f"input {os.fspath(url)!r} does not exist")
    fmt = _format(path, info, fs)
    chosen = {"csv": csv_format, "parquet": parquet_format}[fmt]
    file_format: ds.FileFormat | str = chosen if chosen is not None else fmt
    return ds.dataset(path, format=file_format, filesystem=fs, exclude_invalid_files=False), fmt


@contextmanager
def atomic_dir(
    url: str | os.PathLike[str], filesystem: pafs.FileSystem | None = None
) -> Iterator[tuple[pafs.FileSystem, str]]:
    """Yield a temporary sibling directory; it replaces ``url`` (which must not exist) only if the block succeeds."""
    fs, path = resolve(url, filesystem)
    if fs.get_file_info(path).type != pafs.FileType.NotFound:
        raise FileExistsError(f"output {os.fspath(url)!r} already exists: choose a new path")
    parent, name = os.path.split(path.rstrip("/"))
    tmp = f"{parent}/.{name}.{uuid.uuid4().hex[:12]}.tmp"
    fs.create_dir(tmp, recursive=True)
    try:
        yield fs, tmp
        if is_remote(os.fspath(url)):
            _publish_remote_dir(fs, tmp, path)
        else:
            fs.move(tmp, path)
    except BaseException:
        fs.delete_dir(tmp)
        raise


def _publish_remote_dir(fs: pafs.FileSystem, tmp: str, path: str) -> None:
    """Object stores have no directory rename: move each finished file from its temporary key, then
    write ``_SUCCESS`` (the Spark/Hadoop convention) so readers can tell the output is complete."""
    for info in fs.get_file_info(pafs.FileSelector(tmp, recursive=True)):
        if info.is_file:
            fs.move(info.path, f"{path}/{info.path[len(tmp) + 1 :]}")
    with fs.open_output_stream(f"{path}/_SUCCESS") as out:
        out.write(b"")
    fs.delete_dir_contents(tmp, missing_dir_ok=True)


@contextmanager
def atomic_file(
    url: str | os.PathLike[str], filesystem: pafs.FileSystem | None = None
) -> Iterator[tuple[pafs.FileSystem, str]]:
    """Yield a temporary sibling path; it becomes ``url`` (which must not exist) only if the block succeeds."""
    fs, path = resolve(url, filesystem)
    if fs.get_file_info(path).type != pafs.FileType.NotFound:
        raise FileExistsError(f"output {os.fspath(url)!r} already exists: choose a new path")
    parent, name = os.path.split(path)
    if not is_remote(os.fspath(url)) and fs.get_file_info(parent).type != pafs.FileType.Directory:
        raise FileNotFoundError(f"output directory {parent!r} does not exist")
    tmp = f"{parent}/.{name}.{uuid.uuid4().hex[:12]}.tmp"
    try:
        yield fs, tmp
        fs.move(tmp, path)
    except BaseException:
        if fs.get_file_info(tmp).type != pafs.FileType.NotFound:
            fs.delete_file(tmp)
        raise
