"""Finite or refused, and errors that name the argument and the fix (issue 17, items 1 and 6).

Each case drives the public API with bad input and expects a clear error before any training,
or a correct result.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import to_numpy

import kdutils.distill.data
from kdutils import Distiller, build_model, distillation_loss, kd_loss, with_teacher_logits
from kdutils.distill.data import Dataset
from kdutils.distill.finite import NonFiniteError, StopOnNonFiniteLoss
from kdutils.distill.fused import FusedDistiller
from kdutils.profiles import Profile
from kdutils.teacher_cache import Teacher, fit_supervised

N = 64


@pytest.fixture
def arrays():
    rng = np.random.default_rng(0)
    x = rng.random((N, 28, 28, 1), dtype=np.float32)
    y = rng.integers(0, 10, N).astype("int32")
    logits = rng.normal(size=(N, 10)).astype("float32")
    return x, y, logits


def cached_distiller(**kwargs) -> Distiller:
    d = Distiller(build_model("report_student"), alpha=0.5, temperature=4.0, **kwargs)
    d.compile()
    return d


def weights(model: keras.Model) -> list[np.ndarray]:
    return [np.array(to_numpy(v)) for v in model.weights]


def infinite_student() -> keras.Model:
    """A student whose logits overflow to inf, so its loss is NaN from the first step."""
    return keras.Sequential(
        [
            keras.Input((28, 28, 1)),
            keras.layers.Flatten(),
            keras.layers.Dense(10),
            keras.layers.Lambda(lambda z: z * 1e30 * 1e30),
        ]
    )


# --- 1. Finite or refused ---------------------------------------------------------------------


def test_nan_in_cached_teacher_logits_is_refused_before_training(arrays):
    x, y, logits = arrays
    logits[5, 2], logits[9, 0] = np.nan, np.inf
    d = cached_distiller()
    before = weights(d.student)
    with pytest.raises(
        NonFiniteError, match=r"training teacher_logits holds 2 non-finite.*\(5, 2\)"
    ):
        d.fit(with_teacher_logits(x, logits), y, verbose=0)
    assert all(np.array_equal(a, b) for a, b in zip(before, weights(d.student), strict=True))


def test_nan_pixel_and_inf_validation_logits_are_refused(arrays):
    x, y, logits = arrays
    bad_x = x.copy()
    bad_x[3, 10, 11, 0] = np.nan
    with pytest.raises(ValueError, match=r"training inputs holds 1 non-finite.*\(3, 10, 11, 0\)"):
        cached_distiller().fit(with_teacher_logits(bad_x, logits), y, verbose=0)
    bad_logits = logits.copy()
    bad_logits[0, 0] = -np.inf
    with pytest.raises(NonFiniteError, match="validation teacher_logits"):
        cached_distiller().fit(
            with_teacher_logits(x, logits),
            y,
            validation_data=(with_teacher_logits(x, bad_logits), y),
            verbose=0,
        )
    fused = FusedDistiller([build_model("report_student") for _ in range(2)], [0.2, 0.8])
    fused.compile()
    with pytest.raises(NonFiniteError, match="teacher_logits"):
        fused.fit(with_teacher_logits(x, np.full_like(logits, np.nan)), y, verbose=0)


def test_nan_in_a_dataset_stops_in_the_graph_naming_the_batch(arrays):
    x, y, logits = arrays
    logits[40, 3] = np.nan  # batch 2 of 16
    data = tf.data.Dataset.from_tensor_slices((with_teacher_logits(x, logits), y)).batch(16)
    with pytest.raises(tf.errors.InvalidArgumentError, match="training teacher_logits holds non"):
        cached_distiller().fit(data, verbose=0)


def test_a_loss_that_becomes_nan_stops_training_at_once(arrays):
    x, y, logits = arrays
    d = Distiller(infinite_student(), alpha=0.5, temperature=4.0)
    d.compile()
    with pytest.raises(NonFiniteError, match=r"loss became nan in epoch 1 at batch 0"):
        d.fit(with_teacher_logits(x, logits), y, batch_size=16, epochs=3, verbose=0,
              callbacks=[StopOnNonFiniteLoss()])  # fmt: skip


def tiny_dataset(x, y) -> Dataset:
    return Dataset(
        name="tiny",
        x_train=x,
        y_train=y,
        x_val=x[:16],
        y_val=y[:16],
        x_test=x[:16],
        y_test=y[:16],
        y_train_clean=y,
        noise_mask=np.zeros(len(y), bool),
        class_names=tuple(str(i) for i in range(10)),
        source="test",
    )


def test_teacher_training_refuses_nan_pixels_and_stops_on_a_nan_loss(arrays):
    x, y, _ = arrays
    with pytest.raises(NonFiniteError, match="supervised training"):
        fit_supervised(infinite_student(), "adam", tiny_dataset(x, y), batch_size=16, epochs=2)
    bad = x.copy()
    bad[1, 0, 0, 0] = np.inf
    with pytest.raises(NonFiniteError, match=r"tiny x_train holds 1 non-finite.*\(1, 0, 0, 0\)"):
        fit_supervised(build_model("report_student"), "adam", tiny_dataset(bad, y), 16, 1)


def test_a_run_whose_loss_becomes_nan_writes_no_record(arrays, tmp_path, monkeypatch):
    from kdutils import experiment

    x, y, logits = arrays
    teacher = Teacher(
        {"test_accuracy": 0.5}, {"train": logits, "val": logits[:16], "test": logits[:16]}
    )
    monkeypatch.setattr(experiment, "get_teacher", lambda *args, **kwargs: teacher)
    monkeypatch.setattr(experiment, "build_model", lambda *args: infinite_student())
    profile = Profile(name="nan", epochs=1, budgets=(1,), seeds=(0,), batch_size=16)
    with pytest.raises(NonFiniteError, match=r"students \[0.5\] of seed 0"):
        experiment.run_students(profile, [0.5], 0, tmp_path, data=tiny_dataset(x, y))
    assert not list(tmp_path.rglob("*.json"))


# --- 6. Errors that name the argument and the fix ------------------------------------------------


def test_one_hot_labels_are_refused_up_front_asking_for_class_indices(arrays):
    x, y, logits = arrays
    one_hot = np.eye(10, dtype="float32")[y]
    with pytest.raises(ValueError, match=r"integer class indices.*np\.argmax"):
        cached_distiller().fit(with_teacher_logits(x, logits), one_hot, verbose=0)
    data = tf.data.Dataset.from_tensor_slices((with_teacher_logits(x, logits), one_hot)).batch(8)
    with pytest.raises(ValueError, match="integer class indices"):
        cached_distiller().fit(data, verbose=0)


def test_a_dataset_that_carries_cached_logits_trains(arrays):
    x, y, logits = arrays
    data = tf.data.Dataset.from_tensor_slices((with_teacher_logits(x, logits), y)).batch(16)
    history = cached_distiller().fit(data, validation_data=data, epochs=2, verbose=0).history
    assert len(history["loss"]) == 2 and np.all(np.isfinite(history["val_loss"]))
    without = tf.data.Dataset.from_tensor_slices((x, y)).batch(16)
    with pytest.raises(ValueError, match=r"dataset's elements must be \(with_teacher_logits"):
        cached_distiller().fit(without, verbose=0)


def test_numpy_float32_alpha_and_temperature_are_accepted(arrays):
    _, y, logits = arrays
    d = Distiller(build_model("report_student"), alpha=np.float32(0.25), temperature=np.float32(4))
    assert (d.alpha, d.temperature) == (0.25, 4.0)
    ours = float(to_numpy(kd_loss(y, logits, logits[::-1], np.float32(0.5), np.float64(2.0))))
    assert ours == pytest.approx(float(to_numpy(kd_loss(y, logits, logits[::-1], 0.5, 2.0))))
    assert np.isfinite(float(to_numpy(distillation_loss(logits, logits, np.float32(1e4)))))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"train_size": 0}, r"train_size must be a whole number >= 1.*train_size=0"),
        ({"validation_size": 0}, r"validation_size must be a whole number >= 1.*=0"),
        ({"train_size": 100.5}, r"train_size must be a whole number.*train_size=100\.5"),
        ({"seed": -1}, r"seed must be a whole number >= 0.*seed=-1"),
        ({"seed": 1.5}, r"seed.*seed=1\.5"),
        ({"test_size": True}, r"test_size.*test_size=True"),
        ({"noise_rate": "0.1"}, r"noise_rate=0\.1"),
    ],
)
def test_bad_sizes_and_seeds_name_the_argument(kwargs, message):
    with pytest.raises(ValueError, match=message):
        kdutils.distill.data.load_dataset("mnist", **kwargs)


def test_sweep_refuses_alphas_outside_zero_one(capsys):
    from kdutils import sweep

    with pytest.raises(SystemExit):
        sweep.main(["--profile", "smoke", "--alphas", "0.5", "1e300"])
    assert "alpha must be a number in [0, 1], got '1e300'" in capsys.readouterr().err
    with pytest.raises(ValueError, match=r"alpha=1e\+300"):
        Profile(name="bad", alphas=(0.5, 1e300))
    with pytest.raises(ValueError, match=r"seeds=\(-1,\)"):
        Profile(name="bad", seeds=(-1,))


def test_empty_data_is_refused_instead_of_training_nothing(arrays):
    x, y, logits = arrays
    with pytest.raises(ValueError, match="training data is empty"):
        cached_distiller().fit(with_teacher_logits(x[:0], logits[:0]), y[:0], verbose=0)
    data = tf.data.Dataset.from_tensor_slices((with_teacher_logits(x, logits), y))
    with pytest.raises(ValueError, match="training dataset is empty"):
        cached_distiller().fit(data.take(0).batch(8), verbose=0)
    unknown = data.filter(lambda inputs, label: label < 0).batch(8)  # cardinality unknown
    with pytest.raises(ValueError, match="no training step ran"):
        cached_distiller().fit(unknown, verbose=0)
