"""Fixtures of the skew tests: one small packaged model, shared by the module that asks for it."""

from __future__ import annotations

import pytest

import parity
from tests.skew.helpers import fit_artifact


@pytest.fixture(scope="session")
def churn() -> parity.Artifact:
    """A small portable artifact (logistic pipeline) named "churn"."""
    return fit_artifact()
