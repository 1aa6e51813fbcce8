"""The registry on object storage: :class:`S3Storage`, a :class:`~parity.registry.Storage` over s3fs.

Same promises as the local backend, built on S3 conditional writes:

* **lock** — a lease object ``locks/<name>.lock`` created with ``If-None-Match: *`` (only one
  writer can create it), renewed with ``If-Match`` by a heartbeat thread, deleted with ``If-Match``
  on release; a lease not renewed for ``lease_s`` (its holder died) is taken over with ``If-Match``.
* **index writes** under the lock are compare-and-swap (``If-Match`` on the ETag read, or
  ``If-None-Match: *`` for a new model), so even a holder whose lease expired cannot overwrite a
  newer index: it gets a conflict and the registry retries its critical section.
* **appends** (history) are read + ``If-Match`` write, retried on conflict.
* **versions** are written once, under the lock, to a fresh ``versions/<n>`` prefix (``move``
  refuses an existing one); every load verifies every file and the version digest.
* ``local_path`` is a download cache (``$PARITY_CACHE``, default ``~/.cache/parity``), filled by
  :meth:`fetch` into a temp folder renamed into place; loads verify it, so a stale or tampered cache
  is caught.

Stores without conditional writes (older MinIO, Ceph RGW before Squid, ...) answer 501 to the first
conditional PUT: parity then raises a RegistryError, unless ``conditional_writes=False`` (or
``PARITY_S3_CONDITIONAL_WRITES=0``), which makes every write unconditional -- safe with ONE writer
at a time only (concurrent pushes or alias moves may then lose an update).
"""

from __future__ import annotations

import builtins
import contextlib
import json
import os
import random
import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC
from pathlib import Path
from typing import Any

from parity._fs import cache_root, filesystem, is_remote
from parity.errors import RegistryError
from parity.registry._storage import ConflictError, _key_parts

__all__ = ["S3Storage"]

LEASE_S = 30.0
LOCK_TIMEOUT_S = 120.0


def _code(exc: BaseException) -> str:
    """The S3 error code of a botocore ClientError (or of the one s3fs wrapped)."""
    for err in (exc, exc.__cause__):
        response = getattr(err, "response", None)
        if isinstance(response, dict):
            return str(response.get("Error", {}).get("Code", ""))
    return ""


_CONFLICT = {"PreconditionFailed", "ConditionalRequestConflict", "412", "409"}
_MISSING = {"NoSuchKey", "404", "NotFound"}


