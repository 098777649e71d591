"""Feature losses against float64 NumPy references, and the FeatureDistiller on tiny models."""

import keras
import numpy as np
import pytest
from conftest import gradient, to_numpy
from keras import layers

from kdutils.distill.features import FeatureDistiller
from kdutils.distill.losses import cosine_loss, fitnets_loss, mmd_loss

# --- independent NumPy references (float64) ----------------------------------------------------


def np_flat(x: np.ndarray) -> np.ndarray:
    return np.asarray(x, dtype=np.float64).reshape(len(x), -1)


def np_mmd(s, t, bandwidths=(0.5, 1.0, 2.0), scale=None) -> float:
    """Biased MMD^2 with a mixture of Gaussian kernels, from explicit pairwise distances."""
    s, t = np_flat(s), np_flat(t)
    z = np.concatenate([s, t])
    d = ((z[:, None, :] - z[None, :, :]) ** 2).sum(-1)  # (2B, 2B)
    scale = d.mean() if scale is None else scale
    k = np.mean([np.exp(-d / (2 * b * scale)) for b in bandwidths], axis=0)
    n = len(s)
    return float(k[:n, :n].mean() + k[n:, n:].mean() - 2 * k[:n, n:].mean())


def np_mse(s, t) -> float:
    return float(((np_flat(s) - np_flat(t)) ** 2).mean())


def np_cosine(s, t) -> float:
    s, t = np_flat(s), np_flat(t)
    cos = (s * t).sum(1) / (np.linalg.norm(s, axis=1) * np.linalg.norm(t, axis=1))
    return float((1 - cos).mean())


def features(seed: int, shape=(16, 4, 4, 6), shift: float = 0.0):
    rng = np.random.default_rng(seed)
    s = rng.normal(size=shape).astype("float32")
    t = (rng.normal(size=shape) + shift).astype("float32")
    return s, t


# --- losses ------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(16, 4, 4, 6), (8, 10), (5, 2, 3, 1)])
@pytest.mark.parametrize("bandwidths", [(0.5, 1.0, 2.0), (1.0,), (0.1, 10.0)])
def test_mmd_matches_float64_reference(shape, bandwidths):
    for seed, shift in [(0, 0.0), (1, 0.5), (2, 3.0)]:
        s, t = features(seed, shape, shift)
        ours = float(to_numpy(mmd_loss(s, t, bandwidths=bandwidths)))
        assert ours == pytest.approx(np_mmd(s, t, bandwidths), rel=1e-4, abs=1e-6)
        fixed = float(to_numpy(mmd_loss(s, t, bandwidths=bandwidths, scale=7.0)))
        assert fixed == pytest.approx(np_mmd(s, t, bandwidths, 7.0), rel=1e-4, abs=1e-6)


def test_mmd_is_a_distance_between_distributions_not_examples():
    s, t = features(3, (32, 20))
    perm = np.random.default_rng(0).permutation(len(t))
    # MMD compares the two samples as sets: reordering the teacher's batch changes nothing...
    a, b = to_numpy(mmd_loss(s, t)), to_numpy(mmd_loss(s, t[perm]))
    assert float(a) == pytest.approx(float(b), rel=1e-5)
    # ...while the example-wise losses change.
    assert float(to_numpy(fitnets_loss(s, t))) != pytest.approx(
        float(to_numpy(fitnets_loss(s, t[perm]))), rel=1e-3
    )
    # It is >= 0, and grows as the teacher's distribution moves away.
    values = [float(to_numpy(mmd_loss(s, t + shift, scale=40.0))) for shift in (0, 0.5, 1, 2)]
    assert values[0] >= 0 and np.all(np.diff(values) > 0)


def test_mmd_gradient_survives_large_feature_maps():
    """With the data's own scale the kernel does not underflow on a 16x16x64 map."""
    s, t = features(4, (8, 16, 16, 64), shift=0.3)
    s, t = 10 * s, 10 * t
    g = gradient(lambda v: mmd_loss(v, t), s)
    assert np.all(np.isfinite(g)) and np.abs(g).max() > 0
    g_fixed = gradient(lambda v: mmd_loss(v, t, scale=1.0), s)
    assert np.abs(g_fixed).max() == 0  # a fixed unit bandwidth: exp(-d^2/2) underflows


