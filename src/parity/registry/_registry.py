"""The model registry: immutable, numbered, content-addressed versions of artifact directories.

An artifact is a directory holding ``manifest.json`` (at least ``name`` and ``files``: every
other file of the directory as ``{relative_posix_path: {"sha256": hex, "size": int}}``) plus
those files. The registry stores each pushed artifact once per content digest (see
:func:`parity._format.manifest_digest`) and numbers versions 1, 2, 3... per model name.

On-disk layout (keys of the :class:`~parity.registry.Storage`; for :class:`LocalStorage`
under ``<root>/registry``)::

    models/<name>/versions/<n>/       the artifact directory (immutable; files chmod 0o444)
    models/<name>/index.json          {"format": 1, "name", "versions": [{"version", "digest", "created"}],
                                       "aliases": {alias: version}}   (rewritten atomically)
    models/<name>/history.jsonl       one alias change per line (appended with fsync, under the lock)
    models/<name>/.staging/<uuid>/    a push in progress (renamed to versions/<n> when committed)
    locks/<name>.lock                 flock file of the per-model critical section

Concurrency: a push copies the artifact to ``.staging`` outside the lock (copying can be slow),
then, holding the model lock, re-reads the index, returns the existing version if the digest is
already there, else renames the staging folder to ``versions/<n+1>`` and rewrites the index.
Readers never lock: the index is replaced atomically and versions are immutable.
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
from parity._io import canonical_json
from parity.errors import ArtifactError, NotFoundError, RegistryError
from parity.registry._refs import Ref, parse_ref, validate_alias, validate_name
from parity.registry._storage import LocalStorage, Storage

if TYPE_CHECKING:
    from parity.artifact import Artifact

__all__ = [
    "AliasChange",
    "ModelSummary",
    "ModelVersion",
    "Registry",
    "SavableArtifact",
    "default_root",
]

_INDEX_FORMAT = 1


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


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def default_root() -> Path:
    """Return ``$PARITY_HOME`` if set, else ``./.parity`` (absolute)."""
    env = os.environ.get("PARITY_HOME")
    return Path(env).expanduser().absolute() if env else Path(".parity").absolute()


# --------------------------------------------------------------------------- registry


def _names(items: Sequence[object]) -> str:
    return ", ".join(str(i) for i in items) if items else "(none)"


class Registry:
    """Numbered, immutable, content-addressed model versions with movable aliases."""

    def __init__(self, root: str | os.PathLike[str] | None = None, *, storage: Storage | None = None) -> None:
        if storage is not None and root is not None:
            raise RegistryError("pass either root or storage to Registry, not both")
        if storage is None:
            self.root: Path | None = Path(root).expanduser().absolute() if root is not None else default_root()
            storage = LocalStorage(self.root / "registry")
        else:
            self.root = None
        self.storage: Storage = storage

    def __repr__(self) -> str:
        return f"Registry(storage={self.storage!r})"

    # ------------------------------------------------------------------ index helpers

    @staticmethod
    def _model(name: str) -> str:
        return f"models/{name}"

    def _read_index(self, name: str) -> dict[str, Any] | None:
        try:
            raw = self.storage.read_bytes(f"{self._model(name)}/index.json")
        except FileNotFoundError:
            return None
        try:
            index = json.loads(raw)
        except ValueError as exc:
            raise RegistryError(f"index of model {name!r} is not valid JSON: {exc}") from exc
        if not isinstance(index, dict) or index.get("format") != _INDEX_FORMAT:
            raise RegistryError(f"index of model {name!r} has an unknown format; upgrade parity")
        return index

    def _index(self, name: str) -> dict[str, Any]:
        index = self._read_index(validate_name(name))
        if index is None:
            raise NotFoundError(f"no model named {name!r} in {self.storage!r}; models: {_names(self._model_names())}")
        return index

    def _write_index(self, name: str, index: dict[str, Any]) -> None:
        self.storage.write_bytes_atomic(f"{self._model(name)}/index.json", canonical_json(index))

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

    def push(self, artifact_or_dir: str | os.PathLike[str] | SavableArtifact) -> ModelVersion:
        """Register an artifact directory (or object with ``.save``); identical content is deduplicated."""
        if isinstance(artifact_or_dir, str | os.PathLike):
            return self._push_dir(Path(artifact_or_dir))
        if not (hasattr(artifact_or_dir, "save") and hasattr(artifact_or_dir, "manifest")):
            raise RegistryError(
                "push() takes a path to an artifact directory or an artifact with .save(path) and .manifest, "
                f"got {type(artifact_or_dir).__name__}"
            )
        with tempfile.TemporaryDirectory(prefix="parity-push-") as tmp:
            directory = Path(tmp) / "artifact"
            artifact_or_dir.save(directory)
            return self._push_dir(directory)

    def _push_dir(self, directory: Path) -> ModelVersion:
        manifest = verify_dir(directory)
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
        index = self._read_index(name) or {"format": _INDEX_FORMAT, "name": name, "versions": [], "aliases": {}}
        if (existing := self._find_digest(name, index, digest)) is not None:
            return existing
        # Also skip numbers whose folder exists without an index entry (a crash between rename and index write).
        on_disk = [int(v) for v in self.storage.list(f"{self._model(name)}/versions") if v.isdigit()]
        number = max([0, *on_disk, *(int(e["version"]) for e in index["versions"])]) + 1
        self.storage.move(staging, f"{self._model(name)}/versions/{number}")
        entry = {"version": number, "digest": digest, "digest_scheme": DIGEST_SCHEME, "created": _now()}
        index["versions"].append(entry)
        self._write_index(name, index)
        return self._version(name, index, entry)

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
        version = self.get(parsed)
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
        version = self.get(parsed)
        artifact = load_artifact(
            version.path, trusted=trusted, digest=version.digest, scheme=version.digest_scheme, label=version
        )
        artifact.version = version.version
        return artifact

    # ------------------------------------------------------------------ aliases

    def aliases(self, name: str) -> dict[str, int]:
        """Return ``{alias: version}`` of model ``name``."""
        return dict(sorted(self._index(name)["aliases"].items()))

    def set_alias(self, name: str, alias: str, version: int) -> AliasChange:
        """Point ``alias`` of model ``name`` at ``version`` (creating or moving it)."""
        validate_alias(alias)
        if isinstance(version, bool) or not isinstance(version, int):
            raise RegistryError(f"version must be an int, got {version!r}")
        return self._change_alias(name, alias, version)

    def delete_alias(self, name: str, alias: str) -> AliasChange:
        """Remove ``alias`` of model ``name``."""
        validate_alias(alias)
        return self._change_alias(name, alias, None)

    def _change_alias(self, name: str, alias: str, version: int | None) -> AliasChange:
        self._index(name)  # NotFoundError before taking a lock for an unknown model
        with self.storage.lock(name):
            index = self._index(name)
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
            # History first: a crash in between leaves a logged change not applied, never an unlogged one.
            line = json.dumps(change.__dict__, sort_keys=True, separators=(",", ":")) + "\n"
            self.storage.append_bytes(f"{self._model(name)}/history.jsonl", line.encode())
            self._write_index(name, index)
            return change

    def history(self, name: str) -> builtins.list[AliasChange]:
        """Return every alias change of model ``name``, oldest first."""
        self._index(name)
        try:
            raw = self.storage.read_bytes(f"{self._model(name)}/history.jsonl")
        except FileNotFoundError:
            return []
        lines = raw.decode().splitlines()
        out = []
        for i, line in enumerate(lines):
            if not line.strip():
                continue
            try:
                out.append(AliasChange(**json.loads(line)))
            except (ValueError, TypeError) as exc:
                if i == len(lines) - 1:
                    break  # a torn final line from a crash mid-append: the change never happened
                raise RegistryError(f"history of model {name!r} is corrupt at line {i + 1}: {exc}") from exc
        return out
