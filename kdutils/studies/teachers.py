"""Teacher quality: where does the best alpha lie when the teacher is weaker or stronger?

Each condition is one teacher, and the whole alpha sweep reruns at the studies' scale
(`grid.variant`) with the same students, seeds and noisy labels:

- `epochs_<e>`: the report's teacher stopped after e epochs (the studies' base teacher is one
  of them; the longest is the "longest-trained" teacher, trained to the end of the budget,
  whether or not its validation accuracy still rises);
- `tiny`: a deliberately small teacher (`models.tiny_teacher`, smaller than the student),
  trained as long as the longest-trained one.

The best alpha is chosen on validation accuracy only. An alpha = 1 student never looks at its
teacher, so it is the same run in every condition (a check the chapter states).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from kdutils.analysis.stats import RATE, mean_ci
from kdutils.profiles import Profile
from kdutils.studies import grid
from kdutils.studies import grid_stats as ss

TITLE = "Teacher quality"

TINY = "tiny_teacher"  # the small teacher's name in kdutils.distill.models

# Per profile: the report teacher's epoch counts (they must include the studies' base teacher
# epochs), which of them is the longest-trained teacher, the tiny teacher's epochs and, for
# smoke only, fewer alphas (compiling 11 fused students costs ~40 s of CPU per seed).
SETTINGS = {
    # CI: one short and one longer teacher, and the tiny one.
    "smoke": {"epochs": (1, 3), "trained": 3, "tiny_epochs": 3, "alphas": (0.0, 0.5, 1.0)},
    # The book: base teacher 3 epochs on 5k images; 10 epochs is the longest (it overfits);
    # 1, 2 and 5 are the early-stopped teachers.
    "default": {"epochs": (1, 2, 3, 5, 10), "trained": 10, "tiny_epochs": 10},
    # The report's scale (55k images; base teacher 10 epochs), for a GPU.
    "full": {"epochs": (1, 3, 10, 30), "trained": 30, "tiny_epochs": 30},
}


def settings(profile: Profile) -> dict:
    s = SETTINGS[profile.name]
    base = grid.base_profile(profile).teacher_epochs
    if base not in s["epochs"] or s["trained"] != max(s["epochs"]):
        raise ValueError(f"{profile.name}: epochs {s['epochs']} must hold the base {base}")
    return s | {"base": base}


def conditions(profile: Profile) -> list[str]:
    return [f"epochs_{e}" for e in settings(profile)["epochs"]] + ["tiny"]


def variant(profile: Profile, condition: str) -> Profile:
    """The condition's profile: the studies' scale with its teacher."""
    s = settings(profile)
    extra = {"alphas": s["alphas"]} if "alphas" in s else {}
    if condition == "tiny":
        return grid.variant(profile, teacher=TINY, teacher_epochs=s["tiny_epochs"], **extra)
    epochs = int(condition.removeprefix("epochs_")) if condition.startswith("epochs_") else None
    if epochs not in s["epochs"]:
        raise ValueError(f"unknown condition={condition!r}; choose one of {conditions(profile)}")
    return grid.variant(profile, teacher_epochs=epochs, **extra)


def run(profile: Profile, condition: str, directory: Path) -> list[dict]:
    return grid.run(variant(profile, condition), Path(directory))


def is_done(profile: Profile, condition: str, directory: Path) -> bool:
    return grid.is_done(variant(profile, condition), Path(directory))


def summary(records: list[dict]) -> pd.DataFrame:
    return grid.summary(records)


def label(profile: Profile, condition: str) -> str:
    """'1 epoch', '3 epochs (base)', '10 epochs (longest)', 'tiny, 10 epochs'."""
    s = settings(profile)
    v = variant(profile, condition)
    e = v.teacher_epochs
    text = f"{e} epoch{'s' * (e != 1)}"
    if condition == "tiny":
        return f"tiny, {text}"
    roles = (("base", e == s["base"]), ("longest", e == s["trained"]))
    notes = [n for n, hit in roles if hit]
    return text + (f" ({', '.join(notes)})" if notes else "")


# --- the chapter's numbers, from records -----------------------------------------------------


def load(profile: Profile) -> dict[str, dict]:
    """{condition: {"records", "teachers", "table", "label"}}; raises if one is missing."""
    variants = {c: variant(profile, c) for c in conditions(profile)}
    study = ss.load_sweep_study(profile, "teachers", variants)
    return {c: entry | {"label": label(profile, c)} for c, entry in study.items()}


def condition_numbers(entry: dict) -> dict:
    """Teacher accuracy, best alpha and paired gains of one teacher's sweep."""
    table, records = entry["table"], entry["records"]
    best = ss.best_alpha(records)
    test = {a: ss.by_seed(table, a, "test_accuracy") for a in (0.0, best, 1.0)}
    return {
        "best_alpha": best,
        "parameters": entry["teachers"][0]["parameters"],
        "epochs": entry["teachers"][0]["config"]["epochs"],
        "teacher_val": mean_ci([t["val_accuracy"] for t in entry["teachers"]], bounds=RATE),
        "teacher_test": mean_ci([t["test_accuracy"] for t in entry["teachers"]], bounds=RATE),
        "test": {a: mean_ci(v, bounds=RATE) for a, v in test.items()},
        "gain": ss.paired(test[best], test[1.0]),
        "zero_vs_one": ss.paired(test[0.0], test[1.0]),
        "student_minus_teacher": ss.paired(
            test[best],
            pd.Series({t["config"]["seed"]: t["test_accuracy"] for t in entry["teachers"]}),
        ),
    }


def teacher_curves(entry: dict, key: str = "val_accuracy") -> np.ndarray:
    """(seeds, epochs) array of one per-epoch metric of a condition's teachers."""
    return np.array([[h[key] for h in t["history"]] for t in entry["teachers"]])
