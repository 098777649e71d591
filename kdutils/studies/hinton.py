"""Hinton, Vinyals and Dean (2015), section 3: distillation on MNIST, and the missing digit 3.

A 1200-1200 MLP teacher with dropout, trained on inputs jittered by up to 2 pixels, teaches an
800-800 MLP student at T = 20 on the un-jittered training images. The student is also trained
from scratch (labels only), and distilled on a transfer set with every 3 removed; then the
bias of its class-3 logit is raised, by the paper's 3.5 and by a shift chosen on validation.

Conditions: `teacher`, `scratch`, `distilled`, `omit3`; one record per seed each. Student seed
*s* learns from teacher seed *s*, whose logits are cached under `<study>/teacher/logits/`.
Labels are clean here (noise_rate = 0), unlike the rest of the book. The test set is the full
official MNIST test set (10,000 images) and is never used to choose anything.
"""

from __future__ import annotations

import time
from pathlib import Path

import keras
import numpy as np
import pandas as pd

from kdutils.distill import metrics
from kdutils.distill.data import Dataset, load_dataset
from kdutils.distill.distiller import Distiller, with_teacher_logits
from kdutils.distill.models import build_model
from kdutils.distill.repro import environment, set_seed
from kdutils.profiles import (
    PER_SEED_TEACHERS,
    STEPS_PER_EXECUTION,
    Profile,
    config_key,
)
from kdutils.results import by_seed, epoch_records, seed_table, stored_record, write_json
from kdutils.teacher_cache import (
    Teacher,
    TeacherSpec,
    cached_teacher,
    compile_supervised,
    study_teacher_paths,
)

TITLE = "Hinton et al. (2015) on MNIST"

# What Hinton, Vinyals and Dean (2015, section 3) report on MNIST, quoted for comparison only.
# Errors are counts on the 10,000 official test images.
PAPER = {
    "test_images": 10_000,
    "train_images": 60_000,
    "temperature": 20.0,
    "jitter_pixels": 2,
    "teacher_errors": 67,  # 784-1200-1200-10, dropout and weight constraints, jittered inputs
    "scratch_errors": 146,  # 784-800-800-10, no regularisation, labels only
    "distilled_errors": 74,  # the same student, also matching the teacher's soft targets at T=20
    "omit3_errors": 206,  # distilled on a transfer set with no 3s
    "omit3_errors_on_3s": 133,
    "test_3s": 1010,  # 3s in the MNIST test set
    "omit3_bias_shift": 3.5,  # added to the 3's bias ("which optimizes ... on the test set")
    "omit3_shifted_errors": 109,
    "omit3_shifted_errors_on_3s": 14,
}

# The paper gives no number for the weights of its two objectives, only that the best results
# came from "a considerably lower weight" on the hard labels (section 2), with the soft term
# multiplied by T^2. In this book's convention (alpha weights the hard labels, the soft term
# carries T^2) we read that as alpha = 0.1: hard labels 1 part in 10.
ALPHA = 0.1
OMITTED = 3  # the digit left out of the omit3 transfer set
JITTER = PAPER["jitter_pixels"]
# Bias shifts of the omitted class's logit, scanned on validation and test: 0, 0.1, ..., 15.
SHIFTS = tuple(round(0.1 * i, 1) for i in range(151))

CONDITIONS = ("teacher", "scratch", "distilled", "omit3")
SCHEDULE = "cosine decay to 0"  # of every model's learning rate, see `adam`

# Everything every profile shares: MNIST with clean labels, the paper's models and temperature.
COMMON = {
    "dataset": "mnist",
    "test_size": None,  # the paper's counts are on all 10,000 test images, in every profile
    "noise_rate": 0.0,
    "temperature": PAPER["temperature"],
    "alphas": (ALPHA,),
    "learning_rate": 1e-3,
    "teacher": "hinton_teacher_mlp",
    "student": "hinton_student_mlp",
}

# Per profile: data size, seeds and training length (`epochs` is the students').
SETTINGS = {
    # CI: every code path in seconds.
    "smoke": {
        "train_size": 1_000,
        "validation_size": 1_000,
        "seeds": (0, 1),
        "teacher_epochs": 2,
        "epochs": 2,
        "batch_size": 128,
    },
    # The book, on 2 CPU cores: a sixth of the training images and short training.
    "default": {
        "train_size": 10_000,
        "validation_size": 5_000,
        "seeds": (0, 1, 2),
        "teacher_epochs": 20,
        "epochs": 20,
        "batch_size": 128,
    },
    # The paper's scale, for a GPU: every training image but the 5,000 kept for validation,
    # and long training (the paper does not state its number of epochs).
    "full": {
        "train_size": None,
        "validation_size": 5_000,
        "seeds": (0, 1, 2, 3, 4),
        "teacher_epochs": 300,
        "epochs": 150,
        "batch_size": 128,
    },
}


