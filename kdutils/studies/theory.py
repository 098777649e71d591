"""Theory: the optimal α in linear regression with noisy labels, in closed form and simulated.

The model (the book's chapter `notebooks/theory.md` derives everything stated here):

- features x ~ N(0, I_d), labels y = x·w* + ε with ε ~ N(0, σ²) and ‖w*‖ = 1;
- a teacher t(x) = x·w_T: either *fixed*, w_T = w* + δ with ‖δ‖² = b, or *fitted*, ordinary
  least squares on its own m samples whose labels carry the same noise σ²;
- the student minimises α·MSE(y, Xw) + (1 − α)·MSE(X w_T, Xw) on n samples (α on the hard
  labels), which is least squares on the target α·y + (1 − α)·X w_T;
- the risk is E‖w_α − w*‖², the excess test MSE when x ~ N(0, I_d).

Then R(α) = α²·V + (1 − α)²·B with V = σ²·d / (n − d − 1) and B = E‖w_T − w*‖², so the optimal
α is B / (B + V). The simulation fits every student of an α grid by least squares, without
using that formula, and reads off the α of smallest Monte-Carlo risk. NumPy only, float64.
"""

from __future__ import annotations

import time
import zlib
from pathlib import Path

import numpy as np
import pandas as pd

from kdutils.analysis.stats import RATE, mean_ci
from kdutils.distill.repro import environment
from kdutils.profiles import Profile, same_config
from kdutils.results import read_json, write_json

TITLE = "Theory: the optimal α in linear regression"
TRAINS = False  # a NumPy simulation: its pages need no GPU

# The problem shared by every condition: dimension, the seed of w* and of δ's direction,
# the α grid and the label-noise variances σ² (log-spaced; the count depends on the profile).
DIM = 20
PROBLEM_SEED = 2023
NOISE_RANGE = (1e-2, 10.0)
ALPHA_STEPS = 20

# One condition per teacher quality or sample size; each is a sweep over noise levels.
CONDITIONS: dict[str, dict] = {
    "fixed_b0p1_n50": {"teacher": "fixed", "teacher_error": 0.1, "n": 50},
    "fixed_b1p0_n50": {"teacher": "fixed", "teacher_error": 1.0, "n": 50},
    "fixed_b0p1_n100": {"teacher": "fixed", "teacher_error": 0.1, "n": 100},
    "fitted_m100_n50": {"teacher": "fitted", "teacher_samples": 100, "n": 50},
}

# replicates: independent Monte-Carlo estimates of the optimum (the unit of the 95% CIs);
# draws: training sets (X, ε, and for a fitted teacher its own sample) per replicate and σ².
SETTINGS: dict[str, dict] = {
    "smoke": {"replicates": 3, "draws": 200, "noise_levels": 7},
    "default": {"replicates": 20, "draws": 500, "noise_levels": 13},
    "full": {"replicates": 100, "draws": 10_000, "noise_levels": 25},
}
CHUNK = 250  # draws solved at once: bounds memory at a few MB

# The risk-vs-α figure: one condition at two noise levels.
CURVE_CONDITION = "fixed_b0p1_n50"
CURVE_NOISE = (0.1, 1.0)


def conditions(profile: Profile) -> list[str]:
    """Every profile runs the same conditions; only the Monte-Carlo effort changes."""
    return list(CONDITIONS)


def datasets(profile: Profile, condition: str) -> set[str]:
    """None: the data are simulated."""
    return set()


def noise_grid(levels: int) -> list[float]:
    """`levels` label-noise variances σ², log-spaced over NOISE_RANGE."""
    low, high = np.log10(NOISE_RANGE)
    return [float(v) for v in np.logspace(low, high, levels)]


def alpha_grid() -> list[float]:
    return [round(i / ALPHA_STEPS, 10) for i in range(ALPHA_STEPS + 1)]


def run_config(profile: Profile, condition: str, replicate: int) -> dict:
    """Everything one replicate depends on; stored in, and matched against, its record."""
    settings = SETTINGS[profile.name]
    return {
        "study": "theory",
        "profile": profile.name,
        "condition": condition,
        "replicate": int(replicate),
        "dim": DIM,
        "problem_seed": PROBLEM_SEED,
        "draws": settings["draws"],
        "noise_vars": noise_grid(settings["noise_levels"]),
        "alphas": alpha_grid(),
        **CONDITIONS[condition],
    }


# --- The closed form ------------------------------------------------------------------------


def student_variance(noise_var, n: int, dim: int):
    """V = σ²·E tr((XᵀX)⁻¹) = σ²·d / (n − d − 1): the risk of least squares on noisy labels."""
    if n <= dim + 1:
        raise ValueError(f"need n > d + 1 for a finite risk, got n={n}, d={dim}")
    return np.asarray(noise_var, dtype=float) * dim / (n - dim - 1)


