"""Beyond accuracy: per-class metrics and calibration of distilled students and their teachers.

One condition, `base` (the studies' shared setting: 5% label noise, T = 10, the report's
teacher), trains students at a few values of α with `grid.run(..., save_logits=True)`, so
each run's test logits are stored beside its record (`experiment.test_logits_path`). From those
logits, and from the cached test logits of the seed's teacher, `run` adds to every record:

- the confusion matrix (rows: true class, columns: predicted class), from which per-class
  precision, recall, F1 and one-vs-rest accuracy follow;
- the reliability bins of the top-label confidence (15 equal-width bins on [0, 1]) and the
  expected calibration error, ECE = Σ_b (n_b / n) · |accuracy(b) − confidence(b)|;
- the mean confidence and the negative log-likelihood.

Everything here is NumPy; nothing is chosen on the test set (nothing is chosen at all).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from kdutils.analysis.stats import RATE, interval_text, mean_ci, paired_difference
from kdutils.distill import metrics as base_metrics
from kdutils.distill.metrics import (
    BINS,
    bin_index,
    calibration_bins,
    confusion_matrix,
    ece_from_bins,
    macro_f1,
    per_class,
    softmax,
)
from kdutils.experiment import stored_test_logits, test_logits_path
from kdutils.profiles import Profile, alpha_slug, same_config
from kdutils.results import run_path, write_json
from kdutils.studies import grid

TITLE = "Beyond accuracy: per-class metrics and calibration"

CONDITION = "base"
# The format of the stored evaluations: records of another version are re-evaluated from their
# stored logits (nothing is retrained).
VERSION = 1
TEACHER = "teacher"
# A reliability-diagram bin is drawn only where every seed has at least this many predictions.
MIN_BIN_COUNT = 5

# The alphas per profile; the scale (images, epochs, seeds, teacher) is `grid.BASE`'s.
SETTINGS: dict[str, dict] = {
    "smoke": {"alphas": (0.0, 0.5, 1.0)},
    "default": {"alphas": (0.0, 0.5, 1.0)},
    "full": {"alphas": (0.0, 0.5, 1.0)},
}


def study_profile(profile: Profile) -> Profile:
    """The condition's profile: the studies' base scale with this study's alphas."""
    return grid.variant(profile, alphas=SETTINGS[profile.name]["alphas"])


def conditions(profile: Profile) -> list[str]:
    return [CONDITION]


def teachers(profile: Profile, condition: str) -> list[tuple]:
    """The teachers this condition's students distil (shared with the grid studies')."""
    return grid.teachers(study_profile(profile))


def evaluate(logits, labels, bins: int = BINS) -> dict:
    """Everything this study keeps of one model's test predictions (JSON-serialisable)."""
    p = softmax(logits)
    labels = np.asarray(labels)
    calibration = calibration_bins(p, labels, bins)
    num_classes = p.shape[-1]
    return {
        "confusion": confusion_matrix(labels, p.argmax(axis=-1), num_classes).tolist(),
        "calibration": calibration,
        "bins": bins,
        "version": VERSION,
        "ece": ece_from_bins(calibration),
        "accuracy": base_metrics.accuracy(p, labels),
        "mean_confidence": float(p.max(axis=-1).mean()),
        "nll": float(-np.mean(np.log(np.maximum(p[np.arange(len(labels)), labels], 1e-300)))),
    }


# --- runs ------------------------------------------------------------------------------------


def _test_labels(profile: Profile) -> np.ndarray:
    """The test labels (the official test set: the same for every seed)."""
    from kdutils.distill.data import load_dataset

    return load_dataset(**profile.data_config(profile.seeds[0])).y_test


def _teacher_test_logits(profile: Profile, seed: int) -> np.ndarray:
    """The cached test logits of the teacher of `seed` (trained first if not cached)."""
    from kdutils.teacher_cache import get_teacher

    return get_teacher(profile, seed, grid.teacher_directory(profile)).logits["test"]


