"""Knowledge-distillation losses computed from logits with `keras.ops` only.

The alpha convention used everywhere in this project:

    loss = alpha * CE(labels, student) + (1 - alpha) * T^2 * KL(softmax(t/T) || softmax(s/T))

`alpha` weights the *hard labels*, as in the report's code and the Keras example.
`alpha = 1` is plain supervised training; `alpha = 0` is pure imitation of the teacher.

What the distillation term guarantees (tests/test_losses.py checks it on a grid of cases):
for temperatures T in [MIN_TEMPERATURE, MAX_TEMPERATURE] = [1e-2, 1e4], float32 logits up to
+-1e4, and teacher logits of -inf (classes the teacher rules out; at least one finite per row),
the per-example T^2 * KL is finite, non-negative and within 1e-5 relative of the exact value
(a float64 or 60-digit reference; values below 1e-30, which float32 cannot hold to that
precision, within 1e-30), and its gradient with respect to the student's logits is finite and
equals T (q - p) / B to 1e-3 of its largest entry. Temperatures outside that range are
refused. Non-finite student logits and +inf or NaN teacher logits are not supported (the
`Distiller` refuses them before training). Float64 logits are computed in float64.

It is computed without the cancellations that break the textbook sum p (log p - log q) in
float32 (at T = 1e4 it gave a negative KL): the difference d = (t - s) / T is formed exactly
(Knuth's TwoSum) and centred, c = d - E_p[d]; then KL = mu + log1p(r - mu), with mu = E_p[c]
~ 0 and r = E_p[exp(-c) - 1 + c] + (the student's mass where p = 0, rescaled) >= 0; each term
exp(-c) - 1 + c and log1p(x) - x comes from its series near 0. A row with KL > 1 takes
mu + logsumexp(log p - c) instead, which is accurate there.
"""

from __future__ import annotations

import math
import numbers

from keras import ops

MIN_TEMPERATURE, MAX_TEMPERATURE = 1e-2, 1e4
# |c| below this uses the Taylor series of exp(-c) - 1 + c (to c^9: < 1e-8 relative error;
# at |c| >= 0.5 the direct form loses less than 20 ulp).
_TAYLOR_RADIUS = 0.5
_EXP_EXCESS = tuple((-1) ** n / math.factorial(n) for n in range(2, 10))
# |x| below this uses the series of log1p(x) - x (to x^4: < 1e-6 relative error, on a
# correction that is itself < 1% of the KL).
_LOG_RADIUS = 0.01
_LOG1P_EXCESS = (-1 / 2, 1 / 3, -1 / 4)
# exp() arguments are clipped here, far from float32 overflow, so no branch makes inf or NaN.
_EXP_LIMIT = 80.0
# A row whose largest v exceeds this has KL > 1 - |mu|: it takes the log-sum-exp form, which
# is then accurate and whose gradient (a softmax) cannot underflow as 1 / (1 + e^v) would.
_LOGSUMEXP_FROM = 1.0


