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
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from kdutils import metrics
from kdutils.data import Dataset, load_dataset
from kdutils.distiller import Distiller, with_teacher_logits
from kdutils.models import build_model
from kdutils.plots import WIDTH
from kdutils.profiles import (
    PER_SEED_TEACHERS,
    STEPS_PER_EXECUTION,
    Profile,
    config_key,
    same_config,
)
from kdutils.repro import environment, set_seed
from kdutils.results import epoch_records, read_json, read_npz, write_json, write_npz
from kdutils.stats import format_ci, mean_ci, paired_difference

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

# The paper's setup as it states it (section 3), for the side-by-side table.
PAPER_SETUP = {
    "training images": "60,000 (all)",
    "validation images": "not stated",
    "test images": "10,000",
    "teacher": "784-1200-1200-10 ReLU; dropout and weight constraints as in Hinton et al. "
    "(2012); inputs jittered by up to 2 pixels",
    "student": "784-800-800-10 ReLU, no regularisation",
    "labels": "MNIST's own",
    "temperature": "20",
    "weight on the hard labels": '"considerably lower" than on the soft targets (no number)',
    "optimiser, batch size, epochs": "not stated",
    "runs per number": "1 (no seeds or intervals reported)",
}

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
    record = read_json(record_path(directory, seed))
    if record and same_config(record.get("config"), run_config(p, condition, seed)):
        return record
    return None


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


def teacher_logits_path(directory: Path, seed: int) -> Path:
    return Path(directory) / "logits" / f"seed{seed}.npz"


def load_teacher(p: Profile, seed: int, directory: Path) -> tuple[dict, dict] | None:
    """(record, logits per split) of the cached teacher of `seed`, if its config matches."""
    record = load_record(p, "teacher", seed, directory)
    if record is None:
        return None
    logits = read_npz(teacher_logits_path(directory, seed), ("train", "val", "test"))
    return None if logits is None else (record, logits)


def train_teacher(p: Profile, seed: int, directory: Path, data: Dataset) -> tuple[dict, dict]:
    """Train the dropout teacher on freshly jittered training images every epoch; cache it."""
    config = teacher_config(p, seed)
    set_seed(seed)
    rng = np.random.default_rng([seed, 2])
    model = build_model(p.teacher, data.x_train.shape[1:], data.num_classes)
    model.compile(
        optimizer=adam(p, len(data.y_train), p.teacher_epochs),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
        steps_per_execution=STEPS_PER_EXECUTION,
    )
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
    write_npz(teacher_logits_path(directory, seed), **logits)
    write_json(record_path(directory, seed), record)  # last: a record means logits are complete
    return record, logits


def get_teacher(p: Profile, seed: int, directory: Path, data: Dataset) -> tuple[dict, dict]:
    """The cached teacher of `seed`, trained first if there is none for this config."""
    return load_teacher(p, seed, directory) or train_teacher(p, seed, directory, data)


# --- the students ----------------------------------------------------------------------------


def train_student(p: Profile, condition: str, seed: int, directory: Path, data: Dataset) -> dict:
    """Train a new 800-800 student for `condition` and write its record."""
    config = run_config(p, condition, seed)
    x, y, val = data.x_train, data.y_train, (data.x_val, data.y_val)
    teacher = None
    if condition != "scratch":
        teacher_record, teacher = get_teacher(p, seed, Path(directory).parent / "teacher", data)
    set_seed(seed)
    student = build_model(p.student, x.shape[1:], data.num_classes)
    if condition == "scratch":
        model = student
        model.compile(
            optimizer=adam(p, len(y), p.epochs),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
            steps_per_execution=STEPS_PER_EXECUTION,
        )
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
    p = settings(profile)
    directory = Path(directory)
    records = []
    for seed in p.seeds:
        record = load_record(p, condition, seed, directory)
        if record is None:
            data = load_dataset(**p.data_config(seed))
            if condition == "teacher":
                record, _ = train_teacher(p, seed, directory, data)
            else:
                record = train_student(p, condition, seed, directory, data)
        records.append(record)
    return records


# --- tables, numbers and figures for the chapter ---------------------------------------------


