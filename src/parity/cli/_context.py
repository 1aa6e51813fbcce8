"""State shared by every command (global options) and resolution of model references."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import typer

from parity._format import verify_dir
from parity.artifact import Artifact
from parity.registry import ModelVersion, Registry, parse_ref

__all__ = ["CliState", "ResolvedArtifact", "check_ref", "get_state", "load_verified", "resolve_verified"]


@dataclass
class CliState:
    """Global options, stored on the root click context."""

    registry_root: str | Path | None = None
    debug: bool = False
    quiet: bool = False

    def registry(self) -> Registry:
        """Open the registry chosen by ``--registry`` / ``$PARITY_HOME`` (default ``./.parity``)."""
        return Registry(self.registry_root)


def get_state(ctx: typer.Context) -> CliState:
    """Return the global options of this invocation (defaults if the root callback has not run)."""
    root = ctx.find_root()
    if not isinstance(root.obj, CliState):
        root.obj = CliState()
    return root.obj


@dataclass
class ResolvedArtifact:
    """An artifact directory whose files were checked against its manifest, without loading the model."""

    ref: str
    path: Path
    manifest: dict[str, Any]
    version: ModelVersion | None = None
    aliases: tuple[str, ...] = field(default_factory=tuple)


def check_ref(ref: str) -> None:
    """Raise FileNotFoundError for a path reference that does not exist (the registry says 'not an artifact')."""
    parsed = parse_ref(ref)
    if parsed.kind == "path" and parsed.path is not None and not parsed.path.exists():
        raise FileNotFoundError(f"no artifact directory {str(parsed.path)!r}: it does not exist")


def resolve_verified(ref: str, registry: Registry) -> ResolvedArtifact:
    """Resolve ``ref`` to its directory and verify every file's sha256; the model itself is not loaded."""
    check_ref(ref)
    parsed = parse_ref(ref)
    if parsed.kind == "path":
        assert parsed.path is not None  # always set for path references
        manifest = verify_dir(registry.path(parsed))
        return ResolvedArtifact(ref=ref, path=parsed.path, manifest=manifest)
    version, manifest = registry.verified_manifest(parsed)
    return ResolvedArtifact(ref=ref, path=version.path, manifest=manifest, version=version, aliases=version.aliases)


def load_verified(ref: str, registry: Registry, *, trusted: bool) -> Artifact:
    """Load ``ref``, hashing each file once; a registry version is also checked against its recorded digest."""
    check_ref(ref)
    return registry.load(parse_ref(ref), trusted=trusted)
