"""The model registry: immutable, numbered, content-addressed versions of artifact directories.

An artifact is a directory holding ``manifest.json`` (at least ``name`` and ``files``: every
other file of the directory as ``{relative_posix_path: {"sha256": hex, "size": int}}``) plus
those files. The registry stores each pushed artifact once per content digest (see
:func:`parity._format.manifest_digest`) and numbers versions 1, 2, 3... per model name.

On-disk layout (keys of the :class:`~parity.registry.Storage`; for :class:`LocalStorage`
under ``<root>/registry``)::

    models/<name>/versions/<n>/       the artifact directory (immutable; files chmod 0o444)
    models/<name>/index.json          {"format": 1, "name", "versions": [{"version", "digest", "digest_scheme",
                                       "created"}], "aliases": {alias: version}, "changes": n,
                                       "last_change": {...}}   (rewritten atomically; THE source of truth)
    models/<name>/history.jsonl       one alias change per line, appended after the index write
    models/<name>/.staging/<uuid>/    a push in progress (renamed to versions/<n> when committed)
    locks/<name>.lock                 flock file of the per-model critical section

Concurrency: a push copies the artifact to ``.staging`` outside the lock (copying can be slow),
then, holding the model lock, re-reads the index, returns the existing version if the digest is
already there, else renames the staging folder to ``versions/<n+1>`` and rewrites the index.
Readers never lock: the index is replaced atomically and versions are immutable.

Crashes: the index is written first and counts the alias changes it holds, with the last one, so
the history is derived from it (:meth:`Registry.history` adds a change the crash kept out of the
file; the next alias write rewrites the file to match, dropping a torn line). Every write, under
the model lock, deletes the debris of dead writers: ``.staging`` folders untouched for
``stale_after_s`` (default an hour), version folders the index does not list, temp files.
:meth:`Registry.fsck` (``parity registry fsck [--repair]``) reports and repairs all of it.
"""

from __future__ import annotations

import builtins
import json
import os
import tempfile
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from parity._format import (
    DIGEST_SCHEME,
    LEGACY_DIGEST_SCHEME,
    MANIFEST,
    file_entries,
    manifest_digest,
    read_manifest,
    verify_dir,
)
from parity._fs import is_remote, join
from parity._io import canonical_json
from parity.errors import ArtifactError, NotFoundError, ParityMismatchError, RegistryError
from parity.registry._refs import Ref, parse_ref, validate_alias, validate_name
from parity.registry._storage import LocalStorage, Storage

if TYPE_CHECKING:
    from parity.artifact import Artifact
    from parity.registry._fsck import FsckProblem

__all__ = [
    "AliasChange",
    "ModelSummary",
    "ModelVersion",
    "Registry",
    "SavableArtifact",
    "default_root",
]

_INDEX_FORMAT = 1
STALE_AFTER_S = 3600.0
"""Default age of an untouched ``.staging`` folder after which no live push can own it."""


class SavableArtifact(Protocol):
    """What :meth:`Registry.push` needs of an in-memory artifact."""

    @property
    def manifest(self) -> Mapping[str, Any]:
        """The artifact's manifest."""
        ...

    def save(self, path: Path, /) -> object:
        """Write the artifact directory to ``path``."""
        ...


@dataclass(frozen=True)
class ModelVersion:
    """One immutable registered version of a model."""

    name: str
    version: int
    digest: str
    """:func:`parity._format.manifest_digest` of the version's manifest."""
    created: str
    """When the version was registered, ISO 8601 UTC."""
    path: Path
    """Local directory of the artifact (a cache for remote backends)."""
    aliases: tuple[str, ...] = ()
    """Aliases pointing at this version, sorted."""
    digest_scheme: int = DIGEST_SCHEME
    """How ``digest`` was computed (:data:`parity._format.DIGEST_SCHEME`; 1 for entries of older registries)."""

    def __str__(self) -> str:
        return f"{self.name}:{self.version}"


@dataclass(frozen=True)
class ModelSummary:
    """One line of :meth:`Registry.list`."""

    name: str
    latest: int
    aliases: dict[str, int]
    created: str
    """When the first version was registered, ISO 8601 UTC."""


@dataclass(frozen=True)
class AliasChange:
    """One entry of an alias history; ``old_version``/``new_version`` is None when absent/deleted."""

    time: str
    name: str
    alias: str
    old_version: int | None
    new_version: int | None


