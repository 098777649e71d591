"""Run one configuration -> one results record. This is what the sweep notebook calls."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import keras
import numpy as np
from keras import ops

from kdutils.distill import batched, metrics
from kdutils.distill.data import Dataset, load_dataset
from kdutils.distill.distiller import Distiller, with_teacher_logits
from kdutils.distill.finite import StopOnNonFiniteLoss, check_finite
from kdutils.distill.fused import FusedDistiller, split_history, student_prefix
from kdutils.distill.losses import combine, cross_entropy, distillation_loss
from kdutils.distill.models import build_model
from kdutils.distill.repro import environment, set_seed
from kdutils.profiles import STEPS_PER_EXECUTION, Profile
from kdutils.results import (
    epoch_records,
    read_npz,
    run_path,
    stored_record,
    write_json,
    write_npz,
)
from kdutils.teacher_cache import Teacher, get_teacher


class BudgetEvaluation(keras.callbacks.Callback):
    """Each epoch, the student(s)' validation losses, accuracy and fidelity (into the
    history, under the names Keras's own validation pass would log); at each epoch budget,
    their validation and test scores. The validation logits are computed once for both.

    Works for a `Distiller` and a `FusedDistiller`; `scores[i]` holds student i's scores.
    Nothing is selected with the test scores; they are what each budget would report.
    """

    def __init__(self, budgets, data: Dataset, teacher: Teacher):
        super().__init__()
        self.budgets, self.data, self.teacher = set(budgets), data, teacher
        self.scores: list[list[dict]] = []
        self.test_logits: np.ndarray | None = None  # at the last budget scored

    def logits(self, x) -> np.ndarray:
        """(samples, students, classes) logits of every student, in one predict call."""
        out = self.model.predict(x, batch_size=1024, verbose=0)
        return out[:, None] if out.ndim == 2 else out

    def on_train_begin(self, logs=None):
        students = getattr(self.model, "students", [self.model.student])
        if any(s.losses for s in students):  # the step adds them; validation_scores cannot
            raise ValueError("BudgetEvaluation does not support students' regularisation losses")

    def on_epoch_end(self, epoch, logs=None):
        logs = {} if logs is None else logs  # the dict Keras's History records next
        val = self.logits(self.data.x_val)
        fused = isinstance(self.model, FusedDistiller)
        alphas = self.model.alphas if fused else [self.model.alpha]
        temperature = self.model.temperature
        for i, alpha in enumerate(alphas):
            prefix = f"val_{student_prefix(i)}" if fused else "val_"
            scores = validation_scores(val[:, i], self.data, self.teacher, alpha, temperature)
            logs.update({prefix + name: value for name, value in scores.items()})
        if epoch + 1 not in self.budgets:
            return
        self.test_logits = test = self.logits(self.data.x_test)
        if not self.scores:
            self.scores = [[] for _ in alphas]
        for i, scores in enumerate(self.scores):
            scores.append(budget_scores(epoch + 1, val[:, i], test[:, i], self.data, self.teacher))


def validation_scores(logits, data: Dataset, teacher: Teacher, alpha: float, temperature: float):
    """One student's validation loss (total, hard, soft), accuracy and fidelity from its
    logits, as the `Distiller`'s step computes them for a student without regularisation."""
    hard = float(cross_entropy(data.y_val, logits))
    soft = float(distillation_loss(teacher.logits["val"], logits, temperature))
    return {
        "loss": float(combine(hard, soft, alpha)),
        "hard_loss": hard,
        "soft_loss": soft,
        "accuracy": metrics.accuracy(logits, data.y_val),
        "fidelity": metrics.agreement(logits, teacher.logits["val"]),
    }


def budget_scores(epochs: int, val, test, data: Dataset, teacher: Teacher) -> dict:
    """One student's validation and test scores after `epochs`, from its logits."""
    return {
        "epochs": epochs,
        "val_accuracy": metrics.accuracy(val, data.y_val),
        "test_accuracy": metrics.accuracy(test, data.y_test),
        "test_fidelity": metrics.agreement(test, teacher.logits["test"]),
        "test_kl": metrics.kl_to_reference(test, teacher.logits["test"]),
    }


