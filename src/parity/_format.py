"""The artifact directory format: manifest, file entries, digests, verification and ``profile.json``.

The one owner of the on-disk format; ``artifact``, ``registry``, ``skew``, ``server`` and ``cli``
all read and write artifact directories through it. A directory holds ``manifest.json`` (at least
``name`` and ``files``: every other file as ``{relative_posix_path: {"sha256": hex, "size": int}}``)
plus those files. Reading (:func:`read_dir`) hashes each file exactly once.

The *version digest* (:func:`manifest_digest`) is the sha256 of the canonical JSON of the whole
manifest minus :data:`VOLATILE_FIELDS`; since the manifest lists every file's sha256, it covers
every byte of the artifact and every recorded claim (signature, nullability, metrics, lineage, the
parity verdict). The registry records it at push time and every load checks it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from parity._io import canonical_json, sha256_bytes, sha256_file
from parity.errors import ArtifactError, IntegrityError, RegistryError

__all__ = [
    "DIGEST_SCHEME",
    "LEGACY_DIGEST_SCHEME",
    "MANIFEST",
    "NAME_RULE",
    "NAME_RULE_TEXT",
    "PROFILE_FILE",
    "REFERENCE_FORMAT",
    "VOLATILE_FIELDS",
    "check_digest",
    "file_entries",
    "file_entry",
    "legacy_digest",
    "manifest_digest",
    "profile_bytes",
    "read_dir",
    "read_manifest",
    "read_reference",
    "validate_name",
    "verify_dir",
    "write_dir",
]

MANIFEST = "manifest.json"
PROFILE_FILE = "profile.json"
REFERENCE_FORMAT = "parity.reference/1"

VOLATILE_FIELDS = frozenset({"created"})
"""Manifest fields the version digest leaves out: re-packaging the same model later is the same version."""

DIGEST_SCHEME = 2
"""Digest of the canonical manifest minus :data:`VOLATILE_FIELDS` (:func:`manifest_digest`)."""
LEGACY_DIGEST_SCHEME = 1
"""Digest of ``name`` and ``files`` only (:func:`legacy_digest`): registry entries written before scheme 2."""

NAME_RULE = "[A-Za-z0-9][A-Za-z0-9._-]{0,127}"
"""Regular expression every model name and alias must match in full."""

_NAME_RE = re.compile(NAME_RULE)
NAME_RULE_TEXT = f"must match {NAME_RULE} (a letter or digit, then up to 127 letters, digits, '.', '_' or '-')"


def validate_name(name: object) -> str:
    """Return ``name`` if it is a valid model name, else raise :class:`RegistryError`."""
    if not isinstance(name, str) or not _NAME_RE.fullmatch(name):
        raise RegistryError(f"invalid model name {name!r}: model names {NAME_RULE_TEXT}")
    return name


# --------------------------------------------------------------------------- manifest and digests


def file_entry(data: bytes) -> dict[str, Any]:
    """Return the manifest entry ``{"sha256", "size"}`` of one file's content."""
    return {"sha256": sha256_bytes(data), "size": len(data)}


def file_entries(manifest: Mapping[str, Any], where: object) -> dict[str, dict[str, Any]]:
    """Return the validated ``files`` entries of a manifest (paths stay inside the directory)."""
    files = manifest.get("files")
    if not isinstance(files, Mapping):
        raise ArtifactError(f"{where}: manifest 'files' must be a mapping of relative path -> {{sha256, size}}")
    out: dict[str, dict[str, Any]] = {}
    for rel, entry in files.items():
        # Paths come from an untrusted manifest: they must stay inside the artifact directory.
        if (
            not isinstance(rel, str)
            or not rel
            or rel.startswith("/")
            or "\\" in rel
            or any(p in ("", ".", "..") for p in rel.split("/"))
            or rel == MANIFEST
        ):
            raise ArtifactError(f"{where}: invalid file path {rel!r} in manifest (relative posix paths only)")
        if (
            not isinstance(entry, Mapping)
            or not isinstance(entry.get("sha256"), str)
            or not isinstance(entry.get("size"), int)
            or isinstance(entry.get("size"), bool)
        ):
            raise ArtifactError(f"{where}: manifest entry of {rel!r} must be {{'sha256': hex, 'size': int}}")
        out[rel] = {"sha256": entry["sha256"], "size": entry["size"]}
    return out


def _name(manifest: Mapping[str, Any]) -> str:
    name = manifest.get("name")
    if not isinstance(name, str):
        raise ArtifactError(f"manifest 'name' must be a string, got {name!r}")
    return name


def manifest_digest(manifest: Mapping[str, Any]) -> str:
    """Return the version digest: sha256 of the canonical manifest without :data:`VOLATILE_FIELDS`."""
    _name(manifest)
    file_entries(manifest, "manifest")
    return sha256_bytes(canonical_json({k: v for k, v in manifest.items() if k not in VOLATILE_FIELDS}))


def legacy_digest(manifest: Mapping[str, Any]) -> str:
    """Return the scheme-1 digest: sha256 of canonical JSON of ``{"name", "files"}`` only."""
    files = file_entries(manifest, "manifest")
    return sha256_bytes(canonical_json({"name": _name(manifest), "files": dict(sorted(files.items()))}))


