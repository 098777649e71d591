"""Batched students: every (alpha, seed, T) of a sweep trained by one compiled step.

The students' weights are stacked on a leading axis (student, ...). Each student reads its
own batch (its seed's data order, from its own data set), and the step's loss is the sum of
the students' losses: each gradient is exactly the student's own, and Adam updates every
weight from its own gradients, so batched training is the same training as separate runs
with the same data order (tests/test_batched.py checks weights and histories).

How the students share the step depends on the backend and device (`MODES`, recorded in
each record):
- "vmap" (JAX): `jax.vmap` over the student written as a pure function of its weights, so
  an accelerator sees a few large kernels instead of N small ones;
- "loop": the students one after another inside the one compiled function (the form of
  `kdutils.distill.fused.FusedDistiller`). TensorFlow on CPU refuses the gradient of a grouped
  convolution and its batched-matmul form was slower; on JAX's CPU, vmap's grouped
  convolutions were far slower than this (benchmarks/speed.py).

The data order is explicit: epoch e of seed s visits `epoch_order(s, e, n)`, the same on
every backend. The student is any `keras.Sequential` of the layers in `SUPPORTED`
(the report's CNN, MLPs without dropout); `functional` refuses others.
"""

from __future__ import annotations

import dataclasses
import itertools
import time
from collections.abc import Callable

import keras
import numpy as np
from keras import layers, ops

from kdutils.distill.losses import (
    check_alpha,
    check_temperature,
    cross_entropy_per_example,
    scaled_kl_per_example,
)
from kdutils.distill.repro import set_seed

SUPPORTED = (
    layers.Conv2D,
    layers.Dense,
    layers.MaxPooling2D,
    layers.Flatten,
    layers.LeakyReLU,
    layers.ReLU,
    layers.Activation,
)
# The faster way to batch students on each backend and device, measured by
# benchmarks/speed.py: on CPU, XLA's grouped convolutions (what vmap makes of N students'
# convolutions) are far slower than N plain ones; accelerators run them as a few large kernels.
MODES = {("jax", "cpu"): "loop", ("jax", "accelerator"): "vmap", ("tensorflow", "cpu"): "loop"}
STATS = ("loss", "hard_loss", "soft_loss", "correct", "agree")


# Which trainer trains a sweep's students fastest on each backend and device. At the earlier
# main sweep's scale on 2 CPU cores (TensorFlow, 10k images, 33 students x 20 epochs) the
# batched loop took 1704 s, with other jobs sharing the cores and its step bound by one
# Python thread driving many small per-student kernels; fused per seed took 921 s on an idle
# machine. So on CPU the sweep trains the alphas of each seed fused; on an accelerator, JAX's
# vmap runs all students as a few large kernels.
TRAINERS = {("jax", "accelerator"): "batched"}


def backend_device() -> tuple[str, str]:
    """(Keras backend, "cpu" or "accelerator" for its default device)."""
    backend, device = keras.backend.backend(), "cpu"
    if backend == "jax":
        import jax

        device = "cpu" if jax.default_backend() == "cpu" else "accelerator"
    elif backend == "tensorflow":
        import tensorflow as tf

        device = "accelerator" if tf.config.list_logical_devices("GPU") else "cpu"
    return backend, device


def default_mode() -> str:
    """The faster batched mode (`MODES`) for the active backend and its default device."""
    return MODES.get(backend_device(), "loop")


def preferred_trainer() -> str:
    """The trainer (`TRAINERS`: "batched", else "fused") for this backend and device."""
    return TRAINERS.get(backend_device(), "fused")


@dataclasses.dataclass(frozen=True)
class Student:
    """One student of a batch: its alpha, seed (initial weights and data order), T, data set."""

    alpha: float
    seed: int
    temperature: float
    data: int = 0  # index of the data set it trains on (see `Split`)

    def __post_init__(self):
        check_alpha(self.alpha)
        check_temperature(self.temperature)