def settings(profile: Profile) -> Profile:
    """`profile` with this study's data, models, seeds and budgets for its name."""
    fields = PER_SEED_TEACHERS | COMMON | SETTINGS[profile.name]
    return profile.replace(**fields, budgets=(fields["epochs"],))


def conditions(profile: Profile) -> list[str]:
    return list(CONDITIONS)


def datasets(profile: Profile, condition: str) -> set[str]:
    return {settings(profile).dataset}


# --- configs ---------------------------------------------------------------------------------


def teacher_config(p: Profile, seed: int) -> dict:
    """Everything the teacher of `seed` depends on (`p` from `settings`)."""
    return p.teacher_config(seed) | {"jitter_pixels": JITTER, "schedule": SCHEDULE}


def run_config(p: Profile, condition: str, seed: int) -> dict:
    """Everything one run of `condition` depends on; stored in, and matched against, its record."""
    if condition not in CONDITIONS:
        raise ValueError(f"unknown condition={condition!r}; choose one of {list(CONDITIONS)}")
    if condition == "teacher":
        return teacher_config(p, seed)
    config = {
        "condition": condition,
        "seed": int(seed),
        "data": p.data_config(seed),
        "model": p.student,
        "epochs": p.epochs,
        "batch_size": p.batch_size,
        "learning_rate": p.learning_rate,
        "schedule": SCHEDULE,
        "alpha": 1.0 if condition == "scratch" else ALPHA,
    }
    if condition != "scratch":
        config |= {"temperature": p.temperature, "teacher": config_key(teacher_config(p, seed))}
    if condition == "omit3":
        config |= {"omitted_class": OMITTED, "bias_shifts": list(SHIFTS)}
    return config


def record_path(directory: Path, seed: int) -> Path:
    return Path(directory) / "runs" / f"seed{seed}.json"


def load_record(p: Profile, condition: str, seed: int, directory: Path) -> dict | None:
    """The stored record of this run if its config matches, else None."""
    return stored_record(record_path(directory, seed), run_config(p, condition, seed))


def is_done(profile: Profile, condition: str, directory: Path) -> bool:
    p = settings(profile)
    return all(load_record(p, condition, seed, directory) for seed in p.seeds)


# --- data and scores -------------------------------------------------------------------------


def jitter(images: np.ndarray, pixels: int, rng: np.random.Generator) -> np.ndarray:
    """Each image shifted by its own random (dy, dx) in [-pixels, pixels]^2, zeros shifted in."""
    n, height, width = images.shape[:3]
    shifts = rng.integers(-pixels, pixels + 1, size=(n, 2))
    pad = [(0, 0), (pixels, pixels), (pixels, pixels)] + [(0, 0)] * (images.ndim - 3)
    padded = np.pad(images, pad)
    out = np.empty_like(images)
    for dy in range(-pixels, pixels + 1):
        for dx in range(-pixels, pixels + 1):
            idx = np.flatnonzero((shifts[:, 0] == dy) & (shifts[:, 1] == dx))
            top, left = pixels - dy, pixels - dx
            out[idx] = padded[idx, top : top + height, left : left + width]
    return out


def error_counts(logits: np.ndarray, labels: np.ndarray, num_classes: int = 10) -> dict:
    """Errors in all, and per true class."""
    wrong = np.argmax(logits, axis=-1) != labels
    return {
        "errors": int(wrong.sum()),
        "errors_by_class": np.bincount(labels[wrong], minlength=num_classes).tolist(),
        "count_by_class": np.bincount(labels, minlength=num_classes).tolist(),
    }


def shifted_errors(
    logits: np.ndarray, labels: np.ndarray, cls: int, shifts=SHIFTS
) -> tuple[np.ndarray, np.ndarray]:
    """(errors, errors on class `cls`) after adding each shift to the logit (bias) of `cls`."""
    total, on_cls = [], []
    is_cls = labels == cls
    for shift in shifts:
        z = np.array(logits, dtype=np.float64)
        z[:, cls] += shift
        wrong = np.argmax(z, axis=-1) != labels
        total.append(int(wrong.sum()))
        on_cls.append(int((wrong & is_cls).sum()))
    return np.array(total), np.array(on_cls)


