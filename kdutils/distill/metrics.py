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


# Equal-width confidence bins of the ECE and the reliability diagrams (Guo et al.).
BINS = 15


def softmax(logits: np.ndarray) -> np.ndarray:
    """softmax at T = 1, in float64 (logits may be stored as float16)."""
    z = np.asarray(logits, dtype=np.float64)
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def confusion_matrix(labels, predicted, num_classes: int) -> np.ndarray:
    """counts[i, j]: examples of true class i predicted as j."""
    labels, predicted = np.asarray(labels), np.asarray(predicted)
    flat = np.bincount(labels * num_classes + predicted, minlength=num_classes**2)
    return flat.reshape(num_classes, num_classes)


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num / den, and 0 where den is 0 (scikit-learn's zero_division=0)."""
    num, den = np.asarray(num, dtype=float), np.asarray(den, dtype=float)
    return np.divide(num, den, out=np.zeros_like(num), where=den > 0)


def per_class(confusion) -> dict[str, np.ndarray]:
    """Per-class precision, recall, F1, one-vs-rest accuracy and support of a confusion matrix.

    recall_c = TP / (TP + FN) is the share of class c's examples classified as c; accuracy_c is
    the one-vs-rest (TP + TN) / n. A ratio with a zero denominator is 0.
    """
    c = np.asarray(confusion, dtype=float)
    tp = np.diag(c)
    support, predicted, n = c.sum(axis=1), c.sum(axis=0), c.sum()
    precision, recall = _ratio(tp, predicted), _ratio(tp, support)
    f1 = _ratio(2 * precision * recall, precision + recall)
    tn = n - support - predicted + tp
    return {
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "accuracy": (tp + tn) / n,
        "support": support.astype(int),
    }


def macro_f1(confusion) -> float:
    """The unweighted mean of the per-class F1 scores."""
    return float(per_class(confusion)["f1"].mean())


def bin_index(confidence, bins: int = BINS) -> np.ndarray:
    """The bin of each confidence: bin b is (b / bins, (b + 1) / bins], and 0 includes 0."""
    inner = np.linspace(0.0, 1.0, bins + 1)[1:-1]
    return np.searchsorted(inner, np.asarray(confidence, dtype=float), side="left")


def calibration_bins(probabilities, labels, bins: int = BINS) -> dict[str, list]:
    """Per confidence bin: how many predictions, their summed top-label confidence, and how
    many were right. Sums, not means, so that bins of several runs can be added."""
    p = np.asarray(probabilities, dtype=float)
    confidence, correct = p.max(axis=-1), p.argmax(axis=-1) == np.asarray(labels)
    b = bin_index(confidence, bins)
    return {
        "count": np.bincount(b, minlength=bins).tolist(),
        "confidence": np.bincount(b, weights=confidence, minlength=bins).tolist(),
        "correct": np.bincount(b, weights=correct, minlength=bins).astype(int).tolist(),
    }


def ece_from_bins(bins: dict) -> float:
    """Σ_b (n_b / n) |acc_b − conf_b| = Σ_b |correct_b − confidence_sum_b| / n."""
    count = np.asarray(bins["count"], dtype=float)
    gap = np.abs(np.asarray(bins["correct"], float) - np.asarray(bins["confidence"], float))
    return float(gap.sum() / count.sum())


def expected_calibration_error(probabilities, labels, bins: int = BINS) -> float:
    """ECE of top-label confidences in `bins` equal-width bins (Naeini et al.; Guo et al.)."""
    return ece_from_bins(calibration_bins(probabilities, labels, bins))
