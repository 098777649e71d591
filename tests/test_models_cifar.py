"""CIFAR model factories: ResNet-18's parameter count, stage outputs, the tutorial's students."""

import numpy as np
import pytest

from kdutils.distill.models import (
    MODELS,
    build_model,
    light_nn,
    resnet18_cifar,
    resnet_cifar,
    simple_nn,
)


def _count(weights) -> int:
    return sum(int(np.prod(w.shape)) for w in weights)


@pytest.fixture(scope="module")
def resnet18():
    return resnet18_cifar()


def test_resnet18_has_pytorchs_trainable_parameter_count(resnet18):
    assert _count(resnet18.trainable_weights) == 11_173_962
    # BatchNorm moving mean and variance: 2 x (every BN layer's channels).
    bn_channels = sum(
        layer.gamma.shape[0]
        for layer in resnet18.layers
        if type(layer).__name__ == "BatchNormalization"
    )
    assert _count(resnet18.non_trainable_weights) == 2 * bn_channels


def test_resnet18_stage_outputs_are_named_and_shaped(resnet18):
    expected = {1: (32, 32, 64), 2: (16, 16, 128), 3: (8, 8, 256), 4: (4, 4, 512)}
    for stage, shape in expected.items():
        layer = resnet18.get_layer(f"stage{stage}")
        assert tuple(layer.output.shape[1:]) == shape
    assert tuple(resnet18.outputs[0].shape[1:]) == (10,)


def test_resnet18_block_structure(resnet18):
    names = [layer.name for layer in resnet18.layers]
    # 1 stem + 4 stages x 2 blocks x 2 convs + 3 projection shortcuts = 20 convolutions.
    assert sum(type(layer).__name__ == "Conv2D" for layer in resnet18.layers) == 20
    assert [n for n in names if n.endswith("_proj_conv")] == [
        "stage2_block1_proj_conv",
        "stage3_block1_proj_conv",
        "stage4_block1_proj_conv",
    ]
    assert not any("max" in n for n in names)


def test_resnet_cifar_is_generic_and_runs():
    model = resnet_cifar(widths=(8, 16), blocks=(1, 1), num_classes=5, name="tiny")
    assert tuple(model.get_layer("stage2").output.shape[1:]) == (16, 16, 16)
    out = model.predict(np.zeros((2, 32, 32, 3), "float32"), verbose=0)
    assert out.shape == (2, 5) and np.isfinite(out).all()
    with pytest.raises(ValueError):
        resnet_cifar(widths=(8, 16), blocks=(1,))


def test_registry_and_tutorial_students():
    assert MODELS["resnet18_cifar"] is resnet18_cifar
    assert MODELS["resnet_cifar"] is resnet_cifar
    assert light_nn().count_params() == 267_738
    assert simple_nn().count_params() == 34_290
    assert build_model("resnet18_cifar", input_shape=(32, 32, 3)).name == "resnet18_cifar"
