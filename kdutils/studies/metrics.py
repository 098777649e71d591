"""Beyond accuracy: per-class metrics and calibration of distilled students and their teachers.

One condition, `base` (the studies' shared setting: 5% label noise, T = 10, the report's
teacher), trains students at a few values of α with `sweeps.run(..., save_logits=True)`, so
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

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.colors import LinearSegmentedColormap

from kdutils import metrics as base_metrics
from kdutils.experiment import stored_test_logits, test_logits_path
from kdutils.plots import WIDTH
from kdutils.profiles import Profile, alpha_slug, same_config
from kdutils.results import run_path, write_json
from kdutils.stats import format_ci, mean_ci, paired_difference
from kdutils.studies import sweeps

TITLE = "Beyond accuracy: per-class metrics and calibration"

CONDITION = "base"
# The format of the stored evaluations: records of another version are re-evaluated from their
# stored logits (nothing is retrained).
VERSION = 1
BINS = 15  # equal-width confidence bins of the ECE and the reliability diagrams (Guo et al.)
TEACHER = "teacher"
# A reliability-diagram bin is drawn only where every seed has at least this many predictions.
MIN_BIN_COUNT = 5

# The alphas per profile; the scale (images, epochs, seeds, teacher) is `sweeps.BASE`'s.
SETTINGS: dict[str, dict] = {
    "smoke": {"alphas": (0.0, 0.5, 1.0)},
    "default": {"alphas": (0.0, 0.5, 1.0)},
    "full": {"alphas": (0.0, 0.5, 1.0)},
}


def study_profile(profile: Profile) -> Profile:
    """The condition's profile: the studies' base scale with this study's alphas."""
    return sweeps.variant(profile, alphas=SETTINGS[profile.name]["alphas"])


def conditions(profile: Profile) -> list[str]:
    return [CONDITION]


# --- metrics ---------------------------------------------------------------------------------


