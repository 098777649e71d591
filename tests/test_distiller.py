"""The Distiller's invariants: frozen teacher, alpha ends, cached == per-step, clear errors."""

import keras
import numpy as np
import pytest
from conftest import to_numpy

from kdutils import Distiller, build_model, with_teacher_logits
from kdutils.distill.models import report_cnn
from kdutils.distill.repro import set_seed

N = 192


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    x = rng.random((N, 28, 28, 1), dtype=np.float32)
    y = rng.integers(0, 10, N).astype("int32")
    return x, y


def small_teacher() -> keras.Model:
    """A small teacher with BatchNorm and Dropout, so inference mode matters."""
    return keras.Sequential(
        [
            keras.Input((28, 28, 1)),
            keras.layers.Conv2D(8, 3, strides=2),
            keras.layers.BatchNormalization(),
            keras.layers.ReLU(),
            keras.layers.Flatten(),
            keras.layers.Dropout(0.5),
            keras.layers.Dense(10),
        ]
    )


def weights(model: keras.Model) -> list[np.ndarray]:
    return [np.array(to_numpy(v)) for v in model.weights]


def fit(model, x, y, seed=1, epochs=2, **kw):
    set_seed(seed)
    return model.fit(x, y, batch_size=32, epochs=epochs, shuffle=True, verbose=0, **kw).history


@pytest.fixture(scope="module")
def teacher(data):
    set_seed(0)
    t = small_teacher()
    t.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    fit(t, *data, epochs=1)
    return t


@pytest.mark.parametrize("alpha", [-0.01, 1.01, "0.5", None])
def test_bad_alpha(alpha):
    with pytest.raises(ValueError, match=r"alpha.*" + repr(alpha).replace(".", r"\.")):
        Distiller(build_model("report_student"), alpha=alpha)


@pytest.mark.parametrize("temperature", [0, -2.0, float("inf")])
def test_bad_temperature(temperature):
    with pytest.raises(ValueError, match="temperature"):
        Distiller(build_model("report_student"), temperature=temperature)


def test_class_count_mismatch():
    teacher = report_cnn((4, 4), num_classes=5)
    with pytest.raises(ValueError, match="teacher has 5 classes but student has 10"):
        Distiller(build_model("report_student"), teacher)


def test_labels_out_of_range_and_wrong_dtype(data, teacher):
    x, y = data
    d = Distiller(build_model("report_student"), teacher)
    d.compile()
    with pytest.raises(ValueError, match=r"\[0, 10\).*-1 to"):
        d.fit(x, np.where(y == 3, -1, y), verbose=0)
    with pytest.raises(ValueError, match="10"):
        d.evaluate(x, np.where(y == 3, 10, y), verbose=0)
    with pytest.raises(ValueError, match="integer class indices"):
        d.fit(x, y.astype("float32"), verbose=0)
    with pytest.raises(ValueError, match=r"teacher_logits must have shape \(192, 10\)"):
        Distiller(build_model("report_student")).fit(
            with_teacher_logits(x, np.zeros((N, 9), "float32")), y, verbose=0
        )
    with pytest.raises(ValueError, match="cached teacher logits"):
        Distiller(build_model("report_student")).fit(x, y, verbose=0)


def test_categorical_accuracy_on_integer_labels_is_refused(data, teacher):
    x, y = data
    d = Distiller(build_model("report_student"), teacher)
    d.compile(metrics=[keras.metrics.CategoricalAccuracy()])
    with pytest.raises(ValueError, match="SparseCategoricalAccuracy"):
        d.fit(x, y, verbose=0)


def test_student_cannot_be_reused(teacher):
    student = build_model("report_student")
    Distiller(student, teacher, alpha=0.1)
    with pytest.raises(ValueError, match="already used by another Distiller"):
        Distiller(student, teacher, alpha=0.2)
    with pytest.raises(ValueError, match="different models"):
        Distiller(teacher, teacher)


def test_teacher_is_frozen_bitwise(data, teacher):
    x, y = data
    before = weights(teacher)
    d = Distiller(build_model("report_student"), teacher, alpha=0.0, temperature=2.0)
    d.compile(keras.optimizers.Adam(1e-2))
    fit(d, x, y)
    d.evaluate(x, y, verbose=0)
    for a, b in zip(before, weights(teacher), strict=True):
        np.testing.assert_array_equal(a, b)
    teacher_ids = {id(v) for v in teacher.weights}
    assert not teacher_ids & {id(v) for v in d.trainable_weights}