@dataclasses.dataclass
class Split:
    """Inputs, integer labels and teacher logits of one split of D data sets, stacked:
    x (D, n, ...), y (D, n), teacher (D, n, classes). Students pick theirs by `data`."""

    x: np.ndarray
    y: np.ndarray
    teacher: np.ndarray

    @classmethod
    def of(cls, x, y, teacher) -> Split:
        """A split of one data set."""
        return cls(np.asarray(x)[None], np.asarray(y)[None], np.asarray(teacher)[None])

    @classmethod
    def stack(cls, splits: list[Split]) -> Split:
        """The data sets of several splits, in order."""
        return cls(
            *(np.concatenate([getattr(s, f) for s in splits]) for f in ("x", "y", "teacher"))
        )

    @property
    def size(self) -> int:
        return int(self.y.shape[1])


def epoch_order(seed: int, epoch: int, n: int) -> np.ndarray:
    """The order in which a student of `seed` visits its n training examples in `epoch`."""
    return np.random.default_rng([int(seed), int(epoch)]).permutation(n)


def functional(model: keras.Model) -> Callable:
    """`model`'s forward pass as a pure function `forward(weights, x)` of its weight list."""
    if not isinstance(model, keras.Sequential):
        raise ValueError(f"batched students must be keras.Sequential, got {type(model).__name__}")
    for layer in model.layers:
        if type(layer) not in SUPPORTED or getattr(layer, "groups", 1) != 1:
            raise ValueError(f"batched students cannot have a {type(layer).__name__} layer")
        if getattr(layer, "data_format", "channels_last") != "channels_last":
            raise ValueError("batched students need channels_last layers")
    steps = [(layer, len(layer.weights)) for layer in model.layers]

    def forward(weights, x):
        i = 0
        for layer, n in steps:
            x = _apply(layer, weights[i : i + n], x)
            i += n
        return x

    return forward


def _apply(layer, weights, x):
    """One layer of `functional`: the same keras.ops calls as the layer's own `call`."""
    if isinstance(layer, layers.Conv2D):
        x = ops.conv(x, weights[0], list(layer.strides), layer.padding, None, layer.dilation_rate)
    elif isinstance(layer, layers.Dense):
        x = ops.matmul(x, weights[0])
    elif isinstance(layer, layers.Flatten):
        return ops.reshape(x, (ops.shape(x)[0], -1))
    else:
        return layer.call(x)
    if len(weights) > 1:
        x = ops.add(x, weights[1])
    return layer.activation(x)


def initial_weights(build: Callable[[], keras.Model], seeds) -> dict[int, list[np.ndarray]]:
    """Each seed's initial weights: `build()` after `set_seed(seed)`, as in separate runs."""
    found = {}
    for seed in dict.fromkeys(int(s) for s in seeds):
        set_seed(seed)
        found[seed] = [np.asarray(w) for w in build().get_weights()]
    return found


def student_losses(forward, weights, x, teacher, y, hard_weight, soft_weight, temperature):
    """One student's batch loss and its statistics (`STATS`) on its own batch."""
    logits = forward(weights, x)
    hard = ops.mean(cross_entropy_per_example(y, logits))
    soft = ops.mean(scaled_kl_per_example(teacher, logits, temperature))
    loss = hard_weight * hard + soft_weight * soft
    predicted = ops.argmax(logits, axis=-1)
    correct = ops.sum(ops.cast(ops.equal(predicted, ops.cast(y, predicted.dtype)), "float32"))
    agree = ops.sum(ops.cast(ops.equal(predicted, ops.argmax(teacher, axis=-1)), "float32"))
    return loss, ops.stack([loss, hard, soft, correct, agree])


def adam(params, m, v, grads, step, learning_rate, beta_1=0.9, beta_2=0.999, eps=1e-7):
    """Keras's Adam update (keras.optimizers.Adam's defaults) of stacked weights; `step`
    counts from 1. Returns the new (params, m, v)."""
    rate = learning_rate * ops.sqrt(1 - beta_2**step) / (1 - beta_1**step)
    m = [a + (g - a) * (1 - beta_1) for a, g in zip(m, grads, strict=True)]
    v = [b + (ops.square(g) - b) * (1 - beta_2) for b, g in zip(v, grads, strict=True)]
    params = [p - (a * rate) / (ops.sqrt(b) + eps) for p, a, b in zip(params, m, v, strict=True)]
    return params, m, v