def load_run(profile: Profile, alpha: float, seed: int, directory: Path) -> dict | None:
    """The stored record of this run if it matches the current config, else None."""
    return stored_record(run_path(directory, alpha, seed), profile.run_config(alpha, seed))


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
    return run_students(profile, [alpha], seed, directory, data, fused=False, verbose=verbose)[0]


def run_students(
    profile: Profile,
    alphas: list[float],
    seed: int,
    directory: Path,
    data: Dataset | None = None,
    fused: bool = True,
    verbose: int = 0,
    teachers: Path | None = None,
    save_logits: bool = False,
) -> list[dict]:
    """Train a new student per alpha for one seed; write one record per (alpha, seed).

    `fused=True` trains all alphas not yet done in one `FusedDistiller` (same batches, one
    compiled step); `fused=False` runs one `Distiller` after another. Either way each
    student starts from the seed's initial weights and sees the seed's batch order.
    Stored records whose config matches are reused, so reruns resume. The teacher is cached
    under `teachers` (default: `directory`), so studies can share teachers. `save_logits`
    also stores each student's test logits (float16) beside its record (`test_logits_path`).
    """
    records = {a: load_run(profile, a, seed, directory) for a in alphas}
    todo = _missing(records, directory, seed, save_logits)
    if not todo:
        return [records[a] for a in alphas]
    data = data or load_dataset(**profile.data_config(seed))
    teacher = get_teacher(profile, seed, teachers or directory, data)
    for group in [todo] if fused else [[a] for a in todo]:
        for record, test_logits in _train(profile, group, seed, data, teacher, verbose):
            records[record["config"]["alpha"]] = store(directory, record, test_logits, save_logits)
    return [records[a] for a in alphas]


def _missing(records: dict, directory: Path, seed: int, save_logits: bool) -> list[float]:
    """The alphas without a stored record (or, with `save_logits`, without readable logits)."""
    return [
        alpha
        for alpha, record in records.items()
        if record is None or (save_logits and stored_test_logits(directory, alpha, seed) is None)
    ]


def store(directory: Path, record: dict, test_logits: np.ndarray, save_logits: bool) -> dict:
    """Write a run's record (and with `save_logits` its float16 test logits); return it."""
    alpha, seed = record["config"]["alpha"], record["config"]["seed"]
    if save_logits:
        write_npz(test_logits_path(directory, alpha, seed), test=test_logits.astype("f2"))
    write_json(run_path(directory, alpha, seed), record)
    return record


def run_batched(
    profile: Profile,
    alphas,
    directory: Path,
    teachers: Path | None = None,
    save_logits: bool = False,
    log=print,
) -> int:
    """Train every (alpha, seed) of `profile` not yet stored all together (kdutils.distill.batched),
    in as few chunks as fit in memory; write one record per run. Returns how many trained.

    Each record names the students it trained with (`trained_with`, [alpha, seed] pairs) and
    the `trainer` ("batched-vmap" or "batched-loop"); neither is part of the run's config.
    """
    todo = _pending_pairs(profile, alphas, directory)
    if todo:
        _train_chunks(profile, todo, directory, teachers, save_logits, log)
    return len(todo)


def _pending_pairs(profile: Profile, alphas, directory: Path) -> list[tuple[float, int]]:
    """The (alpha, seed) pairs of `profile` with no stored record that matches."""
    pairs = [(float(a), s) for s in profile.seeds for a in alphas]
    return [(a, s) for a, s in pairs if load_run(profile, a, s, directory) is None]


def _train_chunks(profile, todo, directory, teachers, save_logits, log) -> None:
    """Train the (alpha, seed) pairs `todo` in as few batched chunks as fit in memory."""
    data = {s: load_dataset(**profile.data_config(s)) for s in dict.fromkeys(s for _, s in todo)}
    teacher = {s: get_teacher(profile, s, teachers or directory, d) for s, d in data.items()}
    first = next(iter(data.values()))
    model = build_model(profile.student, first.x_train.shape[1:], first.num_classes)
    data_bytes = sum(d.x_train.nbytes + d.x_val.nbytes + d.x_test.nbytes for d in data.values())
    per_student = batched.bytes_per_student(model, profile.batch_size)
    for chunk in batched.chunks(todo, per_student, batched.memory_budget(2 * data_bytes)):
        start = time.perf_counter()
        for record, test_logits in _train_batched(profile, chunk, data, teacher):
            store(directory, record, test_logits, save_logits)
        seconds = time.perf_counter() - start
        log(f"batched: {len(chunk)} students trained together in {seconds:.0f} s")