def softmax(logits: np.ndarray) -> np.ndarray:
    """softmax at T = 1, in float64 (logits may be stored as float16)."""
    z = np.asarray(logits, dtype=np.float64)
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def confusion_matrix(labels, predicted, num_classes: int) -> np.ndarray:
    """counts[i, j]: examples of true class i predicted as j."""
    labels, predicted = np.asarray(labels), np.asarray(predicted)
    flat = np.bincount(labels * num_classes + predicted, minlength=num_classes**2)
    return flat.reshape(num_classes, num_classes)


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num / den, and 0 where den is 0 (scikit-learn's zero_division=0)."""
    num, den = np.asarray(num, dtype=float), np.asarray(den, dtype=float)
    return np.divide(num, den, out=np.zeros_like(num), where=den > 0)


def per_class(confusion) -> dict[str, np.ndarray]:
    """Per-class precision, recall, F1, one-vs-rest accuracy and support of a confusion matrix.

    recall_c = TP / (TP + FN) is the share of class c's examples classified as c; accuracy_c is
    the one-vs-rest (TP + TN) / n. A ratio with a zero denominator is 0.
    """
    c = np.asarray(confusion, dtype=float)
    tp = np.diag(c)
    support, predicted, n = c.sum(axis=1), c.sum(axis=0), c.sum()
    precision, recall = _ratio(tp, predicted), _ratio(tp, support)
    f1 = _ratio(2 * precision * recall, precision + recall)
    tn = n - support - predicted + tp
    return {
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "accuracy": (tp + tn) / n,
        "support": support.astype(int),
    }


def macro_f1(confusion) -> float:
    """The unweighted mean of the per-class F1 scores."""
    return float(per_class(confusion)["f1"].mean())


def bin_index(confidence, bins: int = BINS) -> np.ndarray:
    """The bin of each confidence: bin b is (b / bins, (b + 1) / bins], and 0 includes 0."""
    inner = np.linspace(0.0, 1.0, bins + 1)[1:-1]
    return np.searchsorted(inner, np.asarray(confidence, dtype=float), side="left")


def calibration_bins(probabilities, labels, bins: int = BINS) -> dict[str, list]:
    """Per confidence bin: how many predictions, their summed top-label confidence, and how
    many were right. Sums, not means, so that bins of several runs can be added."""
    p = np.asarray(probabilities, dtype=float)
    confidence, correct = p.max(axis=-1), p.argmax(axis=-1) == np.asarray(labels)
    b = bin_index(confidence, bins)
    return {
        "count": np.bincount(b, minlength=bins).tolist(),
        "confidence": np.bincount(b, weights=confidence, minlength=bins).tolist(),
        "correct": np.bincount(b, weights=correct, minlength=bins).astype(int).tolist(),
    }


def ece_from_bins(bins: dict) -> float:
    """Σ_b (n_b / n) |acc_b − conf_b| = Σ_b |correct_b − confidence_sum_b| / n."""
    count = np.asarray(bins["count"], dtype=float)
    gap = np.abs(np.asarray(bins["correct"], float) - np.asarray(bins["confidence"], float))
    return float(gap.sum() / count.sum())


def expected_calibration_error(probabilities, labels, bins: int = BINS) -> float:
    """ECE of top-label confidences in `bins` equal-width bins (Naeini et al.; Guo et al.)."""
    return ece_from_bins(calibration_bins(probabilities, labels, bins))


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
    from kdutils.data import load_dataset

    return load_dataset(**profile.data_config(profile.seeds[0])).y_test


def _teacher_test_logits(profile: Profile, seed: int) -> np.ndarray:
    """The cached test logits of the teacher of `seed` (trained first if not cached)."""
    from kdutils.teacher import get_teacher

    return get_teacher(profile, seed, sweeps.teacher_directory(profile)).logits["test"]


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
    records = sweeps.run(variant, Path(directory), save_logits=True)
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


def _by_seed(table: pd.DataFrame, model: str, value: str) -> pd.Series:
    return table[table["model"] == model].set_index("seed")[value].sort_index()


def _ci(values, percent: bool = True, digits: int = 2) -> str:
    return format_ci(mean_ci(values), percent=percent, digits=digits)


def _short(values, percent: bool = True, digits: int = 2) -> str:
    """'97.31 ± 0.12' (mean ± 95% CI half-width, in % when `percent`) for tables."""
    s, scale = mean_ci(values), 100.0 if percent else 1.0
    if math.isnan(s["half_width"]):
        return f"{scale * s['mean']:.{digits}f}"
    return f"{scale * s['mean']:.{digits}f} ± {scale * s['half_width']:.{digits}f}"


SCORES = {
    "accuracy": ("test accuracy (%)", True),
    "macro_f1": ("macro-F1 (%)", True),
    "ece": ("ECE (%)", True),
    "overconfidence": ("confidence − accuracy (points)", True),
    "nll": ("NLL (nats)", False),
}


def summary(records: list[dict]) -> pd.DataFrame:
    """Per model (each α and the teacher): test accuracy, macro-F1, ECE, overconfidence and
    NLL as mean ± 95% CI half-width over seeds, and the class of lowest mean recall."""
    scores, classes = scores_table(records), class_table(records)
    rows = []
    for model in [label(m) for m in models(records)]:
        row = {"model": model}
        for key, (name, percent) in SCORES.items():
            row[name] = _short(_by_seed(scores, model, key), percent, 2 if percent else 4)
        recall = classes[classes["model"] == model].groupby("class")["recall"].mean()
        row["lowest recall"] = f"class {recall.idxmin()}: {100 * recall.min():.2f}%"
        row["seeds"] = int((scores["model"] == model).sum())
        rows.append(row)
    return pd.DataFrame(rows).set_index("model")


def class_summary(records: list[dict], value: str = "f1") -> pd.DataFrame:
    """class × model table of `value` (precision, recall, f1, accuracy) in %: mean ± 95% CI
    half-width over seeds."""
    classes = class_table(records)
    out = {}
    for model in [label(m) for m in models(records)]:
        part = classes[classes["model"] == model]
        out[model] = {k: _short(g[value], digits=1) for k, g in part.groupby("class")}
    return pd.DataFrame(out).rename_axis("class")


def _paired(table: pd.DataFrame, a: str, b: str, value: str) -> dict:
    """paired_difference of `value`, model a − model b, over the seeds both have."""
    x, y = _by_seed(table, a, value), _by_seed(table, b, value)
    seeds = x.index.intersection(y.index)
    return paired_difference(x[seeds].to_numpy(), y[seeds].to_numpy())


def _diff(s: dict, percent: bool = True, unit: bool = True) -> str:
    """'+0.41 points [+0.12, +0.70], p = 0.020' (percentage points) or plain units."""
    scale, unit = (100.0, " points" if unit else "") if percent else (1.0, "")
    digits = 2 if percent else 4
    if math.isnan(s["half_width"]):
        return f"{scale * s['mean']:+.{digits}f}{unit} (one seed: no interval)"
    return (
        f"{scale * s['mean']:+.{digits}f}{unit} [{scale * s['low']:+.{digits}f}, "
        f"{scale * s['high']:+.{digits}f}], p = {s['p_value']:.3f}"
    )


def significant(s: dict) -> bool:
    """True when the 95% CI of a difference excludes 0."""
    return not math.isnan(s["half_width"]) and (s["low"] > 0 or s["high"] < 0)


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


def differences_table(records: list[dict]) -> pd.DataFrame:
    """Paired differences over seeds (a − b) of every score, with 95% CIs and p-values."""
    scores = scores_table(records)
    rows = []
    for a, b in comparisons(records):
        row = {"difference": f"{label(a)} − {label(b)}"}
        for score, (name, percent) in SCORES.items():
            name = name.replace("(%)", "(points)")
            row[name] = _diff(_paired(scores, label(a), label(b), score), percent, unit=False)
        rows.append(row)
    return pd.DataFrame(rows).set_index("difference")


def class_differences(records: list[dict], value: str = "recall") -> pd.DataFrame:
    """Per class and student α < 1: the paired difference of `value` against α = 1."""
    classes = class_table(records)
    alphas = sorted({r["config"]["alpha"] for r in records})
    rows = []
    for model in [*alphas[:-1], TEACHER]:
        for k in sorted(classes["class"].unique()):
            part = classes[classes["class"] == k]
            s = _paired(part, label(model), label(alphas[-1]), value)
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


def _verdict(s: dict, more: str, less: str, neither: str = "not clearly different") -> str:
    """`more` or `less` when the CI of a difference excludes 0, else `neither`."""
    if not significant(s):
        return neither
    return more if s["mean"] > 0 else less


def numbers(records: list[dict]) -> dict[str, str]:
    """Every number the chapter states, formatted, from the records only."""
    config = records[0]["config"]
    scores, classes = scores_table(records), class_table(records)
    alphas = sorted({r["config"]["alpha"] for r in records})
    seeds = sorted({r["config"]["seed"] for r in records})
    first = records[0]["test_metrics"]["student"]
    out = {
        "n_seeds": str(len(seeds)),
        "n_runs": str(len(records)),
        "alphas": ", ".join(f"{a:g}" for a in alphas),
        "train_size": f"{config['data']['train_size']:,}"
        if config["data"]["train_size"]
        else "all",
        "epochs": str(config["epochs"]),
        "temperature": f"{config['temperature']:g}",
        "noise": f"{config['data']['noise_rate']:.0%}",
        "test_size": f"{int(np.sum(first['confusion'])):,}",
        "bins": str(first["bins"]),
        "bin_width": f"{1 / first['bins']:.3f}",
        "min_bin_count": str(MIN_BIN_COUNT),
        "top_bin_low": f"{(first['bins'] - 1) / first['bins']:.3f}",
        "off_diagonal": str(len(first["confusion"]) * (len(first["confusion"]) - 1)),
    }
    ev = evaluations(records)
    for model in models(records):
        name, k = label(model), key(model)
        for score, (_, percent) in SCORES.items():
            out[f"{k}_{score}"] = _ci(_by_seed(scores, name, score), percent, 2 if percent else 4)
        recall = classes[classes["model"] == name].groupby("class")["recall"]
        worst = int(recall.mean().idxmin())
        out[f"{k}_worst_class"] = str(worst)
        out[f"{k}_worst_recall"] = _ci(recall.get_group(worst))
        counts = np.array([e["calibration"]["count"] for e in ev[model].values()], dtype=float)
        out[f"{k}_top_bin_share"] = _ci(counts[:, -1] / counts.sum(axis=1))
        gap = mean_ci(_by_seed(scores, name, "overconfidence"))
        out[f"{k}_confidence_verdict"] = _verdict(
            gap, "overconfident", "underconfident", "neither clearly over- nor underconfident"
        )
        drawn = reliability(ev[model])
        drawn = drawn[drawn["drawn"]]
        above = sum(r["accuracy"]["mean"] > r["confidence"]["mean"] for _, r in drawn.iterrows())
        out[f"{k}_bins_above"] = str(int(above))
        out[f"{k}_bins_drawn"] = str(len(drawn))
    out["dof"] = str(len(seeds) - 1)
    means = scores.groupby("model")[["accuracy", "macro_f1"]].mean()
    out["f1_accuracy_gap"] = f"{100 * (means['accuracy'] - means['macro_f1']).abs().max():.2f}"
    worst, reference = int(out[f"{key(alphas[-1])}_worst_class"]), label(alphas[-1])
    part = classes[classes["class"] == worst]
    for model in [*alphas[:-1], TEACHER]:
        s = _paired(part, label(model), reference, "recall")
        out[f"{key(model)}_recall_on_worst"] = _diff(s)
        out[f"{key(model)}_recall_on_worst_verdict"] = _verdict(s, "higher", "lower")
    fidelity = [r for r in records if "test_fidelity" in r]
    for a in alphas if fidelity else []:
        values = [r["test_fidelity"] for r in fidelity if r["config"]["alpha"] == a]
        out[f"{alpha_slug(a)}_fidelity"] = _ci(values)
    stored = [r for r in records if "test_accuracy" in r]
    if stored:
        gaps = [abs(r["test_accuracy"] - r["test_metrics"]["student"]["accuracy"]) for r in stored]
        out["float16_accuracy_gap"] = f"{100 * max(gaps):.2f}"
    for a, b in comparisons(records):
        pair = f"{key(a)}_minus_{key(b)}"
        for score, (_, percent) in SCORES.items():
            s = _paired(scores, label(a), label(b), score)
            out[f"{pair}_{score}"] = _diff(s, percent)
            out[f"{pair}_{score}_verdict"] = _verdict(s, "higher", "lower")
    diffs = class_differences(records, "recall")
    for model in dict.fromkeys(diffs["model"]):
        part = diffs[diffs["model"] == model]
        hits = [r for r in part.to_dict("records") if significant(r)]
        out[f"{key(model)}_recall_significant"] = str(len(hits))
        out[f"{key(model)}_recall_significant_classes"] = (
            "; ".join(f"class {r['class']}: {_diff(r)}" for r in hits) or "none"
        )
        out[f"{key(model)}_recall_classes"] = str(len(part))
    corr = error_correlation(records)
    for a in alphas:
        out[f"{alpha_slug(a)}_error_correlation"] = _ci(
            _by_seed(corr, label(a), "error_correlation"), percent=False, digits=3
        )
    if 0.0 in alphas and 1.0 in alphas:
        s = _paired(corr, label(0.0), label(1.0), "error_correlation")
        out["error_correlation_diff"] = _diff(s, percent=False)
        out["error_correlation_verdict"] = _verdict(
            s,
            "more like its teacher's",
            "less like its teacher's",
            "not clearly more or less like its teacher's",
        )
    return out


# --- figures ---------------------------------------------------------------------------------


def _colors(records: list[dict]) -> dict[str, str]:
    return {label(m): f"C{i}" for i, m in enumerate(models(records))}


def _errorbar(ax, x, values, color, label_=None, marker="o"):
    s = mean_ci(values)
    ax.errorbar(
        x,
        s["mean"],
        yerr=0 if math.isnan(s["half_width"]) else s["half_width"],
        fmt=marker,
        ms=4,
        capsize=3,
        color=color,
        label=label_,
    )


def scores_figure(records: list[dict]) -> plt.Figure:
    """Macro-F1, ECE, confidence − accuracy per model, and the students' error correlation
    with their teachers: seeds (dots), mean and 95% CI."""
    colors = _colors(records)
    scores = scores_table(records).merge(
        error_correlation(records), on=["model", "seed"], how="left"
    )
    panels = (
        ("macro_f1", "macro-F1 (%)", 100.0),
        ("ece", "ECE (%)", 100.0),
        ("overconfidence", "confidence − accuracy (points)", 100.0),
        ("error_correlation", "error correlation with teacher", 1.0),
    )
    names = [label(m) for m in models(records)]
    fig, axes = plt.subplots(1, len(panels), figsize=(WIDTH, 3.3))
    for ax, (key, ylabel, scale) in zip(axes, panels, strict=True):
        shown = [n for n in names if n != TEACHER or key != "error_correlation"]
        for i, name in enumerate(shown):
            values = scale * _by_seed(scores, name, key).to_numpy()
            ax.plot(np.full(len(values), i - 0.18), values, ".", color=colors[name], alpha=0.5)
            _errorbar(ax, i + 0.05, values, colors[name])
        ax.set_xticks(range(len(shown)), shown, rotation=30)
        ax.set_ylabel(ylabel, fontsize=9)
        ax.tick_params(labelsize=8)
        ax.set_xlim(-0.6, len(shown) - 0.4)
        low, high = ax.get_ylim()
        if key == "overconfidence":  # show 0: the sign is the point
            ax.axhline(0, color="black", lw=0.8)
            low, high = min(low, -1.0), max(high, 1.0)
        ax.set_ylim(max(low, -scale), min(high, scale))
        if key in ("macro_f1", "ece"):
            ax.set_ylim(bottom=max(low, 0.0))
    fig.tight_layout()
    return fig


def per_class_figure(records: list[dict]) -> plt.Figure:
    """Recall, precision and F1 per class and model: mean over seeds with 95% CIs."""
    classes, colors = class_table(records), _colors(records)
    names = [label(m) for m in models(records)]
    ks = sorted(classes["class"].unique())
    offsets = np.linspace(-0.27, 0.27, len(names))
    fig, axes = plt.subplots(3, 1, figsize=(WIDTH, 7.5), sharex=True)
    for ax, value in zip(axes, ("recall", "precision", "f1"), strict=True):
        for offset, name in zip(offsets, names, strict=True):
            part = classes[classes["model"] == name]
            for k in ks:
                values = 100 * part[part["class"] == k][value].to_numpy()
                _errorbar(ax, k + offset, values, colors[name], name if k == ks[0] else None)
        ax.set_ylabel(f"{'F1' if value == 'f1' else value} (%)")
        low, high = ax.get_ylim()
        ax.set_ylim(max(low, 0.0), min(high, 100.5))  # an interval from few seeds may not
    axes[-1].set_xticks(ks)
    axes[-1].set_xlabel("class")
    axes[0].legend(ncols=len(names), fontsize="small", loc="lower left")
    fig.tight_layout()
    return fig


def class_difference_figure(records: list[dict]) -> plt.Figure:
    """Paired difference of recall and precision per class against α = 1, with 95% CIs."""
    colors = _colors(records)
    fig, axes = plt.subplots(2, 1, figsize=(WIDTH, 5.4), sharex=True)
    reference = label(max(r["config"]["alpha"] for r in records))
    for ax, value in zip(axes, ("recall", "precision"), strict=True):
        diffs = class_differences(records, value)
        names = [label(m) for m in dict.fromkeys(diffs["model"])]
        diffs["model"] = diffs["model"].map(label)
        offsets = np.linspace(-0.2, 0.2, len(names))
        for offset, name in zip(offsets, names, strict=True):
            part = diffs[diffs["model"] == name]
            half = 100 * part["half_width"].fillna(0).to_numpy()
            ax.errorbar(
                part["class"] + offset,
                100 * part["mean"],
                yerr=half,
                fmt="o",
                ms=4,
                capsize=3,
                color=colors[name],
                label=f"{name} − {reference}",
            )
        ax.axhline(0, color="black", lw=0.8)
        ax.set_ylabel(f"Δ {value} (points)")
        low, high = ax.get_ylim()
        ax.set_ylim(max(low, -100.0), min(high, 100.0))
    axes[-1].set_xticks(sorted(diffs["class"].unique()))
    axes[-1].set_xlabel("class")
    axes[0].legend(ncols=len(names), fontsize="small", loc="best")
    fig.tight_layout()
    return fig


def pooled_confusion(records: list[dict]) -> dict[str, np.ndarray]:
    """{model: confusion matrix summed over seeds}."""
    return {
        label(m): np.sum([np.asarray(e["confusion"]) for e in by_seed.values()], axis=0)
        for m, by_seed in evaluations(records).items()
    }


def row_normalise(confusion) -> np.ndarray:
    c = np.asarray(confusion, dtype=float)
    return c / np.maximum(c.sum(axis=1, keepdims=True), 1)


def confusion_figure(records: list[dict]) -> plt.Figure:
    """Row-normalised confusion matrices (summed over seeds), one per model. The colour scale
    shows the off-diagonal errors; the diagonal (each class's recall) is printed in grey."""
    pooled = {m: row_normalise(c) for m, c in pooled_confusion(records).items()}
    off = ~np.eye(len(next(iter(pooled.values()))), dtype=bool)
    vmax = max(100 * c[off].max() for c in pooled.values()) or 1.0
    cmap = LinearSegmentedColormap.from_list("errors", ["#ffffff", "#c0392b"])
    cols = 2
    rows = math.ceil(len(pooled) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(WIDTH, 3.5 * rows), squeeze=False)
    fig.subplots_adjust(left=0.07, right=0.86, bottom=0.06, top=0.95, wspace=0.15, hspace=0.25)
    for ax, (name, c) in zip(axes.flat, pooled.items(), strict=False):
        shown = np.where(off, 100 * c, np.nan)
        image = ax.imshow(shown, cmap=cmap, vmin=0, vmax=vmax)
        n = len(c)
        for i in range(n):
            ax.add_patch(plt.Rectangle((i - 0.5, i - 0.5), 1, 1, color="#dddddd"))
            ax.text(i, i, f"{100 * c[i, i]:.0f}", ha="center", va="center", fontsize=6)
            for j in range(n):
                if i != j and 100 * c[i, j] >= 0.5:
                    ax.text(j, i, f"{100 * c[i, j]:.1f}", ha="center", va="center", fontsize=5.5)
        ax.set_title(name, fontsize=10)
        ax.set_xticks(range(n))
        ax.set_yticks(range(n))
        ax.tick_params(labelsize=7)
        ax.grid(False)
    for ax in axes[-1]:
        ax.set_xlabel("predicted class", fontsize=8)
    for ax in axes[:, 0]:
        ax.set_ylabel("true class", fontsize=8)
    for ax in list(axes.flat)[len(pooled) :]:
        ax.set_visible(False)
    bar = fig.colorbar(image, cax=fig.add_axes((0.89, 0.25, 0.02, 0.5)))
    bar.set_label("% of the true class (off the diagonal)", fontsize=8)
    bar.ax.tick_params(labelsize=7)
    return fig


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
        row["share"] = mean_ci(count[:, b] / count.sum(axis=1))
        row["drawn"] = bool(np.all(count[:, b] >= MIN_BIN_COUNT))
        if seen.any():
            row["confidence"] = mean_ci(conf[seen, b] / count[seen, b])
            row["accuracy"] = mean_ci(correct[seen, b] / count[seen, b])
        rows.append(row)
    return pd.DataFrame(rows)


def reliability_figure(records: list[dict]) -> plt.Figure:
    """Reliability diagrams, one per model: accuracy against mean confidence per bin (mean over
    seeds, 95% CIs) with the diagonal of perfect calibration, and below, the share of test
    predictions in each bin (log scale)."""
    colors = _colors(records)
    ev = evaluations(records)
    fig, axes = plt.subplots(
        2,
        len(ev),
        figsize=(WIDTH, 3.6),
        sharex=True,
        sharey="row",
        gridspec_kw={"height_ratios": (3, 1.2)},
        squeeze=False,
    )
    for (top, bottom), (model, by_seed) in zip(axes.T, ev.items(), strict=True):
        name, table = label(model), reliability(by_seed)
        top.plot([0, 1], [0, 1], "--", color="grey", lw=0.8)
        drawn = table[table["drawn"]]
        for _, row in drawn.iterrows():
            acc, conf = row["accuracy"], row["confidence"]
            top.errorbar(
                conf["mean"],
                acc["mean"],
                xerr=np.nan_to_num(conf["half_width"]),
                yerr=np.nan_to_num(acc["half_width"]),
                fmt="o",
                ms=3,
                capsize=2,
                color=colors[name],
            )
        top.set_title(name, fontsize=10)
        top.set(xlim=(0, 1), ylim=(0, 1.02))
        shares = [s["mean"] for s in table["share"]]
        halves = [np.nan_to_num(s["half_width"]) for s in table["share"]]
        centres = (table["low"] + table["high"]) / 2
        bottom.bar(centres, shares, width=1 / len(table), color=colors[name], alpha=0.6)
        bottom.errorbar(centres, shares, yerr=halves, fmt="none", ecolor="black", lw=0.6)
        bottom.set_yscale("log")
        bottom.set_xlabel("confidence", fontsize=8)
        top.tick_params(labelsize=7)
        bottom.tick_params(labelsize=7)
    axes[0, 0].set_ylabel("accuracy", fontsize=8)
    axes[1, 0].set_ylabel("share", fontsize=8)
    fig.tight_layout()
    return fig
