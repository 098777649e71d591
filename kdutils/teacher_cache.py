"""The one teacher cache: a teacher is trained once, under a lock, and stored with its record,
logits and weights (`cached_teacher`); every study names its teacher by a `TeacherSpec`.

The main study trains one teacher per (profile, teacher seed), never per alpha.

A profile's seeds share a teacher when they share its data seed (`Profile.teacher_seed`), and
a teacher trained on more images than its students (`Profile.teacher_train_size`) is handed
to them with the logits of their own training images, the first `train_size` of its own.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from pathlib import Path

import keras
import numpy as np

from kdutils.distill import metrics
from kdutils.distill.data import Dataset, arrays_sha256, load_dataset
from kdutils.distill.finite import StopOnNonFiniteLoss, check_finite
from kdutils.distill.models import build_model
from kdutils.distill.repro import environment, set_seed
from kdutils.profiles import STEPS_PER_EXECUTION, Profile, config_key, same_config
from kdutils.results import (
    epoch_records,
    read_json,
    read_npz,
    unusable,
    write_json,
    write_npz,
)

SPLITS = ("train", "val", "test")


@dataclasses.dataclass
class Teacher:
    """A trained teacher's record (config, curves, accuracies), its logits per split, and its
    Keras model with the cached weights when the caller asked for one (`build`)."""

    record: dict
    logits: dict[str, np.ndarray]
    model: keras.Model | None = None


@dataclasses.dataclass(frozen=True)
class TeacherSpec:
    """One cached teacher: the config its record must hold, where its files lie, and which
    splits' logits it keeps."""

    config: dict
    record_path: Path
    logits_path: Path
    weights_path: Path
    splits: tuple[str, ...] = SPLITS


def teacher_paths(directory: Path, seed: int) -> tuple[Path, Path, Path]:
    """(record, logits, weights) paths of the main study's teacher of `seed`."""
    base = Path(directory) / "teachers" / f"seed{seed}"
    return base.with_suffix(".json"), Path(f"{base}_logits.npz"), base.with_suffix(".weights.h5")


def study_teacher_paths(directory: Path, seed: int, record: str = "") -> tuple[Path, Path, Path]:
    """(record, logits, weights) paths of a study's teacher of `seed` in its `teacher` folder:
    `runs/<record>seed<seed>.json`, `logits/seed<seed>.npz`, `weights/seed<seed>.weights.h5`."""
    d = Path(directory)
    return (
        d / "runs" / f"{record}seed{seed}.json",
        d / "logits" / f"seed{seed}.npz",
        d / "weights" / f"seed{seed}.weights.h5",
    )


def matches(record: dict | None, config: dict) -> bool:
    """Whether a stored teacher record is the teacher of `config`: by its `key` (the config's
    hash) where it holds one, as the main study's records do, else by its `config`."""
    if record is None:
        return False
    if "key" in record:
        return record["key"] == config_key(config)
    return same_config(record.get("config"), config)


def load_cached(spec: TeacherSpec, build: Callable[[], keras.Model] | None = None):
    """The cached teacher of `spec` if its stored record matches, else None; with `build`,
    its model (`build()`) holds the cached weights.

    A cache that fails its check (unreadable record, logits or weights, a missing split,
    non-finite or mis-shaped logits, a checksum that does not match) is None too, with a
    `CacheWarning` naming the file, so `cached_teacher` trains the teacher again.
    """
    record = read_json(spec.record_path)
    if not matches(record, spec.config):
        return None
    logits = read_npz(spec.logits_path, spec.splits)  # None (warned) if unreadable, non-finite
    if logits is None:
        return None
    classes = {a.shape[1] if a.ndim == 2 else None for a in logits.values()}
    if len(classes) != 1 or None in classes:
        return unusable(spec.logits_path, f"shapes {[a.shape for a in logits.values()]}")
    stored = record.get("logits_sha256")
    if stored is not None and stored != arrays_sha256(logits):
        problem = f"content does not match the checksum in {spec.record_path.name}"
        return unusable(spec.logits_path, problem)
    model = build() if build else None
    if model is not None and not load_weights(model, spec.weights_path):
        return None
    return Teacher(record, logits, model)


