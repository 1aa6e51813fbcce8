"""Model registry: numbered, immutable, verified artifact versions with aliases and history::

reg = Registry()                        # $PARITY_HOME or ./.parity
v = reg.push("out/churn")               # -> ModelVersion(name="churn", version=1, ...)
reg.set_alias("churn", "production", v.version)
model = reg.load("churn@production")    # verified, then parity.artifact.load_artifact
"""

from __future__ import annotations

from parity._format import manifest_digest as artifact_digest
from parity._format import verify_dir as verify_artifact_dir
from parity.registry._fsck import FsckProblem
from parity.registry._refs import NAME_RULE, Ref, RefKind, parse_ref, validate_alias, validate_name
from parity.registry._registry import (
    AliasChange,
    ModelSummary,
    ModelVersion,
    Registry,
    SavableArtifact,
    default_root,
)
from parity.registry._storage import ConflictError, LocalStorage, Storage

__all__ = [
    "NAME_RULE",
    "AliasChange",
    "ConflictError",
    "FsckProblem",
    "LocalStorage",
    "ModelSummary",
    "ModelVersion",
    "Ref",
    "RefKind",
    "Registry",
    "SavableArtifact",
    "Storage",
    "artifact_digest",
    "default_root",
    "parse_ref",
    "validate_alias",
    "validate_name",
    "verify_artifact_dir",
]
