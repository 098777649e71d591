"""Fashion-MNIST: the α sweep on a harder dataset of the same format, next to MNIST.

Two conditions, `mnist` and `fashion_mnist`: the studies' base sweep (`grid.variant`) with
only the dataset changed, so the comparison is self-contained (same scale, models, label
noise, temperature and seeds). Each dataset has its own teachers; the MNIST ones are the
studies' base teachers, shared with the other studies. Each condition also records where its
data came from (`Dataset.source`) in `dataset.json`.

Nothing is chosen on test data: the best α is the one with the best mean validation accuracy
at the longest budget.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from kdutils.analysis.stats import RATE, mean_ci, paired_difference
from kdutils.distill.data import DEBIAN_DATASETS_DIR, IDX_SHA256, load_dataset
from kdutils.profiles import Profile
from kdutils.results import budgets_table, portable, stored_record, write_json
from kdutils.studies import grid
from kdutils.studies import grid_stats as ss

TITLE = "Fashion-MNIST"

DATASETS: tuple[str, ...] = ("mnist", "fashion_mnist")
LABELS = {"mnist": "MNIST", "fashion_mnist": "Fashion-MNIST"}

# Per profile: the datasets swept (each a condition) and, where set, the alphas. The rest of
# each sweep's scale (data, epochs, seeds, T, noise) is the studies' base (`grid.BASE`),
# the same for both datasets.
SETTINGS: dict[str, dict] = {
    # CI: three alphas, because scoring 11 students on the 10k test images costs most of a
    # smoke sweep.
    "smoke": {"datasets": DATASETS, "alphas": (0.0, 0.5, 1.0)},
    "default": {"datasets": DATASETS},
    "full": {"datasets": DATASETS},
}


def conditions(profile: Profile) -> list[str]:
    return list(SETTINGS[profile.name]["datasets"])


def datasets(profile: Profile, condition: str) -> set[str]:
    """Each condition trains on its own dataset."""
    return {variant(profile, condition).dataset}


def variant(profile: Profile, condition: str) -> Profile:
    """The condition's profile: the studies' base sweep on this dataset (alphas: `SETTINGS`)."""
    if condition not in conditions(profile):
        raise ValueError(f"unknown condition={condition!r}; choose one of {conditions(profile)}")
    alphas = SETTINGS[profile.name].get("alphas")
    changes = {"alphas": alphas} if alphas else {}
    return grid.variant(profile, dataset=condition, **changes)


# --- where the data came from ---------------------------------------------------------------


def dataset_path(directory: Path) -> Path:
    return Path(directory) / "dataset.json"


def dataset_record(profile: Profile) -> dict:
    """The data of the variant's first seed: its config, `Dataset.summary()` (with `source`,
    the folder the files were read from, as `results.portable` writes it) and the SHA-256
    every file was checked against."""
    config = profile.data_config(profile.seeds[0])
    data = load_dataset(**config)
    summary = data.summary() | {"source": portable(data.source)}  # no machine paths stored
    return {"config": config, "summary": summary, "sha256": IDX_SHA256[profile.dataset]}


def stored_dataset(profile: Profile, directory: Path) -> dict | None:
    """The stored `dataset_record` if it matches the variant's data config, else None."""
    return stored_record(dataset_path(directory), profile.data_config(profile.seeds[0]))


def source_text(record: dict) -> str:
    """Where a `dataset_record`'s files came from, in words."""
    source = record["summary"]["source"]
    if Path(source).is_relative_to(DEBIAN_DATASETS_DIR):
        package = "dataset-" + Path(source).relative_to(DEBIAN_DATASETS_DIR).parts[0]
        return f"{source} (Debian's {package} package)"
    return source


# --- running --------------------------------------------------------------------------------


def run(profile: Profile, condition: str, directory: Path) -> list[dict]:
    """Every (alpha, seed) on this dataset, fused per seed, and the data's provenance record.

    Stored records whose config matches are reused."""
    v, directory = variant(profile, condition), Path(directory)
    records = grid.run(v, directory)
    if stored_dataset(v, directory) is None:
        write_json(dataset_path(directory), dataset_record(v))
    return records


def is_done(profile: Profile, condition: str, directory: Path) -> bool:
    v = variant(profile, condition)
    return grid.is_done(v, Path(directory)) and stored_dataset(v, Path(directory)) is not None


def variants(profile: Profile) -> dict[str, Profile]:
    """{condition: its profile} for every condition of `profile`."""
    return {c: variant(profile, c) for c in conditions(profile)}


def summary(records: list[dict]) -> pd.DataFrame:
    """The run page's table: per alpha, test accuracy and fidelity with 95% CIs, seeds."""
    return grid.summary(records)


# --- tables ---------------------------------------------------------------------------------


def table(study: dict[str, list[dict]]) -> pd.DataFrame:
    """`budgets_table` of every condition at its longest budget, with a `dataset` column."""
    parts = []
    for condition, records in study.items():
        t = budgets_table(records)
        parts.append(t[t["epochs"] == t["epochs"].max()].assign(dataset=condition))
    return pd.concat(parts, ignore_index=True)


def teacher_accuracy(records: list[dict]) -> dict:
    """`mean_ci` of the teachers' test accuracy, one value per seed."""
    return mean_ci(
        list({r["config"]["seed"]: r["teacher_test_accuracy"] for r in records}.values()),
        bounds=RATE,
    )


def differences(frame: pd.DataFrame) -> pd.DataFrame:
    """Per dataset and alpha: test accuracy minus that of alpha = 1 (labels only), paired over
    seeds, with its 95% CI."""
    rows = []
    for (dataset, alpha), _ in frame.groupby(["dataset", "alpha"]):
        d = paired_difference(
            ss.by_seed(frame, alpha, "test_accuracy", dataset=dataset).to_numpy(),
            ss.by_seed(frame, 1.0, "test_accuracy", dataset=dataset).to_numpy(),
        )
        rows.append({"dataset": dataset, "alpha": alpha} | d)
    return pd.DataFrame(rows)


def best_alpha(frame: pd.DataFrame, dataset: str) -> dict:
    """The alpha with the best mean validation accuracy, and its test accuracy."""
    part = frame[frame["dataset"] == dataset]
    val = part.groupby("alpha")["val_accuracy"].mean()
    alpha = float(val.idxmax())
    test = ss.by_seed(frame, alpha, "test_accuracy", dataset=dataset).to_numpy()
    gain = paired_difference(
        test, ss.by_seed(frame, 1.0, "test_accuracy", dataset=dataset).to_numpy()
    )
    return {"alpha": alpha, "val_mean": float(val.max()), "test": mean_ci(test), "gain": gain}