def _replay(changes: Sequence[Mapping[str, Any]]) -> dict[str, int]:
    """The aliases a sequence of history entries leads to."""
    aliases: dict[str, int] = {}
    for change in changes:
        if change.get("new_version") is None:
            aliases.pop(str(change.get("alias")), None)
        else:
            aliases[str(change["alias"])] = int(change["new_version"])
    return aliases


def _history_line(change: Mapping[str, Any]) -> bytes:
    return (json.dumps(dict(change), sort_keys=True, separators=(",", ":")) + "\n").encode()


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def default_root() -> Path:
    """Return ``$PARITY_HOME`` if set, else ``./.parity`` (absolute)."""
    env = os.environ.get("PARITY_HOME")
    return Path(env).expanduser().absolute() if env else Path(".parity").absolute()


# --------------------------------------------------------------------------- registry


def _refuse_failed_parity(manifest: Mapping[str, Any], action: str, allowed: bool) -> None:
    """Raise ParityMismatchError for an artifact whose recorded parity check failed, unless allowed."""
    parity = manifest.get("parity") or {}
    if parity.get("passed", True) or allowed:
        return
    raise ParityMismatchError(
        f"refusing to {action} {manifest.get('name')!r}: its parity check FAILED at packaging "
        f"({parity.get('failure')}); the served model would not answer what the Python pipeline answers. "
        "Fix the model, or force it with allow_failed_parity=True",
        param="allow_failed_parity",
    )


def _names(items: Sequence[object]) -> str:
    return ", ".join(str(i) for i in items) if items else "(none)"


