"""Model references: ``name``, ``name:3``, ``name@alias`` or a path to an artifact directory.

A reference is read as a filesystem path when it contains a path separator, starts with ``.``
or ``~``, or names an existing directory holding ``manifest.json``; otherwise as a registry
reference. Model names and aliases follow the same rule (see :data:`NAME_RULE`); an alias must
also not be all digits, so ``name:3`` and ``name@3`` can never be confused.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from parity._format import MANIFEST, NAME_RULE, NAME_RULE_TEXT, validate_name
from parity.errors import RegistryError

__all__ = ["NAME_RULE", "Ref", "RefKind", "parse_ref", "validate_alias", "validate_name"]

_NAME_RE = re.compile(NAME_RULE)
_VERSION_RE = re.compile("[0-9]+")  # ASCII only: str.isdigit() also accepts e.g. Arabic-Indic digits

RefKind = Literal["latest", "version", "alias", "path"]


@dataclass(frozen=True)
class Ref:
    """A parsed model reference; which fields are set depends on ``kind``."""

    kind: RefKind
    name: str | None = None
    version: int | None = None
    alias: str | None = None
    path: Path | None = None

    def __str__(self) -> str:
        """Render the reference back in the syntax :func:`parse_ref` reads."""
        if self.kind == "path":
            return str(self.path)
        if self.kind == "version":
            return f"{self.name}:{self.version}"
        if self.kind == "alias":
            return f"{self.name}@{self.alias}"
        return str(self.name)


def validate_alias(alias: object) -> str:
    """Return ``alias`` if it is a valid alias, else raise :class:`RegistryError`."""
    if not isinstance(alias, str) or not _NAME_RE.fullmatch(alias):
        raise RegistryError(f"invalid alias {alias!r}: aliases {NAME_RULE_TEXT}, and must not be all digits")
    if _VERSION_RE.fullmatch(alias):
        raise RegistryError(
            f"invalid alias {alias!r}: aliases must not be all digits (to select version {alias}, use name:{alias})"
        )
    return alias


def _looks_like_path(text: str) -> bool:
    if "/" in text or os.sep in text or (os.altsep is not None and os.altsep in text):
        return True
    if text.startswith((".", "~")):
        return True
    # A bare word may still be a directory in the working directory; a real artifact wins.
    return (Path(text) / MANIFEST).is_file()


def parse_ref(text: str | os.PathLike[str]) -> Ref:
    """Parse ``name``, ``name:3``, ``name@alias`` or a path into a :class:`Ref`."""
    if isinstance(text, os.PathLike):
        return Ref(kind="path", path=Path(text))
    if not isinstance(text, str) or not text:
        raise RegistryError(f"invalid model reference {text!r}: expected name, name:VERSION, name@ALIAS or a path")
    if _looks_like_path(text):
        return Ref(kind="path", path=Path(text).expanduser())
    if "@" in text:
        name, alias = text.split("@", 1)
        return Ref(kind="alias", name=validate_name(name), alias=validate_alias(alias))
    if ":" in text:
        name, version = text.rsplit(":", 1)
        if not _VERSION_RE.fullmatch(version) or int(version) < 1:
            raise RegistryError(
                f"invalid model reference {text!r}: the version after ':' must be a positive integer, got {version!r}"
            )
        return Ref(kind="version", name=validate_name(name), version=int(version))
    return Ref(kind="latest", name=validate_name(text))
