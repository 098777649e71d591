"""Model factories. Every call returns a *new*, freshly initialised model that outputs logits.

Use `build_model(name, ...)` so that each run gets its own student: the original study
reused one student object across all alphas, so every run warm-started from the last.
"""

from __future__ import annotations

from collections.abc import Callable

import keras
from keras import layers

MNIST_SHAPE = (28, 28, 1)
CIFAR_SHAPE = (32, 32, 3)


def report_cnn(
    filters: tuple[int, int],
    input_shape: tuple[int, ...] = MNIST_SHAPE,
    num_classes: int = 10,
    name: str = "report_cnn",
) -> keras.Model:
    """The report's CNN (the Keras distillation example's architecture), faithfully.

    Conv2D(f1, 3x3, stride 2, same) -> LeakyReLU(0.2) -> MaxPool(2, stride 1, same)
    -> Conv2D(f2, 3x3, stride 2, same) -> Flatten -> Dense(num_classes) logits.
    As in the original, there is *no* activation after the second convolution.
    """
    return keras.Sequential(
        [
            keras.Input(shape=input_shape),
            layers.Conv2D(filters[0], 3, strides=2, padding="same"),
            layers.LeakyReLU(negative_slope=0.2),
            layers.MaxPooling2D(2, strides=1, padding="same"),
            layers.Conv2D(filters[1], 3, strides=2, padding="same"),
            layers.Flatten(),
            layers.Dense(num_classes),
        ],
        name=name,
    )


def report_teacher(input_shape=MNIST_SHAPE, num_classes: int = 10) -> keras.Model:
    """The report's teacher: `report_cnn` with 256 and 512 filters. 1,433,610 parameters."""
    return report_cnn((256, 512), input_shape, num_classes, name="teacher")


def report_student(input_shape=MNIST_SHAPE, num_classes: int = 10) -> keras.Model:
    """The report's student: `report_cnn` with 16 and 32 filters. 20,490 parameters."""
    return report_cnn((16, 32), input_shape, num_classes, name="student")


def tiny_teacher(input_shape=MNIST_SHAPE, num_classes: int = 10) -> keras.Model:
    """A deliberately weak teacher: `report_cnn` with 4 and 8 filters. 4,266 parameters,
    about a fifth of the student's (the teacher-quality study)."""
    return report_cnn((4, 8), input_shape, num_classes, name="tiny_teacher")


def _small_cifar_cnn(
    channels: tuple[int, int], hidden: int, dropout: float, input_shape, num_classes: int, name: str
) -> keras.Model:
    """2 x [conv 3x3 pad 1, ReLU, maxpool 2] -> Dense(hidden, ReLU) -> Dropout -> Dense."""
    return keras.Sequential(
        [
            keras.Input(shape=input_shape),
            layers.Conv2D(channels[0], 3, padding="same", activation="relu"),
            layers.MaxPooling2D(2),
            layers.Conv2D(channels[1], 3, padding="same", activation="relu"),
            layers.MaxPooling2D(2),
            layers.Flatten(),
            layers.Dense(hidden, activation="relu"),
            layers.Dropout(dropout),
            layers.Dense(num_classes),
        ],
        name=name,
    )


def light_nn(input_shape=CIFAR_SHAPE, num_classes: int = 10) -> keras.Model:
    """LightNN (CIFAR-10): 16/16 channels, FC 1024->256, dropout 0.1. 267,738 parameters."""
    return _small_cifar_cnn((16, 16), 256, 0.1, input_shape, num_classes, "light_nn")


def simple_nn(input_shape=CIFAR_SHAPE, num_classes: int = 10) -> keras.Model:
    """SimpleNN, the same shape with 8/8 channels and FC 512->64, dropout 0.2. 34,290 params."""
    return _small_cifar_cnn((8, 8), 64, 0.2, input_shape, num_classes, "simple_nn")


def _mlp(hidden: tuple[int, ...], dropout: float, input_shape, num_classes: int, name: str):
    """Flatten -> [Dense(h, ReLU) -> Dropout] per hidden layer -> Dense logits."""
    stack: list = [keras.Input(shape=input_shape), layers.Flatten()]
    for width in hidden:
        stack.append(layers.Dense(width, activation="relu"))
        if dropout:
            stack.append(layers.Dropout(dropout))
    stack.append(layers.Dense(num_classes))
    return keras.Sequential(stack, name=name)


def hinton_teacher_mlp(input_shape=MNIST_SHAPE, num_classes: int = 10) -> keras.Model:
    """Hinton et al. (2015) MNIST teacher: 784-1200-1200-10 with dropout 0.5. 2,395,210 params."""
    return _mlp((1200, 1200), 0.5, input_shape, num_classes, "hinton_teacher")


def hinton_student_mlp(input_shape=MNIST_SHAPE, num_classes: int = 10) -> keras.Model:
    """Hinton et al. (2015) MNIST student: 784-800-800-10, no dropout. 1,276,810 params."""
    return _mlp((800, 800), 0.0, input_shape, num_classes, "hinton_student")


MODELS: dict[str, Callable[..., keras.Model]] = {
    "report_teacher": report_teacher,
    "report_student": report_student,
    "tiny_teacher": tiny_teacher,
    "light_nn": light_nn,
    "simple_nn": simple_nn,
    "hinton_teacher_mlp": hinton_teacher_mlp,
    "hinton_student_mlp": hinton_student_mlp,
}


def build_model(name: str, input_shape=MNIST_SHAPE, num_classes: int = 10) -> keras.Model:
    """Build a new model by its registry name (see `MODELS`)."""
    if name not in MODELS:
        raise ValueError(f"unknown model name={name!r}; choose one of {sorted(MODELS)}")
    return MODELS[name](input_shape=tuple(input_shape), num_classes=num_classes)
