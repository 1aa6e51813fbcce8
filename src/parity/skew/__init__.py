"""Training-serving skew: compare serving data with the training reference of a model artifact.

``skew_report(artifact_or_ref, data, ...) -> SkewReport`` (CLI: ``parity skew REF --data PATH``). The
reference is the artifact's ``profile.json`` (``parity.reference/1``: a profile of the raw training inputs
and one of the model's outputs on the parity sample). The serving side is profiled with the *same*
``ProfileSpec`` by :func:`parity.profile.profile_parquet` (record batches, ``pre_buffer=False``, files or
row groups in spawned processes with ``OPENBLAS_NUM_THREADS=1``), so both sides share their bins exactly.

Data: a lake root (``model=<name>/version=<V>/date=<D>/part-*.parquet``, pruned to the model and the
window's days), a directory of Parquet, one Parquet file, or CSV (streamed by blocks). Columns are named as
the signature; predictions as ``output.<name>``. ``since <= ts < until`` filters by the ``ts`` column;
``by="day"|"hour"`` profiles every window in the same single pass (batches are grouped by window) and adds a
per-window table of every metric.

Metrics. Per column, ``r_i``/``c_i`` are the reference/serving counts of the non-null values in bin ``i``:
numeric columns use the training bins *including* the underflow and overflow bins (``B = edges + 1``);
categorical columns use the top-K training categories plus one "other" bin; booleans use [false, true].
``p_i = r_i / R``, ``q_i = c_i / C`` with ``R``, ``C`` the non-null counts.

- ``psi`` (all kinds): ``PSI = sum_i (q'_i - p'_i) * ln(q'_i / p'_i)`` -- natural log, not squared -- over
  smoothed proportions ``p'_i = (p_i + eps) / (1 + B * eps)`` with ``eps = 1e-4`` (an empty bin would make the
  log infinite). Bins empty on both sides contribute 0.
- ``js_distance`` (numeric): ``JSD = (KL(p||m) + KL(q||m)) / 2`` with ``m = (p + q) / 2`` and **log base 2**
  (so ``JSD`` is in [0, 1], ``0 log 0 = 0``, no smoothing); the distance is ``sqrt(JSD)``.
- ``out_of_range_share`` (numeric): ``(c_under + c_over) / C``, the share of serving values below the training
  minimum or above the training maximum.
- ``linf`` (categorical, boolean): ``max_i |p_i - q_i|``, the L-infinity distance between frequency vectors as
  in TFDV (not squared).
- ``unseen_share`` (categorical): rows whose value never occurred in training over ``C`` (unavailable when
  the training data had more than 1000 distinct values: then only its top-K are known).
- ``null_rate_change`` (every column): ``|nulls_cur / rows_cur - nulls_ref / rows_ref|``, absolute difference.
- schema problems (every column): ``missing_column``, ``new_column`` (not in the reference; ids can be
  listed in ``[schema] ignore_columns``) and ``type_change`` (the Arrow type class -- number, string, bool --
  differs from the signature's datatype). Each is an alert by default; such a column is not profiled.
- predictions: every output gets the same metrics, the artifact's output profile against ``output.<name>``.
- ``replay_mismatch`` (``replay=True``): share of logged rows whose replayed outputs differ (numbers beyond
  the artifact's parity tolerance, relative above 1 in magnitude; labels exactly) or whose inputs the
  signature rejects. Each lake ``version=V`` is replayed with ``name:V`` from the registry (the given
  artifact for V = 0 or an unregistered V).
- ``join_mismatch`` (``join=KEY, offline=PATH``): per input, share of joined rows whose serving and offline
  values differ: numbers beyond ``1e-9`` relative (``|a - b| <= 1e-9 * max(|a|, |b|)`` matches), strings and
  bools exactly, both null = match, one null = mismatch.

Sample-size awareness. With few rows a distance is mostly noise, so each metric is judged on a
*noise-corrected* value (reported as ``adjusted`` next to the raw ``value`` and the ``noise`` subtracted):

- PSI: to second order PSI equals the two-sample chi-square statistic times ``(1/R + 1/C)``; with no drift
  its mean is ``noise = (B_occ - 1) * (1/R + 1/C)`` (``B_occ``: bins occupied on either side). Judged:
  ``max(0, PSI - noise)``.
- JS: ``JSD`` (bits) ~ ``PSI / (8 ln 2)`` for small differences, so ``noise_JSD = (B_occ - 1) * (1/R + 1/C)
  / (8 ln 2)`` and the judged distance is ``sqrt(max(0, JSD - noise_JSD))``.
- L-inf: ``max_i max(0, |p_i - q_i| - 3 * se_i)``, ``se_i = sqrt(s_i (1 - s_i) (1/R + 1/C))`` with
  ``s_i`` the pooled share of bin i.
- null rate: ``max(0, |a - b| - 3 * se)``, ``se`` from the pooled null rate.
- out of range: ``max(0, share - base - 3 * sqrt(base (1 - base) / C))`` with ``base = reference share +
  2 / (R + 1)`` (a fresh draw lands beyond the extremes of ``R`` values with probability ``2 / (R + 1)``).
- unseen: ``max(0, share - base - 3 * sqrt(base (1 - base) / C))`` with the Good-Turing bound ``base =
  min(rare training values, rare rows) / R``.
- A column with fewer than ``min_rows`` (default 100) serving values never warns or alerts: its metrics
  are reported with status ``insufficient``.

Default thresholds (a metric warns when its judged value is strictly above ``warn``, alerts above ``alert``):

====================  ======  ======  ==============================================================
metric                warn    alert   reasoning
====================  ======  ======  ==============================================================
psi                   0.1     0.25    the industry convention (credit scoring: <0.1 stable, >0.25 shifted)
js_distance           0.1     0.2     0.1 is Evidently's default; PSI ~ 5.5 * distance^2 so 0.2 ~ PSI 0.22
linf                  0.1     0.2     one category's share moving by 10 / 20 percentage points
unseen_share          0.01    0.05    1% of rows the model never saw is worth a look, 5% is material
out_of_range_share    0.01    0.05    same: the model extrapolates on those rows
null_rate_change      0.05    0.1     5 points is Evidently's null-drift rule; 10 points alerts
replay_mismatch       0       0.01    replay is deterministic: any mismatch is a bug
join_mismatch         0       0.01    the same entity's features must agree offline and online
====================  ======  ======  ==============================================================

Override them per metric or per feature in a TOML file (:class:`Thresholds`, ``--thresholds``). A
feature's severity is the maximum over its metrics and schema problems; features are sorted by severity,
then by how far past its alert level the worst metric is. The report's severity also covers replay and join.

Report: :meth:`SkewReport.to_dict` follows ``report.schema.json`` (format ``parity.skew/1``, beside this
module); :func:`render_html` writes one self-contained HTML page (inline CSS and SVG, no script or network);
the terminal table and the ``--fail-on`` exit codes live in the CLI (``parity.cli._skew_render``, ``_skew_cmds``);
:attr:`SkewReport.severity` and :attr:`SkewReport.status` are what they read.

Scale: files (or the row groups of few files) are profiled in ``min(units, cores)`` spawned processes once
the data has a million rows or more (a spawned worker costs ~1 s of imports). ``backend="dask"`` and
``backend="spark"`` run one task per row group (``profile.profile_row_groups``, the pyarrow path's own unit)
and merge in file/row-group order with ``Profile.merge`` -- bit-identical to the pyarrow path;
:func:`profile_partitions` and :func:`spark_profile_udf` (``mapInPandas``) serve other engines, and
``skew_report`` accepts their merged :class:`~parity.profile.Profile` as ``data``.
"""