def _is_real(value) -> bool:
    """A real number (Python or NumPy, including np.float32), but not a bool."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def check_alpha(alpha: float) -> float:
    """Return `alpha` as a float, or raise `ValueError` unless 0 <= alpha <= 1."""
    if not _is_real(alpha) or not 0.0 <= float(alpha) <= 1.0:
        raise ValueError(f"alpha must be a number in [0, 1], got alpha={alpha!r}")
    return float(alpha)


def check_temperature(temperature: float) -> float:
    """Return `temperature` as a float, or raise `ValueError` unless it lies in the supported
    range [MIN_TEMPERATURE, MAX_TEMPERATURE] = [1e-2, 1e4]."""
    if not _is_real(temperature) or not MIN_TEMPERATURE <= float(temperature) <= MAX_TEMPERATURE:
        raise ValueError(
            f"temperature must be a number in [{MIN_TEMPERATURE:g}, {MAX_TEMPERATURE:g}], the "
            f"range where the distillation loss is tested accurate; got "
            f"temperature={temperature!r}"
        )
    return float(temperature)


def soft_targets(logits, temperature: float = 1.0):
    """The temperature softmax, softmax(logits / T), along the last axis."""
    return ops.softmax(ops.divide(logits, check_temperature(temperature)), axis=-1)


def _float_pair(teacher_logits, student_logits):
    """Both logits as tensors of one float dtype: float64 stays, anything narrower -> float32."""
    s = ops.convert_to_tensor(student_logits)
    dtype = "float64" if "float64" in str(s.dtype) else "float32"
    return ops.cast(teacher_logits, dtype), ops.cast(s, dtype)


def _two_difference(a, b):
    """(hi, lo) with hi + lo == a - b exactly in floating point (Knuth's TwoSum)."""
    hi = a - b
    a_part = hi + b
    b_part = hi - a_part
    return hi, (a - a_part) - (b + b_part)


def _series(x, coefficients: tuple[float, ...], radius: float):
    """sum_n coefficients[n - 2] * x^n (n >= 2) by Horner's rule, where |x| < radius, else 0."""
    near = ops.less(ops.abs(x), radius)
    x = ops.where(near, x, 0.0)  # never evaluate the series (or its gradient) far out
    total = coefficients[-1]
    for coefficient in reversed(coefficients[:-1]):
        total = coefficient + x * total
    return near, x * x * total


def kl_divergence(teacher_logits, student_logits, temperature: float):
    """KL(softmax(t/T) || softmax(s/T)) per example, accurate in float32 (see module doc)."""
    return _kl_divergence(teacher_logits, student_logits, check_temperature(temperature))


def _kl_divergence(teacher_logits, student_logits, temperature):
    """`kl_divergence` with `temperature` unchecked (a float, or a scalar tensor)."""
    t, s = _float_pair(teacher_logits, student_logits)
    support = ops.greater(t, float("-inf"))  # classes the teacher gives p > 0
    top = ops.one_hot(ops.argmax(t, axis=-1), ops.shape(t)[-1], dtype="bool")

    def at_top(x):  # x at the teacher's top class, shape (..., 1)
        return ops.sum(ops.where(top, x, 0.0), axis=-1, keepdims=True)

    log_p = ops.log_softmax((t - ops.max(t, axis=-1, keepdims=True)) / temperature, axis=-1)
    p = ops.exp(log_p)
    # d = (t - s) / T relative to its value at the teacher's top class, formed exactly
    hi, lo = _two_difference(t, s)
    d = ops.where(support, ((hi - at_top(hi)) + lo) / temperature, 0.0)
    c = d - ops.sum(p * d, axis=-1, keepdims=True)
    mu = ops.sum(p * c, axis=-1)
    # v = log p - c (so exp(v) = p exp(-c)), written as log q + const: exact for every class,
    # also where p underflows or is 0; sum(exp(v)) = E_p[exp(-c)] + q's mass off the support
    v = at_top(log_p - c) + (s - at_top(s)) / temperature
    exp_v = ops.exp(ops.minimum(v, _EXP_LIMIT))
    near, series = _series(c, _EXP_EXCESS, _TAYLOR_RADIUS)  # exp(-c) - 1 + c
    # farther out p * (expm1(-c) + c), unless exp(-c) could overflow or p underflow
    safe = ops.logical_and(c > -_EXP_LIMIT, log_p > -_EXP_LIMIT)
    direct = ops.where(safe, p * (ops.expm1(-ops.maximum(c, -_EXP_LIMIT)) + c), exp_v - p + p * c)
    excess = ops.where(near, p * series, direct)
    rest = ops.sum(ops.where(support, excess, exp_v), axis=-1)  # = E_p[exp(-c)] - 1 + mu
    # KL = mu + log1p(rest - mu) = rest + (log1p(x) - x) with x = rest - mu; mu ~ 0
    x = rest - mu
    near, series = _series(x, _LOG1P_EXCESS, _LOG_RADIUS)
    small = ops.where(near, rest + series, mu + ops.log1p(x))
    large = mu + ops.logsumexp(v, axis=-1)
    kl = ops.where(ops.max(v, axis=-1) > _LOGSUMEXP_FROM, large, small)
    return ops.maximum(kl, 0.0)


def distillation_loss_per_example(teacher_logits, student_logits, temperature: float):
    """T^2 * KL(softmax(t/T) || softmax(s/T)) for each example (no batch reduction)."""
    return scaled_kl_per_example(teacher_logits, student_logits, check_temperature(temperature))


def scaled_kl_per_example(teacher_logits, student_logits, temperature):
    """`distillation_loss_per_example` with `temperature` unchecked: it may be a tensor (one
    per student in `kdutils.distill.batched`)."""
    return _kl_divergence(teacher_logits, student_logits, temperature) * (temperature**2)


def distillation_loss(teacher_logits, student_logits, temperature: float):
    """Batch mean of T^2 * KL(softmax(t/T) || softmax(s/T)).

    The T^2 factor (Hinton et al., 2015) keeps the gradient's scale independent of T:
    d loss / d s = T * (softmax(s/T) - softmax(t/T)) / B for a batch of B examples.
    What holds over T and the logits' range is in the module docstring.
    """
    return ops.mean(distillation_loss_per_example(teacher_logits, student_logits, temperature))


def cross_entropy_per_example(labels, logits):
    """Multiclass cross-entropy -log softmax(logits)[label], one value per example.

    `labels` are integer class indices of shape (B,), or one-hot / probability rows of the
    same shape as `logits`.
    """
    log_probs = ops.log_softmax(logits, axis=-1)
    if len(labels.shape) == len(logits.shape):
        return -ops.sum(ops.cast(labels, log_probs.dtype) * log_probs, axis=-1)
    return ops.sparse_categorical_crossentropy(labels, logits, from_logits=True)


def cross_entropy(labels, logits):
    """Batch mean of `cross_entropy_per_example`."""
    return ops.mean(cross_entropy_per_example(labels, logits))


def combine(hard, soft, alpha: float):
    """alpha * hard + (1 - alpha) * soft, leaving out a term whose weight is exactly zero.

    At alpha = 1 the result is exactly the cross-entropy (plain supervised training) and at
    alpha = 0 exactly the distillation term (the labels are never read), so neither end can
    leak a gradient from the unused term.
    """
    alpha = check_alpha(alpha)
    if alpha == 1.0:
        return hard
    if alpha == 0.0:
        return soft
    return alpha * hard + (1.0 - alpha) * soft


def kd_loss(labels, teacher_logits, student_logits, alpha: float, temperature: float):
    """alpha * CE(labels, student) + (1 - alpha) * T^2 * KL(softmax(t/T) || softmax(s/T)).

    `alpha` weights the hard labels: `alpha=1` is plain supervised training (the teacher is
    ignored) and `alpha=0` is pure imitation of the teacher (the labels are ignored).
    """
    alpha = check_alpha(alpha)
    check_temperature(temperature)
    hard = cross_entropy(labels, student_logits) if alpha > 0.0 else 0.0
    soft = distillation_loss(teacher_logits, student_logits, temperature) if alpha < 1.0 else 0.0
    return combine(hard, soft, alpha)


# --- Feature-based losses --------------------------------------------------------------------
# Each compares a batch of student features with a batch of teacher features of the same
# shape, (B, ...), e.g. (B, H, W, C) feature maps. Project the student's features first when
# the widths differ (`kdutils.distill.features.FeatureDistiller` learns that projection).

# Bandwidths of the Gaussian kernels of `mmd_loss`, as multiples of the data's own scale.
MMD_BANDWIDTHS: tuple[float, ...] = (0.5, 1.0, 2.0)


def _flatten_pair(student_features, teacher_features, loss: str):
    """Both batches as (B, D) float32 matrices, or `ValueError` if their shapes differ."""
    s_shape, t_shape = tuple(student_features.shape), tuple(teacher_features.shape)
    if s_shape != t_shape:
        raise ValueError(
            f"{loss}: student features of shape {s_shape} and teacher features of shape "
            f"{t_shape} must have the same shape; project the student's features to the "
            "teacher's width first (FeatureDistiller does this with a learned 1x1 convolution)"
        )
    size = 1
    for d in s_shape[1:]:
        size *= int(d)
    s = ops.reshape(ops.cast(student_features, "float32"), (-1, size))
    t = ops.reshape(ops.cast(teacher_features, "float32"), (-1, size))
    return s, t


def squared_distances(a, b):
    """||a_i - b_j||^2 for every row i of `a` and row j of `b`, as a (len(a), len(b)) matrix."""
    aa = ops.sum(ops.square(a), axis=1)[:, None]
    bb = ops.sum(ops.square(b), axis=1)[None, :]
    return ops.maximum(aa + bb - 2.0 * ops.matmul(a, ops.transpose(b)), 0.0)


def mmd_loss(
    student_features,
    teacher_features,
    bandwidths: tuple[float, ...] = MMD_BANDWIDTHS,
    scale: float | None = None,
):
    """Squared maximum mean discrepancy (MMD) between the student's and the teacher's batch.

    Each example's features are flattened to a vector; the B student vectors s_i and the B
    teacher vectors t_j are two samples, and the loss is the biased (V-statistic) estimate of
    MMD^2 (Gretton et al., 2012):

        MMD^2 = mean_ij k(s_i, s_j) + mean_ij k(t_i, t_j) - 2 mean_ij k(s_i, t_j),

    which is >= 0 and exactly 0 for identical batches. The kernel is a mixture of Gaussians,
    k(a, b) = mean_m exp(-||a - b||^2 / (2 * bandwidths[m] * scale)). With `scale=None` the
    scale is the data's: the mean squared distance over all pairs of the 2B pooled vectors
    (each with itself included), held constant for the gradient. A fixed bandwidth would not
    do: squared distances grow with the number of features, so exp(-d^2) underflows to 0 for
    large feature maps and the gradient vanishes.

    MMD compares the two *distributions* of features over the batch, not example i's student
    features with example i's teacher features: it only asks that the student's features look
    like a sample from the teacher's.
    """
    if not bandwidths or any(b <= 0 for b in bandwidths):
        raise ValueError(f"bandwidths must be positive numbers, got bandwidths={bandwidths!r}")
    s, t = _flatten_pair(student_features, teacher_features, "mmd_loss")
    d_ss, d_tt, d_st = squared_distances(s, s), squared_distances(t, t), squared_distances(s, t)
    if scale is None:
        pooled = ops.sum(d_ss) + ops.sum(d_tt) + 2.0 * ops.sum(d_st)
        n = ops.cast(ops.shape(s)[0], "float32")
        scale = ops.stop_gradient(ops.maximum(pooled / (4.0 * n * n), 1e-12))
    elif scale <= 0:
        raise ValueError(f"scale must be > 0 or None, got scale={scale!r}")

    def kernel_mean(d):
        k = [ops.exp(-d / (2.0 * b * scale)) for b in bandwidths]
        return ops.mean(ops.stack(k))

    return kernel_mean(d_ss) + kernel_mean(d_tt) - 2.0 * kernel_mean(d_st)


def fitnets_loss(student_features, teacher_features):
    """FitNets' hint loss (Romero et al., 2015): the mean squared error between the student's
    (regressed) features and the teacher's, averaged over every element of the batch.

    The paper writes 1/2 ||u_h - r(v_g)||^2 summed over a map; the mean here only rescales it,
    and equals Keras's `FeatureDistillation(loss="mse")` on the same features.
    """
    s, t = _flatten_pair(student_features, teacher_features, "fitnets_loss")
    return ops.mean(ops.square(s - t))


def cosine_loss(student_features, teacher_features, eps: float = 1e-8):
    """1 - cos(s_i, t_i) of each example's flattened features, averaged over the batch.

    The "cosine loss minimisation run" of PyTorch's knowledge-distillation tutorial
    (`nn.CosineEmbeddingLoss` with target 1 on flattened hidden representations). Each vector
    is divided by max(||x||, eps), so an all-zero vector gives cos = 0, not NaN.
    """
    s, t = _flatten_pair(student_features, teacher_features, "cosine_loss")
    s = s / ops.maximum(ops.sqrt(ops.sum(ops.square(s), axis=1, keepdims=True)), eps)
    t = t / ops.maximum(ops.sqrt(ops.sum(ops.square(t), axis=1, keepdims=True)), eps)
    return ops.mean(1.0 - ops.sum(s * t, axis=1))


FEATURE_LOSSES = {"mmd": mmd_loss, "fitnets": fitnets_loss, "cosine": cosine_loss}
