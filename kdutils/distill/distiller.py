"""`Distiller`: a `keras.Model` that trains a student from a frozen teacher's logits."""

from __future__ import annotations

import weakref

import keras
import numpy as np
from keras import ops

from kdutils.distill.finite import check_finite, check_finite_dataset
from kdutils.distill.losses import (
    check_alpha,
    check_temperature,
    combine,
    cross_entropy,
    distillation_loss,
)

INPUTS = "inputs"
TEACHER_LOGITS = "teacher_logits"

# Students already wrapped by a Distiller. A second Distiller on the same object is refused:
# the original study reused one student across all alphas, so each run warm-started.
_CLAIMED_STUDENTS: weakref.WeakSet = weakref.WeakSet()
_AUGMENTED_CACHE_MESSAGE = (
    "this Distiller augments its training batches, so cached teacher logits (computed on "
    "un-augmented images) do not match them: pass the images alone, and the teacher model "
    "scores each augmented batch"
)
_CLAIMED_MESSAGE = (
    "student {name!r} is already used by another Distiller. Build a new student for every "
    "run (kdutils.distill.models.build_model), so no run warm-starts from another."
)


def num_classes_of(model: keras.Model) -> int:
    """The size of the last axis of `model`'s (single) output."""
    return int(model.outputs[0].shape[-1])


def is_dataset(data) -> bool:
    """Whether `data` is a `tf.data.Dataset` (checked without importing TensorFlow)."""
    return type(data).__module__.startswith("tensorflow") and hasattr(data, "element_spec")


def dataset_parts(spec):
    """(inputs, labels or None) of a dataset's element spec."""
    if isinstance(spec, tuple):
        return spec[0], (spec[1] if len(spec) > 1 else None)
    return spec, None


def first(element):
    """The inputs of a dataset element: its first part if it is a tuple, else itself."""
    return element[0] if isinstance(element, tuple) else element


def with_teacher_logits(inputs, teacher_logits) -> dict:
    """Pack inputs and cached teacher logits into the structure a cached-logits Distiller reads."""
    return {INPUTS: inputs, TEACHER_LOGITS: teacher_logits}