from __future__ import annotations

from parity.skew._api import load_reference, skew_report
from parity.skew._backends import (
    SPARK_SCHEMA,
    merge_profile_rows,
    profile_dask,
    profile_parquet_dask,
    profile_parquet_spark,
    profile_partition,
    profile_partitions,
    spark_profile_udf,
)
from parity.skew._data import SchemaProblem
from parity.skew._errors import SkewDataError, ThresholdsError
from parity.skew._html import render_html, write_html
from parity.skew._metrics import js_distance, js_divergence, linf, psi, psi_noise
from parity.skew._reference import Reference
from parity.skew._report import (
    REPORT_FORMAT,
    SCHEMA_PATH,
    ColumnStats,
    DataSummary,
    FeatureReport,
    FeatureWindow,
    Histogram,
    JoinFeature,
    JoinReport,
    Metric,
    ReplayExample,
    ReplayReport,
    SkewReport,
    WindowReport,
    validate_report,
)
from parity.skew._thresholds import DEFAULT_LEVELS, DEFAULT_MIN_ROWS, Level, Severity, Thresholds

__all__ = [
    "DEFAULT_LEVELS",
    "DEFAULT_MIN_ROWS",
    "REPORT_FORMAT",
    "SCHEMA_PATH",
    "SPARK_SCHEMA",
    "ColumnStats",
    "DataSummary",
    "FeatureReport",
    "FeatureWindow",
    "Histogram",
    "JoinFeature",
    "JoinReport",
    "Level",
    "Metric",
    "Reference",
    "ReplayExample",
    "ReplayReport",
    "SchemaProblem",
    "Severity",
    "SkewDataError",
    "SkewReport",
    "Thresholds",
    "ThresholdsError",
    "WindowReport",
    "js_distance",
    "js_divergence",
    "linf",
    "load_reference",
    "merge_profile_rows",
    "profile_dask",
    "profile_parquet_dask",
    "profile_parquet_spark",
    "profile_partition",
    "profile_partitions",
    "psi",
    "psi_noise",
    "render_html",
    "skew_report",
    "spark_profile_udf",
    "validate_report",
    "write_html",
]
