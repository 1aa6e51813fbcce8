"""Deployment: Docker build contexts, Kubernetes / KServe manifests and the runtime environment check."""

from __future__ import annotations

from parity.deploy._errors import DeployError, InvalidOptionError
from parity.deploy._image import BuildResult, build_context
from parity.deploy._lock import Lock, read_lock

__all__ = ["BuildResult", "DeployError", "InvalidOptionError", "Lock", "build_context", "read_lock"]
