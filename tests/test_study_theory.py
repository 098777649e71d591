"""The theory study: the closed-form risk and optimal α against Monte-Carlo, in float64."""

import json

import numpy as np
import pytest

from kdutils.profiles import get_profile
from kdutils.studies import theory

SMALL = {"dim": 5, "problem_seed": 7, "alphas": theory.alpha_grid()}


def _direct_kd_fit(x, y, teacher_predictions, alpha):
    """The KD objective α‖y − Xw‖² + (1 − α)‖Xw_T − Xw‖² as one stacked least-squares problem."""
    a, b = np.sqrt(alpha), np.sqrt(1 - alpha)
    design = np.vstack([a * x, b * x])
    target = np.concatenate([a * y, b * teacher_predictions])
    return np.linalg.lstsq(design, target, rcond=None)[0]


def test_students_minimise_the_kd_objective():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 30, 4))
    y, t = rng.standard_normal((2, 3, 30))
    alphas = [0.0, 0.3, 0.75, 1.0]
    weights = theory.fit_students(x, y, t, alphas)
    for k in range(3):
        for j, alpha in enumerate(alphas):
            np.testing.assert_allclose(weights[k, :, j], _direct_kd_fit(x[k], y[k], t[k], alpha))


def test_self_distillation_on_the_same_sample_changes_nothing():
    # A ridge-free teacher fit on the student's own data: every α gives the same student.
    rng = np.random.default_rng(1)
    x, y = rng.standard_normal((1, 40, 6)), rng.standard_normal((1, 40))
    w_t = theory.least_squares(x, y[..., None])[..., 0]
    weights = theory.fit_students(x, y, (x @ w_t[..., None])[..., 0], np.linspace(0, 1, 5))
    np.testing.assert_allclose(weights, np.repeat(w_t[..., None], 5, axis=-1), atol=1e-12)


def test_inverse_wishart_trace_matches_monte_carlo():
    rng = np.random.default_rng(2)
    n, d = 20, 5
    x = rng.standard_normal((40_000, n, d))
    traces = np.trace(np.linalg.inv(np.swapaxes(x, 1, 2) @ x), axis1=1, axis2=2)
    se = traces.std() / np.sqrt(len(traces))
    expected = theory.student_variance(1.0, n, d)  # d / (n - d - 1) at σ² = 1
    assert abs(traces.mean() - expected) < 4 * se
    with pytest.raises(ValueError):
        theory.student_variance(1.0, d + 1, d)


@pytest.mark.parametrize(
    ("teacher", "noise_var"),
    [
        ({"teacher": "fixed", "teacher_error": 0.3}, 0.5),
        ({"teacher": "fitted", "teacher_samples": 40}, 2.0),
    ],
)
def test_expected_risk_matches_monte_carlo(teacher, noise_var):
    config = SMALL | teacher | {"n": 20}
    draws = 40_000
    risk, b = theory.simulate_risk(config, noise_var, draws, np.random.default_rng(3))
    row = theory.theory(config, [noise_var]).iloc[0]
    predicted = theory.expected_risk(config["alphas"], row["V"], row["B"])
    rel = np.abs(risk / predicted - 1)
    assert rel.max() < 0.03, rel.max()
    assert abs(b / row["B"] - 1) < 0.03
    # The grid minimiser of the simulated risk sits at the closed-form optimum.
    assert abs(theory.minimiser(config["alphas"], risk) - row["alpha"]) < 0.02


def test_optimal_alpha_minimises_the_closed_form():
    grid = np.linspace(0, 1, 100_001)
    for v, b in [(0.1, 0.1), (2.0, 0.3), (0.01, 5.0)]:
        best = grid[np.argmin(theory.expected_risk(grid, v, b))]
        assert abs(theory.optimal_alpha(v, b) - best) < 1e-5
        r_star = theory.expected_risk(theory.optimal_alpha(v, b), v, b)
        np.testing.assert_allclose(r_star, b * v / (b + v))
        assert r_star <= min(v, b)  # never worse than either pure target


def test_optimum_falls_with_noise_for_a_fixed_teacher_and_not_for_a_fitted_one():
    noise = theory.noise_grid(9)
    fixed = theory.theory(SMALL | {"teacher": "fixed", "teacher_error": 0.1, "n": 30}, noise)
    assert np.all(np.diff(fixed["alpha"]) < 0)
    fitted = theory.theory(SMALL | {"teacher": "fitted", "teacher_samples": 60, "n": 30}, noise)
    np.testing.assert_allclose(fitted["alpha"], (30 - 5 - 1) / (30 + 60 - 2 * 5 - 2))


def test_minimiser_is_exact_for_a_quadratic_and_stays_in_zero_one():
    alphas = theory.alpha_grid()
    a = np.asarray(alphas)
    assert theory.minimiser(alphas, 3 * (a - 0.337) ** 2 + 1) == pytest.approx(0.337)
    # Optima between the last grid point and its neighbour, where the grid minimum is an end.
    assert theory.minimiser(alphas, (a - 0.99) ** 2) == pytest.approx(0.99)
    assert theory.minimiser(alphas, 0.1 * (a - 0.012) ** 2 + 5) == pytest.approx(0.012)
    assert theory.minimiser(alphas, (a + 0.2) ** 2) == 0.0
    assert theory.minimiser(alphas, (a - 1.3) ** 2) == 1.0


def test_run_writes_resumable_records(tmp_path, monkeypatch):
    profile = get_profile("smoke")
    monkeypatch.setitem(theory.SETTINGS, "smoke", {"replicates": 2, "draws": 30, "noise_levels": 3})
    condition = "fitted_m100_n50"
    assert not theory.is_done(profile, condition, tmp_path)
    records = theory.run(profile, condition, tmp_path)
    assert len(records) == 2 and theory.is_done(profile, condition, tmp_path)
    stored = json.loads(theory.record_path(tmp_path, 1).read_text())
    assert stored["config"] == theory.run_config(profile, condition, 1)
    assert {"environment", "seconds", "optimal_alpha", "risk"} <= set(stored)
    assert len(stored["risk"]) == 3 and len(stored["risk"][0]) == len(theory.alpha_grid())
    assert records[0]["optimal_alpha"] != records[1]["optimal_alpha"]  # independent replicates

    def fail(config):
        raise AssertionError("a stored record was recomputed")

    monkeypatch.setattr(theory, "simulate", fail)
    assert theory.run(profile, condition, tmp_path) == records
    table = theory.summary(records)
    assert len(table) == 3 and (table["n"] == 2).all()

    # A changed setting no longer matches the stored records.
    monkeypatch.setitem(theory.SETTINGS, "smoke", {"replicates": 2, "draws": 31, "noise_levels": 3})
    assert not theory.is_done(profile, condition, tmp_path)
    assert theory.current(profile, records) == []


def test_every_profile_has_settings_and_slug_safe_conditions():
    for name in ("smoke", "default", "full"):
        profile = get_profile(name)
        assert theory.SETTINGS[name]["replicates"] >= 3
        for condition in theory.conditions(profile):
            assert condition.replace("_", "").isalnum()
            config = theory.run_config(profile, condition, 0)
            assert config["n"] > config["dim"] + 1
            for noise_var in theory.CURVE_NOISE:
                assert np.isclose(config["noise_vars"], noise_var).any()
