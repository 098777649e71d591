"""Label noise and denoising: does distillation recover the true labels that noise flipped?

Each condition is one noise rate: that fraction of the training labels is flipped to another
class (validation and test labels stay clean), the teachers are trained on the same noisy
labels, and the whole alpha sweep reruns at the studies' scale (`grid.variant`). Every run
record holds, on the training examples whose label was flipped, how often the model predicts
the true label (`recovery`) and how often it repeats the wrong one (`memorisation`); so does
every teacher record. The best alpha is chosen on validation accuracy only.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from kdutils.analysis.stats import RATE, format_ci, mean_ci, summarize
from kdutils.profiles import Profile, alpha_slug
from kdutils.studies import grid
from kdutils.studies import grid_stats as ss

TITLE = "Label noise and denoising"

# The noise rates per profile. 0.05 is the studies' base condition (its teachers are shared).
# Smoke trains 3 alphas, not 11: compiling 11 fused students costs ~40 s of CPU per seed.
SETTINGS = {
    "smoke": {"rates": (0.0, 0.05, 0.4), "alphas": (0.0, 0.5, 1.0)},
    "default": {"rates": (0.0, 0.05, 0.1, 0.2, 0.4)},
    "full": {"rates": (0.0, 0.05, 0.1, 0.2, 0.4)},
}


def rates(profile: Profile) -> tuple[float, ...]:
    return SETTINGS[profile.name]["rates"]


def slug(rate: float) -> str:
    """0.05 -> 'rate_0p05', 0 -> 'rate_0p0'."""
    return "rate_" + alpha_slug(rate).removeprefix("alpha_")


def conditions(profile: Profile) -> list[str]:
    return [slug(r) for r in rates(profile)]


def rate_of(profile: Profile, condition: str) -> float:
    """The noise rate of `condition`."""
    for rate in rates(profile):
        if slug(rate) == condition:
            return rate
    raise ValueError(f"unknown condition={condition!r}; choose one of {conditions(profile)}")


def variant(profile: Profile, condition: str) -> Profile:
    """The condition's profile: the studies' scale with its noise rate."""
    extra = {k: v for k, v in SETTINGS[profile.name].items() if k != "rates"}
    return grid.variant(profile, noise_rate=rate_of(profile, condition), **extra)


def run(profile: Profile, condition: str, directory: Path) -> list[dict]:
    return grid.run(variant(profile, condition), Path(directory))


def is_done(profile: Profile, condition: str, directory: Path) -> bool:
    return grid.is_done(variant(profile, condition), Path(directory))


def summary(records: list[dict]) -> pd.DataFrame:
    """The sweep's table, with recovery and memorisation of the flipped labels per alpha."""
    out = grid.summary(records)
    table = ss.final_table(records).dropna(subset=["recovery"])
    for key in ("recovery", "memorisation"):
        if not table.empty:
            s = summarize(table, ["alpha"], key)
            out[key] = [format_ci(r) for r in s.to_dict("records")]
    return out


# --- the chapter's numbers, from records -----------------------------------------------------


def load(profile: Profile) -> dict[float, dict]:
    """{rate: {"records", "teachers", "table"}} for every condition; raises if one is missing."""
    variants = {c: variant(profile, c) for c in conditions(profile)}
    study = ss.load_sweep_study(profile, "noise", variants)
    return {rate_of(profile, c): entry for c, entry in study.items()}


def _teacher(entry: dict, key: str) -> pd.Series:
    """A teacher quantity by seed (`noisy_labels` keys too)."""
    values = {
        t["config"]["seed"]: t["noisy_labels"][key] if key in t["noisy_labels"] else t[key]
        for t in entry["teachers"]
    }
    return pd.Series(values).sort_index()


def rate_numbers(entry: dict) -> dict:
    """The per-rate quantities (summaries and paired differences) the chapter states."""
    table, records = entry["table"], entry["records"]
    best = ss.best_alpha(records)
    test = {a: ss.by_seed(table, a, "test_accuracy") for a in (0.0, best, 1.0)}
    out = {
        "best_alpha": best,
        "teacher_test": mean_ci(_teacher(entry, "test_accuracy"), bounds=RATE),
        "test": {a: mean_ci(v, bounds=RATE) for a, v in test.items()},
        "gain": ss.paired(test[best], test[1.0]),
        "flipped": int(records[0]["noisy_labels"]["flipped"]),
    }
    if out["flipped"]:
        rec = {a: ss.by_seed(table, a, "recovery") for a in (0.0, best, 1.0)}
        teacher = _teacher(entry, "recovery")
        mean = table.groupby("alpha")["recovery"].mean()
        out |= {
            "recovery": {a: mean_ci(v, bounds=RATE) for a, v in rec.items()},
            "teacher_recovery": mean_ci(teacher, bounds=RATE),
            "teacher_memorisation": mean_ci(_teacher(entry, "memorisation"), bounds=RATE),
            "memorisation": {
                a: mean_ci(ss.by_seed(table, a, "memorisation"), bounds=RATE)
                for a in (0.0, best, 1.0)
            },
            "rec_zero_vs_one": ss.paired(rec[0.0], rec[1.0]),
            "rec_best_vs_one": ss.paired(rec[best], rec[1.0]),
            "rec_best_vs_teacher": ss.paired(rec[best], teacher),
            "rec_zero_vs_teacher": ss.paired(rec[0.0], teacher),
            "most_recovering_alpha": float(mean.idxmax()),
        }
    return out
