"""Channels-last 1-D and 2-D convolutions with a fast torch path.

Keras's torch backend runs a channels-last ``ops.conv`` as transpose -> ``conv1d`` ->
transpose, copying the activations twice per layer. Here, on torch, the input is viewed as
an NHWC image ``[batch, channels, 1, time]`` in ``channels_last`` memory format (a view of
the same memory, no copy) and convolved with ``conv2d``, which oneDNN runs natively on that
layout; the output comes back as a view too. Measured on this 2-core AVX2 machine (10 s of
16 kHz audio, 16 channels, k7): 7.4 ms vs 19.6 ms per conv. Other backends use ``ops.conv``
(XLA and TensorFlow's oneDNN already pick channels-last kernels). Results equal
``ops.conv`` up to float32 summation order. ``conv`` does the same for 2-D inputs ``[batch,
height, width, channels]`` (the multi-period discriminator's), viewed as NCHW in
``channels_last`` memory format.

On JAX, strided and transposed convolutions run as stride-1 convolutions on phase-folded
tensors (``phase_conv``, ``phase_conv_transpose``): XLA's CPU backward of a transposed
convolution is a dilated-input convolution that it runs 20-50x slower than the forward pass
(SEANet's upsampling layers, ``dmcodec_small``, batch 8 x 1 s: 1.16 s of a 2.0 s decoder
backward). Folded, every gradient is a stride-1 convolution: forward + backward of the
four upsampling layers 1.16 s -> 0.09 s. The sums are the same; only their order changes.
"""

import keras
from keras import ops


def per_axis(value, rank):
    """``value`` (an int, or one int per spatial axis) as a tuple of ``rank`` ints.

    Example:

    >>> per_axis(3, 2), per_axis([2, 1], 2)
    ((3, 3), (2, 1))
    """
    if isinstance(value, (list, tuple)):
        return tuple(int(v) for v in value)
    return (int(value),) * rank


def conv1d(inputs, kernel, strides=1, dilation_rate=1):
    """``ops.conv(inputs, kernel, strides, "valid", "channels_last", dilation_rate)``.

    Args:
        inputs: ``[batch, time, in_channels]``.
        kernel: ``[kernel_size, in_channels // groups, filters]`` (groups inferred).
        strides, dilation_rate: ints.

    Returns:
        ``[batch, frames, filters]``.

    Example:

    >>> tuple(conv1d(np.ones((1, 10, 4), "float32"), np.ones((3, 4, 2), "float32")).shape)
    (1, 8, 2)
    """
    if keras.backend.backend() == "jax" and strides > 1 and dilation_rate == 1:
        return phase_conv(inputs, kernel, strides)
    if keras.backend.backend() != "torch":
        return ops.conv(inputs, kernel, strides=strides, padding="valid",
                        data_format="channels_last", dilation_rate=dilation_rate)
    import torch  # deferred: backend-specific kernel

    x = ops.convert_to_tensor(inputs)
    kernel = ops.convert_to_tensor(kernel)
    groups = x.shape[-1] // kernel.shape[1]
    image = x.permute(0, 2, 1).unsqueeze(2)  # [B, C, 1, T], NHWC in memory
    weight = kernel.permute(2, 1, 0).unsqueeze(2).contiguous(memory_format=torch.channels_last)
    y = torch.nn.functional.conv2d(image, weight, stride=(1, strides),
                                   dilation=(1, dilation_rate), groups=groups)
    return y.squeeze(2).permute(0, 2, 1)


def conv1d_transpose(inputs, kernel, strides=1):
    """``ops.conv_transpose(inputs, kernel, strides, "valid", data_format="channels_last")``.

    Args:
        inputs: ``[batch, frames, in_channels]``.
        kernel: ``[kernel_size, filters, in_channels]`` (Keras's transposed-conv layout).
        strides: int.

    Returns:
        ``[batch, (frames - 1) * strides + kernel_size, filters]``.

    Example:

    >>> tuple(conv1d_transpose(np.ones((1, 5, 4), "float32"), np.ones((4, 2, 4), "float32"),
    ...                        strides=2).shape)
    (1, 12, 2)
    """
    if keras.backend.backend() == "jax" and strides > 1:
        return phase_conv_transpose(inputs, kernel, strides)
    if keras.backend.backend() != "torch":
        return ops.conv_transpose(inputs, kernel, strides=strides, padding="valid",
                                  data_format="channels_last")
    import torch  # deferred: backend-specific kernel

    x = ops.convert_to_tensor(inputs)
    kernel = ops.convert_to_tensor(kernel)
    image = x.permute(0, 2, 1).unsqueeze(2)
    weight = kernel.permute(2, 1, 0).unsqueeze(2).contiguous(memory_format=torch.channels_last)
    y = torch.nn.functional.conv_transpose2d(image, weight, stride=(1, strides))
    return y.squeeze(2).permute(0, 2, 1)


