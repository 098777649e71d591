"""Fashion-MNIST: the α sweep on a harder dataset of the same format, next to MNIST.

Two conditions, `mnist` and `fashion_mnist`: the studies' base sweep (`sweeps.variant`) with
only the dataset changed, so the comparison is self-contained (same scale, models, label
noise, temperature and seeds). Each dataset has its own teachers; the MNIST ones are the
studies' base teachers, shared with the other studies. Each condition also records where its
data came from (`Dataset.source`) in `dataset.json`.

Nothing is chosen on test data: the best α is the one with the best mean validation accuracy
at the longest budget.
"""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from kdutils.data import DEBIAN_DATASETS_DIR, IDX_SHA256, load_dataset
from kdutils.plots import WIDTH
from kdutils.profiles import Profile, same_config
from kdutils.report import pct, points
from kdutils.results import budgets_table, portable, read_json, write_json
from kdutils.stats import format_ci, mean_ci, paired_difference, summarize
from kdutils.studies import sweeps
from kdutils.studies import sweepstats as ss

TITLE = "Fashion-MNIST"

DATASETS: tuple[str, ...] = ("mnist", "fashion_mnist")
LABELS = {"mnist": "MNIST", "fashion_mnist": "Fashion-MNIST"}

# Per profile: the datasets swept (each a condition) and, where set, the alphas. The rest of
# each sweep's scale (data, epochs, seeds, T, noise) is the studies' base (`sweeps.BASE`),
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
    return sweeps.variant(profile, dataset=condition, **changes)


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
    record = read_json(dataset_path(directory))
    if record and same_config(record.get("config"), profile.data_config(profile.seeds[0])):
        return record
    return None


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
    records = sweeps.run(v, directory)
    if stored_dataset(v, directory) is None:
        write_json(dataset_path(directory), dataset_record(v))
    return records


def is_done(profile: Profile, condition: str, directory: Path) -> bool:
    v = variant(profile, condition)
    return sweeps.is_done(v, Path(directory)) and stored_dataset(v, Path(directory)) is not None


def variants(profile: Profile) -> dict[str, Profile]:
    """{condition: its profile} for every condition of `profile`."""
    return {c: variant(profile, c) for c in conditions(profile)}


def current(profile: Profile, study: dict[str, list[dict]]) -> dict[str, list[dict]]:
    """The records of `study` whose config is the one each condition runs now (stale ones out)."""
    return ss.current(study, variants(profile))


def missing(profile: Profile, study: dict[str, list[dict]]) -> list[str]:
    """The conditions of `profile` without a current record for every (alpha, seed)."""
    return ss.missing(study, variants(profile))


def summary(records: list[dict]) -> pd.DataFrame:
    """The run page's table: per alpha, test accuracy and fidelity with 95% CIs, seeds."""
    return sweeps.summary(records)


# --- tables ---------------------------------------------------------------------------------


def table(study: dict[str, list[dict]]) -> pd.DataFrame:
    """`budgets_table` of every condition at its longest budget, with a `dataset` column."""
    parts = []
    for condition, records in study.items():
        t = budgets_table(records)
        parts.append(t[t["epochs"] == t["epochs"].max()].assign(dataset=condition))
    return pd.concat(parts, ignore_index=True)


def _by_seed(frame: pd.DataFrame, dataset: str, alpha: float, value="test_accuracy") -> np.ndarray:
    part = frame[(frame["dataset"] == dataset) & (frame["alpha"] == alpha)]
    return part.set_index("seed")[value].sort_index().to_numpy()


def teacher_accuracy(records: list[dict]) -> dict:
    """`mean_ci` of the teachers' test accuracy, one value per seed."""
    return mean_ci(
        list({r["config"]["seed"]: r["teacher_test_accuracy"] for r in records}.values())
    )


def differences(frame: pd.DataFrame) -> pd.DataFrame:
    """Per dataset and alpha: test accuracy minus that of alpha = 1 (labels only), paired over
    seeds, with its 95% CI."""
    rows = []
    for (dataset, alpha), _ in frame.groupby(["dataset", "alpha"]):
        d = paired_difference(_by_seed(frame, dataset, alpha), _by_seed(frame, dataset, 1.0))
        rows.append({"dataset": dataset, "alpha": alpha} | d)
    return pd.DataFrame(rows)


