"""parity: ship a model as one verified artifact, identical in training, serving and other languages.

Quick start::

    import parity
    art = parity.package(pipeline, raw_training_frame, name="churn",
                         postprocess=parity.Threshold(0.7, labels=("stay", "churn")))
    art.save("out/churn")
    parity.load("out/churn").predict(raw_frame)
"""

from __future__ import annotations

import os

from parity.artifact import Artifact, package
from parity.checks import ParityReport
from parity.errors import (
    ArtifactError,
    ExportError,
    IntegrityError,
    MissingDependencyError,
    NotFoundError,
    ParityError,
    ParityMismatchError,
    ProfileError,
    RegistryError,
    SchemaError,
    UnsupportedModelError,
    UntrustedArtifactError,
)
from parity.postprocess import ClassLabels, Threshold
from parity.registry import ModelVersion, Registry
from parity.schema import ColumnSpec, OutputSpec, Signature

__version__ = "0.1.0"

__all__ = [
    "Artifact",
    "ArtifactError",
    "ClassLabels",
    "ColumnSpec",
    "ExportError",
    "IntegrityError",
    "MissingDependencyError",
    "ModelVersion",
    "NotFoundError",
    "OutputSpec",
    "ParityError",
    "ParityMismatchError",
    "ParityReport",
    "ProfileError",
    "Registry",
    "RegistryError",
    "SchemaError",
    "Signature",
    "Threshold",
    "UnsupportedModelError",
    "UntrustedArtifactError",
    "__version__",
    "load",
    "package",
]


def load(ref: str | os.PathLike[str], *, trusted: bool = False, registry: Registry | None = None) -> Artifact:
    """Load a verified artifact from a directory path or a registry ref (``name``, ``name:3``, ``name@alias``)."""
    return (registry or Registry()).load(ref, trusted=trusted)