def summary(records: list[dict]) -> pd.DataFrame:
    """One row per seed: errors on the 10,000 test images, on its 3s, and on validation."""
    rows = []
    for r in records:
        row = {
            "seed": r["config"]["seed"],
            "epochs": r["config"]["epochs"],
            "train examples": r["train_examples"],
            "validation errors": r["val_errors"],
            "test errors": r["test_errors"],
            f"test errors on {OMITTED}s": r["test_errors_on_omitted"],
        }
        if "test_fidelity" in r:
            row["test fidelity"] = r["test_fidelity"]
        if "chosen_shift" in r:
            row[f"errors, shift {r['paper_shift']:g}"] = r["paper_shift_test_errors"]
            row[f"on {OMITTED}s, shift {r['paper_shift']:g}"] = r[
                "paper_shift_test_errors_on_omitted"
            ]
            row["shift chosen on validation"] = r["chosen_shift"]
            row["errors, chosen shift"] = r["chosen_shift_test_errors"]
            row[f"on {OMITTED}s, chosen shift"] = r["chosen_shift_test_errors_on_omitted"]
        row["train seconds"] = round(r["train_seconds"], 1)
        rows.append(row)
    return pd.DataFrame(rows).set_index("seed")


def _by_seed(records: list[dict], key: str) -> np.ndarray:
    return np.array([r[key] for r in sorted(records, key=lambda r: r["config"]["seed"])])


def _range(records: list[dict], key: str) -> tuple[int, int]:
    values = _by_seed(records, key)
    return int(values.min()), int(values.max())


def _ci(values, digits: int = 1) -> str:
    """'83.3 ± 12.1 (95% CI, n=3)' for error counts."""
    return format_ci(mean_ci(values), percent=False, digits=digits)


def _diff(summary: dict) -> str:
    if np.isnan(summary["half_width"]):
        return f"{summary['mean']:+.1f} (one seed: no interval)"
    return (
        f"{summary['mean']:+.1f} errors [{summary['low']:+.1f}, {summary['high']:+.1f}], "
        f"p = {summary['p_value']:.3f}"
    )


# (label, condition, record key, paper key): the rows of the comparison with the paper.
ROWS = (
    ("Teacher 1200-1200, dropout, jitter", "teacher", "test_errors", "teacher_errors"),
    ("Student 800-800 from scratch", "scratch", "test_errors", "scratch_errors"),
    ("Student 800-800 distilled, T = 20", "distilled", "test_errors", "distilled_errors"),
    ("Distilled without 3s", "omit3", "test_errors", "omit3_errors"),
    ("  of which on the 3s", "omit3", "test_errors_on_omitted", "omit3_errors_on_3s"),
    (
        "Distilled without 3s, 3's bias + 3.5",
        "omit3",
        "paper_shift_test_errors",
        "omit3_shifted_errors",
    ),
    (
        "  of which on the 3s",
        "omit3",
        "paper_shift_test_errors_on_omitted",
        "omit3_shifted_errors_on_3s",
    ),
    ("Without 3s, bias shift chosen on validation", "omit3", "chosen_shift_test_errors", None),
    ("  of which on the 3s", "omit3", "chosen_shift_test_errors_on_omitted", None),
)


def comparison_table(study: dict[str, list[dict]]) -> pd.DataFrame:
    """The paper's test-error counts next to this book's (mean over seeds, 95% CI)."""
    rows = []
    for label, condition, key, paper_key in ROWS:
        if condition not in study:
            continue
        rows.append(
            {
                "test errors (of 10,000)": label,
                "paper": "—" if paper_key is None else str(PAPER[paper_key]),
                "this book": _ci(_by_seed(study[condition], key)),
            }
        )
    return pd.DataFrame(rows).set_index("test errors (of 10,000)")