def _per_student(params) -> list[list]:
    """Stacked weights as one weight list per student (unstack: its gradient is a stack)."""
    return [list(w) for w in zip(*[ops.unstack(p, axis=0) for p in params], strict=True)]


def stacked_logits(forward, mode: str) -> Callable:
    """`logits(params, x)`: every student's logits (N, batch, classes) on its own x[i]."""

    def logits(params, x):
        if mode == "vmap":
            import jax

            return jax.vmap(forward)(params, x)
        return ops.stack([forward(w, x[i]) for i, w in enumerate(_per_student(params))])

    return logits


def total_loss(forward, mode: str) -> Callable:
    """`total(params, x, t, y, hw, sw, T)`: the sum of the students' losses, and (N, 5) stats."""

    def total(params, x, teacher, y, hard_weight, soft_weight, temperature):
        args = (x, teacher, y, hard_weight, soft_weight, temperature)
        if mode == "vmap":
            import jax

            one = jax.vmap(lambda w, *a: student_losses(forward, w, *a))
            losses, stats = one(params, *args)
        else:
            pairs = [
                student_losses(forward, w, *(a[i] for a in args))
                for i, w in enumerate(_per_student(params))
            ]
            losses, stats = ops.stack([p[0] for p in pairs]), ops.stack([p[1] for p in pairs])
        return ops.sum(losses), stats

    return total


def _jax_train(forward, mode: str) -> Callable:
    """`train(state, idxs, data)`: len(idxs) steps in one compiled call (`jax.lax.scan`)."""
    import jax

    grad = jax.grad(total_loss(forward, mode), has_aux=True)

    def one(state, idx, data):
        params, m, v, step = state
        x, y, teacher, hard_weight, soft_weight, temperature, rate = data
        grads, stats = grad(params, x[idx], teacher[idx], y[idx], hard_weight, soft_weight,
                            temperature)  # fmt: skip
        params, m, v = adam(params, m, v, grads, step + 1, rate)
        return (params, m, v, step + 1), stats

    return jax.jit(
        lambda state, idxs, data: jax.lax.scan(lambda s, i: one(s, i, data), state, idxs)
    )


def _tf_train(forward, mode: str) -> Callable:
    """`train(state, idxs, data)`: len(idxs) steps in one `tf.function` call."""
    import tensorflow as tf

    total = total_loss(forward, mode)

    @tf.function
    def train(state, idxs, data):
        params, m, v, step = state
        x, y, teacher, hard_weight, soft_weight, temperature, rate = data
        stats = tf.TensorArray(tf.float32, size=tf.shape(idxs)[0])
        for k in tf.range(tf.shape(idxs)[0]):
            idx = idxs[k]
            with tf.GradientTape() as tape:
                tape.watch(params)
                loss, stats_k = total(params, tf.gather(x, idx), tf.gather(teacher, idx),
                                      tf.gather(y, idx), hard_weight, soft_weight,
                                      temperature)  # fmt: skip
            grads = tape.gradient(loss, params)
            step = step + 1.0
            params, m, v = adam(params, m, v, grads, step, rate)
            stats = stats.write(k, stats_k)
        return (params, m, v, step), stats.stack()

    return train


def _compiled(function):
    """`function` compiled for the active backend (jit on JAX, tf.function on TensorFlow)."""
    if keras.backend.backend() == "jax":
        import jax

        return jax.jit(function)
    import tensorflow as tf

    return tf.function(function)


