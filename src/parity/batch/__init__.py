"""Batch scoring: a Parquet/CSV dataset in, keys + model outputs in Parquet out, on local cores, Dask or Spark.

::

    from parity.batch import score
    score("models/churn", "data/customers.parquet", "out/scores.parquet", keys=["customer_id"])
    score("models/churn", "data/customers/", "out/scores/", engine="spark", keys=["customer_id"])

Every engine runs the same per-batch step (``_score.score_table``: ``codec.encode_arrow``, then
``Artifact.predict_columns``) on Arrow batches and gives the same outputs (a test checks it on a
dataset larger than one batch). Reading and writing go through one URL -> filesystem
seam (:func:`parity.batch._fs.resolve`), so object storage plugs in with a ``filesystem`` argument.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Literal

import pyarrow.fs as pafs

from parity.artifact import load_artifact
from parity.batch._fs import open_dataset, resolve
from parity.batch._score import DEFAULT_BATCH_SIZE, BatchResult, score_dask, score_local
from parity.errors import SchemaError

__all__ = ["DEFAULT_BATCH_SIZE", "ENGINES", "BatchResult", "open_dataset", "resolve", "score"]

Engine = Literal["local", "spark", "dask"]
ENGINES: tuple[Engine, ...] = ("local", "spark", "dask")


def score(
    artifact_dir: str | os.PathLike[str],
    input_url: str | os.PathLike[str],
    output_url: str | os.PathLike[str],
    *,
    engine: Engine = "local",
    keys: Sequence[str] = (),
    batch_size: int = DEFAULT_BATCH_SIZE,
    trusted: bool = False,
    filesystem: pafs.FileSystem | None = None,
    progress: Callable[[int], None] | None = None,
    spark: object | None = None,
) -> BatchResult:
    """Score ``input_url`` with the artifact in ``artifact_dir`` and write keys + outputs to ``output_url``."""
    if engine not in ENGINES:
        raise SchemaError(f"engine={engine!r} is not one of {', '.join(ENGINES)}", param="engine")
    if batch_size < 1:
        raise SchemaError(f"batch_size must be >= 1, got {batch_size}")
    source, target = os.fspath(input_url), os.fspath(output_url)
    if engine == "spark":
        from parity.batch._spark import score_spark

        return score_spark(Path(artifact_dir), source, target, keys=keys, trusted=trusted, spark=spark)
    artifact = load_artifact(artifact_dir, trusted=trusted)
    if engine == "dask":
        return score_dask(
            artifact, source, target, keys=keys, filesystem=filesystem, output_filesystem=filesystem, progress=progress
        )
    return score_local(
        artifact,
        source,
        target,
        keys=keys,
        batch_size=batch_size,
        filesystem=filesystem,
        output_filesystem=filesystem,
        progress=progress,
    )
