"""Fixtures of the skew tests: one small packaged model, shared by the module that asks for it."""

from __future__ import annotations

from pathlib import Path

import pytest

import parity
from tests.skew.helpers import fit_artifact


@pytest.fixture(scope="session")
def churn() -> parity.Artifact:
    """A small portable artifact (logistic pipeline) named "churn"."""
    return fit_artifact()


@pytest.fixture(scope="session")
def art_dir(tmp_path_factory: pytest.TempPathFactory, churn: parity.Artifact) -> Path:
    """The churn artifact saved to a directory (what the CLI takes as REF)."""
    path = tmp_path_factory.mktemp("art") / "churn"
    churn.save(path)
    return path
