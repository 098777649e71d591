"""Model factories: parameter counts and fresh weights on every call."""

import numpy as np
import pytest

from kdutils.distill.models import CIFAR_SHAPE, build_model
from kdutils.distill.repro import set_seed

PARAMS = {
    "report_teacher": (None, 1_433_610),
    "report_student": (None, 20_490),
    "light_nn": (CIFAR_SHAPE, 267_738),
    "simple_nn": (CIFAR_SHAPE, 34_290),
    "hinton_teacher_mlp": (None, 2_395_210),
    "hinton_student_mlp": (None, 1_276_810),
}


@pytest.mark.parametrize("name", sorted(PARAMS))
def test_parameter_counts(name):
    shape, expected = PARAMS[name]
    model = build_model(name) if shape is None else build_model(name, input_shape=shape)
    assert model.count_params() == expected
    assert model.outputs[0].shape[-1] == 10


def test_report_cnn_has_no_activation_after_second_conv():
    layers = [type(layer).__name__ for layer in build_model("report_student").layers]
    assert layers == ["Conv2D", "LeakyReLU", "MaxPooling2D", "Conv2D", "Flatten", "Dense"]


def test_every_call_builds_a_new_model_and_seed_fixes_the_init():
    set_seed(0)
    a = build_model("report_student")
    b = build_model("report_student")
    assert a is not b
    assert not np.array_equal(a.weights[0].numpy(), b.weights[0].numpy())
    set_seed(0)
    c = build_model("report_student")
    np.testing.assert_array_equal(a.weights[0].numpy(), c.weights[0].numpy())


def test_unknown_model_name():
    with pytest.raises(ValueError, match="unknown model name='resnet'"):
        build_model("resnet")
