"""`FeatureDistiller`: a `keras.Model` that trains a student to match a frozen teacher's features.

Feature-based distillation matches intermediate representations rather than outputs:
FitNets' hints (Romero et al., 2015), the maximum mean discrepancy between feature
distributions (in the spirit of Huang and Wang, 2017), or the cosine of hidden representations
(PyTorch's knowledge-distillation tutorial). It is the sibling of
`kdutils.distill.distiller.Distiller`:

    loss = alpha * CE(labels, student) + (1 - alpha) * sum_i w_i * L(P_i(s_i), t_i)

where s_i and t_i are the outputs of the i-th paired student and teacher layers, L is one of
`kdutils.distill.losses.FEATURE_LOSSES` ("mmd", "fitnets", "cosine") and P_i a learned projection.
`alpha` weights the hard labels, as everywhere in this book: alpha = 1 is plain supervised
training (the teacher never runs), alpha = 0 ignores the labels.
"""

from __future__ import annotations

import keras
from keras import layers, ops

from kdutils.distill.distiller import Distiller, num_classes_of
from kdutils.distill.losses import (
    FEATURE_LOSSES,
    MMD_BANDWIDTHS,
    check_alpha,
    combine,
    cross_entropy,
    mmd_loss,
)


class _Stash:
    """A plain holder (not tracked by Keras) for the student's features of the current step."""

    features: list | None = None


def layer_output(model: keras.Model, name: str, role: str):
    """The symbolic output of layer `name` of `model`; a clear error lists the names there are."""
    names = [layer.name for layer in model.layers]
    if name not in names:
        raise ValueError(
            f"the {role} {model.name!r} has no layer named {name!r}; its layers are: "
            + ", ".join(names)
        )
    return model.get_layer(name).output


def _input(model: keras.Model):
    """The model's single symbolic input (a functional model of one input takes a tensor)."""
    return model.inputs[0] if len(model.inputs) == 1 else model.inputs


def _pool_factor(student_size: int, teacher_size: int, pair: str) -> tuple[int, int]:
    """(student factor, teacher factor): how much to average-pool each map's height and width."""
    if student_size == teacher_size:
        return 1, 1
    big, small = max(student_size, teacher_size), min(student_size, teacher_size)
    if big % small:
        raise ValueError(
            f"pair {pair}: spatial sizes {student_size} (student) and {teacher_size} (teacher) "
            "differ by a non-integer factor, so neither can be average-pooled to the other"
        )
    factor = big // small
    return (factor, 1) if student_size > teacher_size else (1, factor)


def _pool(x, factor: int):
    return x if factor == 1 else ops.average_pool(x, factor, strides=factor, padding="valid")