def conv(inputs, kernel, strides=1, dilation_rate=1):
    """``ops.conv(inputs, kernel, strides, "valid", "channels_last", dilation_rate)`` of rank
    1 or 2, with groups inferred from the kernel as ``ops.conv`` does.

    Args:
        inputs: ``[batch, time, in_channels]`` or ``[batch, height, width, in_channels]``.
        kernel: ``[*kernel_size, in_channels // groups, filters]``.
        strides, dilation_rate: an int or one int per spatial axis.

    Returns:
        ``[batch, *spatial_out, filters]``.

    Example:

    >>> tuple(conv(np.ones((1, 6, 3, 4), "float32"), np.ones((5, 1, 2, 8), "float32"),
    ...            strides=(3, 1)).shape)
    (1, 1, 3, 8)
    """
    rank = len(kernel.shape) - 2
    strides, dilation_rate = per_axis(strides, rank), per_axis(dilation_rate, rank)
    if rank == 1:
        return conv1d(inputs, kernel, strides=strides[0], dilation_rate=dilation_rate[0])
    if keras.backend.backend() == "jax" and max(strides) > 1 and set(dilation_rate) == {1}:
        # Not with dilations (the MS-STFT's frequency-strided, time-dilated convs): folded,
        # XLA ran that forward pass 5x slower (0.28 -> 1.5 s at 8 x 1 s).
        return phase_conv(inputs, kernel, strides)
    if keras.backend.backend() != "torch" or rank != 2:
        return ops.conv(inputs, kernel, strides=strides, padding="valid",
                        data_format="channels_last", dilation_rate=dilation_rate)
    import torch  # deferred: backend-specific kernel

    x = ops.convert_to_tensor(inputs)
    kernel = ops.convert_to_tensor(kernel)
    groups = x.shape[-1] // kernel.shape[2]
    image = x.permute(0, 3, 1, 2)  # [B, C, H, W], NHWC in memory
    weight = kernel.permute(3, 2, 0, 1).contiguous(memory_format=torch.channels_last)
    y = torch.nn.functional.conv2d(image, weight, stride=strides, dilation=dilation_rate,
                                   groups=groups)
    return y.permute(0, 2, 3, 1)


def phase_conv(inputs, kernel, strides, dilation_rate=1):
    """A valid strided convolution computed as a stride-1 convolution of phase-folded tensors.

    Along each strided axis, the input's steps are grouped ``stride`` at a time into channels
    (ordered channel-major, so that grouped kernels keep their groups contiguous) and the
    kernel, zero-padded to a multiple of ``stride`` taps, is folded the same way:
    ``y[f] = sum_k x[f*s + k] W[k]`` with ``k = j*s + r`` becomes a sum over ``j`` of folded
    steps ``f + j``. Axes with stride 1 keep their dilation.

    Args:
        inputs: ``[batch, *spatial, in_channels]`` with static shape.
        kernel: ``[*kernel_size, in_channels // groups, filters]``.
        strides: int or one int per spatial axis.
        dilation_rate: int or one int per spatial axis; must be 1 on strided axes.

    Returns:
        ``ops.conv(inputs, kernel, strides, "valid", dilation_rate=dilation_rate)``, up to
        float32 summation order.

    Example:

    >>> tuple(phase_conv(np.ones((1, 20, 4), "float32"), np.ones((4, 4, 2), "float32"),
    ...                  2).shape)
    (1, 9, 2)
    """
    x = ops.convert_to_tensor(inputs)
    w = ops.convert_to_tensor(kernel)
    rank = len(w.shape) - 2
    strides, dilation_rate = per_axis(strides, rank), per_axis(dilation_rate, rank)
    for axis, (stride, dilation) in enumerate(zip(strides, dilation_rate, strict=True)):
        if stride == 1:
            continue
        if dilation != 1:
            raise ValueError(f"axis {axis}: phase_conv needs dilation 1 where stride > 1")
        x, w = _fold(x, w, axis, stride)
    return ops.conv(x, w, strides=1, padding="valid", data_format="channels_last",
                    dilation_rate=dilation_rate)


