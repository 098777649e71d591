"""Run one configuration -> one results record. This is what the sweep notebook calls."""

from __future__ import annotations

import time
from pathlib import Path

import keras
import numpy as np

from kdutils import metrics
from kdutils.data import Dataset, load_dataset
from kdutils.distiller import Distiller, with_teacher_logits
from kdutils.models import build_model
from kdutils.profiles import STEPS_PER_EXECUTION, Profile
from kdutils.repro import environment, set_seed
from kdutils.results import epoch_records, read_json, run_path, write_json
from kdutils.teacher import Teacher, get_teacher


class BudgetEvaluation(keras.callbacks.Callback):
    """At each epoch budget, score the student on validation and test data.

    Nothing is selected with the test scores; they are what each budget would report.
    """

    def __init__(self, budgets, data: Dataset, teacher: Teacher):
        super().__init__()
        self.budgets, self.data, self.teacher = set(budgets), data, teacher
        self.scores: list[dict] = []

    def on_epoch_end(self, epoch, logs=None):
        if epoch + 1 not in self.budgets:
            return
        student = self.model.student
        val = student.predict(self.data.x_val, batch_size=1024, verbose=0)
        test = student.predict(self.data.x_test, batch_size=1024, verbose=0)
        self.scores.append(
            {
                "epochs": epoch + 1,
                "val_accuracy": metrics.accuracy(val, self.data.y_val),
                "test_accuracy": metrics.accuracy(test, self.data.y_test),
                "test_fidelity": metrics.agreement(test, self.teacher.logits["test"]),
            }
        )


def load_run(profile: Profile, alpha: float, seed: int, directory: Path) -> dict | None:
    """The stored record of this run if it matches the current config, else None."""
    record = read_json(run_path(directory, alpha, seed))
    if record and record.get("config") == profile.run_config(alpha, seed):
        return record
    return None


def run_student(
    profile: Profile,
    alpha: float,
    seed: int,
    directory: Path,
    data: Dataset | None = None,
    verbose: int = 0,
) -> dict:
    """Train a new student for (alpha, seed) with cached teacher logits; write its record.

    A stored record whose config matches is returned as is, so reruns resume.
    """
    if (done := load_run(profile, alpha, seed, directory)) is not None:
        return done
    config = profile.run_config(alpha, seed)
    data = data or load_dataset(**config["data"])
    teacher = get_teacher(profile, seed, directory, data)
    set_seed(seed)
    student = build_model(profile.student, data.x_train.shape[1:], data.num_classes)
    distiller = Distiller(student, alpha=alpha, temperature=profile.temperature)
    distiller.compile(
        optimizer=keras.optimizers.Adam(profile.learning_rate),
        steps_per_execution=STEPS_PER_EXECUTION,
    )
    budgets = BudgetEvaluation(profile.budgets, data, teacher)
    start = time.perf_counter()
    history = distiller.fit(
        with_teacher_logits(data.x_train, teacher.logits["train"]),
        data.y_train,
        validation_data=(with_teacher_logits(data.x_val, teacher.logits["val"]), data.y_val),
        batch_size=profile.batch_size,
        epochs=profile.epochs,
        callbacks=[budgets],
        verbose=verbose,
    ).history
    seconds = time.perf_counter() - start
    train_logits = student.predict(data.x_train, batch_size=1024, verbose=0)
    final = budgets.scores[-1]
    record = {
        "config": config,
        "history": epoch_records(history),
        "budgets": budgets.scores,
        "val_accuracy": final["val_accuracy"],
        "test_accuracy": final["test_accuracy"],
        "test_fidelity": final["test_fidelity"],
        "teacher_test_accuracy": teacher.record["test_accuracy"],
        "noisy_labels": metrics.noisy_label_fit(train_logits, data),
        "parameters": student.count_params(),
        "train_seconds": seconds,
        "environment": environment(),
    }
    write_json(run_path(directory, alpha, seed), record)
    return record


def run_alpha(profile: Profile, alpha: float, directory: Path, verbose: int = 0) -> list[dict]:
    """Every seed of one alpha, each with a new student and its own seed's teacher."""
    return [run_student(profile, alpha, seed, directory, verbose=verbose) for seed in profile.seeds]


def final_scores(records: list[dict]) -> dict[str, np.ndarray]:
    """Validation/test accuracy and fidelity across seeds, as arrays."""
    keys = ("val_accuracy", "test_accuracy", "test_fidelity")
    return {k: np.array([r[k] for r in records]) for k in keys}
