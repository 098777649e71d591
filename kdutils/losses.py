"""Knowledge-distillation losses computed from logits with `keras.ops` only.

The alpha convention used everywhere in this project:

    loss = alpha * CE(labels, student) + (1 - alpha) * T^2 * KL(softmax(t/T) || softmax(s/T))

`alpha` weights the *hard labels*, as in the report's code and the Keras example.
`alpha = 1` is plain supervised training; `alpha = 0` is pure imitation of the teacher.

Every function here works from logits through `log_softmax`, never as the log of a
probability, so it is finite for any finite logits at any temperature T > 0.
"""

from __future__ import annotations

from keras import ops


def check_alpha(alpha: float) -> float:
    """Return `alpha` as a float, or raise `ValueError` unless 0 <= alpha <= 1."""
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be a number in [0, 1], got alpha={alpha!r}")
    return float(alpha)


def check_temperature(temperature: float) -> float:
    """Return `temperature` as a float, or raise `ValueError` unless it is finite and > 0."""
    if (
        isinstance(temperature, bool)
        or not isinstance(temperature, (int, float))
        or not 0.0 < temperature < float("inf")
    ):
        raise ValueError(
            f"temperature must be a finite number > 0, got temperature={temperature!r}"
        )
    return float(temperature)


def soft_targets(logits, temperature: float = 1.0):
    """The temperature softmax, softmax(logits / T), along the last axis."""
    return ops.softmax(ops.divide(logits, check_temperature(temperature)), axis=-1)


def distillation_loss_per_example(teacher_logits, student_logits, temperature: float):
    """T^2 * KL(softmax(t/T) || softmax(s/T)) for each example (no batch reduction)."""
    return scaled_kl_per_example(teacher_logits, student_logits, check_temperature(temperature))


def scaled_kl_per_example(teacher_logits, student_logits, temperature):
    """`distillation_loss_per_example` with `temperature` unchecked: it may be a tensor (one
    per student in `kdutils.batched`)."""
    log_p_teacher = ops.log_softmax(ops.divide(teacher_logits, temperature), axis=-1)
    log_p_student = ops.log_softmax(ops.divide(student_logits, temperature), axis=-1)
    p_teacher = ops.exp(log_p_teacher)
    kl = ops.sum(p_teacher * (log_p_teacher - log_p_student), axis=-1)
    return kl * (temperature**2)


def distillation_loss(teacher_logits, student_logits, temperature: float):
    """Batch mean of T^2 * KL(softmax(t/T) || softmax(s/T)).

    The T^2 factor (Hinton et al., 2015) keeps the gradient's scale independent of T:
    d loss / d s = T * (softmax(s/T) - softmax(t/T)) / B for a batch of B examples.
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
# the widths differ (`kdutils.features.FeatureDistiller` learns that projection).

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
