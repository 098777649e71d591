"""kdutils.distill.losses against an independent float64 NumPy reference."""

import keras
import numpy as np
import pytest
from conftest import gradient, to_numpy

from kdutils.distill.losses import (
    cross_entropy,
    cross_entropy_per_example,
    distillation_loss,
    distillation_loss_per_example,
    kd_loss,
    soft_targets,
)

TEMPERATURES = [1.0, 1.01, 2.0, 4.0, 10.0, 20.0]


def np_log_softmax(z: np.ndarray) -> np.ndarray:
    z = z.astype(np.float64)
    z = z - z.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


def np_distillation(t: np.ndarray, s: np.ndarray, temperature: float) -> float:
    log_pt = np_log_softmax(t / temperature)
    log_ps = np_log_softmax(s / temperature)
    kl = (np.exp(log_pt) * (log_pt - log_ps)).sum(axis=-1)
    return float(temperature**2 * kl.mean())


def logits(seed: int, scale: float = 3.0, shape=(32, 10)) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return (rng.normal(size=shape) * scale).astype("float32"), (
        rng.normal(size=shape) * scale
    ).astype("float32")


@pytest.mark.parametrize("temperature", TEMPERATURES)
def test_distillation_loss_matches_float64_reference(temperature):
    for seed in range(3):
        t, s = logits(seed)
        ours = float(to_numpy(distillation_loss(t, s, temperature)))
        ref = np_distillation(t.astype(np.float64), s.astype(np.float64), temperature)
        assert ours == pytest.approx(ref, rel=1e-5)


@pytest.mark.parametrize("temperature", TEMPERATURES)
def test_gradient_is_T_times_probability_difference_over_B(temperature):
    t, s = logits(7)
    grad = gradient(lambda v: distillation_loss(t, v, temperature), s)
    p_s = np.exp(np_log_softmax(s / temperature))
    p_t = np.exp(np_log_softmax(t / temperature))
    expected = temperature * (p_s - p_t) / len(s)
    np.testing.assert_allclose(grad, expected, rtol=1e-4, atol=1e-7)


@pytest.mark.parametrize("temperature", [1.0, 1.01, 2.0, 10.0, 100.0])
@pytest.mark.parametrize("scale", [1e2, 1e3, 1e4])
def test_finite_for_huge_logits(temperature, scale):
    t, s = logits(3, scale=1.0)
    t, s = np.sign(t) * scale, -np.sign(s) * scale  # +-scale, teacher and student disagree
    loss = to_numpy(distillation_loss(t, s, temperature))
    grad = gradient(lambda v: distillation_loss(t, v, temperature), s.astype("float32"))
    assert np.isfinite(loss) and loss > 0
    assert np.all(np.isfinite(grad))
    assert np.isfinite(to_numpy(kd_loss(np.zeros(len(s), "int32"), t, s, 0.5, temperature)))


def test_loss_is_zero_when_student_equals_teacher_and_shift_invariant():
    t, _ = logits(1)
    assert float(to_numpy(distillation_loss(t, t, 3.0))) == pytest.approx(0.0, abs=1e-6)
    shifted = float(to_numpy(distillation_loss(t, t + 5.0, 3.0)))
    assert shifted == pytest.approx(0.0, abs=1e-5)