def teacher_error(config: dict, noise_var):
    """B = E‖w_T − w*‖²: fixed b, or the least-squares variance of a teacher fit on m samples."""
    if config["teacher"] == "fixed":
        return np.full_like(np.asarray(noise_var, dtype=float), config["teacher_error"])
    if config["teacher"] == "fitted":
        return student_variance(noise_var, config["teacher_samples"], config["dim"])
    raise ValueError(f"unknown teacher kind {config['teacher']!r}")


def expected_risk(alpha, variance, bias):
    """R(α) = α²·V + (1 − α)²·B."""
    alpha = np.asarray(alpha, dtype=float)
    return alpha**2 * variance + (1 - alpha) ** 2 * bias


def optimal_alpha(variance, bias):
    """argmin R(α) = B / (B + V), always in [0, 1]."""
    variance, bias = np.asarray(variance, dtype=float), np.asarray(bias, dtype=float)
    return bias / (bias + variance)


def theory(config: dict, noise_vars) -> pd.DataFrame:
    """V, B, the optimal α and the smallest risk B·V / (B + V) for each σ² of `noise_vars`."""
    noise_vars = np.asarray(noise_vars, dtype=float)
    v = student_variance(noise_vars, config["n"], config["dim"])
    b = teacher_error(config, noise_vars)
    a = optimal_alpha(v, b)
    return pd.DataFrame(
        {"noise_var": noise_vars, "V": v, "B": b, "alpha": a, "risk": expected_risk(a, v, b)}
    )


# --- The simulation -------------------------------------------------------------------------


