"""Temperature × α: the α sweep rerun at several distillation temperatures T.

Every condition is the studies' base sweep (`grid.variant`) with another T. The teacher's
config does not depend on T, so all conditions share the base teachers and only students
train. Two temperatures are there for a bug report: another course report got a NaN loss at
T = 1.01 (from the log of a softmax); `t_1` and `t_1p01` check that every loss is finite here.

Nothing is chosen on test data: the best (T, α) is the one with the best mean validation
accuracy at the longest budget.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from kdutils.analysis.stats import RATE, mean_ci, paired_difference
from kdutils.profiles import Profile
from kdutils.studies import grid

TITLE = "Temperature × α"

TEMPERATURES: tuple[float, ...] = (1.0, 1.01, 1.5, 2.0, 3.0, 4.0, 6.0, 10.0, 20.0)

# Per profile: the temperatures swept (each a condition) and, where set, the alphas. The rest
# of each sweep's scale (data, epochs, seeds) is the studies' base (`grid.BASE`).
SETTINGS: dict[str, dict] = {
    # CI: the two temperatures of the NaN report and the book's T = 10; three alphas, because
    # scoring 11 students on the 10k test images costs most of a smoke sweep.
    "smoke": {"temperatures": (1.0, 1.01, 10.0), "alphas": (0.0, 0.5, 1.0)},
    # The book, on 2 CPU cores: 9 fused sweeps of 11 alphas x 3 seeds (about a minute each).
    "default": {"temperatures": TEMPERATURES},
    # The same grid at the full profile's scale (all images, 5 seeds, 100 epochs), for a GPU.
    "full": {"temperatures": TEMPERATURES},
}

# The temperatures whose accuracy-vs-alpha curves the chapter draws (when swept).
CURVE_TEMPERATURES: tuple[float, ...] = (1.0, 2.0, 4.0, 10.0, 20.0)
# The book's own temperature, the studies' base condition.
BASE_TEMPERATURE = 10.0
VALUES = ("val_accuracy", "test_accuracy", "test_fidelity", "test_kl")


def slug(temperature: float) -> str:
    """A docname-safe condition name: 1 -> 't_1', 1.5 -> 't_1p5', 1.01 -> 't_1p01'."""
    return "t_" + f"{float(temperature):g}".replace(".", "p")


def temperature_of(condition: str) -> float:
    """The temperature of a condition name (the inverse of `slug`)."""
    if not condition.startswith("t_"):
        raise ValueError(f"not a temperature condition: {condition!r}")
    return float(condition[2:].replace("p", "."))


def conditions(profile: Profile) -> list[str]:
    return [slug(t) for t in SETTINGS[profile.name]["temperatures"]]


def variant(profile: Profile, condition: str) -> Profile:
    """The condition's profile: the studies' base sweep at this condition's temperature."""
    if condition not in conditions(profile):
        raise ValueError(f"unknown condition={condition!r}; choose one of {conditions(profile)}")
    alphas = SETTINGS[profile.name].get("alphas")
    changes = {"alphas": alphas} if alphas else {}
    return grid.variant(profile, temperature=temperature_of(condition), **changes)


def run(profile: Profile, condition: str, directory: Path) -> list[dict]:
    """Every (alpha, seed) at this temperature, fused per seed; stored records are reused."""
    return grid.run(variant(profile, condition), Path(directory))


def is_done(profile: Profile, condition: str, directory: Path) -> bool:
    return grid.is_done(variant(profile, condition), Path(directory))


def variants(profile: Profile) -> dict[str, Profile]:
    """{condition: its profile} for every condition of `profile`."""
    return {c: variant(profile, c) for c in conditions(profile)}


# --- losses -----------------------------------------------------------------------------------


def loss_values(records: list[dict]) -> list[float]:
    """Every loss value the runs logged: each epoch's training and validation losses (total,
    hard and soft), whatever the run's alpha (the soft loss is logged even at alpha = 1)."""
    return [v for r in records for epoch in r["history"] for k, v in epoch.items() if "loss" in k]


def underflow_gap() -> int:
    """The smallest whole logit gap g for which exp(-g) rounds to 0 in float32: a class that far
    below the top one gets probability exactly 0 from a softmax, and log(0) = -inf."""
    return next(g for g in range(1, 200) if np.float32(np.exp(-g)) == 0)


