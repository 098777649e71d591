"""Augmentation-safe distillation: the teacher scores the student's augmented batch."""

import keras
import numpy as np
import pytest
from conftest import to_numpy

from kdutils import Distiller, with_teacher_logits
from kdutils.distill.augment import RandomCropFlip, crop_and_flip
from kdutils.distill.models import alexnet_cifar, cnn_bn_student
from kdutils.distill.repro import set_seed

N, SIZE = 64, 8
T = 3.0


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    x = rng.random((N, SIZE, SIZE, 3), dtype=np.float32)
    y = rng.integers(0, 10, N).astype("int32")
    return x, y


class AlwaysFlip(keras.layers.Layer):
    """A deterministic augmentation: every training image mirrored left-right."""

    def call(self, images, training=None):
        return keras.ops.flip(images, axis=2) if training else images


def small_cnn(batchnorm: bool = False, dropout: float = 0.0) -> keras.Model:
    stack = [keras.Input((SIZE, SIZE, 3)), keras.layers.Conv2D(6, 3, activation="relu")]
    if batchnorm:
        stack.append(keras.layers.BatchNormalization())
    stack += [keras.layers.Flatten(), keras.layers.Dropout(dropout), keras.layers.Dense(10)]
    return keras.Sequential(stack)


@pytest.fixture(scope="module")
def teacher(data):
    """A trained teacher with BatchNorm and Dropout, so inference mode matters."""
    set_seed(0)
    t = small_cnn(batchnorm=True, dropout=0.5)
    t.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    t.fit(*data, batch_size=16, epochs=2, verbose=0)
    return t


def weights(model: keras.Model) -> list[np.ndarray]:
    return [np.array(to_numpy(v)) for v in model.weights]


def kd_reference(teacher_logits, student_logits, temperature: float) -> float:
    """T^2 * mean KL(softmax(t/T) || softmax(s/T)) in float64 NumPy."""

    def log_softmax(z):
        z = np.asarray(z, np.float64) / temperature
        z = z - z.max(axis=-1, keepdims=True)
        return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))

    log_p, log_q = log_softmax(teacher_logits), log_softmax(student_logits)
    return float(temperature**2 * (np.exp(log_p) * (log_p - log_q)).sum(axis=-1).mean())


def ce_reference(labels, logits) -> float:
    z = np.asarray(logits, np.float64)
    z = z - z.max(axis=-1, keepdims=True)
    log_probs = z - np.log(np.exp(z).sum(axis=-1, keepdims=True))
    return float(-log_probs[np.arange(len(labels)), labels].mean())


def test_crop_and_flip_crops_each_image_on_its_own_and_is_identity_at_inference(data):
    x, _ = data
    layer = crop_and_flip(padding=2, seed=1)
    out = to_numpy(layer(x, training=True))
    assert out.shape == x.shape and out.dtype == x.dtype
    padded = np.pad(x, [(0, 0), (2, 2), (2, 2), (0, 0)])
    seen = set()
    for b in range(N):
        # Every output is a crop of its own zero-padded image, maybe mirrored: pixels exact.
        matches = [
            (dy, dx, flip)
            for dy in range(5)
            for dx in range(5)
            for flip in (False, True)
            if np.array_equal(
                out[b],
                padded[b, dy : dy + SIZE, dx : dx + SIZE][:, ::-1]
                if flip
                else padded[b, dy : dy + SIZE, dx : dx + SIZE],
            )
        ]
        assert matches, f"image {b} is not a crop of its padded copy"
        seen.add(matches[0])
    assert len({(dy, dx) for dy, dx, _ in seen}) > 10  # offsets differ within one batch
    assert {flip for *_, flip in seen} == {False, True}
    np.testing.assert_array_equal(to_numpy(layer(x, training=False)), x)
    np.testing.assert_array_equal(to_numpy(RandomCropFlip(0, flip=False)(x, training=True)), x)
    with pytest.raises(ValueError, match="padding"):
        RandomCropFlip(padding=-1)


def test_augmentation_refuses_cached_logits(data, teacher):
    x, y = data
    with pytest.raises(ValueError, match="augmentation needs a teacher model"):
        Distiller(small_cnn(), augmentation=crop_and_flip())
    d = Distiller(small_cnn(), teacher, augmentation=crop_and_flip())
    d.compile()
    logits = teacher.predict(x, verbose=0)
    with pytest.raises(ValueError, match="cached teacher logits"):
        d.fit(with_teacher_logits(x, logits), y, verbose=0)


