"""NumPy metrics on logits, used for final evaluation of teachers and students."""

from __future__ import annotations

import numpy as np


def accuracy(logits: np.ndarray, labels: np.ndarray) -> float:
    """Top-1 accuracy of `logits` against integer `labels`."""
    return float(np.mean(np.argmax(logits, axis=-1) == labels))


def agreement(logits: np.ndarray, reference_logits: np.ndarray) -> float:
    """Fidelity: how often the top-1 classes of two models agree."""
    return float(np.mean(np.argmax(logits, axis=-1) == np.argmax(reference_logits, axis=-1)))


def noisy_label_fit(logits: np.ndarray, data) -> dict:
    """On training examples whose label was flipped: how often the model predicts the true
    label (`recovery`) and how often it reproduces the wrong one (`memorisation`)."""
    mask = data.noise_mask
    if not mask.any():
        return {"recovery": None, "memorisation": None, "flipped": 0}
    predicted = np.argmax(logits[mask], axis=-1)
    return {
        "recovery": float(np.mean(predicted == data.y_train_clean[mask])),
        "memorisation": float(np.mean(predicted == data.y_train[mask])),
        "flipped": int(mask.sum()),
    }


def kl_to_reference(logits: np.ndarray, reference_logits: np.ndarray) -> float:
    """Mean KL(softmax(reference) || softmax(logits)) in nats, at temperature 1, in float64."""

    def log_softmax(z):
        z = np.asarray(z, dtype=np.float64)
        z = z - z.max(axis=-1, keepdims=True)
        return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))

    log_p, log_q = log_softmax(reference_logits), log_softmax(logits)
    return float(np.mean(np.sum(np.exp(log_p) * (log_p - log_q), axis=-1)))