def best_alpha(frame: pd.DataFrame, dataset: str) -> dict:
    """The alpha with the best mean validation accuracy, and its test accuracy."""
    part = frame[frame["dataset"] == dataset]
    val = part.groupby("alpha")["val_accuracy"].mean()
    alpha = float(val.idxmax())
    test = _by_seed(frame, dataset, alpha)
    gain = paired_difference(test, _by_seed(frame, dataset, 1.0))
    return {"alpha": alpha, "val_mean": float(val.max()), "test": mean_ci(test), "gain": gain}


def dataset_numbers(study: dict[str, list[dict]], dataset: str) -> dict[str, str]:
    """The numbers of one dataset, as formatted strings."""
    frame = table(study)
    part = frame[frame["dataset"] == dataset]
    best = best_alpha(frame, dataset)
    means = part.groupby("alpha")["test_accuracy"].mean()
    diffs = differences(frame)
    diffs = diffs[(diffs["dataset"] == dataset) & (diffs["alpha"] < 1.0)]
    rows = diffs.to_dict("records")
    better = [r["alpha"] for r in rows if ss.significant(r) and r["mean"] > 0]
    worse = [r["alpha"] for r in rows if ss.significant(r) and r["mean"] < 0]
    zero = paired_difference(_by_seed(frame, dataset, 0.0), _by_seed(frame, dataset, 1.0))
    return {
        "teacher": format_ci(teacher_accuracy(study[dataset])),
        "alpha1": format_ci(mean_ci(_by_seed(frame, dataset, 1.0))),
        "alpha0": format_ci(mean_ci(_by_seed(frame, dataset, 0.0))),
        "alpha0_vs_1": points(zero),
        "best_alpha": f"{best['alpha']:g}",
        "best_val": pct(best["val_mean"]),
        "best_test": format_ci(best["test"]),
        "best_vs_1": "none: it is α = 1" if best["alpha"] == 1.0 else points(best["gain"]),
        "best_vs_1_verdict": "the same as" if best["alpha"] == 1.0 else ss.verdict(best["gain"]),
        "range": f"{100 * float(means.max() - means.min()):.2f}",
        "n_better": str(len(better)),
        "n_worse": str(len(worse)),
        "better": ", ".join(f"{a:g}" for a in better) or "none",
        "gap_teacher": f"{100 * (teacher_accuracy(study[dataset])['mean'] - means.max()):.2f}",
    }


def numbers(study: dict[str, list[dict]], sources: dict[str, dict]) -> dict[str, str]:
    """Every number the chapter states (glued as `fashion_<key>`); `sources` maps a dataset to
    its stored `dataset_record`."""
    frame = table(study)
    first = study[DATASETS[0]][0]["config"]
    alphas = sorted(frame["alpha"].unique())
    out = {
        "n_alphas": str(frame["alpha"].nunique()),
        "n_seeds": str(frame["seed"].nunique()),
        "n_runs": str(sum(len(r) for r in study.values())),
        "epochs": str(int(frame["epochs"].max())),
        "train_size": f"{first['data']['train_size']:,}",
        "validation_size": f"{first['data']['validation_size']:,}",
        "noise": f"{first['data']['noise_rate']:.0%}",
        "temperature": f"{first['temperature']:g}",
    }
    for dataset in DATASETS:
        prefix = "mn" if dataset == "mnist" else "fm"
        out |= {f"{prefix}_{k}": v for k, v in dataset_numbers(study, dataset).items()}
        out[f"{prefix}_source"] = source_text(sources[dataset])
        summary = sources[dataset]["summary"]
        out[f"{prefix}_test_size"] = f"{summary['test_size']:,}"
        out[f"{prefix}_shape"] = " × ".join(str(n) for n in summary["input_shape"][:2])
        out[f"{prefix}_classes"] = str(summary["num_classes"])
    ranges = {d: float(out[f"{p}_range"]) for d, p in (("mnist", "mn"), ("fashion_mnist", "fm"))}
    out["range_ratio"] = f"{ranges['fashion_mnist'] / ranges['mnist']:.1f}"
    resolved = {p: int(out[f"{p}_n_better"]) + int(out[f"{p}_n_worse"]) for p in ("mn", "fm")}
    if resolved["fm"] > resolved["mn"]:
        verdict = "yes: more values of α differ from α = 1 beyond seed noise on Fashion-MNIST"
    elif resolved["fm"] == resolved["mn"]:
        verdict = "not resolved: as many values of α differ from α = 1 beyond seed noise on both"
    else:
        verdict = "no: fewer values of α differ from α = 1 beyond seed noise on Fashion-MNIST"
    out["easier_verdict"] = f"{verdict} ({resolved['fm']} of {len(alphas) - 1} against "
    out["easier_verdict"] += f"{resolved['mn']} on MNIST)"
    return out


