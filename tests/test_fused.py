"""Fused training is separate training: same weights, same metrics, per student."""

import keras
import numpy as np
import pytest
from conftest import to_numpy

from kdutils import Distiller, with_teacher_logits
from kdutils.distill.fused import FusedDistiller, split_history
from kdutils.distill.models import report_cnn
from kdutils.distill.repro import set_seed

N, ALPHAS, T = 170, (0.0, 0.3, 1.0), 4.0


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    x = rng.random((N, 28, 28, 1), dtype=np.float32)
    y = rng.integers(0, 10, N).astype("int32")
    logits = rng.normal(0, 3, (N, 10)).astype("float32")
    return x, y, logits


def student(seed: int = 0) -> keras.Model:
    set_seed(seed)
    return report_cnn((4, 8))


def weights(model: keras.Model) -> list[np.ndarray]:
    return [np.array(to_numpy(v)) for v in model.weights]


def train(model, x, y, epochs=3, **compile_args):
    model.compile(optimizer=keras.optimizers.Adam(1e-2), **compile_args)
    return model.fit(x, y, batch_size=32, epochs=epochs, shuffle=False, verbose=0).history


@pytest.fixture(scope="module")
def runs(data):
    """(separate Distillers, fused model, their histories) trained on the same batches."""
    x, y, logits = data
    separate = [Distiller(student(), alpha=a, temperature=T) for a in ALPHAS]
    histories = [train(d, with_teacher_logits(x, logits), y) for d in separate]
    fused = FusedDistiller([student() for _ in ALPHAS], list(ALPHAS), temperature=T)
    fused_history = train(fused, with_teacher_logits(x, logits), y)
    return separate, histories, fused, fused_history


def test_fused_weights_equal_separate_runs(runs):
    separate, _, fused, _ = runs
    for one, together in zip(separate, fused.students, strict=True):
        for a, b in zip(weights(one.student), weights(together), strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    # and the students really differ from each other (alpha matters)
    assert not np.allclose(weights(fused.students[0])[0], weights(fused.students[-1])[0])


def test_fused_history_splits_into_distiller_histories(runs):
    _, histories, _, fused_history = runs
    split = split_history(fused_history, len(ALPHAS))
    for one, mine in zip(histories, split, strict=True):
        assert set(mine) == set(one)
        for key in one:
            np.testing.assert_allclose(mine[key], one[key], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(
        fused_history["loss"], np.sum([h["loss"] for h in histories], axis=0), rtol=1e-4
    )


def test_fused_predict_stacks_students(runs, data):
    _, _, fused, _ = runs
    x, _, logits = data
    out = fused.predict(with_teacher_logits(x, logits), verbose=0)
    assert out.shape == (N, len(ALPHAS), 10)
    np.testing.assert_allclose(out[:, 1], to_numpy(fused.students[1](x)), rtol=1e-4, atol=1e-5)


def test_fused_teacher_model_stays_frozen(data):
    x, y, _ = data
    teacher = student(seed=5)
    before = weights(teacher)
    fused = FusedDistiller([student(), student()], [0.0, 0.5], teacher=teacher, temperature=T)
    train(fused, x, y, epochs=1)
    for a, b in zip(before, weights(teacher), strict=True):
        np.testing.assert_array_equal(a, b)


def test_fused_errors(data):
    x, y, logits = data
    with pytest.raises(ValueError, match="one alpha per student"):
        FusedDistiller([student(), student()], [0.5], temperature=T)
    s = student()
    with pytest.raises(ValueError, match="different model"):
        FusedDistiller([s, s], [0.0, 1.0], temperature=T)
    with pytest.raises(ValueError, match="alpha"):
        FusedDistiller([student(), student()], [0.0, 1.5], temperature=T)
    used = student()
    Distiller(used, alpha=0.5)
    with pytest.raises(ValueError, match="already used"):
        FusedDistiller([student(), used], [0.0, 1.0], temperature=T)
    fused = FusedDistiller([student(), student()], [0.0, 1.0], temperature=T)
    with pytest.raises(ValueError, match="metrics"):
        fused.compile("adam", metrics=["accuracy"])
    fused.compile("adam")
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 10\)"):
        fused.fit(with_teacher_logits(x, logits), y + 10, verbose=0)


def test_optimizer_built_before_fit_changes_nothing(data):
    """`Distiller.fit` builds the optimizer before Keras's fit (one trace instead of two)."""
    x, y, logits = data
    trained = []
    for fit in (keras.Model.fit, FusedDistiller.fit):  # optimizer built lazily, then early
        model = FusedDistiller([student() for _ in ALPHAS], list(ALPHAS), temperature=T)
        model.compile(optimizer=keras.optimizers.Adam(1e-2), steps_per_execution=4)
        inputs = with_teacher_logits(x, logits)
        fit(model, inputs, y, batch_size=32, epochs=2, shuffle=False, verbose=0)
        trained.append(weights(model))
    assert len(trained[0]) > 2 * len(ALPHAS)
    for a, b in zip(*trained, strict=True):
        np.testing.assert_array_equal(a, b)