def _has_metrics(record: dict, directory: Path) -> bool:
    c = record["config"]
    stored = record.get("test_metrics", {})
    return (
        all(
            stored.get(k, {}).get("bins") == BINS and stored[k].get("version") == VERSION
            for k in ("student", TEACHER)
        )
        and test_logits_path(directory, c["alpha"], c["seed"]).exists()
    )


def run(profile: Profile, condition: str, directory: Path) -> list[dict]:
    """Train (or reuse) every (alpha, seed) with stored test logits, then add the test metrics
    of the student and of its teacher to each record that lacks them."""
    if condition != CONDITION:
        raise ValueError(f"unknown condition={condition!r}; choose {CONDITION!r}")
    variant = study_profile(profile)
    records = grid.run(variant, Path(directory), save_logits=True)
    todo = [r for r in records if not _has_metrics(r, directory)]
    if todo:
        labels = _test_labels(variant)
        teachers: dict[int, dict] = {}
        for record in todo:
            alpha, seed = record["config"]["alpha"], record["config"]["seed"]
            if seed not in teachers:
                teachers[seed] = evaluate(_teacher_test_logits(variant, seed), labels)
            student = evaluate(stored_test_logits(directory, alpha, seed), labels)
            record["test_metrics"] = {"student": student, TEACHER: teachers[seed]}
            write_json(run_path(directory, alpha, seed), record)
    return records


def is_done(profile: Profile, condition: str, directory: Path) -> bool:
    from kdutils.experiment import load_run

    variant = study_profile(profile)
    for alpha in variant.alphas:
        for seed in variant.seeds:
            record = load_run(variant, alpha, seed, Path(directory))
            if record is None or not _has_metrics(record, Path(directory)):
                return False
    return True


def current(profile: Profile, records: list[dict]) -> list[dict]:
    """The records of `profile`'s planned runs that carry their test metrics."""
    variant = study_profile(profile)
    planned = {(a, s): variant.run_config(a, s) for a in variant.alphas for s in variant.seeds}
    return sorted(
        (
            r
            for r in records
            if "test_metrics" in r
            and same_config(r["config"], planned.get((r["config"]["alpha"], r["config"]["seed"])))
        ),
        key=lambda r: (r["config"]["alpha"], r["config"]["seed"]),
    )


def check_logits(records: list[dict], directory: Path) -> int:
    """Recount each run's predictions per class and per confidence bin from its stored logits
    and compare with its record; returns how many runs were checked."""
    checked = 0
    for r in records:
        c, m = r["config"], r["test_metrics"]["student"]
        path = test_logits_path(directory, c["alpha"], c["seed"])
        logits = stored_test_logits(directory, c["alpha"], c["seed"])
        if logits is None:
            continue
        p = softmax(logits)
        predicted = np.bincount(p.argmax(axis=-1), minlength=p.shape[-1])
        if not np.array_equal(predicted, np.asarray(m["confusion"]).sum(axis=0)):
            raise ValueError(f"{path}: predictions differ from the record's confusion matrix")
        counts = np.bincount(bin_index(p.max(axis=-1), m["bins"]), minlength=m["bins"])
        if not np.array_equal(counts, m["calibration"]["count"]):
            raise ValueError(f"{path}: confidence bins differ from the record's")
        checked += 1
    return checked


# --- tables ----------------------------------------------------------------------------------


def label(model) -> str:
    """'α = 0.5' for a student, 'teacher' for the teacher."""
    return TEACHER if model == TEACHER else f"α = {float(model):g}"


def key(model) -> str:
    """'alpha_0p5' for a student, 'teacher' for the teacher: for glue names."""
    return TEACHER if model == TEACHER else alpha_slug(model)


def models(records: list[dict]) -> list:
    """The students' alphas, ascending, then the teacher."""
    return [*sorted({r["config"]["alpha"] for r in records}), TEACHER]


