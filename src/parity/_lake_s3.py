"""The prediction lake on object storage: ``s3://bucket/prefix`` lakes, published from a local buffer.

:func:`lake_writer` is how callers open a lake: a local path gives :class:`~parity.lake.LakeWriter`,
an ``s3://`` URL an :class:`S3LakeWriter`. That writer is the local lake writer on a *buffer* folder
(``$PARITY_CACHE/lake-buffer/<bucket>/<prefix>``) plus an :class:`Uploader` that publishes every
finished Parquet file (the writer only ever renames complete files into the buffer):

1. the file is uploaded under a temporary key (``<prefix>/_tmp/<uuid>.parquet``);
2. copied server-side to its final key, the same relative path as in the buffer
   (``model=<m>/version=<v>/date=<d>/part-<uuid>.parquet``): one request, so readers see the whole
   file or nothing; then the temporary key and the local file are deleted;
3. an upload that fails (S3 unreachable, throttled, denied) leaves the file in the buffer; a
   background thread retries every ``retry_interval_s``, ``flush``/``close`` retry too, and a new
   writer on the same URL publishes what an earlier process left. Nothing acknowledged is lost
   while the local disk holds.

Readers (``parity skew``) read only ``part-*.parquet`` under ``model=`` folders, never ``_tmp/``.
File names are unique, so several servers share one prefix.
"""

from __future__ import annotations

import logging
import os
import threading
import uuid
from pathlib import Path
from typing import Any

from parity._fs import cache_root, filesystem, is_remote
from parity.errors import ParityError as LakeError  # the lake error class once parity.lake defines one
from parity.lake import LakeWriter

__all__ = ["S3LakeWriter", "Uploader", "default_buffer", "lake_writer"]

log = logging.getLogger("parity.lake")


def default_buffer(url: str) -> Path:
    """Local buffer of an S3 lake: ``$PARITY_CACHE/lake-buffer/<bucket>/<prefix>``."""
    return cache_root() / "lake-buffer" / url[len("s3://") :].strip("/")


class Uploader:
    """Publishes the finished ``part-*.parquet`` files of a local folder to ``s3://bucket/prefix``."""

    def __init__(self, buffer: str | os.PathLike[str], url: str, *, retry_interval_s: float = 5.0) -> None:
        if not is_remote(url):
            raise LakeError(f"an S3 lake needs an s3://bucket/prefix URL, got {url!r}")
        self.url = url.rstrip("/")
        self.fs, self.base = filesystem(self.url)
        self.buffer = Path(buffer).expanduser().absolute()
        self.retry_interval_s = float(retry_interval_s)
        self.uploaded = 0
        self.failures = 0
        self.last_error = ""
        self._lock = threading.Lock()  # one upload pass at a time
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="parity-lake-s3", daemon=True)
        self._thread.start()

    def __repr__(self) -> str:
        return f"Uploader({self.url!r}, buffer={str(self.buffer)!r})"

    def pending(self) -> list[str]:
        """Keys (relative paths) of finished files not in the bucket yet."""
        if not self.buffer.is_dir():
            return []
        # Dot-files are the writer's unfinished temp files: only renamed, complete files count.
        files = (p for p in self.buffer.rglob("part-*.parquet") if p.is_file() and not p.name.startswith("."))
        return sorted(p.relative_to(self.buffer).as_posix() for p in files)

    def upload_pending(self) -> int:
        """Publish every pending file (temp key, then server-side copy); return how many are left."""
        with self._lock:
            for key in self.pending():
                local = self.buffer / key
                tmp = f"{self.base}/_tmp/{uuid.uuid4().hex}.parquet"
                try:
                    self.fs.put_file(str(local), tmp)
                    self.fs.copy(tmp, f"{self.base}/{key}")
                    self.fs.rm_file(tmp)
                except Exception as exc:  # unreachable, throttled, denied: keep the file, retry later
                    self.failures += 1
                    self.last_error = f"{type(exc).__name__}: {exc}"
                    log.warning("prediction lake: upload of %s to %s failed, kept in %s: %s", key, self.url, local, exc)
                    break  # the store is probably down: do not try every file now
                local.unlink()
                self.uploaded += 1
            return len(self.pending())

    def _loop(self) -> None:
        self.upload_pending()  # what an earlier process left
        while not self._stop.wait(self.retry_interval_s):
            if self.pending():
                self.upload_pending()

    def close(self) -> int:
        """Stop retrying after a last attempt; return how many files stay in the buffer."""
        self._stop.set()
        self._thread.join(timeout=30)
        return self.upload_pending()


class S3LakeWriter(LakeWriter):
    """A :class:`~parity.lake.LakeWriter` on a local buffer whose files an :class:`Uploader` publishes."""

    def __init__(
        self, url: str, *, buffer: str | os.PathLike[str] | None = None, retry_interval_s: float = 5.0, **kwargs: Any
    ) -> None:
        if not is_remote(url):
            raise LakeError(f"an S3 lake needs an s3://bucket/prefix URL, got {url!r}")
        super().__init__(buffer if buffer is not None else default_buffer(url), **kwargs)
        self.url = url
        self.uploader = Uploader(self.root, url, retry_interval_s=retry_interval_s)

    def flush(self) -> None:
        """Write what is queued, then publish it."""
        super().flush()
        self.uploader.upload_pending()

    def close(self, *args: Any, **kwargs: Any) -> None:
        """Close the writer, then publish its last files (those S3 refuses stay buffered)."""
        super().close(*args, **kwargs)
        left = self.uploader.close()
        if left:
            log.warning("prediction lake: %d file(s) wait in %s until %s is reachable", left, self.root, self.url)


def lake_writer(location: str | os.PathLike[str], **kwargs: Any) -> LakeWriter:
    """Open the lake at a local path or an ``s3://bucket/prefix`` URL."""
    if is_remote(location):
        return S3LakeWriter(str(location), **kwargs)
    return LakeWriter(location, **kwargs)