@pytest.mark.parametrize("shape", [(16, 4, 4, 6), (8, 10)])
def test_fitnets_and_cosine_match_float64_reference(shape):
    for seed in range(3):
        s, t = features(seed, shape, shift=0.2)
        assert float(to_numpy(fitnets_loss(s, t))) == pytest.approx(np_mse(s, t), rel=1e-5)
        assert float(to_numpy(cosine_loss(s, t))) == pytest.approx(
            np_cosine(s, t), rel=1e-5, abs=1e-6
        )


def test_identical_features_give_zero_and_zero_vectors_no_nan():
    s, _ = features(5)
    for loss in (mmd_loss, fitnets_loss, cosine_loss):
        assert float(to_numpy(loss(s, s))) == pytest.approx(0.0, abs=1e-6)
    # Positive multiples have cosine 1; all-zero features give cos = 0, not NaN.
    assert float(to_numpy(cosine_loss(3 * s, s))) == pytest.approx(0.0, abs=1e-6)
    zero = np.zeros_like(s)
    assert float(to_numpy(cosine_loss(zero, s))) == pytest.approx(1.0)
    assert np.isfinite(float(to_numpy(mmd_loss(zero, zero))))


def test_shape_mismatch_is_a_clear_error():
    s, t = features(6)
    for loss in (mmd_loss, fitnets_loss, cosine_loss):
        with pytest.raises(ValueError, match=r"same shape.*project"):
            loss(s[..., :4], t)
    with pytest.raises(ValueError, match="bandwidths"):
        mmd_loss(s, t, bandwidths=(0.0,))


# --- the FeatureDistiller ------------------------------------------------------------------------


def tiny_net(width: int, name: str, seed: int = 0, classes: int = 3) -> keras.Model:
    """8x8x3 -> conv 'c1' (8x8) -> pool -> conv 'c2' (4x4) -> GAP 'gap' -> Dense logits."""
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((8, 8, 3))
    x = layers.Conv2D(width, 3, padding="same", activation="relu", name="c1")(inputs)
    x = layers.MaxPooling2D(2, name="p1")(x)
    x = layers.Conv2D(2 * width, 3, padding="same", activation="relu", name="c2")(x)
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    return keras.Model(inputs, layers.Dense(classes, name="logits")(x), name=name)


def batch(n: int = 32, seed: int = 0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, 8, 8, 3)).astype("float32"), rng.integers(0, 3, n)


PAIRS = {"c1": "c1", "c2": "c2", "gap": "gap"}


def weights_of(model):
    return [np.array(w) for w in model.get_weights()]


def test_teacher_frozen_student_and_projections_trained():
    teacher, student = tiny_net(8, "teacher", 1), tiny_net(4, "student", 2)
    before_t, before_s = weights_of(teacher), weights_of(student)
    n_student = student.count_params()
    d = FeatureDistiller(student, teacher, PAIRS, loss="mmd", weights=[0.2, 0.3, 0.5])
    assert teacher.trainable is False
    assert all(p is not None for p in d.projections)  # widths 4 -> 8, 8 -> 16, 8 -> 16
    before_p = [np.array(p.kernel) for p in d.projections]
    d.compile(optimizer=keras.optimizers.Adam(1e-2), steps_per_execution=2)  # a graph
    x, y = batch()
    history = d.fit(x, y, batch_size=8, epochs=2, verbose=0).history
    assert {"loss", "accuracy", "hard_loss", "feature_loss"} <= set(history)
    assert all(np.isfinite(v).all() for v in history.values())
    for a, b in zip(before_t, weights_of(teacher), strict=True):
        np.testing.assert_array_equal(a, b)
    assert any(not np.allclose(a, b) for a, b in zip(before_s, weights_of(student), strict=True))
    assert all(
        not np.allclose(a, np.array(p.kernel)) for a, p in zip(before_p, d.projections, strict=True)
    )
    # The projections belong to the distiller, not to the student.
    assert student.count_params() == n_student
    ids = {id(v) for v in d.trainable_variables}
    assert len(ids) == len(d.trainable_variables)  # no variable trained twice
    assert len(d.trainable_variables) == len(student.trainable_variables) + 3
    np.testing.assert_allclose(d.predict(x, verbose=0), student.predict(x, verbose=0), atol=1e-6)


