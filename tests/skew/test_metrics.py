"""Metric values against hand computations, noise formulas, and the thresholds file."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from parity.skew import Level, Thresholds, ThresholdsError, js_distance, js_divergence, linf, psi, psi_noise
from parity.skew._metrics import linf_excess, rate_excess, smoothed


def test_psi_matches_hand_computation() -> None:
    ref, cur = np.array([50, 30, 20]), np.array([30, 30, 40])
    p, q = np.array([0.5, 0.3, 0.2]), np.array([0.3, 0.3, 0.4])
    eps = 1e-4
    ps, qs = (p + eps) / (1 + 3 * eps), (q + eps) / (1 + 3 * eps)
    expected = sum((b - a) * math.log(b / a) for a, b in zip(ps, qs, strict=True))
    assert psi(ref, cur) == pytest.approx(expected, rel=1e-12)
    # Without smoothing: 0.2*ln(0.5/0.3)... = (0.3-0.5) ln(0.3/0.5) + 0 + (0.4-0.2) ln(2)
    assert expected == pytest.approx(-0.2 * math.log(0.6) + 0.2 * math.log(2), rel=1e-3)
    assert psi(ref, ref) == 0.0


def test_metrics_against_numbers_worked_out_by_hand() -> None:
    # p = (0.5, 0.3, 0.2), q = (0.3, 0.3, 0.4):
    # PSI = (0.3-0.5) ln(0.3/0.5) + 0 + (0.4-0.2) ln(0.4/0.2) = 0.102165 + 0.138629 = 0.240794
    ref, cur = np.array([50, 30, 20]), np.array([30, 30, 40])
    assert psi(ref, cur) == pytest.approx(0.240794, abs=2e-4)  # smoothing moves it by < 1e-4
    assert linf(ref, cur) == pytest.approx(0.2, abs=1e-3)
    # JS divergence in bits, m = (0.4, 0.3, 0.3):
    # 0.5 (0.5 log2 1.25 + 0.2 log2(2/3)) + 0.5 (0.3 log2 0.75 + 0.4 log2(4/3))
    # = 0.5 (0.160964 - 0.116993) + 0.5 (-0.124511 + 0.166015) = 0.042737
    assert js_divergence(ref, cur) == pytest.approx(0.042737, abs=2e-4)
    assert js_distance(ref, cur) == pytest.approx(0.206731, abs=5e-4)  # sqrt(0.042737)
    # Identical distributions: every metric is 0; disjoint ones: JS distance 1 (bits), L-inf 1.
    assert psi(ref, ref) == 0.0 and linf(ref, ref) == 0.0 and js_distance(ref, ref) == pytest.approx(0.0, abs=1e-7)
    assert linf(np.array([5, 0]), np.array([0, 5])) == pytest.approx(1.0, abs=1e-3)


def test_psi_empty_bin_is_finite_thanks_to_smoothing() -> None:
    value = psi(np.array([100, 0]), np.array([90, 10]))
    p0, p1 = (1 + 1e-4) / (1 + 2e-4), 1e-4 / (1 + 2e-4)
    q0, q1 = (0.9 + 1e-4) / (1 + 2e-4), (0.1 + 1e-4) / (1 + 2e-4)
    assert value == pytest.approx((q0 - p0) * math.log(q0 / p0) + (q1 - p1) * math.log(q1 / p1))
    assert smoothed(np.array([3, 1])).sum() == pytest.approx(1.0)


def test_js_base_two_and_sqrt() -> None:
    # Disjoint supports: divergence 1 bit, distance 1.
    assert js_divergence(np.array([1, 0]), np.array([0, 1])) == pytest.approx(1.0)
    assert js_distance(np.array([1, 0]), np.array([0, 1])) == pytest.approx(1.0)
    p, q = np.array([0.5, 0.5]), np.array([0.9, 0.1])
    m = (p + q) / 2
    jsd = 0.5 * sum(p * np.log2(p / m)) + 0.5 * sum(q * np.log2(q / m))
    assert js_divergence(np.array([50, 50]), np.array([90, 10])) == pytest.approx(jsd, rel=1e-12)
    assert js_distance(np.array([50, 50]), np.array([90, 10])) == pytest.approx(math.sqrt(jsd), rel=1e-12)
    assert js_distance(np.array([3, 4]), np.array([3, 4])) == 0.0


def test_linf_as_tfdv() -> None:
    assert linf(np.array([6, 3, 1]), np.array([2, 3, 5])) == pytest.approx(0.4)
    # The guarded value subtracts 3 pooled standard errors.
    r, c = np.array([600, 400]), np.array([500, 500])
    pooled = 1100 / 2000
    se = math.sqrt(pooled * (1 - pooled) * (1 / 1000 + 1 / 1000))
    assert linf_excess(r, c) == pytest.approx(0.1 - 3 * se)


def test_noise_formulas() -> None:
    assert psi_noise(21, 1000, 1000) == pytest.approx(20 * 0.002)
    assert psi_noise(1, 10, 10) == 0.0
    assert rate_excess(0.02, 10_000, 0.02, 10_000) == 0.0
    assert rate_excess(0.02, 100_000, 0.30, 100_000) == pytest.approx(0.28, abs=0.01)


def test_level_is_strict() -> None:
    lv = Level(0.1, 0.25)
    assert [lv.judge(v) for v in (0.1, 0.1001, 0.25, 0.2501)] == ["ok", "warn", "warn", "alert"]


def test_thresholds_toml(tmp_path: Path) -> None:
    f = tmp_path / "t.toml"
    f.write_text(
        "min_rows = 50\n[metrics]\npsi = { warn = 0.2 }\n[schema]\nnew_column = 'warn'\nignore_columns = ['id']\n"
        "[features.age]\npsi = { warn = 0.3, alert = 0.5 }\nnull_rate_change = false\nmin_rows = 500\n"
        "[features.'output.label']\nignore = true\n"
    )
    th = Thresholds.load(f)
    assert th.levels["psi"] == Level(0.2, 0.25) and th.min_rows == 50
    assert th.schema["new_column"] == "warn" and th.ignore_columns == ("id",)
    age = th.rules("age")
    assert age.levels["psi"] == Level(0.3, 0.5) and age.levels["null_rate_change"] is None and age.min_rows == 500
    assert th.rules("output.label").ignore and th.rules("other").levels["psi"] == Level(0.2, 0.25)


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("[metrics]\npsy = { warn = 0.1 }\n", "unknown metric 'psy'"),
        ("[metrics]\npsi = { warn = 0.5, alert = 0.1 }\n", "must not exceed"),
        ("[features.a]\npsi = { warn = -1 }\n", ">= 0"),
        ("[features.a]\ncolour = 1\n", "unknown key"),
        ("min_rows = 0\n", "positive integer"),
        ("[schema]\ntype_change = 'loud'\n", "must be one of"),
        ("this is = not toml [", "not valid TOML"),
    ],
)
def test_thresholds_errors_name_the_problem(tmp_path: Path, text: str, needle: str) -> None:
    f = tmp_path / "bad.toml"
    f.write_text(text)
    with pytest.raises(ThresholdsError, match=needle.replace("(", r"\(").replace("[", r"\[")):
        Thresholds.load(f)
