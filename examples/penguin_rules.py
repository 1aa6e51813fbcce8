"""A composition over two penguin models: business logic in its own service, models kept "pure maths".

The species classifier (REST) and the body-mass regressor (gRPC) are called concurrently; the rule
flags a penguin whose measured mass is far below what its measurements predict (a health check),
and asks for a human look when the species call is not confident. When the mass model is down,
its declared fallback answers NaN and the rule says it could not check the mass.

Serve it: ``PENGUIN_SPECIES_URL=http://127.0.0.1:8080 PENGUIN_MASS_URL=grpc://127.0.0.1:8083
parity compose serve examples/penguin_rules.py:composition``. Test the rule in-process:
``composition.run(rows, models={"species": species_artifact, "mass": mass_artifact})``.
"""

from __future__ import annotations

import math
import os
from typing import Any

from parity.compose import Composition, Fallback, Remote, Retry
from parity.schema import ColumnSpec, OutputSpec

SPECIES = ("Adelie", "Chinstrap", "Gentoo")
UNDERWEIGHT = 0.85  # measured mass below 85 % of the predicted mass
CONFIDENT = 0.7

composition = Composition(
    "penguin_care",
    inputs=[
        ColumnSpec("bill_length_mm", "FP64", True),
        ColumnSpec("bill_depth_mm", "FP64", True),
        ColumnSpec("flipper_length_mm", "FP64", True),
        ColumnSpec("body_mass_g", "FP64", True),
        ColumnSpec("year", "FP64", False),
        ColumnSpec("island", "BYTES", True),
        ColumnSpec("sex", "BYTES", True),
    ],
    outputs=[OutputSpec("species", "BYTES"), OutputSpec("status", "BYTES"), OutputSpec("mass_ratio", "FP64")],
    version=1,
    deadline_s=1.0,
)
composition.model(
    "species",
    Remote(os.environ.get("PENGUIN_SPECIES_URL", "http://127.0.0.1:8080"), "penguins"),
    reads=["label", *(f"probability_{s}" for s in SPECIES)],
    timeout_s=0.5,
)
composition.model(
    "mass",
    Remote(os.environ.get("PENGUIN_MASS_URL", "grpc://127.0.0.1:8083"), "penguin_mass"),
    reads=["prediction"],
    timeout_s=0.3,
    retry=Retry(attempts=2, backoff_s=0.01),
    breaker_failures=3,
    breaker_reset_s=1.0,
    fallback=Fallback(default={"prediction": math.nan}),
)


@composition.rule(per_row=True)
def decide(row: dict[str, Any], out: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Species as predicted; status ok / underweight / check-species / mass-unknown."""
    species = out["species"]
    confidence = max(species[f"probability_{s}"] for s in SPECIES)
    predicted = out["mass"]["prediction"]
    measured = row["body_mass_g"]
    ratio = measured / predicted if measured is not None and predicted is not None and predicted > 0 else math.nan
    if confidence < CONFIDENT:
        status = "check-species"
    elif predicted is None or math.isnan(predicted):
        status = "mass-unknown"
    elif not math.isnan(ratio) and ratio < UNDERWEIGHT:
        status = "underweight"
    else:
        status = "ok"
    return {"species": species["label"], "status": status, "mass_ratio": ratio}
