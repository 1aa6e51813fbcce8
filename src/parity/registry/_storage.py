"""Where registry bytes live: the :class:`Storage` interface and the local filesystem backend.

Keys are ``/``-separated paths relative to the storage root (``models/churn/index.json``); a
"prefix" is a key naming a folder. The registry talks to storage only through this interface,
so an object-store backend (S3 via fsspec) can be added without touching its callers: such a
backend implements ``move`` as copy-then-delete (it runs under the model lock), ``lock`` with a
lease object, and ``local_path`` by materialising the prefix into a local cache.
"""

from __future__ import annotations

import builtins
import contextlib
import os
import shutil
import time
from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path, PurePosixPath
from typing import Protocol

from parity._io import atomic_write_bytes, sha256_bytes
from parity.errors import RegistryError

__all__ = ["ConflictError", "LocalStorage", "Storage"]

_READ_ONLY = 0o444


class ConflictError(RegistryError):
    """A conditional write lost: another writer changed the object first."""


def _key_parts(key: str) -> tuple[str, ...]:
    """Split a key into path parts, refusing anything that could escape the storage root."""
    path = PurePosixPath(key)
    # PurePosixPath drops "." parts silently, so look at the raw segments too.
    if not key or path.is_absolute() or "\\" in key or any(seg in ("", ".", "..") for seg in key.split("/")):
        raise RegistryError(f"invalid storage key {key!r}: keys are relative posix paths without '.' or '..'")
    return path.parts


class Storage(Protocol):
    """Byte storage the registry is built on; every key is relative to the storage root."""

    def read_bytes(self, key: str) -> bytes:
        """Return the content of ``key``; raise :class:`FileNotFoundError` if it does not exist."""
        ...

    def write_bytes_atomic(self, key: str, data: bytes) -> None:
        """Replace ``key`` with ``data`` so readers see the old or the new content, never a part."""
        ...

    def read_tagged(self, key: str) -> tuple[bytes, str]:
        """Return the content of ``key`` and a tag of that content (S3: its ETag)."""
        ...

    def write_if(self, key: str, data: bytes, tag: str | None) -> str:
        """Write ``key`` atomically only if its tag is still ``tag`` (None: only if absent), else
        raise :class:`ConflictError`; return the new tag."""
        ...

    def append_bytes(self, key: str, data: bytes) -> None:
        """Append ``data`` to ``key`` durably (creating it); callers hold the lock."""
        ...

    def exists(self, key: str) -> bool:
        """Return whether ``key`` exists (file or folder)."""
        ...

    def list(self, prefix: str) -> builtins.list[str]:
        """Return the sorted names of the direct children of ``prefix`` (empty if it is absent)."""
        ...

    def age(self, key_prefix: str) -> float | None:
        """Seconds since anything under ``key_prefix`` was last written (None if it does not exist)."""
        ...

    def put_dir(self, local_dir: Path, key_prefix: str, files: Iterable[str]) -> None:
        """Copy ``files`` (relative posix paths) of ``local_dir`` under ``key_prefix``, read-only."""
        ...

    def move(self, src_prefix: str, dst_prefix: str) -> None:
        """Move a folder; raise :class:`FileExistsError` if ``dst_prefix`` already exists."""
        ...

    def delete(self, key_prefix: str) -> None:
        """Delete a key or a folder recursively; a missing one is not an error."""
        ...

    def local_path(self, key_prefix: str) -> Path:
        """Return the local directory of ``key_prefix`` (for remote backends a cache, maybe not filled yet)."""
        ...

    def fetch(self, key_prefix: str) -> Path:
        """Make sure :meth:`local_path` holds ``key_prefix`` (remote: download once) and return it."""
        ...

    def lock(self, name: str) -> AbstractContextManager[None]:
        """Return a context manager holding an exclusive, cross-process lock called ``name``."""
        ...