def test_cross_entropy_by_hand_sparse_and_one_hot():
    z = np.array([[1.0, 2.0, 8.0], [0.5, 0.1, -1.0]], dtype="float32")
    labels = np.array([2, 0])
    z64 = z.astype(np.float64)
    by_hand = -np.log(np.exp(z64[[0, 1], labels]) / np.exp(z64).sum(axis=1))
    sparse = to_numpy(cross_entropy_per_example(labels, z))
    one_hot = to_numpy(cross_entropy_per_example(np.eye(3, dtype="float32")[labels], z))
    np.testing.assert_allclose(sparse, by_hand, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(one_hot, by_hand, rtol=1e-5, atol=1e-7)
    assert float(to_numpy(cross_entropy(labels, z))) == pytest.approx(by_hand.mean(), rel=1e-5)


def test_softmax_example_from_the_book():
    p = to_numpy(soft_targets(np.array([1.0, 2.0, 8.0], "float32")))
    np.testing.assert_allclose(p, [0.000911, 0.002477, 0.996612], atol=1e-5)
    flat = to_numpy(soft_targets(np.array([1.0, 2.0, 8.0], "float32"), temperature=100.0))
    assert flat.max() - flat.min() < 0.1  # high T flattens the distribution


def test_kd_loss_combines_hard_and_soft_with_alpha_on_labels():
    t, s = logits(5)
    y = np.random.default_rng(0).integers(0, 10, len(s))
    hard = float(to_numpy(cross_entropy(y, s)))
    soft = np_distillation(t, s, 4.0)
    for alpha in [0.0, 0.25, 0.5, 1.0]:
        got = float(to_numpy(kd_loss(y, t, s, alpha, 4.0)))
        assert got == pytest.approx(alpha * hard + (1 - alpha) * soft, rel=1e-5)


def test_alpha_zero_never_reads_labels():
    t, s = logits(5)
    a = to_numpy(kd_loss(np.zeros(32, "int32"), t, s, 0.0, 2.0))
    b = to_numpy(kd_loss(np.full(32, 9, "int32"), t, s, 0.0, 2.0))
    assert a == b


@pytest.mark.parametrize("alpha", [-0.1, 1.5, float("nan"), "0.5", True])
def test_bad_alpha_names_the_argument(alpha):
    t, s = logits(0)
    with pytest.raises(ValueError, match="alpha"):
        kd_loss(np.zeros(32, "int32"), t, s, alpha, 2.0)


@pytest.mark.parametrize("temperature", [0.0, -1.0, float("inf"), float("nan"), None])
def test_bad_temperature_names_the_argument(temperature):
    t, s = logits(0)
    with pytest.raises(ValueError, match="temperature"):
        distillation_loss(t, s, temperature)
    with pytest.raises(ValueError, match="temperature"):
        kd_loss(np.zeros(32, "int32"), t, s, 1.0, temperature)


def test_matches_keras_logits_distillation_except_where_keras_clips():
    """Keras's LogitsDistillation with a KLDivergence *instance* computes the same T^2 KL, but
    from probabilities clipped to [1e-7, 1]. For ordinary logits the two agree; when a
    probability falls below 1e-7 Keras's value is wrong. Ours is not."""
    from keras.distillation import LogitsDistillation

    for temperature in [1.0, 2.0, 4.0]:
        keras_kd = LogitsDistillation(temperature=temperature, loss=keras.losses.KLDivergence())
        t, s = logits(11, scale=1.0)
        ours = float(to_numpy(distillation_loss(t, s, temperature)))
        theirs = float(to_numpy(keras_kd.compute_loss(t, s)))
        assert ours == pytest.approx(theirs, rel=1e-5)

    t = np.array([[0.0, 0.0, -40.0]], "float32")  # teacher: (0.5, 0.5, ~4e-18)
    s = np.array([[30.0, -10.0, 0.0]], "float32")  # student puts ~4e-18 on class 1
    ref = np_distillation(t, s, 1.0)
    ours = float(to_numpy(distillation_loss(t, s, 1.0)))
    keras_kd = LogitsDistillation(temperature=1.0, loss=keras.losses.KLDivergence())
    theirs = float(to_numpy(keras_kd.compute_loss(t, s)))
    assert ours == pytest.approx(ref, rel=1e-5)
    assert theirs < 0.7 * ref  # clipping at 1e-7 caps the penalty


def test_keras_default_string_loss_is_applied_to_logits_not_probabilities():
    """With its default `loss="kl_divergence"` (a string), Keras 3.15's LogitsDistillation
    resolves to the *function* kl_divergence, skips its softmax branch, and applies KL to the
    scaled logits clipped to [1e-7, 1], without the T^2 factor. Ours follows the paper."""
    from keras.distillation import LogitsDistillation

    t, s = logits(11, scale=1.0)
    ours = float(to_numpy(distillation_loss(t, s, 2.0)))
    default = float(to_numpy(LogitsDistillation(temperature=2.0).compute_loss(t, s)))
    clipped_t = np.clip(t / 2.0, 1e-7, 1.0).astype(np.float64)
    clipped_s = np.clip(s / 2.0, 1e-7, 1.0).astype(np.float64)
    on_logits = np.mean(np.sum(clipped_t * np.log(clipped_t / clipped_s), axis=-1))
    assert default == pytest.approx(on_logits, rel=1e-4)
    assert abs(default - ours) > 1.0


# --- The promise of the module docstring: T in [1e-2, 1e4], logits up to +-1e4, -inf teacher


def reference_per_example(t: np.ndarray, s: np.ndarray, temperature: float) -> np.ndarray:
    """T^2 KL in float64, the textbook way; classes with a -inf teacher logit add 0."""
    log_pt = np_log_softmax(t.astype(np.float64) / temperature)
    log_ps = np_log_softmax(s.astype(np.float64) / temperature)
    on = np.isfinite(log_pt)
    terms = np.where(on, np.exp(log_pt) * (np.where(on, log_pt, 0.0) - log_ps), 0.0)
    return temperature**2 * terms.sum(axis=-1)


def exact_per_example(t: np.ndarray, s: np.ndarray, temperature: float) -> np.ndarray:
    """The same textbook formula in 60-digit decimal arithmetic, for the near-equal logits at
    which float64 itself cancels (its KL would be a difference of nearly equal terms)."""
    import decimal

    decimal.getcontext().prec = 60
    T = decimal.Decimal(float(temperature))

    def log_softmax(row):
        z = [decimal.Decimal(float(v)) / T for v in row]
        top = max(z)
        log_total = sum((v - top).exp() for v in z).ln() + top
        return [v - log_total for v in z]

    out = []
    for t_row, s_row in zip(t, s, strict=True):
        finite = np.isfinite(t_row)
        log_pt = log_softmax(t_row[finite])
        log_ps = [v for v, f in zip(log_softmax(s_row), finite, strict=True) if f]
        kl = sum(a.exp() * (a - b) for a, b in zip(log_pt, log_ps, strict=True))
        out.append(float(kl * T * T))
    return np.array(out)


def promised(t: np.ndarray, s: np.ndarray, temperature: float, reference, atol: float) -> None:
    """Finite, non-negative, within 1e-5 relative of `reference` (or `atol`, the reference's
    own error or float32's underflow), and a finite gradient, T (q - p) / B to 1e-3."""
    ours = to_numpy(distillation_loss_per_example(t, s, temperature))
    ref = reference(t, s, temperature)
    assert np.all(np.isfinite(ours)) and np.all(ours >= 0.0)
    np.testing.assert_allclose(ours, ref, rtol=1e-5, atol=atol)
    grad = gradient(lambda v: distillation_loss(t, v, temperature), s)
    p_t = np.exp(np_log_softmax(t.astype(np.float64) / temperature))
    expected = temperature * (np.exp(np_log_softmax(s / temperature)) - p_t) / len(s)
    assert np.all(np.isfinite(grad))
    np.testing.assert_allclose(grad, expected, rtol=0, atol=1e-3 * np.abs(expected).max() + 1e-30)


def hard_logits(kind: str, scale: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(teacher, student) float32 logits of one kind, up to +-scale."""
    rng = np.random.default_rng(seed)
    t = rng.uniform(-scale, scale, (16, 10)).astype("float32")
    s = rng.uniform(-scale, scale, (16, 10)).astype("float32")
    if kind == "sign":  # every logit at +-scale, teacher and student disagreeing
        t, s = np.sign(t) * scale, -np.sign(s) * scale
    elif kind == "ruled out":  # the teacher rules out four classes, one row all but one
        t[:, 1:5] = -np.inf
        t[0, 1:] = -np.inf
    elif kind == "near":  # the student almost equals the teacher
        s = t + rng.normal(size=t.shape).astype("float32") * scale * 1e-3
    elif kind == "offset":  # ... up to a large constant
        s = t + 0.5 * scale + rng.normal(size=t.shape).astype("float32") * scale * 1e-2
    return t.astype("float32"), s.astype("float32")


SUPPORTED = [1e-2, 0.1, 1.0, 3.0, 10.0, 100.0, 1e3, 1e4]


@pytest.mark.parametrize("temperature", SUPPORTED)
@pytest.mark.parametrize("kind", ["independent", "sign", "ruled out"])
def test_loss_keeps_its_promise_against_float64(temperature, kind):
    for scale in (1.0, 1e2, 1e4):
        # float64's own error: ~1e-16 on KL, which the T^2 factor scales
        t, s = hard_logits(kind, scale, seed=int(scale))
        promised(t, s, temperature, reference_per_example, atol=1e-15 * temperature**2)


@pytest.mark.parametrize("temperature", [1e-2, 1.0, 1e2, 1e4])
@pytest.mark.parametrize("kind", ["near", "offset", "independent"])
def test_loss_keeps_its_promise_where_float64_cancels(temperature, kind):
    for scale in (1e-3, 1.0, 1e4):
        promised(*hard_logits(kind, scale, seed=7), temperature, exact_per_example, atol=1e-30)


def test_the_reported_high_temperature_failures_are_gone():
    """Unit-scale logits: T = 1e3 gave 0.878 (reference 0.912) and T = 1e4 gave -3.485."""
    rng = np.random.default_rng(0)
    t, s = rng.normal(size=(2, 256, 10)).astype("float32")
    for temperature in (1e3, 1e4):
        ours = float(to_numpy(distillation_loss(t, s, temperature)))
        exact = exact_per_example(t, s, temperature).mean()
        assert ours == pytest.approx(exact, rel=1e-5)


def test_minus_infinity_teacher_logit_gives_the_exact_loss_and_gradient():
    t = np.array([[0.0, -np.inf, 2.0]], "float32")
    s = np.array([[1.0, 0.5, -1.0]], "float32")
    q = np.exp(np_log_softmax(s))
    p = np.exp(np_log_softmax(t))
    by_hand = sum(p[0, i] * np.log(p[0, i] / q[0, i]) for i in (0, 2))
    assert float(to_numpy(distillation_loss(t, s, 1.0))) == pytest.approx(by_hand, rel=1e-6)
    np.testing.assert_allclose(
        gradient(lambda v: distillation_loss(t, v, 1.0), s), q - p, atol=1e-6
    )


@pytest.mark.parametrize("temperature", [1e-300, 5e-3, 0.0099, 10000.5, 1e300])
def test_temperatures_outside_the_supported_range_are_refused_with_the_range(temperature):
    t, s = logits(0)
    with pytest.raises(ValueError, match=r"temperature.*\[0\.01, 10000\]"):
        distillation_loss(t, s, temperature)


def test_float64_logits_stay_float64():
    t, s = logits(2)
    loss = distillation_loss(t.astype("float64"), s.astype("float64"), 2.0)
    assert "float64" in str(loss.dtype)