def setup_table(profile: Profile) -> pd.DataFrame:
    """The paper's setup next to this profile's."""
    p = settings(profile)
    train = p.train_size if p.train_size is not None else 60_000 - p.validation_size
    ours = {
        "training images": f"{train:,} (clean labels)",
        "validation images": f"{p.validation_size:,}, from the training set",
        "test images": "10,000 (the official test set)",
        "teacher": "784-1200-1200-10 ReLU; dropout 0.5 on both hidden layers only (no input "
        f"dropout, no weight constraint); inputs jittered by up to {JITTER} pixels, afresh "
        "every epoch",
        "student": "784-800-800-10 ReLU, no regularisation",
        "labels": "MNIST's own (noise_rate = 0)",
        "temperature": f"{p.temperature:g}",
        "weight on the hard labels": f"α = {ALPHA:g} (soft term × T²)",
        "optimiser, batch size, epochs": f"Adam, learning rate {p.learning_rate:g} with "
        f"{SCHEDULE}, batch "
        f"{p.batch_size}; teacher {p.teacher_epochs} epochs, students {p.epochs} epochs",
        "runs per number": f"{len(p.seeds)} seeds; mean and 95% CI",
    }
    rows = [
        {"": k, "paper": v, f"here ({profile.name} profile)": ours[k]}
        for k, v in PAPER_SETUP.items()
    ]
    return pd.DataFrame(rows).set_index("")


def gap_closed(study: dict[str, list[dict]]) -> np.ndarray:
    """Per seed, (scratch − distilled) / (scratch − teacher) test errors: the share of the
    student's gap to its teacher that distillation closes."""
    scratch = _by_seed(study["scratch"], "test_errors").astype(float)
    distilled = _by_seed(study["distilled"], "test_errors")
    teacher = _by_seed(study["teacher"], "test_errors")
    return (scratch - distilled) / (scratch - teacher)


def bias_gap(records: list[dict]) -> np.ndarray:
    """Per seed, the learned output bias of the omitted class minus the mean of the others'."""
    bias = np.array([r["output_bias"] for r in sorted(records, key=lambda r: r["config"]["seed"])])
    others = np.delete(bias, OMITTED, axis=1).mean(axis=1)
    return bias[:, OMITTED] - others


def _larger_than_paper(study: dict[str, list[dict]]) -> str:
    """'7 of 7': in how many rows with a paper number this book's mean exceeds the paper's."""
    rows = [(c, k, pk) for _, c, k, pk in ROWS if pk is not None]
    larger = sum(_by_seed(study[c], k).mean() > PAPER[pk] for c, k, pk in rows)
    return f"{larger} of {len(rows)}"


def _paper_gap_closed() -> float:
    scratch, distilled = PAPER["scratch_errors"], PAPER["distilled_errors"]
    return (scratch - distilled) / (scratch - PAPER["teacher_errors"])


