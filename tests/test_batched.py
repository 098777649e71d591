"""Batched training is separate training: same weights, same per-epoch histories, per student.

The reference is a plain `Distiller` per student, fed the student's own data order
(`epoch_order`), one `fit` call per epoch. The data (170 examples, batch 64) end in a short
batch, and the students differ in alpha, seed (initial weights and order), T and data set.
"""

import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

from kdutils import Distiller, with_teacher_logits
from kdutils.distill import batched
from kdutils.distill.batched import (
    BatchedStudents,
    Split,
    Student,
    bytes_per_student,
    chunks,
    epoch_order,
    functional,
)
from kdutils.distill.models import report_cnn
from kdutils.distill.repro import set_seed

N, BATCH, EPOCHS, RATE = 170, 64, 2, 1e-2
STUDENTS = (Student(0.0, 0, 4.0, 0), Student(0.3, 0, 2.0, 0), Student(1.0, 1, 4.0, 1))


def build() -> keras.Model:
    return report_cnn((4, 8))


def splits() -> tuple[Split, Split]:
    """Two random data sets (train and validation splits of each)."""
    rng = np.random.default_rng(0)

    def split(n):
        x = rng.random((2, n, 28, 28, 1), dtype=np.float32)
        return Split(x, rng.integers(0, 10, (2, n)).astype("int32"), rng.normal(0, 3, (2, n, 10)))

    return split(N), split(100)


def separate_run(student: Student, train: Split, val: Split) -> tuple[list, dict]:
    """One `Distiller` trained on the student's data in its order: (weights, history)."""
    set_seed(student.seed)
    model = Distiller(build(), alpha=student.alpha, temperature=student.temperature)
    model.compile(optimizer=keras.optimizers.Adam(RATE))
    x, y, t = (getattr(train, f)[student.data] for f in ("x", "y", "teacher"))
    validation = (with_teacher_logits(val.x[student.data], val.teacher[student.data]),
                  val.y[student.data])  # fmt: skip
    history: dict = {}
    for epoch in range(EPOCHS):
        order = epoch_order(student.seed, epoch, N)
        one = model.fit(with_teacher_logits(x[order], t[order]), y[order], batch_size=BATCH,
                        shuffle=False, validation_data=validation, verbose=0)  # fmt: skip
        for key, values in one.history.items():
            history.setdefault(key, []).extend(values)
    return model.student.get_weights(), history


def check_equivalence(mode: str = "auto") -> str:
    """Assert batched == separate for every student; return the batched mode used."""
    train, val = splits()
    trainer = BatchedStudents(build, STUDENTS, RATE, BATCH, mode=mode, steps_per_call=2)
    histories = trainer.fit(train, val, EPOCHS)
    for i, student in enumerate(STUDENTS):
        weights, history = separate_run(student, train, val)
        assert set(histories[i]) == set(history)
        for key, values in history.items():
            np.testing.assert_allclose(histories[i][key], values, rtol=1e-4, atol=1e-6)
        for a, b in zip(trainer.weights(i), weights, strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
    # the students really differ (alpha, seed, T matter)
    assert not np.allclose(trainer.weights(0)[0], trainer.weights(1)[0])
    logits = trainer.logits(val)
    np.testing.assert_allclose(logits[2], build_with(trainer.weights(2))(val.x[1]), atol=1e-4)
    return trainer.mode


def build_with(weights) -> keras.Model:
    model = build()
    model.set_weights(weights)
    return lambda x: keras.ops.convert_to_numpy(model(x))


def test_batched_equals_separate_runs():
    assert check_equivalence() == "loop"  # the fastest mode on a CPU


@pytest.mark.slow
def test_batched_equals_separate_runs_on_jax():
    """The same check in a JAX process (the test process has its own backend), for vmap (the
    accelerator's mode) and the loop (the CPU's)."""
    pytest.importorskip("jax")
    here = Path(__file__).parent
    path = os.pathsep.join(filter(None, [str(here.parent), os.environ.get("PYTHONPATH")]))
    env = os.environ | {"KERAS_BACKEND": "jax", "PYTHONPATH": path}
    code = "import test_batched as t; print(t.check_equivalence('vmap'), t.check_equivalence())"
    done = subprocess.run([sys.executable, "-c", code], cwd=here, env=env,
                          capture_output=True, text=True, timeout=900)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split()[-2:] == ["vmap", "loop"]


def test_epoch_order_is_per_seed_and_epoch():
    a = epoch_order(0, 0, 50)
    np.testing.assert_array_equal(a, epoch_order(0, 0, 50))
    assert sorted(a) == list(range(50))
    assert not np.array_equal(a, epoch_order(1, 0, 50))
    assert not np.array_equal(a, epoch_order(0, 1, 50))


def test_functional_refuses_what_it_cannot_batch():
    dropout = keras.Sequential(
        [keras.Input((4,)), keras.layers.Dropout(0.5), keras.layers.Dense(2)]
    )
    with pytest.raises(ValueError, match="Dropout"):
        functional(dropout)
    with pytest.raises(ValueError, match="Sequential"):
        functional(keras.Model(*(lambda i: (i, keras.layers.Dense(2)(i)))(keras.Input((4,)))))


def test_student_checks_alpha_and_temperature():
    with pytest.raises(ValueError, match="alpha"):
        Student(1.5, 0, 2.0)
    with pytest.raises(ValueError, match="temperature"):
        Student(0.5, 0, 0.0)


def test_chunks_split_what_does_not_fit_in_memory():
    students = list(range(7))
    assert chunks(students, per_student=10, budget=1000) == [students]
    parts = chunks(students, per_student=10, budget=30)
    assert [len(p) for p in parts] == [2, 2, 3] and [s for p in parts for s in p] == students
    assert chunks([1, 2], per_student=10, budget=-5) == [[1], [2]]  # never zero per chunk
    model = build()
    assert bytes_per_student(model, 64) > bytes_per_student(model, 32) > 4 * model.count_params()


def test_run_batched_trains_every_alpha_and_seed_once(tmp_path, monkeypatch):
    """All (alpha, seed) of a profile, split into two chunks; a rerun trains nothing."""
    from kdutils import experiment
    from kdutils.profiles import get_profile

    monkeypatch.setattr(batched, "memory_budget", lambda data_bytes: 2 * 10**9)
    monkeypatch.setattr(batched, "bytes_per_student", lambda model, size: 10**9)
    profile = get_profile("smoke").override(seeds=[0, 1], train_size=150, epochs=2)
    lines: list[str] = []
    assert experiment.run_batched(profile, [0.0, 1.0], tmp_path, log=lines.append) == 4
    assert [line.split(" in ")[0] for line in lines] == ["batched: 2 students trained together"] * 2
    records = [experiment.load_run(profile, a, s, tmp_path) for s in (0, 1) for a in (0.0, 1.0)]
    assert [r["trained_with"] for r in records] == [[[0.0, 0], [1.0, 0]]] * 2 + [
        [[0.0, 1], [1.0, 1]]
    ] * 2
    assert {r["trainer"] for r in records} == {f"batched-{batched.default_mode()}"}
    assert all(
        len(r["history"]) == 2 and [b["epochs"] for b in r["budgets"]] == [1, 2] for r in records
    )
    assert len({r["test_accuracy"] for r in records}) > 1
    assert experiment.run_batched(profile, [0.0, 1.0], tmp_path) == 0