class FeatureDistiller(keras.Model):
    """Feature-based knowledge distillation from a frozen teacher.

    Arguments:
        student, teacher: functional (or Sequential) Keras models that output logits.
        pairs: {student layer name: teacher layer name}, in the order of `weights`.
        loss: "mmd" (squared MMD with Gaussian kernels, `kdutils.distill.losses.mmd_loss`),
            "fitnets" (mean squared error, FitNets) or "cosine" (1 - cosine similarity).
        weights: one weight w_i >= 0 per pair, e.g. [0.25] * 4 or [0.1, 0.2, 0.3, 0.4];
            default equal weights summing to 1.
        alpha: weight of the cross-entropy on the labels, in [0, 1].
        bandwidths: the Gaussian kernels' bandwidths of "mmd", relative to the data's scale.

    Shapes: feature maps are (B, H, W, C) or vectors (B, D). When a pair's spatial sizes
    differ by an integer factor, the larger map is average-pooled down to the smaller one.
    When the student's width (C or D) differs from the teacher's, a projection owned by the
    distiller, a 1x1 convolution (maps) or a Dense layer (vectors) without bias, maps the
    student's features to the teacher's width, as FitNets' regressor does. The projections
    train with the student but are not part of it: `distiller.student.save(...)` saves the
    student alone.

    The teacher is frozen (`trainable = False`) and runs in inference mode at every step:
    features are not cached. The student runs once per step: `call` computes its logits and
    the paired features in one pass and keeps the features for `compute_loss`.

    Metrics: `accuracy` (unless you compile others), `hard_loss` (CE) and `feature_loss`
    (sum_i w_i L_i). `call` returns the student's logits, so `predict` works as on the student.
    """

    def __init__(
        self,
        student: keras.Model,
        teacher: keras.Model,
        pairs: dict[str, str],
        loss: str = "mmd",
        weights: list[float] | tuple[float, ...] | None = None,
        alpha: float = 0.5,
        bandwidths: tuple[float, ...] = MMD_BANDWIDTHS,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if not isinstance(teacher, keras.Model) or teacher is student:
            raise ValueError("teacher must be a keras.Model other than the student")
        if loss not in FEATURE_LOSSES:
            raise ValueError(f"unknown loss={loss!r}; choose one of {sorted(FEATURE_LOSSES)}")
        self.pairs = dict(pairs)
        if not self.pairs:
            raise ValueError("pairs must map at least one student layer to a teacher layer")
        weights = [1.0 / len(self.pairs)] * len(self.pairs) if weights is None else weights
        if len(weights) != len(self.pairs) or any(w < 0 for w in weights):
            raise ValueError(
                f"need one weight >= 0 per pair ({len(self.pairs)}), got weights={weights}"
            )
        self.weights_per_pair = [float(w) for w in weights]
        self.loss_name = loss
        self.bandwidths = tuple(float(b) for b in bandwidths)
        self.alpha = check_alpha(alpha)
        self.num_classes = num_classes_of(student)
        if num_classes_of(teacher) != self.num_classes:
            raise ValueError(
                f"teacher has {num_classes_of(teacher)} classes but student has {self.num_classes}"
            )
        Distiller._claim(student, self.num_classes)  # one distiller per student object
        teacher.trainable = False
        self.student, self.teacher = student, teacher

        s_out = [layer_output(student, s, "student") for s in self.pairs]
        t_out = [layer_output(teacher, t, "teacher") for t in self.pairs.values()]
        # Extractors share the layers (and weights) of the student and the teacher.
        self.student_extractor = keras.Model(_input(student), [student.outputs[0], *s_out])
        self.teacher_extractor = keras.Model(_input(teacher), t_out)
        self.teacher_extractor.trainable = False
        self.pools, self.projections = [], []
        for (s_name, t_name), s, t in zip(self.pairs.items(), s_out, t_out, strict=True):
            pools, projection = self._adapter(s.shape, t.shape, s_name, t_name)
            self.pools.append(pools)
            self.projections.append(projection)
        self._stash = _Stash()
        self.hard_loss_tracker = keras.metrics.Mean(name="hard_loss")
        self.feature_loss_tracker = keras.metrics.Mean(name="feature_loss")

    @staticmethod
    def _adapter(s_shape, t_shape, s_name: str, t_name: str):
        """((student pool, teacher pool), projection or None) for one pair of layers."""
        pair = f"{s_name!r} -> {t_name!r}"
        if len(s_shape) != len(t_shape) or len(s_shape) not in (2, 4):
            raise ValueError(
                f"pair {pair}: features must both be (B, H, W, C) maps or (B, D) vectors, "
                f"got {tuple(s_shape)} and {tuple(t_shape)}"
            )
        pools = (1, 1)
        if len(s_shape) == 4:
            if s_shape[1] * t_shape[2] != s_shape[2] * t_shape[1]:
                raise ValueError(f"pair {pair}: maps of different aspect ratios cannot be pooled")
            pools = _pool_factor(s_shape[1], t_shape[1], pair)
        if s_shape[-1] == t_shape[-1]:
            return pools, None
        name = f"project_{s_name}"
        if len(s_shape) == 4:
            projection = layers.Conv2D(t_shape[-1], 1, use_bias=False, name=name)
            height, width = s_shape[1] // pools[0], s_shape[2] // pools[0]
            projection.build((None, height, width, s_shape[-1]))
        else:
            projection = layers.Dense(t_shape[-1], use_bias=False, name=name)
            projection.build((None, s_shape[-1]))
        return pools, projection

    def compile(self, optimizer="adam", metrics=None, **kwargs):
        """Like `keras.Model.compile`; `metrics` defaults to sparse categorical accuracy."""
        if "loss" in kwargs:
            raise ValueError("FeatureDistiller defines its own loss; do not pass loss= to compile")
        if metrics is None:
            metrics = [keras.metrics.SparseCategoricalAccuracy(name="accuracy")]
        super().compile(optimizer=optimizer, metrics=metrics, **kwargs)

    def call(self, x, training=None):
        logits, *features = self.student_extractor(x, training=training)
        self._stash.features = features
        return logits

    def feature_loss(self, x, student_features):
        """sum_i w_i * L(P_i(pool(s_i)), pool(t_i)), the teacher run in inference mode."""
        teacher_features = self.teacher_extractor(x, training=False)
        if not isinstance(teacher_features, (list, tuple)):
            teacher_features = [teacher_features]
        total = 0.0
        for i, (s, t) in enumerate(zip(student_features, teacher_features, strict=True)):
            if self.weights_per_pair[i] == 0.0:
                continue
            s, t = _pool(s, self.pools[i][0]), _pool(ops.stop_gradient(t), self.pools[i][1])
            if self.projections[i] is not None:
                s = self.projections[i](s)
            if self.loss_name == "mmd":
                value = mmd_loss(s, t, bandwidths=self.bandwidths)
            else:
                value = FEATURE_LOSSES[self.loss_name](s, t)
            total = total + self.weights_per_pair[i] * value
        return total

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        if sample_weight is not None:
            raise ValueError("FeatureDistiller does not support sample_weight")
        if y_pred is None or self._stash.features is None:
            y_pred = self(x, training=training)
        hard = cross_entropy(y, y_pred)
        # At alpha = 1 (plain supervised training) the teacher never runs.
        feature = 0.0 if self.alpha == 1.0 else self.feature_loss(x, self._stash.features)
        loss = combine(hard, feature, self.alpha)
        if self.student.losses:
            loss = loss + ops.sum(ops.stack(self.student.losses))
        self.hard_loss_tracker.update_state(hard)
        self.feature_loss_tracker.update_state(feature)
        return loss

    def get_config(self) -> dict:
        return {
            "pairs": self.pairs,
            "loss": self.loss_name,
            "weights": self.weights_per_pair,
            "alpha": self.alpha,
            "bandwidths": list(self.bandwidths),
            "name": self.name,
        }
