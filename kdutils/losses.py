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
    temperature = check_temperature(temperature)
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
