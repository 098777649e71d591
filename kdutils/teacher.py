"""Train the teacher once per (profile, teacher seed) and cache its logits; never per alpha.

A profile's seeds share a teacher when they share its data seed (`Profile.teacher_seed`), and
a teacher trained on more images than its students (`Profile.teacher_train_size`) is handed
to them with the logits of their own training images, the first `train_size` of its own.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import keras
import numpy as np

from kdutils import metrics
from kdutils.data import Dataset, arrays_sha256, load_dataset
from kdutils.finite import StopOnNonFiniteLoss, check_finite
from kdutils.models import build_model
from kdutils.profiles import STEPS_PER_EXECUTION, Profile, config_key
from kdutils.repro import environment, set_seed
from kdutils.results import (
    epoch_records,
    exclusive,
    read_json,
    read_npz,
    unusable,
    write_json,
    write_npz,
)

SPLITS = ("train", "val", "test")


@dataclasses.dataclass
class Teacher:
    """A trained teacher's record (config, curves, accuracies) and its logits per split."""

    record: dict
    logits: dict[str, np.ndarray]


def teacher_paths(directory: Path, seed: int) -> tuple[Path, Path, Path]:
    """(record, logits, weights) paths of the teacher of `seed`."""
    base = Path(directory) / "teachers" / f"seed{seed}"
    return base.with_suffix(".json"), Path(f"{base}_logits.npz"), base.with_suffix(".weights.h5")


def load_teacher(profile: Profile, seed: int, directory: Path) -> Teacher | None:
    """The cached teacher of the students of `seed` if its stored config matches, else None.

    Its `logits["train"]` are those of the students' training images (`for_students`).

    A cache that fails its check (unreadable record or logits, a missing split, non-finite
    or mis-shaped logits, a checksum that does not match) is None too, with a `CacheWarning`
    naming the file, so `get_teacher` trains the teacher again.
    """
    record_path, logits_path, _ = teacher_paths(directory, profile.teacher_seed(seed))
    record = read_json(record_path)
    if record is None or record.get("key") != config_key(profile.teacher_config(seed)):
        return None
    logits = read_npz(logits_path, SPLITS)  # None (warned) when unreadable or non-finite
    if logits is None:
        return None
    if any(a.ndim != 2 or a.shape[1] != logits["train"].shape[1] for a in logits.values()):
        return unusable(logits_path, f"shapes {[a.shape for a in logits.values()]}")
    stored = record.get("logits_sha256")
    if stored is not None and stored != arrays_sha256(logits):
        return unusable(logits_path, f"content does not match the checksum in {record_path.name}")
    return for_students(profile, Teacher(record, logits))


def for_students(profile: Profile, teacher: Teacher) -> Teacher:
    """`teacher` with the training logits of the students' images only: when the teacher
    learned from more images, those are the first `train_size` of its own (the students'
    split is nested in the teacher's, `load_dataset(nested=True)`)."""
    if not profile.nested or profile.train_size is None:
        return teacher
    return Teacher(
        teacher.record, teacher.logits | {"train": teacher.logits["train"][: profile.train_size]}
    )


def load_weights(model: keras.Model, path: Path) -> bool:
    """Load cached weights into `model`; False when there are none, or (with a
    `CacheWarning` naming the file) when they cannot be read or do not fit the model."""
    if not Path(path).exists():
        return False
    try:
        model.load_weights(path)
    except (OSError, ValueError, KeyError) as error:
        unusable(path, f"weights cannot be loaded ({type(error).__name__}: {error})")
        return False
    return True


def fit_supervised(
    model: keras.Model, optimizer, data: Dataset, batch_size: int, epochs: int
) -> tuple[dict, float]:
    """Train `model` (logits) with cross-entropy on `data`'s training labels, validating on
    its validation split; return the Keras history and the training seconds.

    Inputs holding NaN or inf are refused first, and a loss that becomes NaN or inf stops
    training with `NonFiniteError` (`kdutils.finite`)."""
    for split in ("train", "val"):
        check_finite(getattr(data, f"x_{split}"), f"{data.name} x_{split}")
    model.compile(
        optimizer=optimizer,
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
        steps_per_execution=STEPS_PER_EXECUTION,
    )
    start = time.perf_counter()
    history = model.fit(
        data.x_train,
        data.y_train,
        validation_data=(data.x_val, data.y_val),
        batch_size=batch_size,
        epochs=epochs,
        callbacks=[StopOnNonFiniteLoss(f"supervised training of {model.name}")],
        verbose=0,
    ).history
    return history, time.perf_counter() - start


def learning_rate(profile: Profile, train_size: int):
    """The teacher's learning rate: the profile's, constant or decayed to 0 along a cosine
    over its `teacher_epochs`."""
    if profile.teacher_schedule == "constant":
        return profile.learning_rate
    steps = -(-train_size // profile.batch_size) * profile.teacher_epochs
    return keras.optimizers.schedules.CosineDecay(profile.learning_rate, decay_steps=steps)


def train_teacher(profile: Profile, seed: int, directory: Path, data: Dataset | None = None):
    """Train the teacher of the students of `seed` on its (noisy) training split and cache it.

    `data` is the students' dataset: reused when the teacher learns from the same images,
    ignored when it learns from more images (`Profile.teacher_train_size`)."""
    config = profile.teacher_config(seed)
    seed = config["seed"]
    if data is None or profile.nested:
        data = load_dataset(**config["data"])
    set_seed(seed)
    model = build_model(profile.teacher, data.x_train.shape[1:], data.num_classes)
    history, train_time = fit_supervised(
        model,
        keras.optimizers.Adam(learning_rate(profile, len(data.y_train))),
        data,
        profile.batch_size,
        profile.teacher_epochs,
    )
    inputs = {"train": data.x_train, "val": data.x_val, "test": data.x_test}
    logits = {s: model.predict(x, batch_size=512, verbose=0) for s, x in inputs.items()}
    for split, values in logits.items():
        check_finite(values, f"the teacher's {split} logits (seed {seed})")
    record = {
        "key": config_key(config),
        "config": config,
        "parameters": model.count_params(),
        "history": epoch_records(history),
        "val_accuracy": metrics.accuracy(logits["val"], data.y_val),
        "test_accuracy": metrics.accuracy(logits["test"], data.y_test),
        "train_accuracy_clean": metrics.accuracy(logits["train"], data.y_train_clean),
        "noisy_labels": metrics.noisy_label_fit(logits["train"], data),
        "logits_sha256": arrays_sha256(logits),
        "train_seconds": train_time,
        "seconds_per_epoch": train_time / profile.teacher_epochs,
        "environment": environment(),
    }
    record_path, logits_path, weights_path = teacher_paths(directory, seed)
    weights_path.parent.mkdir(parents=True, exist_ok=True)
    model.save_weights(weights_path)
    write_npz(logits_path, **logits)
    write_json(record_path, record)  # last: a record on disk means its logits are complete
    return for_students(profile, Teacher(record, logits))


def get_teacher(profile: Profile, seed: int, directory: Path, data: Dataset | None = None):
    """The cached teacher of the students of `seed`, trained first if there is none for this
    config.

    Concurrent callers train one teacher once: the others wait for it and load it.
    """
    if cached := load_teacher(profile, seed, directory):
        return cached
    with exclusive(teacher_paths(directory, profile.teacher_seed(seed))[0]):
        return load_teacher(profile, seed, directory) or train_teacher(
            profile, seed, directory, data
        )