def store(spec: TeacherSpec, record: dict, logits: dict, model: keras.Model) -> Teacher:
    """Write a freshly trained teacher's weights, logits and record (last: a record on disk
    means the rest is complete); return it with `model`."""
    logits = {s: logits[s] for s in spec.splits}
    spec.weights_path.parent.mkdir(parents=True, exist_ok=True)
    model.save_weights(spec.weights_path)
    write_npz(spec.logits_path, **logits)
    write_json(spec.record_path, record)
    return Teacher(record, logits, model)


def cached_teacher(
    spec: TeacherSpec,
    train: Callable[[], tuple[dict, dict, keras.Model]],
    build: Callable[[], keras.Model] | None = None,
) -> Teacher:
    """The cached teacher of `spec`, trained first (`train()` -> record, logits, model) and
    stored if there is none for its config; its model only with `build` (or when trained).

    No lock: the sweep's task graph trains a teacher shared by several pages once, in its own
    task, before them (`kdutils.graph`). Two processes that miss the cache at once would each
    train it; each file is replaced atomically and the record's logits checksum catches a
    record and logits from different writers (`load_cached`: trained again, never used).
    """
    if cached := load_cached(spec, build):
        return cached
    trained = store(spec, *train())
    return trained if build else dataclasses.replace(trained, model=None)


# --- the main study's teacher: one per (profile, teacher seed) ----------------------------


def main_spec(profile: Profile, seed: int, directory: Path) -> TeacherSpec:
    """The cache of the teacher of the students of `seed` of `profile`."""
    paths = teacher_paths(directory, profile.teacher_seed(seed))
    return TeacherSpec(profile.teacher_config(seed), *paths)


def load_teacher(profile: Profile, seed: int, directory: Path) -> Teacher | None:
    """The cached teacher of the students of `seed` if its stored config matches, else None.

    Its `logits["train"]` are those of the students' training images (`for_students`)."""
    cached = load_cached(main_spec(profile, seed, directory))
    return None if cached is None else for_students(profile, cached)


def for_students(profile: Profile, teacher: Teacher) -> Teacher:
    """`teacher` with the training logits of the students' images only: when the teacher
    learned from more images, those are the first `train_size` of its own (the students'
    split is nested in the teacher's, `load_dataset(nested=True)`)."""
    if not profile.nested or profile.train_size is None:
        return teacher
    train = teacher.logits["train"][: profile.train_size]
    return dataclasses.replace(teacher, logits=teacher.logits | {"train": train})


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


def compile_supervised(model: keras.Model, optimizer, **options) -> None:
    """Compile `model` (logits) for cross-entropy on sparse labels, tracking accuracy;
    `options` (how to execute) default to `steps_per_execution=STEPS_PER_EXECUTION`."""
    model.compile(
        optimizer=optimizer,
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
        **(options or {"steps_per_execution": STEPS_PER_EXECUTION}),
    )


def fit_supervised(
    model: keras.Model, optimizer, data: Dataset, batch_size: int, epochs: int
) -> tuple[dict, float]:
    """Train `model` (logits) with cross-entropy on `data`'s training labels, validating on
    its validation split; return the Keras history and the training seconds.

    Inputs holding NaN or inf are refused first, and a loss that becomes NaN or inf stops
    training with `NonFiniteError` (`kdutils.distill.finite`)."""
    for split in ("train", "val"):
        check_finite(getattr(data, f"x_{split}"), f"{data.name} x_{split}")
    compile_supervised(model, optimizer)
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


def train_teacher(profile: Profile, seed: int, data: Dataset | None = None):
    """Train the teacher of the students of `seed` on its (noisy) training split; return its
    (record, logits per split, model) for the cache (`get_teacher`).

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
    return record, logits, model


def get_teacher(profile: Profile, seed: int, directory: Path, data: Dataset | None = None):
    """The cached teacher of the students of `seed`, trained first if there is none for this
    config."""
    spec = main_spec(profile, seed, directory)
    teacher = cached_teacher(spec, lambda: train_teacher(profile, seed, data))
    return for_students(profile, teacher)
