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


def _conv_bn(x, filters: int, strides: int, name: str, kernel_size: int = 3):
    """Conv (no bias, as BatchNorm follows) -> BatchNorm."""
    x = layers.Conv2D(
        filters, kernel_size, strides=strides, padding="same", use_bias=False, name=f"{name}_conv"
    )(x)
    # PyTorch's BatchNorm defaults (momentum 0.1 there is 0.9 here), as in the tutorial's code.
    return layers.BatchNormalization(momentum=0.9, epsilon=1e-5, name=f"{name}_bn")(x)


def _basic_block(x, filters: int, strides: int, name: str, out_name: str | None = None):
    """ResNet BasicBlock: two 3x3 conv-BN with a shortcut (1x1 conv-BN when the shape changes)."""
    shortcut = x
    if strides != 1 or x.shape[-1] != filters:
        shortcut = _conv_bn(x, filters, strides, f"{name}_proj", kernel_size=1)
    y = _conv_bn(x, filters, strides, f"{name}_1")
    y = layers.Activation("relu", name=f"{name}_1_relu")(y)
    y = _conv_bn(y, filters, 1, f"{name}_2")
    y = layers.Add(name=f"{name}_add")([y, shortcut])
    return layers.Activation("relu", name=out_name or f"{name}_out")(y)


def resnet_cifar(
    widths: tuple[int, ...] = (64, 128, 256, 512),
    blocks: tuple[int, ...] = (2, 2, 2, 2),
    input_shape: tuple[int, ...] = CIFAR_SHAPE,
    num_classes: int = 10,
    name: str = "resnet_cifar",
) -> keras.Model:
    """A CIFAR ResNet with BasicBlocks (He et al., 2016, as in the common PyTorch CIFAR code).

    3x3 conv stem (stride 1, no max-pool) -> BN -> ReLU, then one stage per entry of `widths`
    with `blocks[i]` BasicBlocks each, stride 2 at the first block of every stage but the first,
    then global average pooling and Dense logits. The output of stage *i* (its last ReLU) is
    the layer named `stage{i}`, so feature distillers can pair teacher and student by name.
    """
    if len(widths) != len(blocks):
        raise ValueError(f"widths={widths} and blocks={blocks} must have the same length")
    inputs = keras.Input(shape=input_shape)
    x = _conv_bn(inputs, widths[0], 1, "stem")
    x = layers.Activation("relu", name="stem_relu")(x)
    for s, (width, count) in enumerate(zip(widths, blocks, strict=True), start=1):
        for b in range(count):
            strides = 2 if (s > 1 and b == 0) else 1
            out_name = f"stage{s}" if b == count - 1 else None
            x = _basic_block(x, width, strides, f"stage{s}_block{b + 1}", out_name)
    x = layers.GlobalAveragePooling2D(name="pool")(x)
    outputs = layers.Dense(num_classes, name="logits")(x)
    return keras.Model(inputs, outputs, name=name)


def resnet18_cifar(input_shape=CIFAR_SHAPE, num_classes: int = 10) -> keras.Model:
    """The standard CIFAR ResNet-18: widths 64/128/256/512, 2 BasicBlocks per stage.

    11,173,962 trainable parameters (PyTorch's count); Keras adds 9,600 non-trainable
    BatchNorm moving statistics.
    """
    return resnet_cifar(input_shape=input_shape, num_classes=num_classes, name="resnet18_cifar")


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


def _batchnorm(name: str) -> layers.BatchNormalization:
    """BatchNorm with PyTorch's defaults (moving averages updated by 0.1 a step, eps 1e-5),
    so that the moving statistics catch up within a short run."""
    return layers.BatchNormalization(momentum=0.9, epsilon=1e-5, name=name)


def alexnet_cifar(
    input_shape=CIFAR_SHAPE, num_classes: int = 10, width: float = 1.0, name: str = "alexnet_cifar"
) -> keras.Model:
    """An AlexNet-style CIFAR network (Krizhevsky et al., 2012, adapted to 32x32 images).

    Five 3x3 convolutions (stride 1, same padding) with 64-192-384-256-256 filters, each
    followed by BatchNorm (in place of AlexNet's local response normalisation) and ReLU,
    max-pooling (2x2) after the 1st, 2nd and 5th (32 -> 16 -> 8 -> 4 pixels), then
    Dropout(0.5) -> Dense(4096, ReLU) -> Dropout(0.5) -> Dense(4096, ReLU) -> Dense logits.
    35,858,634 parameters for 10 classes (35,856,330 trainable). `width` scales every layer's
    filters and units: 0.5 gives 32-96-192-128-128 filters and dense 2048-2048 (8,978,538
    parameters), 0.25 gives 2,251,578.
    """

    def scaled(n: int) -> int:
        return max(1, round(n * width))

    filters = [scaled(n) for n in (64, 192, 384, 256, 256)]
    stack: list = [keras.Input(shape=input_shape)]
    for i, f in enumerate(filters):
        stack.append(layers.Conv2D(f, 3, padding="same", use_bias=False, name=f"conv{i + 1}"))
        stack.append(_batchnorm(f"bn{i + 1}"))
        stack.append(layers.ReLU())
        if i in (0, 1, 4):
            stack.append(layers.MaxPooling2D(2, name=f"pool{i + 1}"))
    stack.append(layers.Flatten())
    for i in (1, 2):
        stack.append(layers.Dropout(0.5))
        stack.append(layers.Dense(scaled(4096), activation="relu", name=f"fc{i}"))
    stack.append(layers.Dense(num_classes, name="logits"))
    return keras.Sequential(stack, name=name)


def cnn_bn_student(input_shape=CIFAR_SHAPE, num_classes: int = 10) -> keras.Model:
    """A small CIFAR CNN: 2 x [conv 3x3 (32, then 64 filters), BatchNorm, ReLU, maxpool 2],
    then Dense(256, ReLU) -> Dense(128, ReLU) -> Dense logits. 1,102,794 parameters
    (1,102,602 trainable; BatchNorm's 192 moving statistics are not)."""
    stack: list = [keras.Input(shape=input_shape)]
    for i, f in enumerate((32, 64)):
        stack += [
            layers.Conv2D(f, 3, padding="same", name=f"conv{i + 1}"),
            _batchnorm(f"bn{i + 1}"),
            layers.ReLU(),
            layers.MaxPooling2D(2),
        ]
    stack += [
        layers.Flatten(),
        layers.Dense(256, activation="relu"),
        layers.Dense(128, activation="relu"),
        layers.Dense(num_classes, name="logits"),
    ]
    return keras.Sequential(stack, name="cnn_bn_student")


MODELS: dict[str, Callable[..., keras.Model]] = {
    "report_teacher": report_teacher,
    "report_student": report_student,
    "tiny_teacher": tiny_teacher,
    "light_nn": light_nn,
    "simple_nn": simple_nn,
    "resnet_cifar": resnet_cifar,
    "resnet18_cifar": resnet18_cifar,
    "hinton_teacher_mlp": hinton_teacher_mlp,
    "hinton_student_mlp": hinton_student_mlp,
    "alexnet_cifar": alexnet_cifar,
    "cnn_bn_student": cnn_bn_student,
}


def build_model(name: str, input_shape=MNIST_SHAPE, num_classes: int = 10) -> keras.Model:
    """Build a new model by its registry name (see `MODELS`)."""
    if name not in MODELS:
        raise ValueError(f"unknown model name={name!r}; choose one of {sorted(MODELS)}")
    return MODELS[name](input_shape=tuple(input_shape), num_classes=num_classes)