def numbers(study: dict[str, list[dict]]) -> dict[str, str]:
    """Every number the chapter states, formatted, from the records only."""
    teacher, scratch = study["teacher"], study["scratch"]
    distilled, omit3 = study["distilled"], study["omit3"]
    config = distilled[0]["config"]
    n_3s = omit3[0]["test_count_by_class"][OMITTED]
    gain = paired_difference(_by_seed(scratch, "test_errors"), _by_seed(distilled, "test_errors"))
    out = {
        "n_seeds": str(len(teacher)),
        "train_size": f"{teacher[0]['train_examples']:,}",
        "val_size": f"{teacher[0]['config']['data']['validation_size']:,}",
        "test_size": f"{sum(teacher[0]['test_count_by_class']):,}",
        "teacher_epochs": str(teacher[0]["config"]["epochs"]),
        "student_epochs": str(config["epochs"]),
        "batch_size": str(config["batch_size"]),
        "temperature": f"{config['temperature']:g}",
        "alpha": f"{config['alpha']:g}",
        "omit3_train": "{:,} to {:,}".format(*_range(omit3, "train_examples")),
        "test_3s": f"{n_3s:,}",
        "teacher": _ci(_by_seed(teacher, "test_errors")),
        "scratch": _ci(_by_seed(scratch, "test_errors")),
        "distilled": _ci(_by_seed(distilled, "test_errors")),
        "gain": _diff(gain),
        "gain_verdict": _verdict(gain),
        "gap_closed": format_ci(mean_ci(gap_closed(study)), digits=0),
        "paper_gap_closed": f"{100 * _paper_gap_closed():.0f}%",
        "fidelity": format_ci(mean_ci(_by_seed(distilled, "test_fidelity"))),
        "omit3": _ci(_by_seed(omit3, "test_errors")),
        "omit3_on_3s": _ci(_by_seed(omit3, "test_errors_on_omitted")),
        "omit3_others": _ci(
            _by_seed(omit3, "test_errors") - _by_seed(omit3, "test_errors_on_omitted")
        ),
        "paper_shift": _ci(_by_seed(omit3, "paper_shift_test_errors")),
        "paper_shift_on_3s": _ci(_by_seed(omit3, "paper_shift_test_errors_on_omitted")),
        "paper_shift_3s_acc": format_ci(
            mean_ci(1 - _by_seed(omit3, "paper_shift_test_errors_on_omitted") / n_3s)
        ),
        "chosen_shifts": ", ".join(f"{s:g}" for s in _by_seed(omit3, "chosen_shift")),
        "chosen_shift": _ci(_by_seed(omit3, "chosen_shift_test_errors")),
        "chosen_shift_on_3s": _ci(_by_seed(omit3, "chosen_shift_test_errors_on_omitted")),
        "chosen_shift_3s_acc": format_ci(
            mean_ci(1 - _by_seed(omit3, "chosen_shift_test_errors_on_omitted") / n_3s)
        ),
        "seconds": f"{sum(r['train_seconds'] for rs in study.values() for r in rs):.0f}",
    }
    errors, on_3s = _by_seed(omit3, "test_errors"), _by_seed(omit3, "test_errors_on_omitted")
    chosen = _by_seed(omit3, "chosen_shift")
    shift = PAPER["omit3_bias_shift"]
    side = "below" if chosen.max() < shift else "above" if chosen.min() > shift else "around"
    out |= {
        "teacher_on_3s": _ci(_by_seed(teacher, "test_errors_on_omitted")),
        "distilled_on_3s": _ci(_by_seed(distilled, "test_errors_on_omitted")),
        "distilled_others": _ci(
            _by_seed(distilled, "test_errors") - _by_seed(distilled, "test_errors_on_omitted")
        ),
        "omit3_share_3s": format_ci(mean_ci(on_3s / errors), digits=0),
        "paper_omit3_share_3s": f"{100 * PAPER['omit3_errors_on_3s'] / PAPER['omit3_errors']:.0f}%",
        "paper_shifted_3s_acc": (
            f"{100 * (1 - PAPER['omit3_shifted_errors_on_3s'] / PAPER['test_3s']):.1f}%"
        ),
        "omit3_bias_gap": _ci(bias_gap(omit3), digits=2),
        "distilled_bias_gap": _ci(bias_gap(distilled), digits=2),
        "chosen_side": side,
        "omit3_3s_acc": format_ci(mean_ci(1 - on_3s / n_3s)),
        "teacher_gap": _diff(
            paired_difference(_by_seed(distilled, "test_errors"), _by_seed(teacher, "test_errors"))
        ),
        "larger_than_paper": _larger_than_paper(study),
        "paper_minus_none": _diff(
            paired_difference(_by_seed(omit3, "paper_shift_test_errors"), errors)
        ),
        "chosen_minus_none": _diff(
            paired_difference(_by_seed(omit3, "chosen_shift_test_errors"), errors)
        ),
        "chosen_minus_paper": _diff(
            paired_difference(
                _by_seed(omit3, "chosen_shift_test_errors"),
                _by_seed(omit3, "paper_shift_test_errors"),
            )
        ),
    }
    return out | {
        f"paper_{k}": f"{v:,}" if isinstance(v, int) else f"{v:g}" for k, v in PAPER.items()
    }


def _verdict(summary: dict) -> str:
    """Whether scratch − distilled errors is positive beyond seed noise."""
    if np.isnan(summary["half_width"]) or summary["low"] <= 0 <= summary["high"]:
        return "is inconclusive"
    return "holds" if summary["mean"] > 0 else "does not hold"


