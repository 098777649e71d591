"""The report's metric: Keras' `CategoricalAccuracy` on integer labels, what it computes, and
what it gives a perfect model. The report printed 1 - this metric as its accuracy; the audit
chapter puts the bug back on purpose and the results chapter reads the report's numbers
through it."""

from __future__ import annotations

import keras
import numpy as np

from kdutils.distill import metrics

# The report's notebook trained and evaluated with batch 32: CategoricalAccuracy on integer
# labels depends on the batch (`explained`).
REPORT_BATCH_SIZE = 32


def perfect_logits(labels: np.ndarray, num_classes: int = 10) -> np.ndarray:
    """Logits of a perfect model: all the softmax mass on the true class."""
    return 100.0 * np.eye(num_classes, dtype="float32")[labels]


def keras_metric(metric: keras.metrics.Metric, labels, logits, batch_size: int | None) -> float:
    """`metric` accumulated over batches of `batch_size` (None: one batch), as in `evaluate`."""
    n = len(labels)
    step = batch_size or n
    metric.reset_state()
    for i in range(0, n, step):
        metric.update_state(labels[i : i + step], logits[i : i + step])
    return float(metric.result())


def explained(predicted: np.ndarray, labels: np.ndarray, batch_size: int | None, column: bool):
    """What CategoricalAccuracy computes from integer labels, in NumPy.

    It takes the argmax of the labels along their last axis as the "true class". For labels of
    shape (B,) that axis is the batch: the position k of the batch's first largest label. For
    (B, 1) it is always 0. It then counts the predictions equal to it.
    """
    step = batch_size or len(labels)
    hits = 0
    for i in range(0, len(labels), step):
        batch = labels[i : i + step]
        target = 0 if column else int(np.argmax(batch))
        hits += int(np.sum(predicted[i : i + step] == target))
    return hits / len(labels)


def categorical_scores(logits: np.ndarray, labels: np.ndarray, batch_size: int) -> dict:
    """True accuracy; CategoricalAccuracy on integer labels of shape (N,) and (N, 1), in
    batches of `batch_size` as `evaluate` feeds it and in one batch; and its NumPy explanation.
    """
    cat = keras.metrics.CategoricalAccuracy()
    predicted = np.argmax(logits, axis=-1)
    return {
        "sparse": metrics.accuracy(logits, labels),
        "flat": keras_metric(cat, labels, logits, batch_size),
        "column": keras_metric(cat, labels[:, None], logits, batch_size),
        "flat_whole": keras_metric(cat, labels, logits, None),
        "explained_flat": explained(predicted, labels, batch_size, column=False),
        "explained_column": explained(predicted, labels, batch_size, column=True),
        "explained_flat_whole": explained(predicted, labels, None, column=False),
        "batch_size": batch_size,
        "share_of_class_0": float(np.mean(predicted == 0)),
    }


def perfect_scores(labels: np.ndarray, batch_size: int) -> dict:
    """`categorical_scores` of a perfect model, the number of batches on which Keras gives it
    exactly 0, and the first such batch."""
    key = (hash(labels.tobytes()), batch_size)
    if key in _PERFECT:
        return _PERFECT[key]
    logits = perfect_logits(labels)
    cat = keras.metrics.CategoricalAccuracy()
    starts = range(0, len(labels), batch_size)
    per_batch = [
        keras_metric(cat, labels[i : i + batch_size], logits[i : i + batch_size], None)
        for i in starts
    ]
    zeros = [j for j, v in enumerate(per_batch) if v == 0.0]
    out = categorical_scores(logits, labels, batch_size) | {
        "batches": len(per_batch),
        "zero_batches": len(zeros),
    }
    if zeros:
        batch = labels[zeros[0] * batch_size : (zeros[0] + 1) * batch_size]
        out["zero_batch"] = {
            "index": zeros[0],
            "labels": batch.tolist(),
            "argmax": int(np.argmax(batch)),
            "score": per_batch[zeros[0]],
            "sparse": metrics.accuracy(perfect_logits(batch), batch),
        }
    _PERFECT[key] = out
    return out


_PERFECT: dict = {}