class LocalStorage:
    """:class:`Storage` on a local directory: temp+rename writes and ``fcntl.flock`` lock files."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        # Absolute, so a later chdir of the caller cannot move the registry.
        self.root = Path(root).expanduser().absolute()

    def __repr__(self) -> str:
        return f"LocalStorage({str(self.root)!r})"

    def _path(self, key: str) -> Path:
        return self.root.joinpath(*_key_parts(key))

    def read_bytes(self, key: str) -> bytes:
        """Return the content of ``key``; raise :class:`FileNotFoundError` if it does not exist."""
        return self._path(key).read_bytes()

    def write_bytes_atomic(self, key: str, data: bytes) -> None:
        """Replace ``key`` with ``data`` via a temp file and ``os.replace``."""
        atomic_write_bytes(self._path(key), data)

    def read_tagged(self, key: str) -> tuple[bytes, str]:
        """Return the content of ``key`` and its sha256 as the tag."""
        data = self.read_bytes(key)
        return data, sha256_bytes(data)

    def write_if(self, key: str, data: bytes, tag: str | None) -> str:
        """Compare-and-swap by content hash; callers hold the flock, which makes it atomic here."""
        try:
            current: str | None = self.read_tagged(key)[1]
        except FileNotFoundError:
            current = None
        if current != tag:
            raise ConflictError(f"{self._path(key)} was changed by another writer")
        self.write_bytes_atomic(key, data)
        return sha256_bytes(data)

    def append_bytes(self, key: str, data: bytes) -> None:
        """Append ``data`` to ``key`` and fsync, so an acknowledged append survives a crash."""
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "ab") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())

    def exists(self, key: str) -> bool:
        """Return whether ``key`` exists (file or folder)."""
        return self._path(key).exists()

    def list(self, prefix: str) -> builtins.list[str]:
        """Return the sorted names of the direct children of ``prefix`` (empty if it is absent)."""
        path = self._path(prefix)
        if not path.is_dir():
            return []
        return sorted(child.name for child in path.iterdir())

    def age(self, key_prefix: str) -> float | None:
        """Seconds since the newest modification of ``key_prefix`` or anything under it."""
        path = self._path(key_prefix)
        try:
            newest = path.lstat().st_mtime
        except FileNotFoundError:
            return None
        if path.is_dir():
            for child in path.rglob("*"):
                with contextlib.suppress(FileNotFoundError):
                    newest = max(newest, child.lstat().st_mtime)
        return max(0.0, time.time() - newest)

    def put_dir(self, local_dir: Path, key_prefix: str, files: Iterable[str]) -> None:
        """Copy ``files`` of ``local_dir`` under ``key_prefix``, fsynced and chmod 0o444."""
        dest = self._path(key_prefix)
        for rel in files:
            parts = _key_parts(rel)
            target = dest.joinpath(*parts)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(Path(local_dir, *parts), target)
            # fsync before the version becomes visible: the index must never point at lost bytes.
            with open(target, "rb") as fh:
                os.fsync(fh.fileno())
            target.chmod(_READ_ONLY)

    def move(self, src_prefix: str, dst_prefix: str) -> None:
        """Rename a folder; raise :class:`FileExistsError` if ``dst_prefix`` already exists."""
        src, dst = self._path(src_prefix), self._path(dst_prefix)
        # os.rename silently replaces an empty destination directory on POSIX; refuse instead.
        if dst.exists():
            raise FileExistsError(f"{dst} already exists")
        dst.parent.mkdir(parents=True, exist_ok=True)
        os.rename(src, dst)

    def delete(self, key_prefix: str) -> None:
        """Delete a file or a folder recursively; a missing one is not an error."""
        path = self._path(key_prefix)
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        elif path.exists() or path.is_symlink():
            path.unlink()

    def local_path(self, key_prefix: str) -> Path:
        """Return the directory of ``key_prefix`` (it is already local)."""
        return self._path(key_prefix)

    def fetch(self, key_prefix: str) -> Path:
        """Return the directory of ``key_prefix`` (nothing to download)."""
        return self._path(key_prefix)

    @contextmanager
    def lock(self, name: str) -> Iterator[None]:
        """Hold an exclusive ``flock`` on ``<root>/locks/<name>.lock`` (blocks until acquired)."""
        import fcntl  # POSIX only; imported here so the package still imports elsewhere

        path = self._path(f"locks/{name}.lock")
        path.parent.mkdir(parents=True, exist_ok=True)
        # The lock file is never deleted: unlinking it would let two holders lock different inodes.
        with open(path, "a+b") as fh:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