class BatchedStudents:
    """N students of one architecture trained together (see the module's docstring).

    `fit` trains them and returns one `Distiller`-style history per student (loss, accuracy,
    hard_loss, soft_loss, fidelity and their val_ twins, weighted as Keras weighs them);
    `logits` scores every student on its own data set; `weights(i)` is student i's weights.
    """

    def __init__(self, build, students, learning_rate, batch_size, mode="auto", steps_per_call=32):
        backend = keras.backend.backend()
        self.mode = default_mode() if mode == "auto" else mode
        if backend not in ("jax", "tensorflow") or (self.mode == "vmap" and backend != "jax"):
            raise ValueError(f"batched mode {self.mode!r} is not available on {backend}")
        self.students, self.batch_size = list(students), int(batch_size)
        self.steps_per_call = int(steps_per_call)
        self.forward = functional(build())
        first = initial_weights(build, [s.seed for s in self.students])
        params = [np.stack(w) for w in zip(*[first[s.seed] for s in self.students], strict=True)]
        zeros = [np.zeros_like(p) for p in params]
        state = (params, zeros, [z.copy() for z in zeros], np.float32(0))
        self.state = keras.tree.map_structure(ops.convert_to_tensor, state)
        columns = [(s.alpha, 1.0 - s.alpha, s.temperature) for s in self.students]
        self.constants = (
            *(np.array(c, dtype="float32") for c in zip(*columns, strict=True)),
            np.float32(learning_rate),
        )
        train = _jax_train if backend == "jax" else _tf_train
        self._train = train(self.forward, self.mode)
        self._logits = _compiled(stacked_logits(self.forward, self.mode))

    def fit(self, train: Split, val: Split | None, epochs: int, on_epoch_end=None) -> list[dict]:
        """Train `epochs` epochs; `on_epoch_end(epoch, self)` after each. Returns histories."""
        histories: list[dict] = [{} for _ in self.students]
        flat = (_flat(train.x), _flat(train.y), _flat(train.teacher))
        data = tuple(ops.convert_to_tensor(a) for a in flat + self.constants)
        self.seconds = 0.0
        for epoch in range(epochs):
            start = time.perf_counter()
            logs = self._epoch(epoch, train.size, data)
            self.seconds += time.perf_counter() - start
            if val is not None:
                for one, scores in zip(logs, self.evaluate(val), strict=True):
                    one.update({f"val_{k}": value for k, value in scores.items()})
            for history, one in zip(histories, logs, strict=True):
                for key, value in one.items():
                    history.setdefault(key, []).append(value)
            if on_epoch_end is not None:
                on_epoch_end(epoch, self)
        return histories

    def _epoch(self, epoch: int, n: int, data: tuple) -> list[dict]:
        """One epoch: full batches `steps_per_call` at a time, then the short last batch."""
        size, calls = self.batch_size, self.steps_per_call
        orders = np.stack([epoch_order(s.seed, epoch, n) + s.data * n for s in self.students])
        orders = orders.astype("int32")
        full, stats, sizes = n // size, [], []
        for a in range(0, full, calls):
            b = min(a + calls, full)
            idxs = orders[:, a * size : b * size].reshape(len(self.students), b - a, size)
            stats.append(self._run(idxs.transpose(1, 0, 2), data))
            sizes += [size] * (b - a)
        if n % size:
            stats.append(self._run(orders[None, :, full * size :], data))
            sizes.append(n % size)
        return self._logs(np.concatenate(stats), np.array(sizes, dtype="float64"))

    def _run(self, idxs: np.ndarray, data: tuple) -> np.ndarray:
        """len(idxs) training steps in one compiled call; (steps, N, len(STATS)) statistics."""
        self.state, stats = self._train(self.state, ops.convert_to_tensor(idxs), data)
        return np.asarray(ops.convert_to_numpy(stats), dtype="float64")

    @staticmethod
    def _logs(stats: np.ndarray, sizes: np.ndarray) -> list[dict]:
        """Each student's epoch metrics from per-batch statistics, weighted as Keras does:
        `loss` by batch size, hard and soft losses per batch, accuracy and fidelity per example."""
        n = sizes.sum()
        loss = (stats[..., 0] * sizes[:, None]).sum(0) / n
        hard, soft = stats[..., 1].mean(0), stats[..., 2].mean(0)
        accuracy, fidelity = stats[..., 3].sum(0) / n, stats[..., 4].sum(0) / n
        keys = ("loss", "accuracy", "hard_loss", "soft_loss", "fidelity")
        return [
            dict(zip(keys, map(float, v), strict=True))
            for v in zip(loss, accuracy, hard, soft, fidelity, strict=True)
        ]

    def evaluate(self, split: Split) -> list[dict]:
        """Each student's metrics on its own data set of `split`, in batches as Keras's."""
        logits, size = self.logits(split), self.batch_size
        per_example = []
        for i, s in enumerate(self.students):
            y, teacher = split.y[s.data], split.teacher[s.data].astype("float32")
            hard = ops.convert_to_numpy(cross_entropy_per_example(y, logits[i]))
            soft = ops.convert_to_numpy(scaled_kl_per_example(teacher, logits[i], s.temperature))
            predicted = logits[i].argmax(-1)
            per_example.append(
                np.stack([hard, soft, predicted == y, predicted == teacher.argmax(-1)], -1)
            )
        per_example = np.stack(per_example, 1).astype("float64")  # (examples, N, 4)
        hard_weight, soft_weight = (c.astype("float64") for c in self.constants[:2])
        batches = []
        for a in range(0, split.size, size):
            chunk = per_example[a : a + size]
            hard, soft = chunk[..., 0].mean(0), chunk[..., 1].mean(0)
            loss = hard_weight * hard + soft_weight * soft
            batches.append(
                np.stack([loss, hard, soft, chunk[..., 2].sum(0), chunk[..., 3].sum(0)], -1)
            )
        sizes = np.array([min(size, split.size - a) for a in range(0, split.size, size)], "float64")
        return self._logs(np.stack(batches), sizes)

    def logits(self, split: Split, chunk: int = 256) -> np.ndarray:
        """(N, examples, classes): every student's logits on its own data set of `split`."""
        ids = [s.data for s in self.students]
        out = [
            ops.convert_to_numpy(self._logits(self.state[0], split.x[ids, a : a + chunk]))
            for a in range(0, split.size, chunk)
        ]
        return np.concatenate(out, axis=1)

    @property
    def parameters(self) -> int:
        """The number of weights of one student."""
        return sum(int(np.prod(p.shape[1:])) for p in self.state[0])

    def weights(self, i: int) -> list[np.ndarray]:
        """Student i's current weights, in its Keras model's order (`model.set_weights`)."""
        return [np.asarray(ops.convert_to_numpy(p[i])) for p in self.state[0]]


