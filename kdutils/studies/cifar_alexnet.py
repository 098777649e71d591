"""A course report on CIFAR-10: an AlexNet-style teacher distilled into a small CNN.

The teacher (`alexnet_cifar`) trains for 20 epochs; three students of the same architecture
(`cnn_bn_student`) then train at alpha = 1 (labels only), 0 (the teacher only) and 0.5. Every
model trains with SGD and momentum on randomly cropped and flipped images. Under augmentation
cached teacher logits would score other images than the student sees, so the teacher runs at
every step on the student's augmented batch (`Distiller(..., augmentation=crop_and_flip())`).
Validation and test images are never augmented, so the students' validation losses use the
teacher's cached logits.

Conditions: `teacher`, `alpha_1p0`, `alpha_0p0`, `alpha_0p5`; one record per seed each.
Student seed *s* learns from teacher seed *s*; the three students of a seed share their initial
weights and the sequence of augmentations, so they compare paired by seed. Labels are clean.
Nothing is chosen on the test set.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import keras
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from kdutils import metrics
from kdutils.augment import crop_and_flip
from kdutils.data import Dataset, load_dataset
from kdutils.distiller import Distiller, with_teacher_logits
from kdutils.models import alexnet_cifar, build_model
from kdutils.plots import WIDTH
from kdutils.profiles import (
    PER_SEED_TEACHERS,
    STEPS_PER_EXECUTION,
    Profile,
    alpha_slug,
    config_key,
    same_config,
)
from kdutils.repro import environment, set_seed
from kdutils.results import epoch_records, read_json, read_npz, write_json, write_npz
from kdutils.stats import format_ci, mean_ci, paired_difference
from kdutils.teacher import fit_supervised, load_weights

TITLE = "AlexNet to a small CNN on CIFAR-10"

# The report as this book knows it: its setup, in words. Its accuracies are not available
# to this book, so none are quoted and none are compared.
REPORT = {
    "teacher": "AlexNet-style CNN, 20 epochs",
    "students": "one small CNN architecture, trained at three alphas",
    "alphas": (1.0, 0.0, 0.5),
    "optimiser": "SGD with momentum",
    "augmentation": "random crop and horizontal flip of the training images",
    "teacher_epochs": 20,
}

ALPHAS: tuple[float, ...] = REPORT["alphas"]
CONDITIONS: tuple[str, ...] = ("teacher", *(alpha_slug(a) for a in ALPHAS))
SCHEDULE = "cosine decay to 0"  # of the learning rate, over each model's run
MOMENTUM = 0.9
PADDING = 4  # pixels of zeros around each image before the random 32x32 crop
TEST_PERMUTATION_SEED = 2012  # a fixed subset of the test set, where a profile cuts it

# Everything every profile shares: CIFAR-10, clean labels, the models, T, the optimiser.
COMMON = {
    "dataset": "cifar10",
    "noise_rate": 0.0,
    "temperature": 4.0,
    "alphas": ALPHAS,
    "learning_rate": 0.01,
    "teacher": "alexnet_cifar",
    "student": "cnn_bn_student",
}

# Per profile: data size, seeds, training length, the teacher's width (1 = the AlexNet-style
# network of `kdutils.models.alexnet_cifar`) and how many test images are scored.
SETTINGS = {
    # CI: every code path in seconds.
    "smoke": {
        "train_size": 256,
        "validation_size": 256,
        "test_size": 512,
        "seeds": (0, 1),
        "teacher_epochs": 1,
        "epochs": 1,
        "batch_size": 64,
        "teacher_width": 0.125,
    },
    # The book, on 2 CPU cores: 4,000 training images, a teacher a quarter as wide (trained for
    # the report's 20 epochs), students for 6 epochs.
    "default": {
        "train_size": 4_000,
        "validation_size": 2_000,
        "test_size": None,
        "seeds": (0, 1, 2),
        "teacher_epochs": 20,
        "epochs": 6,
        "batch_size": 128,
        "teacher_width": 0.25,
    },
    # The report's scale, for a GPU: every training image but 5,000 kept for validation.
    "full": {
        "train_size": None,
        "validation_size": 5_000,
        "test_size": None,
        "seeds": (0, 1, 2, 3, 4),
        "teacher_epochs": 20,
        "epochs": 20,
        "batch_size": 128,
        "teacher_width": 1.0,
    },
}

PROFILE_FIELDS = ("train_size", "validation_size", "seeds", "teacher_epochs", "epochs")


def settings(profile: Profile) -> Profile:
    """`profile` with this study's data, models, seeds and budgets for its name."""
    s = SETTINGS[profile.name]
    fields = PER_SEED_TEACHERS | COMMON | {k: s[k] for k in (*PROFILE_FIELDS, "batch_size")}
    return profile.replace(**fields, budgets=(fields["epochs"],))