def _train_batched(profile, chunk, data, teacher) -> list[tuple[dict, np.ndarray]]:
    """Train the (alpha, seed) pairs of `chunk` in one `BatchedStudents`: (record, test logits)."""
    seeds = list(dict.fromkeys(s for _, s in chunk))
    students = [batched.Student(a, s, profile.temperature, seeds.index(s)) for a, s in chunk]
    train, val, test = (
        batched.Split.stack([
            batched.Split.of(getattr(data[s], f"x_{part}"), getattr(data[s], f"y_{part}"),
                             teacher[s].logits[part])
            for s in seeds
        ])
        for part in ("train", "val", "test")
    )  # fmt: skip
    shape, classes = train.x.shape[2:], data[seeds[0]].num_classes
    model = batched.BatchedStudents(
        lambda: build_model(profile.student, shape, classes), students, profile.learning_rate,
        profile.batch_size, steps_per_call=STEPS_PER_EXECUTION,
    )  # fmt: skip
    scores: list[list[dict]] = [[] for _ in chunk]

    def score(epoch, trainer):
        if epoch + 1 in profile.budgets:
            v, t = trainer.logits(val), trainer.logits(test)
            for i, (_, s) in enumerate(chunk):
                scores[i].append(budget_scores(epoch + 1, v[i], t[i], data[s], teacher[s]))

    start = time.perf_counter()
    histories = model.fit(train, val, profile.epochs, on_epoch_end=score)
    seconds = (time.perf_counter() - start) / len(chunk)
    train_logits, test_logits = model.logits(train), model.logits(test)
    check_finite(test_logits, f"test logits of the batched students {chunk}")
    shared = {"trainer": f"batched-{model.mode}", "trained_with": [list(c) for c in chunk]}
    return [
        (
            student_record(profile, a, s, histories[i], scores[i], data[s], teacher[s],
                           train_logits[i], model.parameters, seconds)
            | shared,
            test_logits[i],
        )
        for i, (a, s) in enumerate(chunk)
    ]  # fmt: skip


def test_logits_path(directory: Path, alpha: float, seed: int) -> Path:
    """Where `save_logits` stores a run's test logits: beside its record, as .npz."""
    return run_path(directory, alpha, seed).with_suffix(".test_logits.npz")


def stored_test_logits(directory: Path, alpha: float, seed: int) -> np.ndarray | None:
    """A run's stored test logits; None when missing or (with a warning) unreadable."""
    arrays = read_npz(test_logits_path(directory, alpha, seed), ("test",))
    return None if arrays is None else arrays["test"]


# The compiled student model this process used last, by what its compiled step depends on:
# a process that trains several seeds in turn reuses it (tracing the fused step costs ~20 s a
# seed). One entry only, so a process that trains many settings does not pile up models.
_COMPILED: dict[tuple, tuple[keras.Model, list[keras.Model]]] = {}


