"""Data augmentation for training on images: random crop after zero padding, and flips.

The standard CIFAR-10 augmentation (as torchvision's `RandomCrop(32, padding=4)` followed by
`RandomHorizontalFlip()`): every image is zero-padded by `padding` pixels on each side, cropped
back to its size at its own random offset, and flipped left-right with probability 1/2.

Keras's own `RandomCrop` draws one offset for the whole batch, so here each image gets its own
offset, gathered with `keras.ops.take` (exact: pixels are copied, never interpolated). The layer
is the identity at inference. Give it to `Distiller(..., augmentation=crop_and_flip())`, which
augments every training batch once and shows the same augmented images to teacher and student.
"""

from __future__ import annotations

import keras
from keras import ops


class RandomCropFlip(keras.layers.Layer):
    """Zero-pad by `padding`, crop back at a random offset per image, flip half the images.

    Applies only when called with `training=True`; otherwise returns its input unchanged.
    Inputs are `(batch, height, width, channels)`.
    """

    def __init__(self, padding: int = 4, flip: bool = True, seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(padding, int) or padding < 0:
            raise ValueError(f"padding must be an integer >= 0, got padding={padding!r}")
        self.padding = padding
        self.flip = flip
        self.seed = seed
        self.generator = keras.random.SeedGenerator(seed)

    def call(self, images, training=None):
        if not training:
            return images
        if self.padding:
            images = self.random_crop(images)
        if self.flip:
            images = self.random_flip(images)
        return images

    def random_crop(self, images):
        """Each image cropped from its zero-padded copy at its own offset in [0, 2 * padding]."""
        p = self.padding
        batch = ops.shape(images)[0]
        height, width = images.shape[1], images.shape[2]
        padded = ops.pad(images, [(0, 0), (p, p), (p, p), (0, 0)])
        rows = keras.random.randint((batch, 1, 1), 0, 2 * p + 1, seed=self.generator)
        cols = keras.random.randint((batch, 1, 1), 0, 2 * p + 1, seed=self.generator)
        # Index of pixel (b, rows[b] + i, cols[b] + j) in the padded batch, flattened.
        padded_width = width + 2 * p
        first = ops.reshape(ops.arange(batch), (-1, 1, 1)) * (height + 2 * p) * padded_width
        i = ops.reshape(ops.arange(height), (1, -1, 1))
        j = ops.reshape(ops.arange(width), (1, 1, -1))
        index = first + (rows + i) * padded_width + cols + j
        pixels = ops.reshape(padded, (-1, images.shape[-1]))
        return ops.take(pixels, index, axis=0)

    def random_flip(self, images):
        """Each image flipped left-right with probability 1/2."""
        batch = ops.shape(images)[0]
        flipped = keras.random.uniform((batch, 1, 1, 1), seed=self.generator) < 0.5
        return ops.where(flipped, ops.flip(images, axis=2), images)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self) -> dict:
        return super().get_config() | {
            "padding": self.padding,
            "flip": self.flip,
            "seed": self.seed,
        }


def crop_and_flip(padding: int = 4, seed: int | None = None) -> RandomCropFlip:
    """The standard CIFAR augmentation: random crop with `padding` and a horizontal flip."""
    return RandomCropFlip(padding=padding, flip=True, seed=seed, name="crop_and_flip")