class Registry:
    """Numbered, immutable, content-addressed model versions with movable aliases."""

    def __init__(
        self,
        root: str | os.PathLike[str] | None = None,
        *,
        storage: Storage | None = None,
        stale_after_s: float = STALE_AFTER_S,
    ) -> None:
        self.stale_after_s = stale_after_s
        """Age after which a push's ``.staging`` folder counts as crash debris (cleaned on the next write)."""
        if storage is not None and root is not None:
            raise RegistryError("pass either root or storage to Registry, not both")
        self.root: Path | None = None
        if storage is None:
            location = root if root is not None else os.environ.get("PARITY_HOME")
            if is_remote(location):
                from parity.registry._s3 import S3Storage

                storage = S3Storage(join(str(location), "registry"))
            else:
                self.root = Path(root).expanduser().absolute() if root is not None else default_root()
                storage = LocalStorage(self.root / "registry")
        self.storage: Storage = storage

    def __repr__(self) -> str:
        return f"Registry(storage={self.storage!r})"

    # ------------------------------------------------------------------ index helpers

    @staticmethod
    def _model(name: str) -> str:
        return f"models/{name}"

    def _read_index(self, name: str) -> dict[str, Any] | None:
        return self._read_index_tagged(name)[0]

    def _read_index_tagged(self, name: str) -> tuple[dict[str, Any] | None, str | None]:
        """The index and the tag a compare-and-swap write of it needs (None, None: no index yet)."""
        try:
            raw, tag = self.storage.read_tagged(f"{self._model(name)}/index.json")
        except FileNotFoundError:
            return None, None
        try:
            index = json.loads(raw)
        except ValueError as exc:
            raise RegistryError(f"index of model {name!r} is not valid JSON: {exc}") from exc
        if not isinstance(index, dict) or index.get("format") != _INDEX_FORMAT:
            raise RegistryError(f"index of model {name!r} has an unknown format; upgrade parity")
        return index, tag

    def _index(self, name: str) -> dict[str, Any]:
        index = self._read_index(validate_name(name))
        if index is None:
            raise NotFoundError(f"no model named {name!r} in {self.storage!r}; models: {_names(self._model_names())}")
        return index

    def _write_index(self, name: str, index: dict[str, Any], tag: str | None) -> None:
        # Compare-and-swap on top of the lock: a writer whose lock lapsed cannot overwrite a newer index.
        self.storage.write_if(f"{self._model(name)}/index.json", canonical_json(index), tag)

    def _model_names(self) -> builtins.list[str]:
        return [
            n
            for n in self.storage.list("models")
            if not n.startswith(".") and self.storage.exists(f"{self._model(n)}/index.json")
        ]

    def _version(self, name: str, index: Mapping[str, Any], entry: Mapping[str, Any]) -> ModelVersion:
        n = int(entry["version"])
        aliases = tuple(sorted(a for a, v in index["aliases"].items() if v == n))
        return ModelVersion(
            name=name,
            version=n,
            digest=str(entry["digest"]),
            created=str(entry["created"]),
            path=self.storage.local_path(f"{self._model(name)}/versions/{n}"),
            aliases=aliases,
            digest_scheme=int(entry.get("digest_scheme", LEGACY_DIGEST_SCHEME)),
        )

    # ------------------------------------------------------------------ push

    def push(
        self, artifact_or_dir: str | os.PathLike[str] | SavableArtifact, *, allow_failed_parity: bool = False
    ) -> ModelVersion:
        """Register an artifact directory (or object with ``.save``); identical content is deduplicated.

        An artifact whose recorded parity check failed is refused unless ``allow_failed_parity``.
        """
        if isinstance(artifact_or_dir, str | os.PathLike):
            return self._push_dir(Path(artifact_or_dir), allow_failed_parity)
        if not (hasattr(artifact_or_dir, "save") and hasattr(artifact_or_dir, "manifest")):
            raise RegistryError(
                "push() takes a path to an artifact directory or an artifact with .save(path) and .manifest, "
                f"got {type(artifact_or_dir).__name__}"
            )
        with tempfile.TemporaryDirectory(prefix="parity-push-") as tmp:
            directory = Path(tmp) / "artifact"
            _refuse_failed_parity(artifact_or_dir.manifest, "push", allow_failed_parity)
            artifact_or_dir.save(directory)
            return self._push_dir(directory, allow_failed_parity)

    def _push_dir(self, directory: Path, allow_failed_parity: bool = False) -> ModelVersion:
        manifest = verify_dir(directory)
        _refuse_failed_parity(manifest, "push", allow_failed_parity)
        name = validate_name(manifest.get("name"))
        digest = manifest_digest(manifest)
        # Fast path without the lock: re-pushing known content copies nothing.
        if (existing := self._find_digest(name, self._read_index(name), digest)) is not None:
            return existing
        staging = f"{self._model(name)}/.staging/{uuid.uuid4().hex}"
        try:
            self.storage.put_dir(directory, staging, [MANIFEST, *sorted(file_entries(manifest, directory))])
            with self.storage.lock(name):
                return self._commit(name, digest, staging)
        finally:
            self.storage.delete(staging)  # a no-op once committed (the folder was renamed)

    def _find_digest(self, name: str, index: dict[str, Any] | None, digest: str) -> ModelVersion | None:
        if index is None:
            return None
        for entry in index["versions"]:
            if entry["digest"] == digest and entry.get("digest_scheme") == DIGEST_SCHEME:
                return self._version(name, index, entry)
        return None

    def _commit(self, name: str, digest: str, staging: str) -> ModelVersion:
        """Turn a staged copy into the next version; the caller holds the model lock."""
        stored, tag = self._read_index_tagged(name)
        index = stored or {"format": _INDEX_FORMAT, "name": name, "versions": [], "aliases": {}}
        for _, key in self.find_debris(name, index, keep=staging):
            self.storage.delete(key)
        if (existing := self._find_digest(name, index, digest)) is not None:
            return existing
        # Also skip numbers whose folder exists without an index entry (a crash between rename and index write).
        on_disk = [int(v) for v in self.storage.list(f"{self._model(name)}/versions") if v.isdigit()]
        number = max([0, *on_disk, *(int(e["version"]) for e in index["versions"])]) + 1
        self.storage.move(staging, f"{self._model(name)}/versions/{number}")
        entry = {"version": number, "digest": digest, "digest_scheme": DIGEST_SCHEME, "created": _now()}
        index["versions"].append(entry)
        self._write_index(name, index, tag)
        return self._version(name, index, entry)

    def find_debris(
        self, name: str, index: Mapping[str, Any] | None, keep: str | None = None
    ) -> builtins.list[tuple[str, str]]:
        """Return (kind, key) of what crashed writers left for model ``name``; the caller holds its lock.

        Found: ``.staging`` folders untouched for ``stale_after_s`` (a live push keeps writing to its
        own; ``keep`` is the caller's), version folders the index does not list (renamed, then the
        process died before the index write: never acknowledged) and temp files of interrupted atomic
        writes (every atomic write of a model happens under its lock).
        """
        model = self._model(name)
        found: builtins.list[tuple[str, str]] = []
        for child in self.storage.list(f"{model}/.staging"):
            key = f"{model}/.staging/{child}"
            age = self.storage.age(key)
            if key != keep and (age is None or age >= self.stale_after_s):
                found.append(("stale_staging", key))
        listed = {int(e["version"]) for e in (index or {}).get("versions", [])}
        for child in self.storage.list(f"{model}/versions"):
            if not (child.isdigit() and int(child) in listed):
                found.append(("orphan_version", f"{model}/versions/{child}"))
        found += [
            ("temp_file", f"{model}/{c}") for c in self.storage.list(model) if c.startswith(".") and c.endswith(".tmp")
        ]
        return found

    def fsck(self, *, repair: bool = False, verify: bool = True) -> builtins.list[FsckProblem]:
        """Check every model for crash debris and inconsistencies; with ``repair``, fix what can be fixed."""
        from parity.registry._fsck import fsck

        return fsck(self, repair=repair, verify=verify)

    # ------------------------------------------------------------------ read

    def list(self) -> builtins.list[ModelSummary]:
        """Return one summary per model, sorted by name."""
        out = []
        for name in self._model_names():
            index = self._index(name)
            if not index["versions"]:
                continue
            out.append(
                ModelSummary(
                    name=name,
                    latest=max(int(e["version"]) for e in index["versions"]),
                    aliases=dict(sorted(index["aliases"].items())),
                    created=str(index["versions"][0]["created"]),
                )
            )
        return out

    def versions(self, name: str) -> builtins.list[ModelVersion]:
        """Return every version of model ``name``, oldest first."""
        index = self._index(name)
        return [self._version(name, index, e) for e in sorted(index["versions"], key=lambda e: int(e["version"]))]

    def get(self, ref: str | os.PathLike[str] | Ref) -> ModelVersion:
        """Resolve ``name``, ``name:N``, ``name@alias`` or an artifact path to a registered version."""
        parsed = ref if isinstance(ref, Ref) else parse_ref(ref)
        if parsed.kind == "path":
            return self._get_by_content(self._artifact_dir(parsed))
        assert parsed.name is not None  # set for every non-path kind
        name = parsed.name
        index = self._index(name)
        numbers = sorted(int(e["version"]) for e in index["versions"])
        if parsed.kind == "alias":
            if parsed.alias not in index["aliases"]:
                raise NotFoundError(
                    f"model {name!r} has no alias {parsed.alias!r}; aliases: {_names(sorted(index['aliases']))}"
                )
            wanted = int(index["aliases"][parsed.alias])
        elif parsed.kind == "version":
            assert parsed.version is not None
            wanted = parsed.version
        else:
            if not numbers:
                raise NotFoundError(f"model {name!r} has no versions")
            wanted = numbers[-1]
        for entry in index["versions"]:
            if int(entry["version"]) == wanted:
                return self._version(name, index, entry)
        raise NotFoundError(f"model {name!r} has no version {wanted}; versions: {_names(numbers)}")

    def _fetch(self, version: ModelVersion) -> ModelVersion:
        """Make sure the version's files are in ``version.path`` (remote storage: download once)."""
        self.storage.fetch(f"{self._model(version.name)}/versions/{version.version}")
        return version

    def _get_by_content(self, directory: Path) -> ModelVersion:
        manifest = read_manifest(directory)
        name = validate_name(manifest.get("name"))
        digest = manifest_digest(manifest)
        index = self._index(name)
        found = self._find_digest(name, index, digest)
        if found is None:
            numbers = sorted(int(e["version"]) for e in index["versions"])
            raise NotFoundError(
                f"{directory} holds model {name!r} with digest {digest[:12]}, which matches none of its "
                f"versions ({_names(numbers)}); push it first"
            )
        return found

    @staticmethod
    def _artifact_dir(parsed: Ref) -> Path:
        assert parsed.path is not None
        if not (parsed.path / MANIFEST).is_file():
            raise ArtifactError(f"{parsed.path} is not an artifact directory: it has no {MANIFEST}")
        return parsed.path

    def path(self, ref: str | os.PathLike[str] | Ref) -> Path:
        """Return the local directory of ``ref`` (a path reference is returned as is)."""
        parsed = ref if isinstance(ref, Ref) else parse_ref(ref)
        if parsed.kind == "path":
            return self._artifact_dir(parsed)
        return self.get(parsed).path

    def verify(self, ref: str | os.PathLike[str] | Ref) -> ModelVersion:
        """Recompute the sha256 of every stored file of ``ref`` and its digest; raise IntegrityError on a mismatch."""
        return self.verified_manifest(ref)[0]

    def verified_manifest(self, ref: str | os.PathLike[str] | Ref) -> tuple[ModelVersion, dict[str, Any]]:
        """Verify ``ref`` like :meth:`verify` and return its version and manifest (the model is not loaded)."""
        parsed = ref if isinstance(ref, Ref) else parse_ref(ref)
        if parsed.kind == "path":
            manifest = verify_dir(self._artifact_dir(parsed))
            return self.get(parsed), manifest
        version = self._fetch(self.get(parsed))
        # The files match the manifest; the digest catches a manifest edited to match them (or any claim in it).
        return version, verify_dir(version.path, digest=version.digest, scheme=version.digest_scheme, label=version)

    def load(self, ref: str | os.PathLike[str] | Ref, *, trusted: bool = False) -> Artifact:
        """Load ``ref``, hashing each file once and checking the digest recorded at push time."""
        # Lazy: the registry must not depend on the artifact module (heavy, and optional for storage).
        from parity.artifact import load_artifact

        parsed = ref if isinstance(ref, Ref) else parse_ref(ref)
        if parsed.kind == "path":
            return load_artifact(self._artifact_dir(parsed), trusted=trusted)
        # One resolution: a concurrent alias move cannot change the version between check and load.
        version = self._fetch(self.get(parsed))
        artifact = load_artifact(
            version.path, trusted=trusted, digest=version.digest, scheme=version.digest_scheme, label=version
        )
        artifact.version = version.version
        return artifact

    def copy_to(self, dest: Registry, refs: Sequence[str]) -> builtins.list[ModelVersion]:
        """Copy the versions ``refs`` resolve to into ``dest`` (a registry without those models), verified.

        Version numbers, digests and the aliases pointing at a copied version are kept, so every ref
        resolves in ``dest`` as it does here now (how a composition's image carries its artifacts).
        """
        found: dict[str, dict[int, tuple[ModelVersion, dict[str, Any]]]] = {}
        resolved: builtins.list[ModelVersion] = []
        for ref in refs:
            if parse_ref(ref).kind == "path":
                raise RegistryError(f"copy_to takes registry refs (name, name:N, name@alias), got the path {ref!r}")
            version, manifest = self.verified_manifest(ref)
            found.setdefault(version.name, {})[version.version] = (version, manifest)
            resolved.append(version)
        for name, versions in found.items():
            if dest._read_index(name) is not None:
                raise RegistryError(f"cannot copy model {name!r} into {dest.storage!r}: it already has that model")
            index = self._index(name)
            for number, (version, manifest) in sorted(versions.items()):
                files = [MANIFEST, *sorted(file_entries(manifest, version.path))]
                dest.storage.put_dir(version.path, f"{self._model(name)}/versions/{number}", files)
            copied = {
                "format": _INDEX_FORMAT,
                "name": name,
                "versions": [dict(e) for e in index["versions"] if int(e["version"]) in versions],
                "aliases": {a: int(v) for a, v in index["aliases"].items() if int(v) in versions},
            }
            dest._write_index(name, copied, None)
        return [dest.get(f"{v.name}:{v.version}") for v in resolved]

    # ------------------------------------------------------------------ aliases

    def aliases(self, name: str) -> dict[str, int]:
        """Return ``{alias: version}`` of model ``name``."""
        return dict(sorted(self._index(name)["aliases"].items()))

    def set_alias(self, name: str, alias: str, version: int, *, allow_failed_parity: bool = False) -> AliasChange:
        """Point ``alias`` of model ``name`` at ``version``; a version that failed parity needs the flag."""
        validate_alias(alias)
        if isinstance(version, bool) or not isinstance(version, int):
            raise RegistryError(f"version must be an int, got {version!r}")
        if not allow_failed_parity and version in {v.version for v in self.versions(name)}:
            raw = self.storage.read_bytes(f"{self._model(name)}/versions/{version}/{MANIFEST}")
            _refuse_failed_parity(json.loads(raw), f"point alias {alias!r} at", False)
        return self._change_alias(name, alias, version)

    def delete_alias(self, name: str, alias: str) -> AliasChange:
        """Remove ``alias`` of model ``name``."""
        validate_alias(alias)
        return self._change_alias(name, alias, None)

    def _change_alias(self, name: str, alias: str, version: int | None) -> AliasChange:
        self._index(name)  # NotFoundError before taking a lock for an unknown model
        with self.storage.lock(name):
            stored, tag = self._read_index_tagged(name)
            index = stored if stored is not None else self._index(name)
            for _, key in self.find_debris(name, index):
                self.storage.delete(key)
            index.setdefault("changes", len(self._sync_history(name, index)))
            numbers = sorted(int(e["version"]) for e in index["versions"])
            old = index["aliases"].get(alias)
            if version is None and old is None:
                raise NotFoundError(
                    f"model {name!r} has no alias {alias!r}; aliases: {_names(sorted(index['aliases']))}"
                )
            if version is not None and version not in numbers:
                raise NotFoundError(f"model {name!r} has no version {version}; versions: {_names(numbers)}")
            change = AliasChange(time=_now(), name=name, alias=alias, old_version=old, new_version=version)
            if old == version:
                return change  # nothing changed: the history records changes only
            if version is None:
                del index["aliases"][alias]
            else:
                index["aliases"][alias] = version
            # The index is the truth and is written first; it also carries the change, so a crash before
            # the history append leaves a line that history() derives and the next write appends.
            index["changes"] = int(index["changes"]) + 1
            index["last_change"] = change.__dict__
            self._write_index(name, index, tag)
            self.storage.append_bytes(self._history_key(name), _history_line(change.__dict__))
            return change

    def _history_key(self, name: str) -> str:
        return f"{self._model(name)}/history.jsonl"

    def _read_history(self, name: str) -> tuple[builtins.list[dict[str, Any]], bool]:
        """Parsed history lines and whether the file ends in a torn line (a crash mid-append)."""
        try:
            raw = self.storage.read_bytes(self._history_key(name))
        except FileNotFoundError:
            return [], False
        lines = raw.decode("utf-8", errors="replace").splitlines()
        out: builtins.list[dict[str, Any]] = []
        for i, line in enumerate(lines):
            if not line.strip():
                continue
            try:
                entry = json.loads(line)
                AliasChange(**entry)
            except (ValueError, TypeError) as exc:
                if i == len(lines) - 1:
                    return out, True
                raise RegistryError(f"history of model {name!r} is corrupt at line {i + 1}: {exc}") from exc
            out.append(entry)
        return out, False

    @staticmethod
    def _derived_history(
        index: Mapping[str, Any], lines: builtins.list[dict[str, Any]]
    ) -> builtins.list[dict[str, Any]]:
        """The history the index implies: its first ``changes`` lines, plus ``last_change`` if not appended yet."""
        if "changes" not in index:
            # An index written before it counted changes (history was appended first then): a last line
            # whose change the index does not show was never applied.
            if lines and _replay(lines) != index["aliases"] and _replay(lines[:-1]) == index["aliases"]:
                return lines[:-1]
            return lines
        count = int(index["changes"])
        kept = lines[:count]  # lines past the count were never applied (crash debris of older versions)
        if len(kept) == count - 1 and index.get("last_change"):
            kept = [*kept, dict(index["last_change"])]
        return kept

    def _sync_history(self, name: str, index: Mapping[str, Any]) -> builtins.list[dict[str, Any]]:
        """Rewrite the history file to what the index implies if it differs; the caller holds the lock."""
        lines, torn = self._read_history(name)
        derived = self._derived_history(index, lines)
        if derived != lines or torn:
            self.storage.write_bytes_atomic(self._history_key(name), b"".join(_history_line(e) for e in derived))
        return derived

    def history(self, name: str) -> builtins.list[AliasChange]:
        """Return every alias change of model ``name``, oldest first (derived from the index)."""
        index = self._index(name)
        lines, _ = self._read_history(name)
        return [AliasChange(**e) for e in self._derived_history(index, lines)]
