"""The shared machinery of the studies that rerun the alpha sweep under another condition.

A condition is a variant of the profile (another noise rate, temperature, teacher, dataset).
Its sweep trains every (alpha, seed) with fused students (`kdutils.distill.fused`), writes the same
run records as the main sweep under the condition's directory, and shares teachers between
studies: a teacher is cached under `results/<profile>/studies/teachers/<key>/`, where the key
hashes its config, so every condition with the same teacher config reuses it.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from kdutils.analysis.stats import format_ci, summarize
from kdutils.experiment import load_run, run_profile
from kdutils.profiles import PER_SEED_TEACHERS, Profile, config_key
from kdutils.results import budgets_table

# The studies' scale per profile, applied to the profile before a condition's own changes.
# default: 5k training images, 5 epochs and 3 seeds, each seed with its own split and a
# teacher trained on the students' images, so that the studies' ~30 conditions fit in about
# an hour on 2 CPU cores; smoke: the smoke profile. The main sweep's strong shared teacher
# (`teacher_train_size`, `data_seed`) is not the studies': each compares conditions among
# themselves, with teachers as strong as their condition makes them.
STUDY_SCALE = PER_SEED_TEACHERS
BASE: dict[str, dict] = {
    "smoke": STUDY_SCALE,
    "default": STUDY_SCALE
    | {
        "train_size": 5_000,
        "epochs": 5,
        "budgets": (2, 5),
        "teacher_epochs": 3,
        "seeds": (0, 1, 2),
    },
    "full": STUDY_SCALE,
}


def base_profile(profile: Profile) -> Profile:
    """`profile` at the studies' scale (`BASE`)."""
    return profile.replace(**BASE.get(profile.name, {}))


def variant(profile: Profile, **changes) -> Profile:
    """The studies' base profile with a condition's changes (e.g. noise_rate=0.2)."""
    return base_profile(profile).replace(**changes)


def teacher_directory(profile: Profile) -> Path:
    """Where the teachers of `profile` are cached, shared by every study."""
    from kdutils.results import results_dir

    key = config_key(profile.teacher_config(profile.seeds[0]))
    return results_dir(profile.name) / "studies" / "teachers" / key


def teachers(variant: Profile) -> list[tuple]:
    """The (profile, seed, directory) of each teacher `run(variant, ...)` asks the cache for,
    for the sweep's task graph to train first (`kdutils.sweep.condition_teachers`)."""
    return [(variant, s, teacher_directory(variant)) for s in variant.teacher_seeds()]


def run(profile: Profile, directory: Path, save_logits: bool = False) -> list[dict]:
    """Every (alpha, seed) of the variant `profile`, fused per seed; returns the records.

    `save_logits` also stores each student's test logits (`experiment.test_logits_path`).
    """
    return run_profile(
        profile,
        directory,
        fused=True,
        teachers=teacher_directory(profile),
        save_logits=save_logits,
    )


def is_done(profile: Profile, directory: Path) -> bool:
    """True when every (alpha, seed) of `profile` has a matching record in `directory`."""
    return all(
        load_run(profile, alpha, seed, directory) is not None
        for alpha in profile.alphas
        for seed in profile.seeds
    )


def summary(records: list[dict]) -> pd.DataFrame:
    """Per alpha, at the last budget: test accuracy and fidelity as mean [95% CI], n seeds."""
    table = budgets_table(records)
    table = table[table["epochs"] == table["epochs"].max()]
    accuracy = summarize(table, ["alpha"], "test_accuracy")
    fidelity = summarize(table, ["alpha"], "test_fidelity")
    return pd.DataFrame(
        {
            "α": accuracy["alpha"],
            "test accuracy": [format_ci(r) for r in accuracy.to_dict("records")],
            "fidelity": [format_ci(r) for r in fidelity.to_dict("records")],
            "seeds": accuracy["n"],
        }
    ).set_index("α")