def extra(profile: Profile) -> dict:
    """This study's settings that a `Profile` has no field for."""
    s = SETTINGS[profile.name]
    return {"teacher_width": s["teacher_width"], "test_size": s["test_size"]}


def conditions(profile: Profile) -> list[str]:
    return list(CONDITIONS)


def datasets(profile: Profile, condition: str) -> set[str]:
    return {settings(profile).dataset}


def alpha_of(condition: str) -> float:
    """The alpha of a student condition ('alpha_0p5' -> 0.5)."""
    for alpha in ALPHAS:
        if alpha_slug(alpha) == condition:
            return alpha
    raise ValueError(f"unknown condition={condition!r}; choose one of {list(CONDITIONS)}")


# --- configs ---------------------------------------------------------------------------------


def _training(p: Profile, epochs: int) -> dict:
    """The optimiser, schedule and augmentation every model trains with."""
    return {
        "epochs": epochs,
        "batch_size": p.batch_size,
        "optimizer": "sgd",
        "learning_rate": p.learning_rate,
        "momentum": MOMENTUM,
        "schedule": SCHEDULE,
        "augmentation": {"random_crop_padding": PADDING, "horizontal_flip": True},
    }


def teacher_config(profile: Profile, seed: int) -> dict:
    """Everything the teacher of `seed` depends on."""
    p, e = settings(profile), extra(profile)
    return {
        "condition": "teacher",
        "seed": int(seed),
        "data": p.data_config(seed),
        "test_size": e["test_size"],
        "model": p.teacher,
        "width": e["teacher_width"],
        **_training(p, p.teacher_epochs),
    }


def run_config(profile: Profile, condition: str, seed: int) -> dict:
    """Everything one run of `condition` depends on; stored in, and matched against, its record."""
    if condition == "teacher":
        return teacher_config(profile, seed)
    p, e = settings(profile), extra(profile)
    return {
        "condition": condition,
        "seed": int(seed),
        "data": p.data_config(seed),
        "test_size": e["test_size"],
        "model": p.student,
        "alpha": alpha_of(condition),
        "temperature": p.temperature,
        "teacher": config_key(teacher_config(profile, seed)),
        "teacher_per_step": True,
        **_training(p, p.epochs),
    }


def record_path(directory: Path, seed: int) -> Path:
    return Path(directory) / "runs" / f"seed{seed}.json"


def load_record(profile: Profile, condition: str, seed: int, directory: Path) -> dict | None:
    """The stored record of this run if its config matches, else None."""
    record = read_json(record_path(directory, seed))
    if record and same_config(record.get("config"), run_config(profile, condition, seed)):
        return record
    return None


def is_done(profile: Profile, condition: str, directory: Path) -> bool:
    return all(load_record(profile, condition, seed, directory) for seed in settings(profile).seeds)


# --- data and training -----------------------------------------------------------------------


def load_data(profile: Profile, seed: int) -> Dataset:
    """The seed's split of CIFAR-10, with the profile's (fixed) subset of the test set."""
    data = load_dataset(**settings(profile).data_config(seed))
    test_size = extra(profile)["test_size"]
    if test_size is None:
        return data
    keep = np.random.default_rng(TEST_PERMUTATION_SEED).permutation(len(data.y_test))[:test_size]
    keep.sort()
    return dataclasses.replace(data, x_test=data.x_test[keep], y_test=data.y_test[keep])