def problem(dim: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The true weights w* and the direction of a fixed teacher's error δ, both unit vectors."""
    rng = np.random.default_rng(seed)
    w, u = rng.standard_normal((2, dim))
    return w / np.linalg.norm(w), u / np.linalg.norm(u)


def least_squares(x: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Batched least squares: x (K, n, d), targets (K, n, A) -> weights (K, d, A)."""
    xt = np.swapaxes(x, 1, 2)
    return np.linalg.solve(xt @ x, xt @ targets)


def fit_students(x, y, teacher_predictions, alphas) -> np.ndarray:
    """The minimiser of α·‖y − Xw‖² + (1 − α)·‖Xw_T − Xw‖² for each α: (K, d, A).

    It solves the normal equations XᵀX w = Xᵀ(α·y + (1 − α)·t) of each α's target; Xᵀ is
    applied to y and t once and mixed, which is the same product without the (K, n, A) array.
    """
    alphas = np.asarray(alphas, dtype=float)
    xt = np.swapaxes(x, 1, 2)
    xty, xtt = xt @ y[..., None], xt @ teacher_predictions[..., None]
    return np.linalg.solve(xt @ x, alphas * xty + (1 - alphas) * xtt)


def teacher_weights(config: dict, noise_var: float, draws: int, rng: np.random.Generator):
    """w_T for each draw, (K, d): fixed, or least squares on the teacher's own noisy sample."""
    w_star, direction = problem(config["dim"], config["problem_seed"])
    if config["teacher"] == "fixed":
        w = w_star + np.sqrt(config["teacher_error"]) * direction
        return np.broadcast_to(w, (draws, config["dim"]))
    x = rng.standard_normal((draws, config["teacher_samples"], config["dim"]))
    y = x @ w_star + np.sqrt(noise_var) * rng.standard_normal(x.shape[:2])
    return least_squares(x, y[..., None])[..., 0]


def simulate_risk(config: dict, noise_var: float, draws: int, rng: np.random.Generator):
    """Monte-Carlo mean over `draws` training sets of ‖w_α − w*‖² for each α, and of ‖δ‖²."""
    w_star, _ = problem(config["dim"], config["problem_seed"])
    alphas = np.asarray(config["alphas"])
    total, teacher_total = np.zeros(len(alphas)), 0.0
    for start in range(0, draws, CHUNK):
        k = min(CHUNK, draws - start)
        w_t = teacher_weights(config, noise_var, k, rng)
        x = rng.standard_normal((k, config["n"], config["dim"]))
        y = x @ w_star + np.sqrt(noise_var) * rng.standard_normal((k, config["n"]))
        weights = fit_students(x, y, (x @ w_t[..., None])[..., 0], alphas)
        total += ((weights - w_star[:, None]) ** 2).sum(axis=(0, 1))
        teacher_total += float(((w_t - w_star) ** 2).sum())
    return total / draws, teacher_total / draws


def minimiser(alphas, risk) -> float:
    """The α of smallest risk on [α_0, α_last]: the parabola through the grid minimum and its
    neighbours (the last three points at a grid end), its vertex kept between the grid points
    next to the minimum. Exact when the risk is quadratic in α, as a mean of quadratics is."""
    alphas, risk = np.asarray(alphas, dtype=float), np.asarray(risk, dtype=float)
    i = int(np.argmin(risk))
    j = min(max(i, 1), len(risk) - 2)  # the middle of the three points
    (a0, a1, a2), (r0, r1, r2) = alphas[j - 1 : j + 2], risk[j - 1 : j + 2]
    # The derivative is linear: s1 at the midpoint m1 of (a0, a1), s2 at m2; 0 at the vertex.
    s1, s2 = (r1 - r0) / (a1 - a0), (r2 - r1) / (a2 - a1)
    if s2 <= s1:  # not convex: keep the grid minimum
        return float(alphas[i])
    m1, m2 = (a0 + a1) / 2, (a1 + a2) / 2
    vertex = m1 - (m2 - m1) * s1 / (s2 - s1)
    return float(np.clip(vertex, alphas[max(i - 1, 0)], alphas[min(i + 1, len(risk) - 1)]))


def simulate(config: dict) -> dict:
    """One replicate: the Monte-Carlo risk curve and its minimiser at every noise level."""
    start = time.perf_counter()
    salt = zlib.crc32(config["condition"].encode())
    risks, optima, teacher_errors = [], [], []
    for level, noise_var in enumerate(config["noise_vars"]):
        rng = np.random.default_rng([config["replicate"], level, salt])
        risk, b = simulate_risk(config, noise_var, config["draws"], rng)
        risks.append([float(r) for r in risk])
        optima.append(minimiser(config["alphas"], risk))
        teacher_errors.append(b)
    return {
        "config": config,
        "optimal_alpha": optima,
        "risk": risks,
        "teacher_error": teacher_errors,
        "seconds": time.perf_counter() - start,
        "environment": environment(),
    }


# --- The study interface --------------------------------------------------------------------


def record_path(directory: Path, replicate: int) -> Path:
    return Path(directory) / "runs" / f"replicate{replicate:03d}.json"


def _stored(profile: Profile, condition: str, directory: Path, replicate: int) -> dict | None:
    record = read_json(record_path(directory, replicate))
    if not same_config((record or {}).get("config"), run_config(profile, condition, replicate)):
        return None
    return record


def run(profile: Profile, condition: str, directory: Path) -> list[dict]:
    """Simulate (or reuse) every replicate of `condition`; one JSON record per replicate."""
    records = []
    for replicate in range(SETTINGS[profile.name]["replicates"]):
        record = _stored(profile, condition, directory, replicate)
        if record is None:
            record = simulate(run_config(profile, condition, replicate))
            write_json(record_path(directory, replicate), record)
        records.append(record)
    return records


def is_done(profile: Profile, condition: str, directory: Path) -> bool:
    replicates = range(SETTINGS[profile.name]["replicates"])
    return all(_stored(profile, condition, directory, r) is not None for r in replicates)


def current(profile: Profile, records: list[dict]) -> list[dict]:
    """The records that match `profile`'s configuration (stale leftovers are ignored)."""
    return [
        r
        for r in records
        if same_config(
            r["config"], run_config(profile, r["config"]["condition"], r["config"]["replicate"])
        )
    ]


# --- Tables ---------------------------------------------------------------------------------


def optimum_summary(records: list[dict]) -> pd.DataFrame:
    """Per σ²: the closed-form optimal α and the simulated one (mean, 95% CI over replicates)."""
    config = records[0]["config"]
    table = theory(config, config["noise_vars"])
    optima = np.array([r["optimal_alpha"] for r in records])
    rows = []
    for level, row in table.iterrows():
        s = mean_ci(optima[:, level], bounds=RATE)  # an optimal α lies in [0, 1]
        rows.append(
            {
                "noise_var": row["noise_var"],
                "alpha_theory": row["alpha"],
                "alpha_sim": s["mean"],
                "low": s["low"],
                "high": s["high"],
                "half_width": s["half_width"],
                "n": s["n"],
                "covered": bool(s["low"] <= row["alpha"] <= s["high"]),
            }
        )
    return pd.DataFrame(rows)


def risk_summary(records: list[dict], noise_var: float) -> pd.DataFrame:
    """Per α at one σ²: the closed-form risk and the simulated one (mean, 95% CI)."""
    config = records[0]["config"]
    level = int(np.argmin(np.abs(np.log(config["noise_vars"]) - np.log(noise_var))))
    if not np.isclose(config["noise_vars"][level], noise_var):
        raise ValueError(f"σ² = {noise_var} is not on the grid {config['noise_vars']}")
    row = theory(config, [config["noise_vars"][level]]).iloc[0]
    risks = np.array([r["risk"][level] for r in records])
    rows = []
    for j, alpha in enumerate(config["alphas"]):
        s = mean_ci(risks[:, j], bounds=(0.0, np.inf))  # a risk is never negative
        rows.append(
            {
                "alpha": alpha,
                "risk_theory": float(expected_risk(alpha, row["V"], row["B"])),
                "risk_sim": s["mean"],
                "low": s["low"],
                "high": s["high"],
                "half_width": s["half_width"],
                "n": s["n"],
            }
        )
    return pd.DataFrame(rows)


def summary(records: list[dict]) -> pd.DataFrame:
    """The run page's table: optimal α per σ², closed form against simulation."""
    table = optimum_summary(records)
    return table.rename(
        columns={
            "noise_var": "σ²",
            "alpha_theory": "α* (closed form)",
            "alpha_sim": "α* (simulated, mean)",
            "low": "95% CI low",
            "high": "95% CI high",
            "covered": "CI covers closed form",
        }
    ).drop(columns="half_width")