def check_digest(manifest: Mapping[str, Any], expected: str, where: object, scheme: int = DIGEST_SCHEME) -> None:
    """Raise :class:`IntegrityError` unless the manifest's digest (of ``scheme``) equals ``expected``."""
    actual = manifest_digest(manifest) if scheme == DIGEST_SCHEME else legacy_digest(manifest)
    if actual != expected:
        raise IntegrityError(
            f"{MANIFEST} of {where} was modified after it was registered: digest expected {expected}, actual {actual}"
        )


def read_manifest(directory: str | os.PathLike[str]) -> dict[str, Any]:
    """Read and parse ``manifest.json`` of an artifact directory (files are not checked)."""
    root = Path(directory)
    path = root / MANIFEST
    if not path.is_file():
        raise ArtifactError(
            f"{root} is not a parity artifact (no {MANIFEST}); pass an artifact directory or a registry ref"
        )
    try:
        manifest = json.loads(path.read_bytes())
    except (OSError, ValueError) as exc:
        raise ArtifactError(f"cannot read {path}: {exc}") from exc
    if not isinstance(manifest, dict):
        raise ArtifactError(f"{path} must hold a JSON object, got {type(manifest).__name__}")
    return manifest


# --------------------------------------------------------------------------- directories


def _listing(root: Path, manifest: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Entries of the manifest, after checking the directory holds exactly those files."""
    files = file_entries(manifest, root)
    present = {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file() or p.is_symlink()}
    present.discard(MANIFEST)
    if extra := sorted(present - files.keys()):
        raise IntegrityError(f"file(s) {', '.join(map(repr, extra))} in {root} not listed in {MANIFEST}")
    if missing := sorted(files.keys() - present):
        raise IntegrityError(f"file {missing[0]!r} listed in {MANIFEST} is missing from {root}")
    return files


def _check_file(root: Path, rel: str, entry: Mapping[str, Any], actual: str, size: int) -> None:
    if actual != entry["sha256"]:
        raise IntegrityError(f"file {rel!r} of {root} is corrupt: sha256 expected {entry['sha256']}, actual {actual}")
    if size != entry["size"]:
        raise IntegrityError(f"file {rel!r} of {root}: size expected {entry['size']}, actual {size}")


def read_dir(
    directory: str | os.PathLike[str],
    *,
    digest: str | None = None,
    scheme: int = DIGEST_SCHEME,
    label: object = None,
) -> tuple[dict[str, Any], dict[str, bytes]]:
    """Read an artifact directory, hashing each file once; return the manifest and every file's bytes.

    ``digest`` (the version digest recorded by the registry) is checked too when given; ``label``
    names the artifact in that error (e.g. ``churn:3``) instead of its path.
    """
    root = Path(directory)
    manifest = read_manifest(root)
    if digest is not None:
        check_digest(manifest, digest, label if label is not None else root, scheme)
    contents: dict[str, bytes] = {}
    for rel, entry in sorted(_listing(root, manifest).items()):
        data = (root / rel).read_bytes()
        _check_file(root, rel, entry, sha256_bytes(data), len(data))
        contents[rel] = data
    return manifest, contents


def verify_dir(
    directory: str | os.PathLike[str],
    *,
    digest: str | None = None,
    scheme: int = DIGEST_SCHEME,
    label: object = None,
) -> dict[str, Any]:
    """Check every file of an artifact directory against its manifest (streaming); return the manifest."""
    root = Path(directory)
    manifest = read_manifest(root)
    if digest is not None:
        check_digest(manifest, digest, label if label is not None else root, scheme)
    for rel, entry in sorted(_listing(root, manifest).items()):
        _check_file(root, rel, entry, sha256_file(root / rel), (root / rel).stat().st_size)
    return manifest


def write_dir(target: str | os.PathLike[str], manifest: Mapping[str, Any], files: Mapping[str, bytes]) -> Path:
    """Write an artifact directory atomically: files fsynced in a temp dir, then renamed into place."""
    dest = Path(target)
    if dest.exists() and any(dest.iterdir()):
        raise ArtifactError(f"{dest} exists and is not empty; choose a new path or delete it")
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    try:
        for name, data in [*files.items(), (MANIFEST, canonical_json(dict(manifest)))]:
            path = tmp.joinpath(*name.split("/"))
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(path, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
        if dest.exists():
            dest.rmdir()
        os.replace(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return dest


# --------------------------------------------------------------------------- profile.json


def profile_bytes(inputs: Mapping[str, Any], outputs: Mapping[str, Any]) -> bytes:
    """Serialise the reference profiles (``parity.reference/1``) stored as ``profile.json``."""
    return canonical_json({"format": REFERENCE_FORMAT, "inputs": dict(inputs), "outputs": dict(outputs)})


def read_reference(raw: bytes, where: object) -> dict[str, Any]:
    """Parse ``profile.json`` bytes: a ``parity.reference/1`` object with ``inputs`` (and ``outputs``)."""
    try:
        doc = json.loads(raw)
    except ValueError as exc:
        raise ArtifactError(f"{where}: {PROFILE_FILE} is not valid JSON: {exc}") from exc
    if not isinstance(doc, dict) or doc.get("format") != REFERENCE_FORMAT or not isinstance(doc.get("inputs"), dict):
        got = doc.get("format") if isinstance(doc, dict) else type(doc).__name__
        raise ArtifactError(f"{where}: {PROFILE_FILE} must be a {REFERENCE_FORMAT!r} object with 'inputs'; got {got!r}")
    return doc