def evaluations(records: list[dict]) -> dict:
    """{model: {seed: stored evaluation}}; the teacher of a seed appears once."""
    out: dict = {}
    for r in records:
        alpha, seed = r["config"]["alpha"], r["config"]["seed"]
        out.setdefault(alpha, {})[seed] = r["test_metrics"]["student"]
        out.setdefault(TEACHER, {})[seed] = r["test_metrics"][TEACHER]
    return {m: dict(sorted(out[m].items())) for m in models(records)}


def scores_table(records: list[dict]) -> pd.DataFrame:
    """One row per (model, seed): accuracy, macro-F1, ECE, confidence, overconfidence, NLL."""
    rows = []
    for model, by_seed in evaluations(records).items():
        for seed, e in by_seed.items():
            rows.append(
                {
                    "model": label(model),
                    "seed": seed,
                    "accuracy": e["accuracy"],
                    "macro_f1": macro_f1(e["confusion"]),
                    "ece": e["ece"],
                    "mean_confidence": e["mean_confidence"],
                    "overconfidence": e["mean_confidence"] - e["accuracy"],
                    "nll": e["nll"],
                }
            )
    return pd.DataFrame(rows)


def class_table(records: list[dict]) -> pd.DataFrame:
    """One row per (model, seed, class): precision, recall, F1, one-vs-rest accuracy."""
    rows = []
    for model, by_seed in evaluations(records).items():
        for seed, e in by_seed.items():
            scores = per_class(e["confusion"])
            for k in range(len(scores["f1"])):
                rows.append(
                    {"model": label(model), "seed": seed, "class": k}
                    | {m: float(scores[m][k]) for m in ("precision", "recall", "f1", "accuracy")}
                )
    return pd.DataFrame(rows)


def by_model_seed(table: pd.DataFrame, model: str, value: str) -> pd.Series:
    """`value` of one model (its label), indexed by seed."""
    return table[table["model"] == model].set_index("seed")[value].sort_index()


def short_ci(values, percent: bool = True, digits: int = 2, bounds=None) -> str:
    """'97.31 ± 0.12' (mean ± 95% CI half-width, in % when `percent`) for tables; an interval
    cut at one of `bounds` (the values the score can take) as '99.95 [99.80, 100.00]'."""
    return interval_text(mean_ci(values, bounds=bounds), 100.0 if percent else 1.0, digits)


SCORES = {
    "accuracy": ("test accuracy (%)", True),
    "macro_f1": ("macro-F1 (%)", True),
    "ece": ("ECE (%)", True),
    "overconfidence": ("confidence − accuracy (points)", True),
    "nll": ("NLL (nats)", False),
}
# The values each score can take (NLL has no upper bound).
BOUNDS = {"accuracy": RATE, "macro_f1": RATE, "ece": RATE, "overconfidence": (-1.0, 1.0)}


def summary(records: list[dict]) -> pd.DataFrame:
    """Per model (each α and the teacher): test accuracy, macro-F1, ECE, overconfidence and
    NLL as mean ± 95% CI half-width over seeds, and the class of lowest mean recall."""
    scores, classes = scores_table(records), class_table(records)
    rows = []
    for model in [label(m) for m in models(records)]:
        row = {"model": model}
        for key, (name, percent) in SCORES.items():
            values = by_model_seed(scores, model, key)
            row[name] = short_ci(values, percent, 2 if percent else 4, BOUNDS.get(key))
        recall = classes[classes["model"] == model].groupby("class")["recall"].mean()
        row["lowest recall"] = f"class {recall.idxmin()}: {100 * recall.min():.2f}%"
        row["seeds"] = int((scores["model"] == model).sum())
        rows.append(row)
    return pd.DataFrame(rows).set_index("model")


def paired(table: pd.DataFrame, a: str, b: str, value: str) -> dict:
    """paired_difference of `value`, model a − model b, over the seeds both have."""
    x, y = by_model_seed(table, a, value), by_model_seed(table, b, value)
    seeds = x.index.intersection(y.index)
    return paired_difference(x[seeds].to_numpy(), y[seeds].to_numpy())


