"""ops/conv.py against Keras's own ops (the torch fast path; a pass-through elsewhere)."""

import numpy as np
import pytest
from keras import ops

from keras_dmcodec.ops.conv import (
    conv,
    conv1d,
    conv1d_transpose,
    phase_conv,
    phase_conv_transpose,
)

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


@pytest.mark.parametrize("size,strides", [(16, 8), (10, 5), (7, 3), (3, 4)])
def test_phase_conv_transpose_equals_ops_conv_transpose(size, strides):
    """Kernels that are and are not a multiple of the stride (and shorter than it)."""
    x, kernel = _rand(2, 11, 6), _rand(size, 4, 6)
    expected = ops.conv_transpose(x, kernel, strides=strides, padding="valid")
    np.testing.assert_allclose(ops.convert_to_numpy(phase_conv_transpose(x, kernel, strides)),
                               ops.convert_to_numpy(expected), atol=1e-5)


@pytest.mark.parametrize("length,size,strides,groups",
                         [(101, 4, 2, 1), (101, 5, 3, 1), (100, 41, 4, 4), (40, 16, 8, 2),
                          (9, 3, 4, 1)])
def test_phase_conv_equals_ops_conv(length, size, strides, groups):
    """Lengths that do and do not fill the last folded frame; grouped kernels."""
    x, kernel = _rand(2, length, 8), _rand(size, 8 // groups, 12)
    expected = ops.conv(x, kernel, strides=strides, padding="valid")
    np.testing.assert_allclose(ops.convert_to_numpy(phase_conv(x, kernel, strides)),
                               ops.convert_to_numpy(expected), atol=1e-5)


@pytest.mark.parametrize("shape,size,strides,dilation,groups", [
    ((2, 23, 3, 4), (5, 1), (3, 1), (1, 1), 1),  # the multi-period discriminator's layout
    ((2, 12, 33, 4), (3, 9), (1, 2), (2, 1), 1),  # MS-STFT: frequency stride, time dilation
    ((2, 17, 19, 4), (4, 3), (2, 3), (1, 1), 2),  # both axes folded, grouped
])
def test_phase_conv_2d(shape, size, strides, dilation, groups):
    x, kernel = _rand(*shape), _rand(*size, shape[-1] // groups, 6)
    # Dense, then every stride-th output (TensorFlow refuses strides with dilations).
    dense = ops.conv(x, kernel, strides=1, padding="valid", dilation_rate=dilation)
    expected = dense[:, ::strides[0], ::strides[1]]
    got = phase_conv(x, kernel, strides, dilation)
    np.testing.assert_allclose(ops.convert_to_numpy(got), ops.convert_to_numpy(expected),
                               atol=1e-5)


def test_phase_conv_rejects_dilation_on_a_strided_axis():
    with pytest.raises(ValueError, match="dilation 1 where stride > 1"):
        phase_conv(_rand(1, 20, 2), _rand(3, 2, 2), 2, 2)


def test_phase_conv_rejects_input_shorter_than_kernel():
    with pytest.raises(ValueError, match="shorter than the kernel"):
        phase_conv(_rand(1, 3, 2), _rand(5, 2, 2), 2)