def nonfinite(records: list[dict]) -> int:
    """How many logged loss values are NaN or infinite."""
    return sum(not math.isfinite(v) for v in loss_values(records))


# --- tables -----------------------------------------------------------------------------------


def table(study: dict[str, list[dict]]) -> pd.DataFrame:
    """One row per (temperature, alpha, seed, budget) with validation/test accuracy, test
    fidelity and test KL(teacher || student) at T = 1."""
    rows = []
    for records in study.values():
        for r in records:
            for b in r["budgets"]:
                rows.append(
                    {
                        "temperature": r["config"]["temperature"],
                        "alpha": r["config"]["alpha"],
                        "seed": r["config"]["seed"],
                        "epochs": b["epochs"],
                    }
                    | {k: b[k] for k in VALUES}
                )
    return pd.DataFrame(rows)


def last_budget(frame: pd.DataFrame) -> pd.DataFrame:
    """The rows of the longest budget."""
    return frame[frame["epochs"] == frame["epochs"].max()]


def _by_seed(frame: pd.DataFrame, temperature: float, alpha: float, value: str) -> pd.Series:
    part = frame[(frame["temperature"] == temperature) & (frame["alpha"] == alpha)]
    return part.set_index("seed")[value].sort_index()


def best_pair(frame: pd.DataFrame) -> dict:
    """The (T, alpha) with the best mean validation accuracy at the longest budget."""
    last = last_budget(frame)
    val = last.groupby(["temperature", "alpha"])["val_accuracy"].mean()
    temperature, alpha = val.idxmax()
    test = _by_seed(last, temperature, alpha, "test_accuracy")
    return {
        "temperature": float(temperature),
        "alpha": float(alpha),
        "val_mean": float(val.max()),
        "test": mean_ci(test.to_numpy(), bounds=RATE),
    }


def best_by_temperature(frame: pd.DataFrame) -> pd.DataFrame:
    """Per T: the alpha chosen on validation, its test accuracy, its gain over alpha = 1
    (labels only; paired over seeds) and the range of mean test accuracy across alpha."""
    last = last_budget(frame)
    rows = []
    for temperature, part in last.groupby("temperature"):
        val = part.groupby("alpha")["val_accuracy"].mean()
        alpha = float(val.idxmax())
        test = _by_seed(part, temperature, alpha, "test_accuracy")
        labels_only = _by_seed(part, temperature, 1.0, "test_accuracy")
        means = part.groupby("alpha")["test_accuracy"].mean()
        rows.append(
            {
                "temperature": float(temperature),
                "alpha": alpha,
                "val_mean": float(val.max()),
                "test": mean_ci(test.to_numpy()),
                "gain": paired_difference(test.to_numpy(), labels_only.to_numpy()),
                "range": float(means.max() - means.min()),
            }
        )
    return pd.DataFrame(rows)


def cell_differences(frame: pd.DataFrame) -> pd.DataFrame:
    """Per (T, alpha < 1): test accuracy minus that of alpha = 1 at the same T, paired over
    seeds, with its 95% CI (NaN bounds with one seed)."""
    last = last_budget(frame)
    rows = []
    for (temperature, alpha), _ in last[last["alpha"] < 1.0].groupby(["temperature", "alpha"]):
        d = paired_difference(
            _by_seed(last, temperature, alpha, "test_accuracy").to_numpy(),
            _by_seed(last, temperature, 1.0, "test_accuracy").to_numpy(),
        )
        rows.append({"temperature": temperature, "alpha": alpha} | d)
    return pd.DataFrame(rows)


def summary(records: list[dict]) -> pd.DataFrame:
    """The run page's table: per alpha, test accuracy and fidelity with 95% CIs, seeds, and
    the number of logged loss values that are not finite."""
    out = grid.summary(records)
    bad = {}
    for r in records:
        bad[r["config"]["alpha"]] = bad.get(r["config"]["alpha"], 0) + nonfinite([r])
    out["non-finite losses"] = [bad[a] for a in out.index]
    return out


def teacher_accuracy(study: dict[str, list[dict]]) -> dict:
    """`mean_ci` of the teachers' test accuracy, one value per seed (all T share them)."""
    by_seed = {r["config"]["seed"]: r["teacher_test_accuracy"] for rs in study.values() for r in rs}
    return mean_ci(list(by_seed.values()), bounds=RATE)
