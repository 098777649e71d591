"""Fused training: many students, one per alpha, trained in one model on the same batches.

Each student has its own weights and its own alpha; the loss is the sum of the students'
losses, so each student's gradient is exactly its own loss's gradient, and Adam's update of
a weight depends only on that weight's gradients. One fused model is therefore the same
training as separate runs that see the same batch order, with one data pipeline and one
compiled step instead of N (tests/test_fused.py checks the final weights agree).
Fuse alphas of one seed only: seeds stay independent runs.
"""

from __future__ import annotations

import keras
from keras import ops

from kdutils.distill.distiller import Distiller
from kdutils.distill.losses import (
    check_alpha,
    check_temperature,
    combine,
    cross_entropy,
    distillation_loss_per_example,
)

METRICS = ("loss", "accuracy", "hard_loss", "soft_loss", "fidelity")


def student_prefix(index: int) -> str:
    """History-key prefix of student `index`: 's3_accuracy', 'val_s3_accuracy', ..."""
    return f"s{index}_"


class FusedDistiller(Distiller):
    """N students with N alphas, one shared teacher (model or cached logits) and temperature.

    `call` returns logits of shape (batch, N, classes). History has `s{i}_loss`,
    `s{i}_accuracy`, `s{i}_hard_loss`, `s{i}_soft_loss` and `s{i}_fidelity` per student i
    (`split_history` turns it into one history per student, keyed like a `Distiller`'s),
    plus `loss`, the sum over students.
    """

    def __init__(
        self,
        students: list[keras.Model],
        alphas: list[float],
        teacher: keras.Model | None = None,
        temperature: float = 3.0,
        **kwargs,
    ):
        if len(students) != len(alphas) or not students:
            raise ValueError(
                f"need one alpha per student, got {len(students)} students, {len(alphas)} alphas"
            )
        if len({id(s) for s in students}) != len(students):
            raise ValueError("each student must be a different model object")
        if teacher is not None and any(s is teacher for s in students):
            raise ValueError("teacher and student must be different models")
        # The parent claims (and checks) the first student; claim the others here.
        super().__init__(students[0], teacher, alpha=alphas[0], temperature=temperature, **kwargs)
        for student in students[1:]:
            Distiller._claim(student, self.num_classes)
        self.students = list(students)
        self.alphas = [check_alpha(a) for a in alphas]
        self.temperature = check_temperature(temperature)
        self.trackers = [
            {m: keras.metrics.Mean(name=student_prefix(i) + m) for m in METRICS}
            for i in range(len(students))
        ]

    def compile(self, optimizer="adam", **kwargs):
        """Like `keras.Model.compile`; accuracy is tracked per student, so no `metrics`."""
        if kwargs.get("metrics"):
            raise ValueError("FusedDistiller tracks accuracy per student; do not pass metrics=")
        kwargs.pop("metrics", None)
        if "loss" in kwargs:
            raise ValueError("FusedDistiller defines its own loss; do not pass loss= to compile")
        self._user_metrics = []
        keras.Model.compile(self, optimizer=optimizer, **kwargs)

    @property
    def metrics(self):
        tracked = [t for row in self.trackers for t in row.values()]
        return ([self._loss_tracker] if self.compiled else []) + tracked

    def call(self, x, training=None):
        inputs, _ = self._split(x)
        return ops.stack([s(inputs, training=training) for s in self.students], axis=1)

    def soft_losses(self, teacher, y_pred):
        """Every student's T^2 KL to the teacher, in one computation: (students,)."""
        per_example = distillation_loss_per_example(
            ops.expand_dims(teacher, 1), y_pred, self.temperature
        )
        return ops.mean(per_example, axis=0)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        if sample_weight is not None:
            raise ValueError(f"{type(self).__name__} does not support sample_weight")
        if y_pred is None:
            y_pred = self(x, training=training)
        teacher = self.teacher_logits(x)
        teacher_class = ops.argmax(teacher, axis=-1)
        labels = y if len(y.shape) == 2 else ops.reshape(y, (-1,))
        batch = ops.cast(ops.shape(teacher)[0], "float32")
        softs = self.soft_losses(teacher, y_pred)
        total = 0.0
        for i, (student, alpha) in enumerate(zip(self.students, self.alphas, strict=True)):
            logits = y_pred[:, i, :]
            hard = cross_entropy(y, logits)
            soft = softs[i]
            loss = combine(hard, soft, alpha)
            if student.losses:
                loss = loss + ops.sum(ops.stack(student.losses))
            total = total + loss
            predicted = ops.argmax(logits, axis=-1)
            true_class = ops.argmax(labels, axis=-1) if len(labels.shape) == 2 else labels
            row = self.trackers[i]
            row["loss"].update_state(loss, sample_weight=batch)  # as Keras weighs `loss`
            row["accuracy"].update_state(
                ops.cast(ops.equal(predicted, ops.cast(true_class, predicted.dtype)), "float32")
            )
            row["hard_loss"].update_state(hard)
            row["soft_loss"].update_state(soft)
            row["fidelity"].update_state(ops.cast(ops.equal(predicted, teacher_class), "float32"))
        return total

    def get_config(self) -> dict:
        return {"alphas": self.alphas, "temperature": self.temperature, "name": self.name}


def split_history(history: dict[str, list], n: int) -> list[dict[str, list]]:
    """One `Distiller`-style history per student from a fused history."""
    out = []
    for i in range(n):
        prefix = student_prefix(i)
        one = {}
        for key, values in history.items():
            for split in ("", "val_"):
                if key.startswith(split + prefix):
                    one[split + key[len(split + prefix) :]] = values
        out.append(one)
    return out