def _fold(x, w, axis, stride):
    """Folds spatial ``axis`` of input ``x`` and kernel ``w`` by ``stride`` into channels."""
    rank = len(w.shape) - 2
    size = w.shape[axis]
    taps = -(-size // stride)  # folded kernel length
    steps = x.shape[1 + axis]
    frames = (steps - size) // stride + 1
    if frames < 1:
        raise ValueError(f"input of {steps} steps is shorter than the kernel ({size})")
    length = (frames + taps - 1) * stride
    if steps >= length:
        x = x[(slice(None),) * (1 + axis) + (slice(0, length),)]
    else:  # the extra steps meet zero taps only
        pads = [[0, 0]] * (rank + 2)
        pads[1 + axis] = [0, length - steps]
        x = ops.pad(x, pads)
    shape = list(x.shape)
    shape[0] = ops.shape(x)[0]
    # [..., length, ...] -> [..., frames + taps - 1, stride, ..., channels] -> stride last
    split = shape[:1 + axis] + [frames + taps - 1, stride] + shape[2 + axis:]
    x = ops.reshape(x, split)
    order = list(range(len(split)))
    order.remove(2 + axis)
    x = ops.transpose(x, order + [2 + axis])
    x = ops.reshape(x, shape[:1 + axis] + [frames + taps - 1] + shape[2 + axis:-1]
                    + [shape[-1] * stride])
    pads = [[0, 0]] * (rank + 2)
    pads[axis] = [0, taps * stride - size]
    w = ops.pad(w, pads)
    kshape = list(w.shape)
    w = ops.reshape(w, kshape[:axis] + [taps, stride] + kshape[axis + 1:])
    order = list(range(rank + 3))
    order.remove(axis + 1)
    order.insert(rank + 1, axis + 1)  # stride after the kernel's input channels
    w = ops.transpose(w, order)
    return x, ops.reshape(w, kshape[:axis] + [taps] + kshape[axis + 1:-2]
                          + [kshape[-2] * stride, kshape[-1]])


def phase_conv_transpose(inputs, kernel, stride):
    """A valid transposed convolution as a stride-1 convolution with ``stride`` output phases.

    Output sample ``q*s + r`` of ``y[t*s + k] += x[t] W[k]`` is ``sum_j x[q - j] W[j*s + r]``:
    one stride-1 convolution of the zero-padded input gives every phase ``r`` as a block of
    channels, and a reshape interleaves them.

    Args:
        inputs: ``[batch, frames, in_channels]`` with static shape.
        kernel: ``[kernel_size, filters, in_channels]`` (Keras's transposed-conv layout).
        stride: int > 1.

    Returns:
        ``ops.conv_transpose(inputs, kernel, strides=stride, padding="valid")``, up to
        float32 summation order: ``[batch, frames * stride + max(kernel_size - stride, 0),
        filters]`` (Keras's "valid" length; zeros after the last tap when the kernel is
        shorter than the stride).

    Example:

    >>> tuple(phase_conv_transpose(np.ones((1, 5, 4), "float32"),
    ...                            np.ones((4, 2, 4), "float32"), 2).shape)
    (1, 12, 2)
    """
    inputs = ops.convert_to_tensor(inputs)
    kernel = ops.convert_to_tensor(kernel)
    size, filters, channels = kernel.shape
    taps = -(-size // stride)
    w = ops.pad(kernel, [[0, taps * stride - size], [0, 0], [0, 0]])
    w = ops.flip(ops.reshape(w, (taps, stride, filters, channels)), axis=0)
    w = ops.reshape(ops.transpose(w, (0, 3, 1, 2)), (taps, channels, stride * filters))
    x = ops.pad(inputs, [[0, 0], [taps - 1, taps - 1], [0, 0]])
    z = ops.conv(x, w, strides=1, padding="valid", data_format="channels_last")
    y = ops.reshape(z, (ops.shape(z)[0], z.shape[1] * stride, filters))
    return y[:, : inputs.shape[1] * stride + max(size - stride, 0)]