def test_teacher_scores_the_augmented_batch(data, teacher):
    """With an always-flip augmentation, the soft loss the Distiller reports is T^2 KL between
    teacher(flipped x) and student(flipped x), computed here in float64."""
    x, y = data
    set_seed(2)
    student = small_cnn()  # no BatchNorm or Dropout: training mode changes nothing
    flipped = x[:, :, ::-1]
    s = student.predict(flipped, verbose=0)
    t_flipped, t_plain = teacher.predict(flipped, verbose=0), teacher.predict(x, verbose=0)
    d = Distiller(student, teacher, alpha=0.5, temperature=T, augmentation=AlwaysFlip())
    d.compile(keras.optimizers.SGD(0.1))
    # One step on the whole batch: the reported losses use the weights before the update.
    history = d.fit(x, y, batch_size=N, epochs=1, shuffle=False, verbose=0).history
    expected = kd_reference(t_flipped, s, T)
    assert history["soft_loss"][0] == pytest.approx(expected, rel=1e-5)
    assert history["hard_loss"][0] == pytest.approx(ce_reference(y, s), rel=1e-5)
    # The check can tell: the un-flipped teacher gives another soft loss.
    assert abs(kd_reference(t_plain, s, T) - expected) > 100 * 1e-5 * expected
    # Evaluation is never augmented.
    evaluated = d.evaluate(x, y, batch_size=N, verbose=0, return_dict=True)
    after = d.student.predict(x, verbose=0)
    assert evaluated["soft_loss"] == pytest.approx(kd_reference(t_plain, after, T), rel=1e-5)


def test_frozen_teacher_unchanged_after_fit_with_augmentation(data, teacher):
    x, y = data
    before = weights(teacher)
    d = Distiller(small_cnn(), teacher, alpha=0.0, temperature=T, augmentation=crop_and_flip())
    d.compile(keras.optimizers.Adam(1e-2))
    d.fit(x, y, batch_size=16, epochs=2, verbose=0)
    for a, b in zip(before, weights(teacher), strict=True):
        np.testing.assert_array_equal(a, b)
    assert not {id(v) for v in teacher.weights} & {id(v) for v in d.trainable_weights}


def test_alpha_one_with_augmentation_is_plain_supervised_training(data, teacher):
    """alpha = 1 trains exactly as a plain student behind the same augmentation."""
    x, y = data
    finals = []
    for distill, seed in ((True, 7), (False, 7), (False, 8)):
        set_seed(5)
        student = small_cnn(batchnorm=True)
        augmentation = crop_and_flip(seed=seed)
        if distill:
            model = Distiller(student, teacher, alpha=1.0, temperature=T, augmentation=augmentation)
            model.compile(keras.optimizers.SGD(0.05, momentum=0.9))
        else:
            model = keras.Sequential([augmentation, student])
            model.compile(
                keras.optimizers.SGD(0.05, momentum=0.9),
                keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            )
        set_seed(1)
        model.fit(x, y, batch_size=16, epochs=2, shuffle=True, verbose=0)
        finals.append(weights(student))
    # Equal up to float rounding (bitwise on CPU; XLA on a GPU may fuse the two differently)...
    for u, v in zip(finals[0], finals[1], strict=True):
        np.testing.assert_allclose(u, v, rtol=1e-4, atol=1e-5)
    # ... while other augmentations of the same data train to clearly different weights.
    assert max(np.abs(u - v).max() for u, v in zip(finals[1], finals[2], strict=True)) > 1e-2


def test_cifar_models_parameter_counts():
    teacher = alexnet_cifar()
    trainable = sum(int(np.prod(w.shape)) for w in teacher.trainable_weights)
    assert (teacher.count_params(), trainable) == (35_858_634, 35_856_330)
    assert alexnet_cifar(width=0.5).count_params() == 8_978_538
    assert alexnet_cifar(width=0.25).count_params() == 2_251_578
    student = cnn_bn_student()
    trainable = sum(int(np.prod(w.shape)) for w in student.trainable_weights)
    assert (student.count_params(), trainable) == (1_102_794, 1_102_602)
    convs = [layer.filters for layer in teacher.layers if hasattr(layer, "filters")]
    assert convs == [64, 192, 384, 256, 256]
    assert student.output_shape == (None, 10)