class Distiller(keras.Model):
    """Response-based knowledge distillation (Hinton et al., 2015) with a frozen teacher.

    loss = alpha * CE(labels, student) + (1 - alpha) * T^2 * KL(softmax(t/T) || softmax(s/T)),
    with `alpha` on the hard labels (see `kdutils.distill.losses`).

    Teacher outputs come one of two ways:
    - `teacher=model`: the teacher runs in inference mode at every step (needed under data
      augmentation). It is frozen (`trainable = False`) and never updated.
    - `teacher=None`: cached logits, fed with the data as
      `with_teacher_logits(x, teacher_logits)`. Much faster: the teacher never runs during
      training (see `benchmarks/speed.py`). Wrong under data augmentation.

    `augmentation` (a layer, e.g. `kdutils.distill.augment.crop_and_flip()`) transforms every
    training batch once, in `call`; the teacher then scores that same augmented batch in
    `compute_loss`. Logits cached on un-augmented images would belong to other inputs, so an
    augmentation needs a teacher model and refuses cached logits. Validation and test data are
    never augmented.

    Metrics: `accuracy` (sparse categorical, unless you compile others), `hard_loss` (CE),
    `soft_loss` (T^2 KL) and `fidelity` (top-1 agreement with the teacher).
    `call` returns the student's logits, so `predict` works as on the student.
    Save the student alone with `distiller.student.save("student.keras")`.

    `fit` checks its data before training (`check_data`): integer labels in range, cached
    logits present and well shaped, no NaN or inf in the inputs or logits (in the graph, batch
    by batch, for a `tf.data` dataset), and not empty. Add
    `kdutils.distill.finite.StopOnNonFiniteLoss()` to the callbacks to stop on a NaN loss.
    """

    def __init__(
        self,
        student: keras.Model,
        teacher: keras.Model | None = None,
        alpha: float = 0.5,
        temperature: float = 3.0,
        augmentation: keras.layers.Layer | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.alpha = check_alpha(alpha)
        self.temperature = check_temperature(temperature)
        if not isinstance(student, keras.Model):
            raise TypeError(f"student must be a keras.Model, got {type(student).__name__}")
        if student in _CLAIMED_STUDENTS:
            raise ValueError(_CLAIMED_MESSAGE.format(name=student.name))
        self.num_classes = num_classes_of(student)
        if teacher is not None:
            if teacher is student:
                raise ValueError("teacher and student must be different models")
            teacher_classes = num_classes_of(teacher)
            if teacher_classes != self.num_classes:
                raise ValueError(
                    f"teacher has {teacher_classes} classes but student has {self.num_classes}"
                )
            teacher.trainable = False
        if augmentation is not None and teacher is None:
            raise ValueError(
                "augmentation needs a teacher model: cached teacher logits were computed on "
                "un-augmented images, so they do not match the augmented batch. Pass teacher=."
            )
        self._claim(student, self.num_classes)
        self.student = student
        self.teacher = teacher
        self.augmentation = augmentation
        # The batch `call` augmented in the current training step, read once by
        # `compute_loss` in the same step (as Keras's own `_losses_override`).
        self._augmented_inputs = None
        self.hard_loss_tracker = keras.metrics.Mean(name="hard_loss")
        self.soft_loss_tracker = keras.metrics.Mean(name="soft_loss")
        self.fidelity_tracker = keras.metrics.Mean(name="fidelity")

    @staticmethod
    def _claim(student: keras.Model, num_classes: int) -> None:
        """Mark `student` as used; refuse one already used or with the wrong output size."""
        if not isinstance(student, keras.Model):
            raise TypeError(f"student must be a keras.Model, got {type(student).__name__}")
        if student in _CLAIMED_STUDENTS:
            raise ValueError(_CLAIMED_MESSAGE.format(name=student.name))
        if num_classes_of(student) != num_classes:
            raise ValueError(
                f"student {student.name!r} has {num_classes_of(student)} classes, "
                f"expected {num_classes}"
            )
        _CLAIMED_STUDENTS.add(student)

    def compile(self, optimizer="adam", metrics=None, **kwargs):
        """Like `keras.Model.compile`; `metrics` defaults to sparse categorical accuracy."""
        if "loss" in kwargs:
            raise ValueError("Distiller defines its own loss; do not pass loss= to compile")
        if metrics is None:
            metrics = [keras.metrics.SparseCategoricalAccuracy(name="accuracy")]
        self._user_metrics = list(metrics)
        super().compile(optimizer=optimizer, metrics=metrics, **kwargs)

    # -- data checks -----------------------------------------------------------------------
    def _split(self, x):
        """Return (inputs, cached teacher logits or None)."""
        if isinstance(x, dict) and TEACHER_LOGITS in x:
            return x[INPUTS], x[TEACHER_LOGITS]
        return x, None

    def check_data(self, x, y=None, split: str = "training") -> None:
        """Raise `ValueError` before any training for data this Distiller would get wrong.

        In-memory arrays (NumPy, lists): the inputs must carry cached teacher logits when there
        is no teacher model, of shape (N, classes); labels must be integer class indices in
        range; inputs and logits must be finite (`kdutils.distill.finite`). A `tf.data` dataset is
        checked by its element spec here, and its values in the graph as it is read.
        """
        if is_dataset(x):
            return self._check_dataset_spec(x, split)
        inputs, logits = self._split(x)
        if logits is None and self.teacher is None and x is not None:
            raise ValueError(
                f"this Distiller has no teacher model, so its {split} inputs must carry cached "
                "teacher logits: pass with_teacher_logits(x, teacher_logits)"
            )
        if hasattr(inputs, "__len__") and len(inputs) == 0:
            raise ValueError(f"the {split} data is empty: there is nothing to train or score on")
        if hasattr(logits, "shape") and (
            logits.shape[-1] != self.num_classes or len(logits) != len(inputs)
        ):
            raise ValueError(
                f"teacher_logits must have shape ({len(inputs)}, {self.num_classes}), "
                f"got {tuple(logits.shape)}"
            )
        for name, values in (("inputs", inputs), ("teacher_logits", logits)):
            if hasattr(values, "__array__"):  # NumPy arrays and eager tensors
                check_finite(values, f"{split} {name}")
        if y is not None and isinstance(y, (np.ndarray, list, tuple)):
            self._check_labels(np.asarray(y), split)

    def _check_labels(self, labels: np.ndarray, split: str) -> None:
        """Integer class indices of shape (N,) in [0, classes), with a metric that fits them."""
        if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
            raise ValueError(
                f"{split} labels must be integer class indices of shape (N,), got dtype "
                f"{labels.dtype} and shape {labels.shape}"
                + (
                    "; for one-hot labels pass np.argmax(y, axis=-1)"
                    if labels.ndim == 2 and labels.shape[-1] == self.num_classes
                    else ""
                )
            )
        if labels.size and (labels.min() < 0 or labels.max() >= self.num_classes):
            raise ValueError(
                f"labels must lie in [0, {self.num_classes}), found values from "
                f"{labels.min()} to {labels.max()}"
            )
        for metric in getattr(self, "_user_metrics", []):
            name = metric if isinstance(metric, str) else type(metric).__name__
            if name in ("categorical_accuracy", "CategoricalAccuracy"):
                raise ValueError(
                    "CategoricalAccuracy expects one-hot labels; with integer labels it "
                    "measures nothing. Use SparseCategoricalAccuracy (the default)."
                )

    def _check_dataset_spec(self, dataset, split: str) -> None:
        """Cached logits present (without a teacher model), integer labels, not empty."""
        x_spec, y_spec = dataset_parts(dataset.element_spec)
        if self.teacher is None and not (isinstance(x_spec, dict) and TEACHER_LOGITS in x_spec):
            raise ValueError(
                f"this Distiller has no teacher model, so the {split} dataset's elements must "
                f"be (with_teacher_logits(x, teacher_logits), y); its inputs are {x_spec}. "
                "Build it as tf.data.Dataset.from_tensor_slices((with_teacher_logits(x, "
                "logits), y))"
            )
        shape = getattr(y_spec, "shape", None)
        if shape is not None and (
            y_spec.dtype.is_floating
            or (shape.rank is not None and shape.rank >= 2 and shape[-1] not in (1, None))
        ):
            raise ValueError(
                f"{split} labels must be integer class indices of shape (batch,), got "
                f"{y_spec}; for one-hot labels map them with tf.argmax(y, axis=-1)"
            )
        if int(dataset.cardinality()) == 0:
            raise ValueError(f"the {split} dataset is empty: there is nothing to train or score on")

    def _checked(self, data, split: str):
        """A `tf.data` dataset with the in-graph finite check added; anything else as is."""
        if not is_dataset(data):
            return data
        x_spec, _ = dataset_parts(data.element_spec)
        picks = {}
        if isinstance(x_spec, dict) and TEACHER_LOGITS in x_spec:
            picks[f"{split} teacher_logits"] = lambda e: first(e)[TEACHER_LOGITS]
            if not isinstance(x_spec[INPUTS], (dict, tuple, list)):
                picks[f"{split} inputs"] = lambda e: first(e)[INPUTS]
        elif not isinstance(x_spec, (dict, tuple, list)):
            picks[f"{split} inputs"] = first
        return check_finite_dataset(data, picks) if picks else data

    def fit(self, x=None, y=None, *args, validation_data=None, **kwargs):
        if self.augmentation is not None and self._split(x)[1] is not None:
            raise ValueError(_AUGMENTED_CACHE_MESSAGE)
        self.check_data(x, y)
        if isinstance(validation_data, (tuple, list)) and len(validation_data) >= 2:
            self.check_data(validation_data[0], validation_data[1], "validation")
        elif is_dataset(validation_data):
            self.check_data(validation_data, split="validation")
        x, validation_data = (
            self._checked(x, "training"),
            self._checked(validation_data, "validation"),
        )
        self._build_optimizer()
        history = super().fit(x, y, *args, validation_data=validation_data, **kwargs)
        if kwargs.get("epochs", 1) > kwargs.get("initial_epoch", 0) and not history.history:
            raise ValueError("no training step ran: the training data yielded no batches")
        return history

    def _build_optimizer(self) -> None:
        """Create the optimizer's slots now, when every layer already has its weights.

        Keras cannot build a Distiller symbolically (its inputs may carry the teacher's
        logits), so the slots would be created inside the first traced train step, and
        TensorFlow traces a step that creates variables twice. Built here, it is traced once
        (a smoke fused fit: 15.8 s -> 8.4 s); the updates are the same (tests/test_fused.py).
        """
        optimizer = getattr(self, "optimizer", None)
        layers = self._flatten_layers(include_self=False)
        if optimizer is not None and not optimizer.built and all(x.built for x in layers):
            optimizer.build(self.trainable_variables)

    def evaluate(self, x=None, y=None, *args, **kwargs):
        self.check_data(x, y, "evaluation")
        return super().evaluate(x, y, *args, **kwargs)

    # -- the model -------------------------------------------------------------------------
    def call(self, x, training=None):
        inputs, logits = self._split(x)
        if training and self.augmentation is not None:
            if logits is not None:
                raise ValueError(_AUGMENTED_CACHE_MESSAGE)
            inputs = self.augmentation(inputs, training=True)
            self._augmented_inputs = inputs
        return self.student(inputs, training=training)

    def _teacher_inputs(self, x, training):
        """The augmented batch of this training step if there is one, else `x`."""
        augmented, self._augmented_inputs = self._augmented_inputs, None
        if training and self.augmentation is not None and augmented is not None:
            return augmented
        return x

    def teacher_logits(self, x):
        """Cached logits from `x` if present, else the frozen teacher run in inference mode."""
        inputs, logits = self._split(x)
        if logits is None:
            if self.teacher is None:
                raise ValueError(
                    "no teacher logits: pass with_teacher_logits(x, logits) or give a teacher"
                )
            logits = self.teacher(inputs, training=False)
        return ops.stop_gradient(ops.cast(logits, "float32"))

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        if sample_weight is not None:
            raise ValueError("Distiller does not support sample_weight")
        if y_pred is None:
            y_pred = self(x, training=training)
        teacher = self.teacher_logits(self._teacher_inputs(x, training))
        hard = cross_entropy(y, y_pred)
        soft = distillation_loss(teacher, y_pred, self.temperature)
        loss = combine(hard, soft, self.alpha)
        if self.student.losses:
            loss = loss + ops.sum(ops.stack(self.student.losses))
        agree = ops.cast(
            ops.equal(ops.argmax(y_pred, axis=-1), ops.argmax(teacher, axis=-1)), "float32"
        )
        self.hard_loss_tracker.update_state(hard)
        self.soft_loss_tracker.update_state(soft)
        self.fidelity_tracker.update_state(agree)
        return loss

    def get_config(self) -> dict:
        return {"alpha": self.alpha, "temperature": self.temperature, "name": self.name}
