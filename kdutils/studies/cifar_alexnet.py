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
import numpy as np
import pandas as pd

from kdutils.distill import metrics
from kdutils.distill.augment import crop_and_flip
from kdutils.distill.data import Dataset, load_dataset
from kdutils.distill.distiller import Distiller, with_teacher_logits
from kdutils.distill.models import alexnet_cifar, build_model
from kdutils.distill.repro import environment, set_seed
from kdutils.profiles import (
    PER_SEED_TEACHERS,
    STEPS_PER_EXECUTION,
    Profile,
    alpha_slug,
    config_key,
)
from kdutils.results import epoch_records, seed_table, stored_record, write_json
from kdutils.teacher_cache import (
    Teacher,
    TeacherSpec,
    cached_teacher,
    fit_supervised,
    study_teacher_paths,
)

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
# network of `kdutils.distill.models.alexnet_cifar`) and how many test images are scored.
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
    return stored_record(record_path(directory, seed), run_config(profile, condition, seed))


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


def teacher_spec(profile: Profile, seed: int, directory: Path) -> TeacherSpec:
    """The cache of the teacher of `seed` in the teacher folder `directory`: its record,
    weights and validation and test logits (the students see augmented training images)."""
    paths = study_teacher_paths(directory, seed)
    return TeacherSpec(teacher_config(profile, seed), *paths, splits=("val", "test"))


def build_teacher(profile: Profile, data: Dataset) -> keras.Model:
    return alexnet_cifar(
        data.x_train.shape[1:], data.num_classes, width=extra(profile)["teacher_width"]
    )


def train_teacher(profile: Profile, seed: int, data: Dataset) -> tuple[dict, dict, keras.Model]:
    """Train the AlexNet-style teacher on augmented images; return its (record, logits,
    model) for the cache (`get_teacher`)."""
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
    return record, logits, teacher


def get_teacher(profile: Profile, seed: int, directory: Path, data: Dataset) -> Teacher:
    """The teacher of `seed` with its frozen model and cached val/test logits, trained if
    missing."""
    spec = teacher_spec(profile, seed, directory)
    train = lambda: train_teacher(profile, seed, data)  # noqa: E731
    return cached_teacher(spec, train, lambda: build_teacher(profile, data))


# --- the students ----------------------------------------------------------------------------


def train_student(
    profile: Profile, condition: str, seed: int, directory: Path, data: Dataset
) -> dict:
    """Distil a new small CNN at the condition's alpha, the teacher on every augmented batch."""
    p, config = settings(profile), run_config(profile, condition, seed)
    found = get_teacher(profile, seed, Path(directory).parent / "teacher", data)
    teacher_record, teacher, cached = found.record, found.model, found.logits
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

    def train(seed: int) -> dict:
        data = load_data(profile, seed)
        if condition == "teacher":
            return get_teacher(profile, seed, directory, data).record
        return train_student(profile, condition, seed, directory, data)

    seeds = settings(profile).seeds
    return [load_record(profile, condition, seed, directory) or train(seed) for seed in seeds]


# --- reading the records: the run pages and the chapter -----------------------------------


def summary(records: list[dict]) -> pd.DataFrame:
    """One row per seed: final accuracies (clean training images, validation, test)."""
    return seed_table(
        records,
        lambda r: {
            "train accuracy": r["final_train_accuracy"],
            "validation accuracy": r["final_val_accuracy"],
            "test accuracy": r["final_test_accuracy"],
        },
    )