def test_cached_logits_equal_per_step_teacher(data, teacher):
    x, y = data
    set_seed(3)
    student = build_model("report_student")
    twin = keras.models.clone_model(student)
    twin.set_weights(student.get_weights())
    per_step = Distiller(student, teacher, alpha=0.3, temperature=4.0)
    cached = Distiller(twin, alpha=0.3, temperature=4.0)
    for d in (per_step, cached):
        d.compile()
    logits = teacher.predict(x, verbose=0)
    a = per_step.evaluate(x, y, batch_size=N, verbose=0, return_dict=True)
    b = cached.evaluate(
        with_teacher_logits(x, logits), y, batch_size=N, verbose=0, return_dict=True
    )
    assert a.keys() == b.keys() >= {"loss", "accuracy", "hard_loss", "soft_loss", "fidelity"}
    for key in a:
        assert a[key] == pytest.approx(b[key], rel=1e-5, abs=1e-6), key
    fit(per_step, x, y, epochs=1)
    fit(cached, with_teacher_logits(x, logits), y, epochs=1)
    for u, v in zip(weights(student), weights(twin), strict=True):
        np.testing.assert_allclose(u, v, rtol=1e-4, atol=1e-5)


def test_alpha_one_is_plain_supervised_training(data, teacher):
    x, y = data
    set_seed(5)
    student = build_model("report_student")
    plain = keras.models.clone_model(student)
    plain.set_weights(student.get_weights())
    plain.compile(keras.optimizers.Adam(), keras.losses.SparseCategoricalCrossentropy(True))
    d = Distiller(student, teacher, alpha=1.0, temperature=3.0)
    d.compile(keras.optimizers.Adam())
    fit(d, x, y)
    fit(plain, x, y)
    for u, v in zip(weights(student), weights(plain), strict=True):
        np.testing.assert_array_equal(u, v)


def test_alpha_zero_ignores_the_labels(data, teacher):
    x, y = data
    logits = teacher.predict(x, verbose=0)
    finals = []
    for labels in (y, np.random.default_rng(9).permutation(y), np.zeros_like(y)):
        set_seed(6)
        d = Distiller(build_model("report_student"), alpha=0.0, temperature=2.0)
        d.compile(keras.optimizers.Adam())
        fit(d, with_teacher_logits(x, logits), labels)
        finals.append(weights(d.student))
    for other in finals[1:]:
        for u, v in zip(finals[0], other, strict=True):
            np.testing.assert_array_equal(u, v)


def test_keras_api_predict_save_load(data, teacher, tmp_path):
    x, y = data
    d = Distiller(build_model("report_student"), teacher, alpha=0.5)
    d.compile(keras.optimizers.Adam())
    history = fit(d, x, y, epochs=1, validation_data=(x, y))
    assert {"loss", "accuracy", "fidelity", "hard_loss", "soft_loss", "val_accuracy"} <= set(
        history
    )
    assert 0.0 <= history["fidelity"][0] <= 1.0
    predictions = d.predict(x, verbose=0)
    np.testing.assert_allclose(predictions, d.student.predict(x, verbose=0), rtol=1e-6)
    path = tmp_path / "student.keras"
    d.student.save(path)
    loaded = keras.models.load_model(path)
    np.testing.assert_allclose(loaded.predict(x, verbose=0), predictions, rtol=1e-6)


def test_same_seed_same_metrics(data, teacher):
    x, y = data
    logits = teacher.predict(x, verbose=0)
    runs = []
    for _ in range(2):
        set_seed(11)
        d = Distiller(build_model("report_student"), alpha=0.5, temperature=4.0)
        d.compile(keras.optimizers.Adam())
        runs.append(fit(d, with_teacher_logits(x, logits), y, seed=11))
    assert runs[0] == runs[1]


def test_steps_per_execution_changes_nothing(data, teacher):
    """Several steps per compiled call only cut dispatches: the updates are bitwise the same."""
    x, y = data
    logits = teacher.predict(x, verbose=0)
    finals = []
    for steps in (1, 4):
        set_seed(8)
        d = Distiller(build_model("report_student"), alpha=0.3, temperature=4.0)
        d.compile(keras.optimizers.Adam(), steps_per_execution=steps)
        fit(d, with_teacher_logits(x, logits), y)
        finals.append(weights(d.student))
    for u, v in zip(*finals, strict=True):
        np.testing.assert_array_equal(u, v)