def _flat(array: np.ndarray) -> np.ndarray:
    """(D, n, ...) -> (D * n, ...), float32 unless integer."""
    flat = array.reshape(-1, *array.shape[2:])
    return flat if np.issubdtype(flat.dtype, np.integer) else flat.astype("float32")


def bytes_per_student(model: keras.Model, batch_size: int, eval_chunk: int = 256) -> int:
    """Memory one more batched student needs: its weights with Adam's slots and gradients,
    and its activations for a training batch (forward and backward) and an evaluation chunk,
    doubled for the compiler's temporaries."""
    activations = sum(int(np.prod(layer.output.shape[1:])) for layer in model.layers)
    activations += int(np.prod(model.inputs[0].shape[1:]))
    floats = 6 * model.count_params() + activations * (3 * batch_size + eval_chunk)
    return 2 * 4 * floats


def memory_budget(data_bytes: int) -> int:
    """Bytes batched students may use: 75% of RAM less this process and the data."""
    import psutil

    total = psutil.virtual_memory().total
    return int(0.75 * total - psutil.Process().memory_info().rss - data_bytes)


def chunks(students: list, per_student: int, budget: int) -> list[list]:
    """`students` in as few, nearly equal chunks as fit in `budget` bytes (at least one each)."""
    fit = max(1, budget // max(per_student, 1))
    count = -(-len(students) // fit)
    bounds = [len(students) * i // count for i in range(count + 1)]
    return [students[a:b] for a, b in itertools.pairwise(bounds)]