def comparison_table(study: dict[str, list[dict]]) -> pd.DataFrame:
    """Both datasets side by side: teacher, alpha = 0 and 1, best alpha on validation."""
    rows = {
        "teacher (test)": "teacher",
        "student, α = 1 (labels only)": "alpha1",
        "student, α = 0 (teacher only)": "alpha0",
        "α = 0 minus α = 1 (paired)": "alpha0_vs_1",
        "best α (validation)": "best_alpha",
        "student at that α (test)": "best_test",
        "that α minus α = 1 (paired)": "best_vs_1",
        "α < 1 better than α = 1 (95% CI)": "n_better",
        "α < 1 worse than α = 1 (95% CI)": "n_worse",
        "range of mean test accuracy across α": "range",
    }
    columns = {LABELS[d]: dataset_numbers(study, d) for d in DATASETS if d in study}
    out = pd.DataFrame({name: [n[key] for key in rows.values()] for name, n in columns.items()})
    out.index = list(rows)
    out.loc["range of mean test accuracy across α"] += " points"
    return out


# --- figures --------------------------------------------------------------------------------


def curves_figure(study: dict[str, list[dict]]) -> plt.Figure:
    """Test accuracy against alpha (mean ± 95% CI), one panel per dataset, with the teacher's
    accuracy (mean as a line, CI as a band)."""
    frame = table(study)
    fig, axes = plt.subplots(1, len(study), figsize=(WIDTH, 3.6), squeeze=False)
    for i, (ax, dataset) in enumerate(zip(axes[0], study, strict=True)):
        s = summarize(frame[frame["dataset"] == dataset], "alpha", "test_accuracy")
        ax.errorbar(
            s["alpha"],
            100 * s["mean"],
            yerr=100 * s["half_width"].fillna(0),
            marker="o",
            ms=4,
            capsize=3,
            color=f"C{i}",
            label="student",
        )
        teacher = teacher_accuracy(study[dataset])
        ax.axhline(100 * teacher["mean"], color="0.4", ls=":", label="teacher")
        if not math.isnan(teacher["half_width"]):
            ax.axhspan(100 * teacher["low"], 100 * teacher["high"], color="0.4", alpha=0.15)
        ax.set(
            title=LABELS[dataset],
            xlabel="α (weight on the hard labels)",
            ylabel="test accuracy (%)",
            xticks=np.linspace(0, 1, 6),
        )
        ax.legend(fontsize="small", loc="lower left")
        low, high = ax.get_ylim()
        ax.set_ylim(max(low, 0.0), min(high, 100.0))  # never outside [0, 100]
    fig.tight_layout()
    return fig


def differences_figure(study: dict[str, list[dict]]) -> plt.Figure:
    """Per alpha, test accuracy minus that of alpha = 1, paired over seeds (95% CI), both
    datasets on one axis: the shape of the curves on a common scale."""
    d = differences(table(study))
    fig, ax = plt.subplots(figsize=(WIDTH, 3.8))
    ax.axhline(0, color="gray", lw=1)
    for i, dataset in enumerate(study):
        part = d[d["dataset"] == dataset]
        ax.errorbar(
            part["alpha"] + (i - 0.5) * 0.012,  # dodge the two datasets' bars
            100 * part["mean"],
            yerr=100 * part["half_width"].fillna(0),
            marker="o",
            ms=4,
            capsize=3,
            color=f"C{i}",
            label=LABELS[dataset],
        )
    ax.set(
        xlabel="α (weight on the hard labels)",
        ylabel="test accuracy minus α = 1 (points)",
        xticks=np.linspace(0, 1, 11),
    )
    ax.legend(fontsize="small", loc="best")
    fig.tight_layout()
    return fig


def profiles_table() -> pd.DataFrame:
    """The study's scale in each profile: what `default` cuts from `full`."""
    from kdutils.profiles import PROFILES

    rows = {}
    for name, profile in PROFILES.items():
        p = variant(profile, conditions(profile)[0])
        rows[name] = {
            "datasets": ", ".join(LABELS[d] for d in SETTINGS[name]["datasets"]),
            "α values": len(p.alphas),
            "seeds": len(p.seeds),
            "training images": f"{p.train_size:,}" if p.train_size else "all (55,000)",
            "student epochs (budgets)": f"{p.epochs} ({', '.join(map(str, p.budgets))})",
            "teacher epochs": p.teacher_epochs,
        }
    return pd.DataFrame(rows).T.rename_axis("profile")