class S3Storage:
    """:class:`~parity.registry.Storage` on ``s3://bucket/prefix`` (see the module docstring)."""

    def __init__(
        self,
        url: str,
        *,
        cache_dir: str | os.PathLike[str] | None = None,
        conditional_writes: bool | None = None,
        lease_s: float = LEASE_S,
        lock_timeout_s: float = LOCK_TIMEOUT_S,
    ) -> None:
        if not is_remote(url):
            raise RegistryError(f"S3Storage needs an s3://bucket/prefix URL, got {url!r}")
        self.url = url.rstrip("/")
        self.fs, self.base = filesystem(self.url)
        self.bucket, _, self.prefix = self.base.partition("/")
        if not self.bucket:
            raise RegistryError(f"S3 URL {url!r} names no bucket; expected s3://bucket/prefix")
        env = os.environ.get("PARITY_S3_CONDITIONAL_WRITES", "1").strip().lower() not in ("0", "false", "no")
        self.conditional = env if conditional_writes is None else conditional_writes
        self.lease_s = lease_s
        self.lock_timeout_s = lock_timeout_s
        root = Path(cache_dir).expanduser().absolute() if cache_dir is not None else cache_root()
        self.cache = root / "s3" / self.bucket / (self.prefix or "_")

    def __repr__(self) -> str:
        return f"S3Storage({self.url!r})"

    # ------------------------------------------------------------------ keys and raw calls

    def _key(self, key: str) -> str:
        return "/".join([*([self.prefix] if self.prefix else []), *_key_parts(key)])

    def _path(self, key: str) -> str:
        return f"{self.bucket}/{self._key(key)}"

    def _call(self, method: str, **kwargs: Any) -> Any:
        """One S3 API call through s3fs's client; ClientErrors come back untranslated."""
        from fsspec.asyn import sync

        async def run() -> Any:
            await self.fs.set_session()
            client = await self.fs.get_s3(self.bucket)
            response = await getattr(client, method)(Bucket=self.bucket, **kwargs)
            if "Body" in response:
                body = response["Body"]
                try:
                    response["Body"] = await body.read()
                finally:
                    body.close()
            return response

        try:
            return sync(self.fs.loop, run)
        except Exception as exc:
            code = _code(exc)
            if code in _MISSING:
                raise FileNotFoundError(f"{self.url}: no object {kwargs.get('Key')!r}") from exc
            if code in _CONFLICT:
                raise ConflictError(f"{self.url}: {kwargs.get('Key')!r} was changed by another writer") from exc
            if code in ("NotImplemented", "501"):
                raise RegistryError(
                    f"{self.url}: this S3 store does not support conditional writes (If-None-Match/If-Match), "
                    "which keep concurrent writers consistent; with a single writer, set "
                    "PARITY_S3_CONDITIONAL_WRITES=0 (conditional_writes=False)"
                ) from exc
            if code:
                raise RegistryError(f"{self.url}: S3 {method} of {kwargs.get('Key')!r} failed: {exc}") from exc
            raise RegistryError(f"{self.url}: S3 is unreachable ({type(exc).__name__}: {exc})") from exc

    def read_tagged(self, key: str) -> tuple[bytes, str]:
        """Return the content of ``key`` and its ETag, from one GET (so they always match)."""
        response = self._call("get_object", Key=self._key(key))
        return bytes(response["Body"]), str(response["ETag"])

    def write_if(self, key: str, data: bytes, tag: str | None) -> str:
        """PUT ``key`` only if its ETag is still ``tag`` (None: only if it does not exist); return the new ETag."""
        condition: dict[str, str] = {}
        if self.conditional:
            condition = {"IfMatch": tag} if tag is not None else {"IfNoneMatch": "*"}
        response = self._call("put_object", Key=self._key(key), Body=data, **condition)
        return str(response["ETag"])

    # ------------------------------------------------------------------ Storage

    def read_bytes(self, key: str) -> bytes:
        """Return the content of ``key``; raise :class:`FileNotFoundError` if it does not exist."""
        return self.read_tagged(key)[0]

    def write_bytes_atomic(self, key: str, data: bytes) -> None:
        """PUT ``key`` (an S3 PUT is atomic: readers see the old or the new object)."""
        self._call("put_object", Key=self._key(key), Body=data)

    def append_bytes(self, key: str, data: bytes) -> None:
        """Append by read + conditional write (S3 has no append), retried when another writer won."""
        for _ in range(20):
            try:
                old, tag = self.read_tagged(key)
            except FileNotFoundError:
                old, tag = b"", None
            try:
                self.write_if(key, old + data, tag)
                return
            except ConflictError:
                time.sleep(0.05)
        raise ConflictError(f"{self.url}: gave up appending to {key!r}: it kept changing")

    def exists(self, key: str) -> bool:
        """Return whether ``key`` is an object or a non-empty prefix."""
        try:
            self._call("head_object", Key=self._key(key))
            return True
        except FileNotFoundError:
            pass
        response = self._call("list_objects_v2", Prefix=self._key(key) + "/", MaxKeys=1)
        return bool(response.get("KeyCount", 0))

    def _objects(self, prefix: str) -> Iterator[dict[str, Any]]:
        token: dict[str, str] = {}
        while True:
            response = self._call("list_objects_v2", Prefix=prefix, **token)
            yield from response.get("Contents", [])
            if not response.get("IsTruncated"):
                return
            token = {"ContinuationToken": response["NextContinuationToken"]}

    def list(self, prefix: str) -> builtins.list[str]:
        """Return the sorted names of the direct children of ``prefix`` (empty if it is absent)."""
        base = self._key(prefix) + "/"
        names: set[str] = set()
        token: dict[str, str] = {}
        while True:
            response = self._call("list_objects_v2", Prefix=base, Delimiter="/", **token)
            names.update(o["Key"][len(base) :] for o in response.get("Contents", []))
            names.update(p["Prefix"][len(base) :].rstrip("/") for p in response.get("CommonPrefixes", []))
            if not response.get("IsTruncated"):
                break
            token = {"ContinuationToken": response["NextContinuationToken"]}
        return sorted(n for n in names if n)

    def age(self, key_prefix: str) -> float | None:
        """Seconds since the newest object under ``key_prefix`` was written."""
        key = self._key(key_prefix)
        stamps = [o["LastModified"] for o in self._objects(key + "/")]
        with contextlib.suppress(FileNotFoundError):
            stamps.append(self._call("head_object", Key=key)["LastModified"])
        if not stamps:
            return None
        newest = max(s.astimezone(UTC).timestamp() for s in stamps)
        return max(0.0, time.time() - newest)

    def put_dir(self, local_dir: Path, key_prefix: str, files: Iterable[str]) -> None:
        """Upload ``files`` of ``local_dir`` under ``key_prefix`` (s3fs does multipart for big files)."""
        try:
            for rel in files:
                self.fs.put_file(str(Path(local_dir, *_key_parts(rel))), self._path(f"{key_prefix}/{rel}"))
        except OSError as exc:
            raise RegistryError(f"{self.url}: upload to {key_prefix} failed ({exc}); nothing was registered") from exc

    def move(self, src_prefix: str, dst_prefix: str) -> None:
        """Server-side copy then delete; refuses an existing destination (runs under the model lock)."""
        if self.exists(dst_prefix):
            raise FileExistsError(f"{self.url}/{dst_prefix} already exists")
        src = self._key(src_prefix) + "/"
        for obj in list(self._objects(src)):
            rel = obj["Key"][len(src) :]
            self._call(
                "copy_object",
                Key=self._key(f"{dst_prefix}/{rel}"),
                CopySource={"Bucket": self.bucket, "Key": obj["Key"]},
            )
        self.delete(src_prefix)

    def delete(self, key_prefix: str) -> None:
        """Delete an object or every object under a prefix; a missing one is not an error."""
        key = self._key(key_prefix)
        keys = [o["Key"] for o in self._objects(key + "/")]
        with contextlib.suppress(FileNotFoundError):
            self._call("head_object", Key=key)
            keys.append(key)
        for start in range(0, len(keys), 1000):
            batch = [{"Key": k} for k in keys[start : start + 1000]]
            self._call("delete_objects", Delete={"Objects": batch, "Quiet": True})

    def local_path(self, key_prefix: str) -> Path:
        """Return the cache directory of ``key_prefix`` (filled by :meth:`fetch`)."""
        return self.cache.joinpath(*_key_parts(key_prefix))

    def fetch(self, key_prefix: str) -> Path:
        """Download ``key_prefix`` into the cache once (temp folder, then rename); return the folder."""
        target = self.local_path(key_prefix)
        if target.is_dir():
            return target
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
        try:
            src = self._key(key_prefix) + "/"
            for obj in self._objects(src):
                dest = tmp.joinpath(*_key_parts(obj["Key"][len(src) :]))
                dest.parent.mkdir(parents=True, exist_ok=True)
                try:
                    self.fs.get_file(f"{self.bucket}/{obj['Key']}", str(dest))
                except OSError as exc:
                    raise RegistryError(f"{self.url}: download of {obj['Key']} failed: {exc}") from exc
            try:
                os.rename(tmp, target)
            except OSError:
                if not target.is_dir():  # lost a race to another fetch of the same version: keep theirs
                    raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return target

    @contextmanager
    def lock(self, name: str) -> Iterator[None]:
        """Hold the lease object ``locks/<name>.lock`` (see the module docstring)."""
        key = f"locks/{name}.lock"
        owner = uuid.uuid4().hex
        tag = self._acquire(key, owner)
        state = {"tag": tag, "lost": False}
        stop = threading.Event()

        def renew() -> None:
            while not stop.wait(self.lease_s / 3):
                try:
                    state["tag"] = self.write_if(key, self._lease(owner), str(state["tag"]))
                except RegistryError:
                    state["lost"] = True  # the conditional index write will refuse a stale holder
                    return

        beat = threading.Thread(target=renew, name=f"parity-lease-{name}", daemon=True)
        beat.start()
        try:
            yield
        finally:
            stop.set()
            beat.join()
            if not state["lost"]:
                with contextlib.suppress(RegistryError, FileNotFoundError):
                    condition = {"IfMatch": str(state["tag"])} if self.conditional else {}
                    self._call("delete_object", Key=self._key(key), **condition)

    def _lease(self, owner: str) -> bytes:
        return json.dumps({"owner": owner, "expires": time.time() + self.lease_s}).encode()

    def _acquire(self, key: str, owner: str) -> str:
        deadline = time.monotonic() + self.lock_timeout_s
        delay = 0.01
        while True:
            try:
                return self.write_if(key, self._lease(owner), None)
            except ConflictError:
                pass
            try:
                raw, tag = self.read_tagged(key)
                expires = float(json.loads(raw).get("expires", 0))
            except FileNotFoundError:
                continue  # released meanwhile: try to create it again
            except (ValueError, AttributeError):
                expires = 0.0  # unreadable lease: treat as expired
            if expires < time.time():
                with contextlib.suppress(ConflictError, FileNotFoundError):
                    return self.write_if(key, self._lease(owner), tag)  # take over a dead holder's lease
            if time.monotonic() > deadline:
                raise RegistryError(f"{self.url}: timed out after {self.lock_timeout_s:.0f} s waiting for {key}")
            time.sleep(delay * random.uniform(1.0, 2.0))  # jitter: waiters do not retry in lockstep
            delay = min(delay * 2, 0.5)