def errors_figure(study: dict[str, list[dict]]) -> plt.Figure:
    """Test errors per model: this book's seeds (dots), their mean and 95% CI, the paper's."""
    labels = ["teacher", "scratch", "distilled", "omit3", "omit3\n+paper", "omit3\n+chosen"]
    rows = [
        ("teacher", "test_errors", "teacher_errors"),
        ("scratch", "test_errors", "scratch_errors"),
        ("distilled", "test_errors", "distilled_errors"),
        ("omit3", "test_errors", "omit3_errors"),
        ("omit3", "paper_shift_test_errors", "omit3_shifted_errors"),
        ("omit3", "chosen_shift_test_errors", None),
    ]
    fig, ax = plt.subplots(figsize=(WIDTH, 3.8))
    for i, (condition, key, paper_key) in enumerate(rows):
        values = _by_seed(study[condition], key)
        s = mean_ci(values)
        ax.plot(np.full(len(values), i) - 0.12, values, "o", color="C0", alpha=0.4, ms=4)
        ax.errorbar(
            i,
            s["mean"],
            yerr=0 if np.isnan(s["half_width"]) else s["half_width"],
            fmt="s",
            color="C0",
            capsize=4,
            label="this book: mean, 95% CI" if i == 0 else None,
        )
        if paper_key is not None:
            ax.plot(i + 0.15, PAPER[paper_key], "D", color="C3", label="paper" if i == 0 else None)
    ax.set_xticks(range(len(labels)), labels)
    ax.set(ylabel="test errors (of 10,000)", ylim=(0, None))
    ax.legend(loc="upper left", fontsize="small")
    fig.tight_layout()
    return fig


def curves_figure(study: dict[str, list[dict]]) -> plt.Figure:
    """Validation error rate per epoch of every model, mean over seeds with a 95% CI band."""
    fig, ax = plt.subplots(figsize=(WIDTH, 3.4))
    for i, condition in enumerate(c for c in CONDITIONS if c in study):
        records = study[condition]
        curves = 100 * (1 - np.array([[h["val_accuracy"] for h in r["history"]] for r in records]))
        cis = [mean_ci(c) for c in curves.T]
        mean = np.array([c["mean"] for c in cis])
        half = np.nan_to_num(np.array([c["half_width"] for c in cis]))
        epochs = np.arange(1, len(mean) + 1)
        ax.plot(epochs, mean, "o-", ms=3, color=f"C{i}", label=condition)
        ax.fill_between(epochs, mean - half, mean + half, color=f"C{i}", alpha=0.2)
    ax.set(xlabel="epoch", ylabel="validation error rate (%)", ylim=(0, None))
    ax.xaxis.set_major_locator(plt.MaxNLocator(integer=True))
    ax.legend(fontsize="small")
    fig.tight_layout()
    return fig


def bias_shift_figure(records: list[dict]) -> plt.Figure:
    """Error rates of the omit3 students against the shift of the 3's bias: on all images
    (left) and on the 3s (right), validation and test, mean over seeds with a 95% CI band.
    Triangles: the shift each seed chose on validation."""
    chosen = [r["chosen_shift"] for r in records]
    shifts = np.array(records[0]["shift_curve"]["shift"])
    shown = shifts <= max(2 * PAPER["omit3_bias_shift"], 2 * max(chosen))
    fig, axes = plt.subplots(1, 2, figsize=(WIDTH, 3.4), sharex=True)
    panels = (("errors", "all images"), ("errors_on_omitted", f"the {OMITTED}s only"))
    for ax, (key, title) in zip(axes, panels, strict=True):
        for j, split in enumerate(("val", "test")):
            counts = np.array(records[0][f"{split}_count_by_class"])
            size = counts.sum() if key == "errors" else counts[OMITTED]
            curves = np.array([r["shift_curve"][f"{split}_{key}"] for r in records]) / size
            cis = [mean_ci(100 * c) for c in curves[:, shown].T]
            mean = np.array([c["mean"] for c in cis])
            half = np.nan_to_num(np.array([c["half_width"] for c in cis]))
            name = "validation" if split == "val" else "test"
            ax.plot(shifts[shown], mean, color=f"C{j}", label=f"{name} ({len(records)} seeds)")
            low, high = np.clip(mean - half, 0, 100), np.clip(mean + half, 0, 100)
            ax.fill_between(shifts[shown], low, high, color=f"C{j}", alpha=0.2)
        ax.axvline(PAPER["omit3_bias_shift"], color="C3", ls=":", label="paper's shift")
        ax.set(title=title, xlabel=f"shift added to the {OMITTED}'s bias", ylim=(0, None))
        ax.set_xlim(0, shifts[shown][-1])
    axes[0].plot(chosen, np.zeros(len(chosen)), "^", color="C0", ms=8, clip_on=False)
    axes[0].plot([], [], "^", color="C0", label="chosen on validation")
    axes[0].set_ylabel("error rate (%)")
    axes[0].legend(fontsize="small")
    fig.tight_layout()
    return fig
