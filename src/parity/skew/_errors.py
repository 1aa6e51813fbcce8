"""Errors of skew detection: both derive from existing parity classes, so the CLI maps them already."""

from __future__ import annotations

from parity.errors import ProfileError

__all__ = ["SkewDataError", "ThresholdsError"]


class SkewDataError(ProfileError):
    """Serving or offline data cannot be found, read or windowed."""


class ThresholdsError(ProfileError):
    """A thresholds file is unreadable or holds an unknown metric, feature option or bad value."""