def choose_shift(val_errors, shifts=SHIFTS) -> float:
    """The smallest shift with the fewest validation errors."""
    return float(shifts[int(np.argmin(val_errors))])


def _scores(logits: dict[str, np.ndarray], data: Dataset) -> dict:
    val, test = error_counts(logits["val"], data.y_val), error_counts(logits["test"], data.y_test)
    return {
        "val_errors": val["errors"],
        "val_errors_by_class": val["errors_by_class"],
        "val_count_by_class": val["count_by_class"],
        "test_errors": test["errors"],
        "test_errors_by_class": test["errors_by_class"],
        "test_count_by_class": test["count_by_class"],
        "test_errors_on_omitted": test["errors_by_class"][OMITTED],
        "test_accuracy": metrics.accuracy(logits["test"], data.y_test),
    }


def _predict(model: keras.Model, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {s: model.predict(x, batch_size=1024, verbose=0) for s, x in inputs.items()}


def adam(p: Profile, examples: int, epochs: int) -> keras.optimizers.Optimizer:
    """Adam whose learning rate decays from `p.learning_rate` to 0 along a cosine over the run:
    a constant rate leaves the last epoch's score noisy, most of all under dropout."""
    steps = epochs * -(-examples // p.batch_size)
    return keras.optimizers.Adam(keras.optimizers.schedules.CosineDecay(p.learning_rate, steps))


# --- the teacher -----------------------------------------------------------------------------


def teacher_spec(p: Profile, seed: int, directory: Path) -> TeacherSpec:
    """The cache of the teacher of `seed` in the study's `teacher` folder."""
    return TeacherSpec(teacher_config(p, seed), *study_teacher_paths(directory, seed))


def train_teacher(p: Profile, seed: int, data: Dataset) -> tuple[dict, dict, keras.Model]:
    """Train the dropout teacher on freshly jittered training images every epoch; return its
    (record, logits, model) for the cache (`get_teacher`)."""
    config = teacher_config(p, seed)
    set_seed(seed)
    rng = np.random.default_rng([seed, 2])
    model = build_model(p.teacher, data.x_train.shape[1:], data.num_classes)
    compile_supervised(model, adam(p, len(data.y_train), p.teacher_epochs))
    history: list[dict] = []
    start = time.perf_counter()
    for epoch in range(p.teacher_epochs):
        fit = model.fit(
            jitter(data.x_train, JITTER, rng),
            data.y_train,
            validation_data=(data.x_val, data.y_val),
            batch_size=p.batch_size,
            initial_epoch=epoch,
            epochs=epoch + 1,
            verbose=0,
        )
        history += epoch_records(fit.history)
    seconds = time.perf_counter() - start
    # Logits of the un-jittered images: the transfer set has no translations.
    logits = _predict(model, {"train": data.x_train, "val": data.x_val, "test": data.x_test})
    record = {
        "config": config,
        "parameters": model.count_params(),
        "train_examples": len(data.y_train),
        "output_bias": keras.ops.convert_to_numpy(model.layers[-1].bias).tolist(),
        "history": history,
        **_scores(logits, data),
        "train_seconds": seconds,
        "environment": environment(),
    }
    return record, logits, model


def get_teacher(p: Profile, seed: int, directory: Path, data: Dataset) -> Teacher:
    """The cached teacher of `seed`, trained first if there is none for this config."""
    return cached_teacher(teacher_spec(p, seed, directory), lambda: train_teacher(p, seed, data))


# --- the students ----------------------------------------------------------------------------


def train_student(p: Profile, condition: str, seed: int, directory: Path, data: Dataset) -> dict:
    """Train a new 800-800 student for `condition` and write its record."""
    config = run_config(p, condition, seed)
    x, y, val = data.x_train, data.y_train, (data.x_val, data.y_val)
    teacher = None
    if condition != "scratch":
        cached = get_teacher(p, seed, Path(directory).parent / "teacher", data)
        teacher_record, teacher = cached.record, cached.logits
    set_seed(seed)
    student = build_model(p.student, x.shape[1:], data.num_classes)
    if condition == "scratch":
        model = student
        compile_supervised(model, adam(p, len(y), p.epochs))
    else:
        keep = y != OMITTED if condition == "omit3" else np.ones(len(y), dtype=bool)
        x, y = with_teacher_logits(x[keep], teacher["train"][keep]), y[keep]
        val = (with_teacher_logits(data.x_val, teacher["val"]), data.y_val)
        model = Distiller(student, alpha=config["alpha"], temperature=p.temperature)
        model.compile(optimizer=adam(p, len(y), p.epochs), steps_per_execution=STEPS_PER_EXECUTION)
    start = time.perf_counter()
    history = model.fit(
        x, y, validation_data=val, batch_size=p.batch_size, epochs=p.epochs, verbose=0
    ).history
    seconds = time.perf_counter() - start
    logits = _predict(student, {"val": data.x_val, "test": data.x_test})
    record = {
        "config": config,
        "parameters": student.count_params(),
        "train_examples": len(y),
        "output_bias": keras.ops.convert_to_numpy(student.layers[-1].bias).tolist(),
        "history": epoch_records(history),
        **_scores(logits, data),
        "train_seconds": seconds,
        "environment": environment(),
    }
    if teacher is not None:
        record["test_fidelity"] = metrics.agreement(logits["test"], teacher["test"])
        record["teacher_test_errors"] = teacher_record["test_errors"]
    if condition == "omit3":
        record |= bias_shift_scores(logits, data)
    write_json(record_path(directory, seed), record)
    return record


def bias_shift_scores(logits: dict[str, np.ndarray], data: Dataset) -> dict:
    """Errors after raising the omitted class's bias: at every shift, the paper's, and the one
    with the fewest validation errors."""
    val, val_on = shifted_errors(logits["val"], data.y_val, OMITTED)
    test, test_on = shifted_errors(logits["test"], data.y_test, OMITTED)
    chosen = choose_shift(val)
    paper = SHIFTS.index(PAPER["omit3_bias_shift"])
    best = SHIFTS.index(chosen)
    return {
        "shift_curve": {
            "shift": list(SHIFTS),
            "val_errors": val.tolist(),
            "val_errors_on_omitted": val_on.tolist(),
            "test_errors": test.tolist(),
            "test_errors_on_omitted": test_on.tolist(),
        },
        "paper_shift": PAPER["omit3_bias_shift"],
        "paper_shift_test_errors": int(test[paper]),
        "paper_shift_test_errors_on_omitted": int(test_on[paper]),
        "chosen_shift": chosen,
        "chosen_shift_val_errors": int(val[best]),
        "chosen_shift_test_errors": int(test[best]),
        "chosen_shift_test_errors_on_omitted": int(test_on[best]),
    }


def run(profile: Profile, condition: str, directory: Path) -> list[dict]:
    """Every seed of `condition`; stored records whose config matches are reused."""
    p, directory = settings(profile), Path(directory)

    def train(seed: int) -> dict:
        data = load_dataset(**p.data_config(seed))
        if condition == "teacher":
            return get_teacher(p, seed, directory, data).record
        return train_student(p, condition, seed, directory, data)

    return [load_record(p, condition, seed, directory) or train(seed) for seed in p.seeds]


# --- what the chapter and the run pages read ---------------------------------------------


def summary(records: list[dict]) -> pd.DataFrame:
    """One row per seed: errors on the 10,000 test images, on its 3s, and on validation."""
    return seed_table(records, _columns)


def _columns(r: dict) -> dict:
    """A record's errors for `summary`, and with a bias shift, those after it."""
    row = {
        "train examples": r["train_examples"],
        "validation errors": r["val_errors"],
        "test errors": r["test_errors"],
        f"test errors on {OMITTED}s": r["test_errors_on_omitted"],
    }
    if "chosen_shift" in r:
        paper = f"{r['paper_shift']:g}"
        row[f"errors, shift {paper}"] = r["paper_shift_test_errors"]
        row[f"on {OMITTED}s, shift {paper}"] = r["paper_shift_test_errors_on_omitted"]
        row["shift chosen on validation"] = r["chosen_shift"]
        row["errors, chosen shift"] = r["chosen_shift_test_errors"]
        row[f"on {OMITTED}s, chosen shift"] = r["chosen_shift_test_errors_on_omitted"]
    return row


def gap_closed(study: dict[str, list[dict]]) -> np.ndarray:
    """Per seed, (scratch − distilled) / (scratch − teacher) test errors: the share of the
    student's gap to its teacher that distillation closes."""
    scratch = by_seed(study["scratch"], "test_errors").astype(float)
    distilled = by_seed(study["distilled"], "test_errors")
    teacher = by_seed(study["teacher"], "test_errors")
    return (scratch - distilled) / (scratch - teacher)


def bias_gap(records: list[dict]) -> np.ndarray:
    """Per seed, the learned output bias of the omitted class minus the mean of the others'."""
    bias = by_seed(records, "output_bias")
    others = np.delete(bias, OMITTED, axis=1).mean(axis=1)
    return bias[:, OMITTED] - others
