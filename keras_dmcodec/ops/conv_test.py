"""ops/conv.py against Keras's own ops (the torch fast path; a pass-through elsewhere)."""

import numpy as np
import pytest
from keras import ops

from keras_dmcodec.ops.conv import conv, conv1d, conv1d_transpose

RNG = np.random.default_rng(0)


def _rand(*shape):
    return RNG.standard_normal(shape).astype("float32")


@pytest.mark.parametrize("strides,dilation,groups", [(1, 1, 1), (2, 1, 1), (1, 3, 1), (4, 1, 4)])
def test_conv1d_equals_ops_conv(strides, dilation, groups):
    x, kernel = _rand(2, 37, 8), _rand(5, 8 // groups, 12)
    expected = ops.conv(x, kernel, strides=strides, padding="valid", dilation_rate=dilation)
    got = conv1d(x, kernel, strides=strides, dilation_rate=dilation)
    np.testing.assert_allclose(ops.convert_to_numpy(got), ops.convert_to_numpy(expected),
                               atol=1e-5)


def test_conv1d_transpose_equals_ops_conv_transpose():
    x, kernel = _rand(2, 9, 6), _rand(8, 4, 6)
    expected = ops.conv_transpose(x, kernel, strides=4, padding="valid")
    np.testing.assert_allclose(ops.convert_to_numpy(conv1d_transpose(x, kernel, strides=4)),
                               ops.convert_to_numpy(expected), atol=1e-5)


@pytest.mark.parametrize("strides,dilation,groups", [((3, 1), (1, 1), 1), ((1, 1), (2, 1), 1),
                                                     ((2, 1), (1, 1), 2)])
def test_conv2d_equals_ops_conv(strides, dilation, groups):
    """The multi-period discriminator's layout: [batch, time / period, period, channels]."""
    x, kernel = _rand(2, 23, 3, 4), _rand(5, 1, 4 // groups, 8)
    expected = ops.conv(x, kernel, strides=strides, padding="valid", dilation_rate=dilation)
    got = conv(x, kernel, strides=strides, dilation_rate=dilation)
    np.testing.assert_allclose(ops.convert_to_numpy(got), ops.convert_to_numpy(expected),
                               atol=1e-5)


def test_conv_of_rank_1_is_conv1d():
    x, kernel = _rand(1, 20, 4), _rand(3, 4, 2)
    np.testing.assert_allclose(ops.convert_to_numpy(conv(x, kernel, strides=(2,))),
                               ops.convert_to_numpy(conv1d(x, kernel, strides=2)), atol=1e-6)