def test_alpha_one_is_plain_supervised_training():
    x, y = batch(16)
    plain, student = tiny_net(4, "plain", 2), tiny_net(4, "student", 2)
    plain.compile(
        optimizer=keras.optimizers.SGD(0.1),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        run_eagerly=True,
    )
    plain.fit(x, y, batch_size=16, epochs=1, shuffle=False, verbose=0)
    d = FeatureDistiller(student, tiny_net(8, "teacher", 1), PAIRS, alpha=1.0)
    d.compile(optimizer=keras.optimizers.SGD(0.1), run_eagerly=True)
    d.fit(x, y, batch_size=16, epochs=1, shuffle=False, verbose=0)
    for a, b in zip(weights_of(plain), weights_of(student), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.filterwarnings("ignore:Gradients do not exist:UserWarning")  # the logits layer
def test_alpha_zero_ignores_the_labels():
    x, y = batch(16)
    teacher = tiny_net(8, "teacher", 1)
    students = []
    for labels in (y, (y + 1) % 3):
        student = tiny_net(4, "student", 2)
        d = FeatureDistiller(student, teacher, PAIRS, loss="fitnets", alpha=0.0)
        d.compile(optimizer=keras.optimizers.SGD(0.1), run_eagerly=True)
        d.fit(x, labels, batch_size=16, epochs=1, shuffle=False, verbose=0)
        students.append(weights_of(student))
    for a, b in zip(*students, strict=True):
        np.testing.assert_array_equal(a, b)


def test_loss_is_alpha_ce_plus_weighted_feature_losses():
    """Same widths, no projection: the total against a NumPy computation on the features."""
    teacher, student = tiny_net(4, "teacher", 1), tiny_net(4, "student", 2)
    alpha, w = 0.3, [0.1, 0.2, 0.7]
    d = FeatureDistiller(student, teacher, PAIRS, loss="fitnets", weights=w, alpha=alpha)
    assert all(p is None for p in d.projections)
    x, y = batch(16)
    loss = float(to_numpy(d.compute_loss(x, y, training=False)))

    def feats(model):
        names = list(PAIRS)
        extractor = keras.Model(model.inputs[0], [model.get_layer(n).output for n in names])
        return [np.asarray(f, np.float64) for f in extractor.predict(x, verbose=0)]

    z = student.predict(x, verbose=0).astype(np.float64)
    log_p = z - z.max(1, keepdims=True)
    log_p -= np.log(np.exp(log_p).sum(1, keepdims=True))
    ce = -log_p[np.arange(len(y)), y].mean()
    feature = sum(
        wi * np_mse(s, t) for wi, s, t in zip(w, feats(student), feats(teacher), strict=True)
    )
    assert loss == pytest.approx(alpha * ce + (1 - alpha) * feature, rel=1e-5)


def test_pooling_and_clear_errors():
    teacher, student = tiny_net(8, "teacher", 1), tiny_net(4, "student", 2)
    # Student c1 is 8x8, teacher c2 is 4x4: the student's map is average-pooled by 2.
    d = FeatureDistiller(student, teacher, {"c1": "c2"}, loss="cosine")
    assert d.pools[0] == (2, 1) and d.projections[0].kernel.shape == (1, 1, 4, 16)
    x, y = batch(8)
    assert np.isfinite(float(to_numpy(d.compute_loss(x, y))))
    with pytest.raises(ValueError, match=r"no layer named 'conv9'.*c1, p1, c2, gap"):
        FeatureDistiller(tiny_net(4, "s"), teacher, {"conv9": "c1"})
    with pytest.raises(ValueError, match="teacher 'teacher' has no layer named 'block3'"):
        FeatureDistiller(tiny_net(4, "s"), teacher, {"c1": "block3"})
    with pytest.raises(ValueError, match="one weight >= 0 per pair"):
        FeatureDistiller(tiny_net(4, "s"), teacher, PAIRS, weights=[0.5, 0.5])
    with pytest.raises(ValueError, match="unknown loss"):
        FeatureDistiller(tiny_net(4, "s"), teacher, PAIRS, loss="kl")
    with pytest.raises(ValueError, match="maps or"):  # a map paired with a vector
        FeatureDistiller(tiny_net(4, "s"), teacher, {"c1": "gap"})
    with pytest.raises(ValueError, match="already used"):
        FeatureDistiller(student, teacher, PAIRS)


# --- against keras.distillation ------------------------------------------------------------------


@pytest.mark.filterwarnings("ignore:The structure of `inputs`:UserWarning")  # Keras's own
def test_fitnets_equals_keras_feature_distillation_mse():
    from keras.distillation import Distiller as KerasDistiller
    from keras.distillation import FeatureDistillation

    s, t = features(7, (16, 4, 4, 6), shift=0.3)
    theirs = FeatureDistillation(loss="mse").compute_loss(t, s)
    assert float(to_numpy(fitnets_loss(s, t))) == pytest.approx(float(to_numpy(theirs)), rel=1e-6)

    # Whole distillers, same batch: Keras's student_loss_weight is our alpha, and its
    # distillation_loss_weights are our per-pair weights.
    alpha, w = 0.3, [0.25, 0.75]
    teacher = tiny_net(4, "teacher", 1)
    theirs = KerasDistiller(
        teacher=teacher,
        student=tiny_net(4, "student", 2),
        distillation_losses=[
            FeatureDistillation("mse", teacher_layer_name=n, student_layer_name=n)
            for n in ("c1", "c2")
        ],
        distillation_loss_weights=w,
        student_loss_weight=alpha,
    )
    theirs.compile(optimizer="sgd", loss=keras.losses.SparseCategoricalCrossentropy(True))
    ours = FeatureDistiller(
        tiny_net(4, "student", 2), teacher, {"c1": "c1", "c2": "c2"}, "fitnets", w, alpha
    )
    x, y = batch(16)
    a = float(to_numpy(theirs.compute_loss(x, y, theirs(x, training=False), training=False)))
    b = float(to_numpy(ours.compute_loss(x, y, training=False)))
    assert a == pytest.approx(b, rel=1e-5)


def test_cosine_differs_from_keras_cosine_similarity_as_documented():
    from keras.distillation import FeatureDistillation

    keras_cosine = FeatureDistillation(loss="cosine_similarity")
    # On vectors (B, D), Keras's loss is -mean cos; ours is 1 - mean cos.
    s, t = features(8, (16, 10), shift=0.3)
    theirs = float(to_numpy(keras_cosine.compute_loss(t, s)))
    assert float(to_numpy(cosine_loss(s, t))) == pytest.approx(1 + theirs, rel=1e-5)
    # On maps (B, H, W, C), Keras takes the cosine along channels at each position and
    # averages; ours is one cosine per example over the whole flattened map.
    s, t = features(9, (8, 4, 4, 6), shift=0.3)
    theirs = float(to_numpy(keras_cosine.compute_loss(t, s)))
    s64, t64 = s.astype(np.float64), t.astype(np.float64)
    per_position = (s64 * t64).sum(-1) / (
        np.linalg.norm(s64, axis=-1) * np.linalg.norm(t64, axis=-1)
    )
    assert theirs == pytest.approx(-per_position.mean(), rel=1e-5)
    assert 1 + theirs != pytest.approx(np_cosine(s, t), rel=1e-2)