def comparisons(records: list[dict]) -> list[tuple]:
    """(a, b) model pairs compared: every other α and the teacher against the largest α
    (α = 1: no teacher), α = 0 against α = 0.5 when both ran, and the smallest α (the
    imitator) against its teacher."""
    alphas = sorted({r["config"]["alpha"] for r in records})
    pairs = [(a, alphas[-1]) for a in alphas[:-1]] + [(TEACHER, alphas[-1])]
    if 0.0 in alphas and 0.5 in alphas:
        pairs.append((0.0, 0.5))
    pairs.append((alphas[0], TEACHER))
    return pairs


def class_differences(records: list[dict], value: str = "recall") -> pd.DataFrame:
    """Per class and student α < 1: the paired difference of `value` against α = 1."""
    classes = class_table(records)
    alphas = sorted({r["config"]["alpha"] for r in records})
    rows = []
    for model in [*alphas[:-1], TEACHER]:
        for k in sorted(classes["class"].unique()):
            part = classes[classes["class"] == k]
            s = paired(part, label(model), label(alphas[-1]), value)
            rows.append({"model": model, "class": k} | s)
    return pd.DataFrame(rows)


def _correlation(x: np.ndarray, y: np.ndarray) -> float:
    """Pearson's r; NaN when either has no spread (e.g. a model without errors)."""
    if x.std() == 0 or y.std() == 0:
        return math.nan
    return float(np.corrcoef(x, y)[0, 1])


def error_correlation(records: list[dict]) -> pd.DataFrame:
    """Per (student, seed): the Pearson correlation between the off-diagonal confusion counts of
    the student and of its own teacher, i.e. how alike their mistakes are."""
    rows = []
    for r in records:
        m = r["test_metrics"]
        student = np.asarray(m["student"]["confusion"], dtype=float)
        teacher = np.asarray(m[TEACHER]["confusion"], dtype=float)
        off = ~np.eye(len(student), dtype=bool)
        rows.append(
            {
                "model": label(r["config"]["alpha"]),
                "seed": r["config"]["seed"],
                "error_correlation": _correlation(student[off], teacher[off]),
            }
        )
    return pd.DataFrame(rows)


def pooled_confusion(records: list[dict]) -> dict[str, np.ndarray]:
    """{model: confusion matrix summed over seeds}."""
    return {
        label(m): np.sum([np.asarray(e["confusion"]) for e in by_seed.values()], axis=0)
        for m, by_seed in evaluations(records).items()
    }


def row_normalise(confusion) -> np.ndarray:
    """Each row (a true class) divided by its total: the share given to each predicted class."""
    c = np.asarray(confusion, dtype=float)
    return c / np.maximum(c.sum(axis=1, keepdims=True), 1)


def reliability(by_seed: dict) -> pd.DataFrame:
    """Per bin: each seed's mean confidence and accuracy, summarised over seeds (mean, 95% CI),
    and the share of predictions in the bin. `drawn`: every seed has MIN_BIN_COUNT there."""
    count = np.array([e["calibration"]["count"] for e in by_seed.values()], dtype=float)
    conf = np.array([e["calibration"]["confidence"] for e in by_seed.values()], dtype=float)
    correct = np.array([e["calibration"]["correct"] for e in by_seed.values()], dtype=float)
    bins = count.shape[1]
    rows = []
    for b in range(bins):
        seen = count[:, b] > 0
        row = {"bin": b, "low": b / bins, "high": (b + 1) / bins}
        row["share"] = mean_ci(count[:, b] / count.sum(axis=1), bounds=RATE)
        row["drawn"] = bool(np.all(count[:, b] >= MIN_BIN_COUNT))
        if seen.any():
            row["confidence"] = mean_ci(conf[seen, b] / count[seen, b], bounds=RATE)
            row["accuracy"] = mean_ci(correct[seen, b] / count[seen, b], bounds=RATE)
        rows.append(row)
    return pd.DataFrame(rows)
