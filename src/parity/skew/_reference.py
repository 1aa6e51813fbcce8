"""The reference side of a comparison: training input and output profiles, signature and model identity."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from parity._format import PROFILE_FILE, REFERENCE_FORMAT
from parity.artifact import Artifact
from parity.errors import ArtifactError, ProfileError
from parity.lake import OUTPUT_PREFIX, lake_column_name
from parity.profile import ColumnProfile, Profile, ProfileSpec
from parity.schema import Signature
from parity.skew._data import Expected, TypeClass

__all__ = ["REFERENCE_FORMAT", "Reference"]

_CLASSES: dict[str, TypeClass] = {"numeric": "numeric", "categorical": "string", "boolean": "bool"}


def _class(datatype: str) -> TypeClass:
    """Return the Arrow type class a signature datatype travels as."""
    return "string" if datatype == "BYTES" else "bool" if datatype == "BOOL" else "numeric"


@dataclass
class Reference:
    """Training-side profiles (inputs, and outputs on the parity sample) plus what identifies the model."""

    inputs: Profile
    outputs: Profile | None = None
    signature: Signature | None = None
    name: str | None = None
    version: int | None = None
    artifact: Artifact | None = None

    @classmethod
    def from_artifact(cls, artifact: Artifact) -> Reference:
        """Read ``profile.json`` of an artifact (``parity.reference/1``: inputs and outputs)."""
        try:
            inputs, outputs = artifact.profile, artifact.output_profile
        except ProfileError as e:
            raise ArtifactError(f"artifact {artifact.name!r}: {PROFILE_FILE} is unreadable: {e}") from e
        return cls(inputs, outputs, artifact.signature, artifact.name, artifact.version, artifact)

    @classmethod
    def from_file(cls, path: str | os.PathLike[str], name: str | None = None) -> Reference:
        """Read a saved profile (``parity.profile/1``) or reference (``parity.reference/1``) JSON file."""
        try:
            raw = json.loads(Path(path).read_text(encoding="utf-8"))
            inputs, outputs = _parse(raw)
        except (OSError, ValueError) as e:
            raise ProfileError(f"cannot read reference profile {path}: {e}") from e
        # A reference may name what it describes (a composition's does): its lake partition.
        if name is None and isinstance(raw, dict) and isinstance(raw.get("name"), str):
            name = raw["name"]
        return cls(inputs, outputs, None, name)

    def spec(self, lake: bool = False) -> ProfileSpec:
        """Return the binning of every expected column keyed by its data column name (inputs, output.<name>)."""
        return ProfileSpec({c.data: c.spec for c in self.expected(lake)})

    def column(self, col: Expected) -> ColumnProfile:
        """Return the reference profile of one expected column."""
        prof = self.inputs if col.role == "input" else self.outputs
        assert prof is not None  # outputs are only expected when an output profile exists
        return prof.columns[col.feature if col.role == "input" else col.feature[len(OUTPUT_PREFIX) :]]

    def rows(self, col: Expected) -> int:
        """Return the row count behind one column's reference."""
        return self.column(col).count

    def expected(self, lake: bool) -> list[Expected]:
        """Return every column the serving data should hold: profiled inputs then outputs."""
        out: list[Expected] = []
        sig_in = {c.name: c.datatype for c in self.signature.inputs} if self.signature else {}
        sig_out = {o.name: o.datatype for o in self.signature.outputs} if self.signature else {}
        for name, spec in self.inputs.spec.columns.items():
            kind = _kind(self.inputs.columns[name])
            declared = sig_in.get(name)
            expect = _class(declared) if declared else _CLASSES[kind]
            data = lake_column_name(name) if lake else name
            out.append(Expected(name, data, "input", spec, expect, declared or kind))
        if self.outputs is not None:
            for name, spec in self.outputs.spec.columns.items():
                kind = _kind(self.outputs.columns[name])
                declared = sig_out.get(name)
                # Outputs are profiled from the model's arrays: int labels are numeric, text labels categorical.
                expect = _class(declared) if declared else _CLASSES[kind]
                full = OUTPUT_PREFIX + name
                out.append(Expected(full, full, "output", spec, expect, declared or kind))
        return out


def _kind(p: ColumnProfile) -> str:
    return str(p.kind)


def _parse(raw: Any) -> tuple[Profile, Profile | None]:
    """Split a reference JSON document into input and output profiles."""
    if isinstance(raw, dict) and raw.get("format") == REFERENCE_FORMAT:
        outputs = raw.get("outputs")
        return Profile.from_dict(raw["inputs"]), (Profile.from_dict(outputs) if outputs else None)
    return Profile.from_dict(raw), None