def sgd(p: Profile, examples: int, epochs: int) -> keras.optimizers.Optimizer:
    """SGD with momentum; the learning rate decays from `p.learning_rate` to 0 along a cosine."""
    steps = epochs * -(-examples // p.batch_size)
    schedule = keras.optimizers.schedules.CosineDecay(p.learning_rate, steps)
    return keras.optimizers.SGD(schedule, momentum=MOMENTUM)


def _predict(model: keras.Model, data: Dataset) -> dict[str, np.ndarray]:
    splits = {"train": data.x_train, "val": data.x_val, "test": data.x_test}
    return {s: model.predict(x, batch_size=512, verbose=0) for s, x in splits.items()}


def _accuracies(logits: dict[str, np.ndarray], data: Dataset) -> dict[str, float]:
    """Accuracy on the un-augmented training images, validation and test."""
    labels = {"train": data.y_train, "val": data.y_val, "test": data.y_test}
    return {f"final_{s}_accuracy": metrics.accuracy(logits[s], labels[s]) for s in labels}


def _sizes(data: Dataset) -> dict[str, int]:
    return {
        "train_examples": len(data.y_train),
        "val_examples": len(data.y_val),
        "test_examples": len(data.y_test),
    }


# --- the teacher -----------------------------------------------------------------------------


def teacher_weights_path(directory: Path, seed: int) -> Path:
    return Path(directory) / "weights" / f"seed{seed}.weights.h5"


def teacher_logits_path(directory: Path, seed: int) -> Path:
    return Path(directory) / "logits" / f"seed{seed}.npz"


def build_teacher(profile: Profile, data: Dataset) -> keras.Model:
    return alexnet_cifar(
        data.x_train.shape[1:], data.num_classes, width=extra(profile)["teacher_width"]
    )


def train_teacher(profile: Profile, seed: int, directory: Path, data: Dataset) -> dict:
    """Train the AlexNet-style teacher on augmented images; store record, weights and logits."""
    p, config = settings(profile), teacher_config(profile, seed)
    set_seed(seed)
    teacher = build_teacher(profile, data)
    model = keras.Sequential([crop_and_flip(PADDING, seed=seed), teacher], name="augmented")
    history, seconds = fit_supervised(
        model, sgd(p, len(data.y_train), p.teacher_epochs), data, p.batch_size, p.teacher_epochs
    )
    logits = _predict(teacher, data)
    record = {
        "config": config,
        "parameters": teacher.count_params(),
        **_sizes(data),
        "history": epoch_records(history),
        **_accuracies(logits, data),
        "train_seconds": seconds,
        "environment": environment(),
    }
    teacher_weights_path(directory, seed).parent.mkdir(parents=True, exist_ok=True)
    teacher.save_weights(teacher_weights_path(directory, seed))
    write_npz(teacher_logits_path(directory, seed), val=logits["val"], test=logits["test"])
    write_json(record_path(directory, seed), record)  # last: a record means the rest is there
    return record


def get_teacher(
    profile: Profile, seed: int, directory: Path, data: Dataset
) -> tuple[dict, keras.Model, dict]:
    """(record, frozen model, cached val/test logits) of teacher `seed`, trained if missing."""
    record = load_record(profile, "teacher", seed, directory)
    weights, logits = teacher_weights_path(directory, seed), teacher_logits_path(directory, seed)
    teacher = build_teacher(profile, data)
    cached = read_npz(logits, ("val", "test")) if record else None
    if cached is None or not load_weights(teacher, weights):
        record = train_teacher(profile, seed, directory, data)
        teacher.load_weights(weights)
        cached = read_npz(logits, ("val", "test"))
    return record, teacher, cached


# --- the students ----------------------------------------------------------------------------


def train_student(
    profile: Profile, condition: str, seed: int, directory: Path, data: Dataset
) -> dict:
    """Distil a new small CNN at the condition's alpha, the teacher on every augmented batch."""
    p, config = settings(profile), run_config(profile, condition, seed)
    teacher_record, teacher, cached = get_teacher(
        profile, seed, Path(directory).parent / "teacher", data
    )
    set_seed(seed)
    student = build_model(p.student, data.x_train.shape[1:], data.num_classes)
    model = Distiller(
        student,
        teacher,
        alpha=config["alpha"],
        temperature=p.temperature,
        augmentation=crop_and_flip(PADDING, seed=seed),
    )
    model.compile(
        optimizer=sgd(p, len(data.y_train), p.epochs), steps_per_execution=STEPS_PER_EXECUTION
    )
    # Validation images are not augmented, so the teacher's cached logits are valid there.
    val = (with_teacher_logits(data.x_val, cached["val"]), data.y_val)
    start = time.perf_counter()
    history = model.fit(
        data.x_train, data.y_train, validation_data=val, batch_size=p.batch_size,
        epochs=p.epochs, verbose=0,
    ).history  # fmt: skip
    seconds = time.perf_counter() - start
    logits = _predict(student, data)
    record = {
        "config": config,
        "parameters": student.count_params(),
        "teacher_parameters": teacher_record["parameters"],
        **_sizes(data),
        "history": epoch_records(history),
        **_accuracies(logits, data),
        "test_fidelity": metrics.agreement(logits["test"], cached["test"]),
        "teacher_test_accuracy": teacher_record["final_test_accuracy"],
        "train_seconds": seconds,
        "environment": environment(),
    }
    finite = all(np.isfinite(v) for h in record["history"] for v in h.values())
    if not finite:
        raise FloatingPointError(f"a non-finite loss or metric in {condition} seed {seed}")
    write_json(record_path(directory, seed), record)
    return record


def run(profile: Profile, condition: str, directory: Path) -> list[dict]:
    """Every seed of `condition`; stored records whose config matches are reused."""
    directory = Path(directory)
    records = []
    for seed in settings(profile).seeds:
        record = load_record(profile, condition, seed, directory)
        if record is None:
            data = load_data(profile, seed)
            if condition == "teacher":
                record = train_teacher(profile, seed, directory, data)
            else:
                record = train_student(profile, condition, seed, directory, data)
        records.append(record)
    return records


# --- tables, numbers and figures for the chapter ---------------------------------------------


def summary(records: list[dict]) -> pd.DataFrame:
    """One row per seed: final accuracies (clean training images, validation, test)."""
    rows = []
    for r in records:
        row = {
            "seed": r["config"]["seed"],
            "epochs": r["config"]["epochs"],
            "train accuracy": r["final_train_accuracy"],
            "validation accuracy": r["final_val_accuracy"],
            "test accuracy": r["final_test_accuracy"],
        }
        if "test_fidelity" in r:
            row["test fidelity"] = r["test_fidelity"]
        row["train seconds"] = round(r["train_seconds"], 1)
        rows.append(row)
    return pd.DataFrame(rows).set_index("seed")


def _by_seed(records: list[dict], key: str) -> np.ndarray:
    return np.array([r[key] for r in sorted(records, key=lambda r: r["config"]["seed"])])


def label(condition: str) -> str:
    """'teacher', or 'student, α = 0.5'."""
    if condition == "teacher":
        return "teacher (AlexNet-style)"
    return f"student, α = {alpha_of(condition):g}"


def accuracy_table(study: dict[str, list[dict]]) -> pd.DataFrame:
    """Final accuracies of every model: mean over seeds with a 95% CI."""
    rows = []
    for condition in (c for c in CONDITIONS if c in study):
        records = study[condition]
        row = {"model": label(condition), "parameters": f"{records[0]['parameters']:,}"}
        for split, name in (("train", "train"), ("val", "validation"), ("test", "test")):
            row[f"{name} accuracy"] = format_ci(
                mean_ci(_by_seed(records, f"final_{split}_accuracy"))
            )
        rows.append(row)
    return pd.DataFrame(rows).set_index("model")


def _diff(summary: dict) -> str:
    """'+1.23 points [+0.10, +2.36], p = 0.041' for a paired difference of accuracies."""
    if np.isnan(summary["half_width"]):
        return f"{100 * summary['mean']:+.2f} points (one seed: no interval)"
    return (
        f"{100 * summary['mean']:+.2f} points [{100 * summary['low']:+.2f}, "
        f"{100 * summary['high']:+.2f}], p = {summary['p_value']:.3f}"
    )


def _verdict(summary: dict, words=("higher", "lower", "within seed-to-seed noise")) -> str:
    """Whether a paired difference is positive, negative, or within seed noise."""
    if np.isnan(summary["half_width"]) or summary["low"] <= 0 <= summary["high"]:
        return words[2]
    return words[0] if summary["mean"] > 0 else words[1]


STRONGER = ("stronger than", "weaker than", "not distinguishable, over these seeds, from")


def numbers(study: dict[str, list[dict]], profile: Profile) -> dict[str, str]:
    """Every number the chapter states, formatted, from the records only."""
    teacher = study["teacher"]
    scratch = study[alpha_slug(1.0)]
    config = scratch[0]["config"]
    full = settings_table_values(_full(profile))
    out = {
        "n_seeds": str(len(teacher)),
        "train_size": f"{teacher[0]['train_examples']:,}",
        "val_size": f"{teacher[0]['val_examples']:,}",
        "test_size": f"{teacher[0]['test_examples']:,}",
        "teacher_epochs": str(teacher[0]["config"]["epochs"]),
        "student_epochs": str(config["epochs"]),
        "batch_size": str(config["batch_size"]),
        "learning_rate": f"{config['learning_rate']:g}",
        "momentum": f"{config['momentum']:g}",
        "temperature": f"{config['temperature']:g}",
        "padding": str(config["augmentation"]["random_crop_padding"]),
        "teacher_width": f"{teacher[0]['config']['width']:g}",
        "teacher_parameters": f"{teacher[0]['parameters']:,}",
        "student_parameters": f"{scratch[0]['parameters']:,}",
        "seconds": f"{sum(r['train_seconds'] for rs in study.values() for r in rs):.0f}",
        "teacher_test": format_ci(mean_ci(_by_seed(teacher, "final_test_accuracy"))),
        "teacher_train": format_ci(mean_ci(_by_seed(teacher, "final_train_accuracy"))),
    } | {f"full_{k}": v for k, v in full.items()}
    base = _by_seed(scratch, "final_test_accuracy")
    for alpha in ALPHAS:
        c, key = alpha_slug(alpha), alpha_slug(alpha).replace("alpha_", "a")
        if c not in study:
            continue
        records = study[c]
        out[f"{key}_test"] = format_ci(mean_ci(_by_seed(records, "final_test_accuracy")))
        out[f"{key}_train"] = format_ci(mean_ci(_by_seed(records, "final_train_accuracy")))
        out[f"{key}_val"] = format_ci(mean_ci(_by_seed(records, "final_val_accuracy")))
        out[f"{key}_fidelity"] = format_ci(mean_ci(_by_seed(records, "test_fidelity")))
        gap = paired_difference(
            _by_seed(records, "final_train_accuracy"), _by_seed(records, "final_test_accuracy")
        )
        out[f"{key}_gap"] = _diff(gap)
        if alpha != 1.0:
            d = paired_difference(_by_seed(records, "final_test_accuracy"), base)
            out[f"{key}_minus_a1p0"] = _diff(d)
            out[f"{key}_verdict"] = _verdict(d)
    d = paired_difference(
        _by_seed(study[alpha_slug(0.5)], "final_test_accuracy"),
        _by_seed(study[alpha_slug(0.0)], "final_test_accuracy"),
    )
    out["a0p5_minus_a0p0"] = _diff(d)
    out["a0p5_vs_a0p0_verdict"] = _verdict(d)
    best = max(ALPHAS, key=lambda a: _by_seed(study[alpha_slug(a)], "final_val_accuracy").mean())
    out["best_val_alpha"] = f"{best:g}"
    for name, alpha in (("best", best), ("a1p0", 1.0)):
        d = paired_difference(
            _by_seed(teacher, "final_test_accuracy"),
            _by_seed(study[alpha_slug(alpha)], "final_test_accuracy"),
        )
        out[f"teacher_minus_{name}"] = _diff(d)
        out[f"teacher_vs_{name}"] = _verdict(d, STRONGER)
    return out


def _full(profile: Profile) -> Profile:
    from kdutils.profiles import get_profile

    return get_profile("full") if profile.name != "full" else profile


def settings_table_values(profile: Profile) -> dict[str, str]:
    """The scale of `profile`, formatted: images, epochs, teacher width and parameters."""
    p, e = settings(profile), extra(profile)
    train = p.train_size if p.train_size is not None else 50_000 - p.validation_size
    return {
        "train_size": f"{train:,}",
        "val_size": f"{p.validation_size:,}",
        "test_size": f"{e['test_size'] or 10_000:,}",
        "teacher_epochs": str(p.teacher_epochs),
        "student_epochs": str(p.epochs),
        "teacher_width": f"{e['teacher_width']:g}",
        "teacher_parameters": f"{alexnet_cifar(width=e['teacher_width']).count_params():,}",
        "seeds": str(len(p.seeds)),
    }


def setup_table(profile: Profile) -> pd.DataFrame:
    """What the report did (as far as this book knows it) next to this profile and `full`."""
    rows = {
        "teacher": (REPORT["teacher"], "`alexnet_cifar`: 5 conv with BatchNorm, 3 dense"),
        "students": (REPORT["students"], "`cnn_bn_student`, 2 x [conv, BatchNorm, ReLU, pool]"),
        "α (weight on the hard labels)": ("1, 0, 0.5 (convention not known here)", "1, 0, 0.5"),
        "optimiser": (REPORT["optimiser"], f"SGD, momentum {MOMENTUM:g}, {SCHEDULE}"),
        "augmentation": (REPORT["augmentation"], f"the same: {PADDING}-pixel padding, crop, flip"),
        "teacher under augmentation": ("not known here", "run at every step on the same batch"),
    }
    out = []
    for name, (report, ours) in rows.items():
        out.append({"": name, "report": report, "this book (every profile)": ours})
    for name in dict.fromkeys((profile.name, "full")):
        v = settings_table_values(_full(profile) if name == "full" else profile)
        ours = (
            f"{v['train_size']} training, {v['val_size']} validation, {v['test_size']} test "
            f"images; teacher width {v['teacher_width']} ({v['teacher_parameters']} parameters), "
            f"{v['teacher_epochs']} epochs; students {v['student_epochs']} epochs; "
            f"{v['seeds']} seeds"
        )
        row = {"": f"scale ({name} profile)", "report": "—", "this book (every profile)": ours}
        out.append(row)
    return pd.DataFrame(out).set_index("")


def _band(ax, curves: np.ndarray, color: str, label: str, style: str = "-", top=None) -> None:
    """Mean over seeds (rows) with a 95% CI band, per epoch (columns), clipped to [0, top]."""
    cis = [mean_ci(c) for c in curves.T]
    mean = np.array([c["mean"] for c in cis])
    half = np.nan_to_num(np.array([c["half_width"] for c in cis]))
    epochs = np.arange(1, len(mean) + 1)
    ax.plot(epochs, mean, style, marker="o", ms=3, color=color, label=label)
    low, high = np.clip(mean - half, 0, top), np.clip(mean + half, 0, top)
    ax.fill_between(epochs, low, high, color=color, alpha=0.2)
    previous = ax.get_xlim()[1] if len(ax.lines) > 1 else 0.0  # curves may differ in length
    ax.set_xlim(0.5, max(previous, len(mean) + 0.5))
    ax.xaxis.set_major_locator(plt.MaxNLocator(integer=True, min_n_ticks=1))


def _curves(records: list[dict], key: str) -> np.ndarray:
    ordered = sorted(records, key=lambda r: r["config"]["seed"])
    return np.array([[h[key] for h in r["history"]] for r in ordered])


def loss_figure(study: dict[str, list[dict]]) -> plt.Figure:
    """Per student, its training objective on the training (augmented) and validation images,
    and its cross-entropy on the labels: mean over seeds with 95% CI bands."""
    students = [alpha_slug(a) for a in ALPHAS if alpha_slug(a) in study]
    fig, axes = plt.subplots(1, len(students), figsize=(WIDTH, 3.2), sharey=True)
    for ax, condition in zip(np.atleast_1d(axes), students, strict=True):
        records = study[condition]
        _band(ax, _curves(records, "loss"), "C0", "objective, train")
        _band(ax, _curves(records, "val_loss"), "C1", "objective, validation")
        if alpha_of(condition) not in (0.0, 1.0):
            _band(ax, _curves(records, "hard_loss"), "C2", "cross-entropy, train", "--")
            _band(ax, _curves(records, "val_hard_loss"), "C3", "cross-entropy, validation", "--")
        ax.set(title=label(condition), xlabel="epoch", ylim=(0, None))
    np.atleast_1d(axes)[0].set_ylabel("loss")
    handles, labels = [], []
    for ax in np.atleast_1d(axes):
        for h, lab in zip(*ax.get_legend_handles_labels(), strict=True):
            if lab not in labels:
                handles.append(h)
                labels.append(lab)
    fig.legend(handles, labels, loc="lower center", ncol=2, fontsize="small")
    fig.tight_layout(rect=(0, 0.17, 1, 1))
    return fig


def accuracy_figure(study: dict[str, list[dict]]) -> plt.Figure:
    """Accuracy per epoch on the augmented training batches (left) and on validation (right),
    every model, mean over seeds with 95% CI bands."""
    fig, axes = plt.subplots(1, 2, figsize=(WIDTH, 3.6), sharey=True)
    for i, condition in enumerate(c for c in CONDITIONS if c in study):
        for ax, key in zip(axes, ("accuracy", "val_accuracy"), strict=True):
            _band(ax, 100 * _curves(study[condition], key), f"C{i}", label(condition), top=100)
    axes[0].set(title="training batches (augmented)", xlabel="epoch", ylabel="accuracy (%)")
    axes[1].set(title="validation images", xlabel="epoch")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=2, fontsize="small")
    fig.tight_layout(rect=(0, 0.14, 1, 1))
    return fig
