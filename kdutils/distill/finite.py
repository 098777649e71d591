"""Finite or refused: NaN and inf never train silently.

- `check_finite` refuses an in-memory array holding NaN or inf before training, naming it, how
  many values are bad and the first one's index.
- `check_finite_dataset` adds the same check, in the graph, to every element of a `tf.data`
  pipeline (cheap: one `is_finite` per tensor), naming the batch.
- `StopOnNonFiniteLoss` ends training at the first logged loss that is NaN or inf by raising
  `NonFiniteError`, so a run that diverges never returns (or stores) NaN weights as a result.
"""

from __future__ import annotations

import keras
import numpy as np


class NonFiniteError(FloatingPointError, ValueError):
    """Inputs, teacher logits, a loss or a model's outputs hold NaN or inf."""


def check_finite(values, name: str) -> None:
    """Raise `NonFiniteError` if the float array `values` holds NaN or inf.

    Non-float arrays (integer labels, uint8 images) are finite by construction and pass.
    """
    array = np.asarray(values)
    if not np.issubdtype(array.dtype, np.floating):
        return
    bad = ~np.isfinite(array)
    if not bad.any():
        return
    first = tuple(int(i) for i in np.argwhere(bad)[0])
    raise NonFiniteError(
        f"{name} holds {int(bad.sum())} non-finite values (NaN or inf) of {array.size}; the "
        f"first is {array[first]} at index {first}. Fix or drop those examples (for cached "
        "teacher logits: delete the cache so the teacher's logits are computed again)."
    )


def check_finite_dataset(dataset, names: dict[str, object]):
    """`dataset` with an in-graph check that each named float tensor of each element is finite.

    `names` maps a label used in the error (e.g. "teacher_logits") to a function that picks
    that tensor out of an element. The error names the label, the batch (counted from 0), the
    number of non-finite values and the index of the first within the batch.
    """
    import tensorflow as tf

    def check(batch, element):
        asserts = []
        for label, pick in names.items():
            tensor = pick(element)
            if not tensor.dtype.is_floating:
                continue
            bad = tf.logical_not(tf.math.is_finite(tensor))
            count = tf.reduce_sum(tf.cast(bad, tf.int64))
            message = f"{label} holds non-finite values (NaN or inf): batch, count, first index"
            asserts.append(
                tf.debugging.Assert(
                    tf.equal(count, 0), [message, batch, count, tf.where(bad)[:1]], summarize=8
                )
            )
        with tf.control_dependencies(asserts):
            return tf.nest.map_structure(tf.identity, element)

    return dataset.enumerate().map(check)


class StopOnNonFiniteLoss(keras.callbacks.Callback):
    """Raise `NonFiniteError` as soon as a logged training loss is NaN or inf.

    Keras's `TerminateOnNaN` only stops training, and `fit` then returns normally with NaN
    weights; this raises instead, so nothing downstream can store them as a result. With
    `steps_per_execution=k` the loss is seen every k steps.
    """

    def __init__(self, what: str = "training"):
        super().__init__()
        self.what = what
        self.epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not np.isfinite(float(loss)):
            self.model.stop_training = True
            raise NonFiniteError(
                f"{self.what} stopped: the loss became {float(loss)} in epoch {self.epoch + 1} "
                f"at batch {batch}. Check the inputs and teacher logits for NaN or inf, or "
                "lower the learning rate; no result is stored for this run."
            )
