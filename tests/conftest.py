"""Shared test setup: quiet TensorFlow, and a backend-independent gradient helper."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np
import pytest

BACKEND = keras.backend.backend()


def gradient(fn, x: np.ndarray) -> np.ndarray:
    """d fn(x) / d x for a scalar-valued fn written with keras.ops, on the active backend."""
    if BACKEND == "tensorflow":
        import tensorflow as tf

        v = tf.Variable(x)
        with tf.GradientTape() as tape:
            out = fn(v)
        return tape.gradient(out, v).numpy()
    if BACKEND == "jax":
        import jax

        return np.asarray(jax.grad(fn)(x))
    if BACKEND == "torch":
        import torch

        v = torch.tensor(x, requires_grad=True)
        fn(v).backward()
        return v.grad.numpy()
    pytest.skip(f"no gradient helper for backend {BACKEND}")


def to_numpy(x) -> np.ndarray:
    return np.asarray(keras.ops.convert_to_numpy(x))