def student_model(profile: Profile, alphas, seed: int, data: Dataset):
    """(model, students) for `alphas`: a `Distiller` for one alpha, else a `FusedDistiller`,
    every student at seed `seed`'s initial weights and with a fresh optimizer. A model this
    process compiled for the same alphas and settings is reused, so its step is not traced
    again; the training is the same as a new model's (tests/test_experiment.py)."""
    shape, classes = data.x_train.shape[1:], data.num_classes
    key = (dataclasses.replace(profile, seeds=(0,)), tuple(alphas), shape, classes)
    if key not in _COMPILED:
        _COMPILED.clear()
        students = [build_model(profile.student, shape, classes) for _ in alphas]
        if len(alphas) == 1:
            model = Distiller(students[0], alpha=alphas[0], temperature=profile.temperature)
        else:
            model = FusedDistiller(students, alphas, temperature=profile.temperature)
        model.compile(
            optimizer=keras.optimizers.Adam(profile.learning_rate),
            steps_per_execution=STEPS_PER_EXECUTION,
        )
        _COMPILED[key] = model, students
    model, students = _COMPILED[key]
    set_seed(seed)  # every alpha of a seed starts from the same initial weights
    initial = build_model(profile.student, shape, classes).get_weights()
    for student in students:
        student.set_weights(initial)
    for variable in model.optimizer.variables:  # step count and moments; not the rate
        if variable.name != "learning_rate":
            variable.assign(ops.zeros_like(variable))
    return model, students


def _train(profile, alphas, seed, data, teacher, verbose) -> list[tuple[dict, np.ndarray]]:
    """Train one student per alpha (fused when there are several); (record, test logits)."""
    model, students = student_model(profile, alphas, seed, data)
    budgets = BudgetEvaluation(profile.budgets, data, teacher)
    set_seed(seed)  # the same batch order however many students train together
    start = time.perf_counter()
    history = model.fit(
        with_teacher_logits(data.x_train, teacher.logits["train"]),
        data.y_train,
        batch_size=profile.batch_size,
        epochs=profile.epochs,
        # no Keras validation: `budgets` scores the validation split each epoch, from the
        # logits it computes anyway
        callbacks=[StopOnNonFiniteLoss(f"students {alphas} of seed {seed}"), budgets],
        verbose=verbose,
    ).history
    seconds = time.perf_counter() - start
    histories = [history] if len(alphas) == 1 else split_history(history, len(alphas))
    # One predict call for all students: a call per student would trace a function each.
    # The last budget is the last epoch (`Profile`), so its test logits are the final ones.
    train_logits, test_logits = budgets.logits(data.x_train), budgets.test_logits
    check_finite(test_logits, f"test logits of the students {alphas} of seed {seed}")
    return [
        (
            student_record(profile, alpha, seed, histories[i], budgets.scores[i], data, teacher,
                           train_logits[:, i], student.count_params(), seconds / len(alphas))
            | {
                "trainer": "fused" if len(alphas) > 1 else "separate",
                "fused_with": [float(a) for a in alphas] if len(alphas) > 1 else None,
            },
            test_logits[:, i],
        )
        for i, (alpha, student) in enumerate(zip(alphas, students, strict=True))
    ]  # fmt: skip


def student_record(
    profile, alpha, seed, history, scores, data, teacher, train_logits, parameters, seconds
) -> dict:
    """One run's results record (a batched or fused run's time is shared equally)."""
    final = scores[-1]
    return {
        "config": profile.run_config(alpha, seed),
        "history": epoch_records(history),
        "budgets": scores,
        "val_accuracy": final["val_accuracy"],
        "test_accuracy": final["test_accuracy"],
        "test_fidelity": final["test_fidelity"],
        "teacher_test_accuracy": teacher.record["test_accuracy"],
        "noisy_labels": metrics.noisy_label_fit(train_logits, data),
        "parameters": parameters,
        "train_seconds": seconds,
        "environment": environment(),
    }


def run_alpha(profile: Profile, alpha: float, directory: Path, verbose: int = 0) -> list[dict]:
    """Every seed of one alpha, each with a new student and its own seed's teacher."""
    return [run_student(profile, alpha, seed, directory, verbose=verbose) for seed in profile.seeds]


def run_profile(
    profile: Profile,
    directory: Path,
    alphas=None,
    fused: bool = True,
    verbose: int = 0,
    teachers: Path | None = None,
    save_logits: bool = False,
) -> list[dict]:
    """Every (alpha, seed) of `profile`; with `fused`, all alphas of a seed train together."""
    alphas = list(profile.alphas if alphas is None else alphas)
    records = []
    for seed in profile.seeds:
        records += run_students(
            profile,
            alphas,
            seed,
            directory,
            fused=fused,
            verbose=verbose,
            teachers=teachers,
            save_logits=save_logits,
        )
    return records
