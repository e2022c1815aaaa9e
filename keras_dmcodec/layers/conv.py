"""Weight-normalised 1-D convolutions with SEANet's padding rules (channels-last)."""

import math

import keras
import numpy as np
from keras import ops

from keras_dmcodec.ops.conv import conv1d, conv1d_transpose


def extra_padding_for_conv1d(length, kernel_size, stride, padding_total):
    """Right padding that makes the last window of a strided conv full.

    Mirrors the SEANet/EnCodec rule so that a transposed conv can rebuild a
    signal of length ``frames * stride``. ``length`` may be a Python int or a
    scalar tensor (dynamic shapes in exported graphs).
    """
    if isinstance(length, int):
        n_frames = (length - kernel_size + padding_total) / stride + 1
        ideal_length = (math.ceil(n_frames) - 1) * stride + (kernel_size - padding_total)
        return ideal_length - length
    numerator = length - kernel_size + padding_total
    frames_minus_one = ops.floor_divide(numerator + stride - 1, stride)
    return frames_minus_one * stride + (kernel_size - padding_total) - length


def _static_length(x):
    length = x.shape[1]
    return int(length) if length is not None else ops.shape(x)[1]


def zero_pad_time(x, left, right):
    """Zero-pads ``x`` ([batch, time, channels]) along time by ``left`` / ``right`` samples.

    ``right`` may be a tensor (a dynamic-length export graph). Then the right zeros are
    concatenated rather than padded: a ``pad`` with tensor amounts loses every static
    dimension in TensorFlow graphs, and the TFLite converter cannot lower a convolution
    whose input channels are unknown.
    """
    if isinstance(right, int):
        return ops.pad(x, [[0, 0], [left, right], [0, 0]]) if left or right else x
    if left:
        x = ops.pad(x, [[0, 0], [left, 0], [0, 0]])
    zeros = ops.zeros((ops.shape(x)[0], right, x.shape[2]), x.dtype)
    return ops.concatenate([x, zeros], axis=1)


def reflect_pad_time(x, left, right):
    """Reflect-pads ``x`` ([batch, time, channels]) along time.

    Like the reference's ``pad1d``: when the signal is not longer than the
    padding, zeros are appended first so the reflection is defined, then removed.
    """
    length = _static_length(x)
    if isinstance(length, int) and isinstance(right, int):
        if left == 0 and right == 0:
            return x
        max_pad = max(left, right)
        extra = max_pad - length + 1 if length <= max_pad else 0
        if extra:
            x = ops.pad(x, [[0, 0], [0, extra], [0, 0]])
        padded = ops.pad(x, [[0, 0], [left, right], [0, 0]], mode="reflect")
        if extra:
            padded = padded[:, : padded.shape[1] - extra]
        return padded
    # Dynamic length (symbolic export graphs): build the reflection from slices.
    # Assumes the signal is longer than the padding, which holds for any input
    # of at least one hop.
    parts = []
    if left:
        parts.append(ops.flip(x[:, 1 : left + 1], axis=1))
    parts.append(x)
    right_part = ops.flip(ops.slice(x, [0, length - 1 - right, 0],
                                    [ops.shape(x)[0], right, ops.shape(x)[2]]), axis=1)
    parts.append(right_part)
    return ops.concatenate(parts, axis=1)


def gather_time(x, index):
    """``x[b, index[b, t]]`` for ``x [batch, time, channels]`` and int ``index [batch, t']``.

    One flat gather (``take`` on ``[batch * time, channels]``), the same on every backend.
    """
    shape = ops.shape(x)
    batch, time, channels = shape[0], shape[1], shape[2]
    offsets = ops.expand_dims(ops.arange(batch, dtype="int32") * ops.cast(time, "int32"), -1)
    flat = ops.reshape(ops.cast(index, "int32") + offsets, (-1,))
    rows = ops.take(ops.reshape(x, (-1, channels)), flat, axis=0)
    return ops.reshape(rows, (batch, ops.shape(index)[1], channels))


def time_mask(lengths, time, dtype):
    """``[batch, time, 1]`` mask: 1 where ``t < lengths[b]``, else 0."""
    steps = ops.expand_dims(ops.arange(time, dtype="int32"), 0)
    inside = ops.less(steps, ops.expand_dims(ops.cast(lengths, "int32"), -1))
    return ops.expand_dims(ops.cast(inside, dtype), -1)


def pad_time_with_lengths(x, left, right, lengths, right_for, mode="reflect"):
    """Pads each row of ``x`` ([batch, time, channels]) around its own ``lengths[b]`` samples.

    Row ``b`` of the result (length ``left + time + right``) starts with what
    ``reflect_pad_time(x[b:b+1, :lengths[b]], left, right_for(lengths[b]))`` (or zero padding)
    gives, so a convolution over it sees, for the row's valid outputs, exactly the samples it
    sees on the clip alone; what follows (padding of a longer row) is zero. ``right_for``
    maps the lengths tensor to each row's right padding; it is at most ``right`` beyond
    ``lengths`` (the caller's ``right`` is for the full ``time``). The reference's rule for
    signals not longer than the padding (zeros appended first, then reflected) holds per row.
    """
    time = _static_length(x)
    lengths = ops.cast(lengths, "int32")
    t = ops.expand_dims(ops.arange(left + time + right, dtype="int32") - left, 0)
    length = ops.expand_dims(lengths, -1)
    if mode == "reflect":
        max_pad = ops.maximum(ops.expand_dims(ops.cast(right_for(lengths), "int32"), -1), left)
        extended = ops.maximum(length, max_pad + 1)  # zeros appended to short rows first
        source = ops.where(t < 0, -t, ops.where(t < extended, t, 2 * (extended - 1) - t))
    else:
        source = ops.broadcast_to(t, (ops.shape(lengths)[0], ops.shape(t)[1]))
    inside = ops.logical_and(source >= 0, source < length)
    source = ops.clip(source, 0, ops.cast(time, "int32") - 1)
    padded = gather_time(x, source)
    return padded * ops.expand_dims(ops.cast(inside, padded.dtype), -1)


def weight_norm_kernel(kernel_v, kernel_g):
    """``g * v / ||v||`` with the norm over every axis of ``v`` but the last.

    The last axis is output channels for a conv and input channels for a
    transposed conv, as torch.nn.utils.weight_norm(dim=0) does on the
    reference's layouts. No epsilon, for exact parity.
    """
    return kernel_v * (kernel_g / weight_norm_magnitude(kernel_v, keepdims=True))


def weight_norm_magnitude(kernel_v, keepdims=False):
    """``||v||`` over every axis of ``kernel_v`` but the last (the ``g`` that makes the
    weight-normed kernel equal ``v``)."""
    axes = tuple(range(len(kernel_v.shape) - 1))
    return ops.sqrt(ops.sum(ops.square(kernel_v), axis=axes, keepdims=keepdims))


def add_weight_norm_variables(layer, shape, initializer):
    """Adds ``kernel_v`` (``shape``) and ``kernel_g`` (``shape[-1]``) to ``layer``.

    ``g`` starts at ``||v||`` so the effective kernel equals ``v`` at init, as
    in torch. Must run eagerly (in ``build``). Returns ``(kernel_v, kernel_g)``.
    """
    kernel_v = layer.add_weight(name="kernel_v", shape=shape, initializer=initializer)
    g_init = ops.convert_to_numpy(weight_norm_magnitude(kernel_v.value))
    kernel_g = layer.add_weight(name="kernel_g", shape=(shape[-1],),
                                initializer=keras.initializers.Constant(g_init))
    return kernel_v, kernel_g


def torch_conv_initializers(fan_in, seed):
    """Kernel and bias initialisers matching torch's conv defaults for ``fan_in``."""
    # PyTorch's default Conv init: kaiming_uniform(a=sqrt(5)) -> U(+-1/sqrt(fan_in)).
    bound = 1.0 / math.sqrt(fan_in)
    kernel_init = keras.initializers.VarianceScaling(
        scale=1.0 / 3.0, mode="fan_in", distribution="uniform", seed=seed
    )
    bias_init = keras.initializers.RandomUniform(-bound, bound, seed=seed)
    return kernel_init, bias_init


def variance_preserving_init(layer, seed=0, scale=1.0):
    """Re-initialises every ``NormConv1D`` / ``NormConv1DTranspose`` inside ``layer`` so that
    signals keep their scale through the network; returns how many convolutions it changed.

    Kernels are drawn from ``N(0, scale / fan_in)`` (``fan_in`` = kernel size x input
    channels per group; for a transposed convolution, divided by its stride, the number of
    taps that reach each output sample) and biases are zeroed; a weight-normed kernel gets
    ``g = ||v||`` so it equals ``v``, as at construction.

    Why: the reference initialises like torch (``U(+-1/sqrt(fan_in))`` kernels, variance
    ``1 / (3 fan_in)``, and biases of the same size). Each convolution then shrinks the signal
    by about ``1/sqrt(3)`` while its bias adds a constant, so a random ``dmcodec_small``
    encoder's latents are ~99 % constant offset: the frame-to-frame part is 0.009 against
    0.55 (norms, on speech at RMS 0.07). From there, training with the reconstruction losses
    sits on a plateau where the decoder outputs near-silent average-spectrum noise for
    thousands of steps (``docs/default_model.md``). With this initialisation the frame-varying
    part is 1.3 against 0.4, and the same runs leave the plateau within ~500 steps. It is a
    training-time choice (``"train": {"init": "variance_preserving"}`` in a training config);
    the model's own initialisers stay torch's, for parity with converted checkpoints.

    Args:
        layer: a built Keras layer or model (a ``DMCodec``, an encoder, ...).
        seed: int. Seed of the NumPy generator the kernels are drawn from (the same on every
            backend).
        scale: float. Kernel variance times ``fan_in``.

    Example:
    >>> codec = DMCodec(n_filters=4, dimension=16)  # doctest: +SKIP
    >>> codec.build((None, None))  # doctest: +SKIP
    >>> variance_preserving_init(codec, seed=0)  # doctest: +SKIP
    """
    if not layer.built:
        raise ValueError(f"{layer.name} is not built; build it before re-initialising it")
    rng = np.random.default_rng(seed)
    changed = 0
    for sub in layer._flatten_layers(include_self=True, recursive=True):
        if not isinstance(sub, NormConv1D | NormConv1DTranspose):
            continue
        weight = sub.kernel_v if sub.norm == "weight_norm" else sub.kernel
        shape = tuple(weight.shape)
        if isinstance(sub, NormConv1DTranspose):  # (k, filters, in): k * in / stride taps
            fan_in = shape[0] * shape[2] / sub.strides
        else:  # (k, in // groups, filters)
            fan_in = shape[0] * shape[1]
        kernel = (rng.standard_normal(shape) * np.sqrt(scale / fan_in)).astype(weight.dtype)
        weight.assign(kernel)
        if sub.norm == "weight_norm":
            sub.kernel_g.assign(weight_norm_magnitude(ops.convert_to_tensor(kernel)))
        if sub.bias is not None:
            sub.bias.assign(np.zeros(sub.bias.shape, sub.bias.dtype))
        changed += 1
    return changed


@keras.saving.register_keras_serializable(package="keras_dmcodec")
class NormConv1D(keras.layers.Layer):
    """SEANet convolution: optional weight norm, reflect padding, causal option.

    Input and output are channels-last, ``[batch, time, channels]``. Padding
    follows the reference (``SConv1d``): total ``(k - 1) * dilation - (stride - 1)``,
    split ``right = total // 2`` and ``left = total - right`` (all left when
    causal), plus right padding so the last window is full; the output has
    ``ceil(time / stride)`` frames.

    With ``norm="weight_norm"`` the kernel is ``g * v / ||v||`` (norm over
    kernel and input axes per output channel), stored as ``kernel_v`` with
    shape ``(kernel_size, in_channels // groups, filters)`` and ``kernel_g``
    with shape ``(filters,)``, so reference ``weight_v`` / ``weight_g`` load exactly.

    Args:
        filters: int. Output channels.
        kernel_size: int. Kernel width.
        strides: int. Stride.
        dilation_rate: int. Dilation.
        groups: int. Grouped convolution count.
        use_bias: bool. Whether to add a bias.
        norm: str. ``"weight_norm"`` or ``"none"``.
        causal: bool. Pad on the left only.
        pad_mode: str. ``"reflect"`` or ``"constant"`` (zeros).
        seed: int or None. Seed for the initialisers.

    Example:
    >>> conv = NormConv1D(8, kernel_size=4, strides=2)
    >>> tuple(conv(keras.ops.ones((1, 10, 3))).shape)
    (1, 5, 8)
    """

    def __init__(
        self,
        filters,
        kernel_size,
        strides=1,
        dilation_rate=1,
        groups=1,
        use_bias=True,
        norm="weight_norm",
        causal=False,
        pad_mode="reflect",
        seed=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if norm not in ("weight_norm", "none"):
            raise ValueError(f"norm must be 'weight_norm' or 'none', got {norm!r}")
        if pad_mode not in ("reflect", "constant"):
            raise ValueError(f"pad_mode must be 'reflect' or 'constant', got {pad_mode!r}")
        self.filters = int(filters)
        self.kernel_size = int(kernel_size)
        self.strides = int(strides)
        self.dilation_rate = int(dilation_rate)
        self.groups = int(groups)
        self.use_bias = bool(use_bias)
        self.norm = norm
        self.causal = bool(causal)
        self.pad_mode = pad_mode
        self.seed = seed

    def build(self, input_shape):
        in_channels = int(input_shape[-1])
        if in_channels % self.groups:
            raise ValueError(f"in_channels {in_channels} not divisible by groups {self.groups}")
        self.input_channels = in_channels
        shape = (self.kernel_size, in_channels // self.groups, self.filters)
        fan_in = shape[0] * shape[1]
        kernel_init, bias_init = torch_conv_initializers(fan_in, self.seed)
        if self.norm == "weight_norm":
            self.kernel_v, self.kernel_g = add_weight_norm_variables(self, shape, kernel_init)
        else:
            self.kernel = self.add_weight(name="kernel", shape=shape, initializer=kernel_init)
        if self.use_bias:
            self.bias = self.add_weight(name="bias", shape=(self.filters,), initializer=bias_init)
        else:
            self.bias = None

    def effective_kernel(self):
        """The kernel the convolution applies, shape ``(k, in // groups, filters)``."""
        if self.norm == "weight_norm":
            return weight_norm_kernel(self.kernel_v, self.kernel_g)
        return self.kernel

    def padding_for(self, length):
        """``(left, right)`` padding for an input of ``length`` samples."""
        padding_total = (self.kernel_size - 1) * self.dilation_rate - (self.strides - 1)
        extra = extra_padding_for_conv1d(length, self.kernel_size, self.strides, padding_total)
        if self.causal:
            return padding_total, extra
        right = padding_total // 2
        return padding_total - right, right + extra

    def output_lengths(self, lengths):
        """Valid output frames for ``lengths`` valid input samples: ``ceil(lengths / strides)``."""
        return -(-lengths // self.strides)

    def call(self, inputs, lengths=None):
        """Convolves ``inputs``; with ``lengths`` (int ``[batch]``), each row is padded at its
        own end, so row ``b``'s first ``output_lengths(lengths)[b]`` frames equal the layer's
        output on ``inputs[b, :lengths[b]]`` alone (to float rounding)."""
        left, right = self.padding_for(_static_length(inputs))
        no_padding = isinstance(right, int) and left == 0 and right == 0
        if lengths is not None and not no_padding:
            x = pad_time_with_lengths(inputs, left, right, lengths,
                                      lambda n: self.padding_for(n)[1], mode=self.pad_mode)
        elif self.pad_mode == "reflect":
            x = reflect_pad_time(inputs, left, right)
        else:
            x = zero_pad_time(inputs, left, right)
        y = conv1d(x, ops.cast(self.effective_kernel(), x.dtype), strides=self.strides,
                   dilation_rate=self.dilation_rate)
        if self.bias is not None:
            y = y + ops.cast(self.bias, y.dtype)
        return y

    # ------------------------------------------------------------- streaming
    def stream_context(self):
        """Input samples a streaming step carries to the next: the causal left padding."""
        return (self.kernel_size - 1) * self.dilation_rate - (self.strides - 1)

    def initial_stream_state(self, batch_size=1):
        """The state before a stream's first step: ``()`` or ``(zeros [batch, context, in],)``,
        the zeros the offline causal pass pads on the left (``stream_step``)."""
        if not self.causal or self.pad_mode != "constant":
            raise ValueError(f"{self.name}: streaming needs causal=True and pad_mode='constant' "
                             f"(got causal={self.causal}, pad_mode={self.pad_mode!r}): it "
                             "cannot read the future")
        context = self.stream_context()
        if context < 0:
            raise ValueError(f"{self.name}: stride {self.strides} exceeds the kernel's reach")
        if context == 0:
            return ()
        return (ops.zeros((batch_size, context, self.input_channels), self.compute_dtype),)

    def stream_step(self, inputs, state):
        """One streaming step: ``(outputs, new_state)`` for the next ``inputs`` samples.

        ``inputs`` ``[batch, n * strides, in]`` follows the samples already streamed;
        ``state`` holds the last ``stream_context()`` of them (zeros at the start). The
        outputs, ``n`` frames, are the frames the offline causal pass computes for these
        samples, so a stream cut anywhere on frame boundaries equals the offline output.
        """
        x = inputs if not state else ops.concatenate(
            [state[0], ops.cast(inputs, state[0].dtype)], axis=1)
        y = conv1d(x, ops.cast(self.effective_kernel(), x.dtype), strides=self.strides,
                   dilation_rate=self.dilation_rate)
        if self.bias is not None:
            y = y + ops.cast(self.bias, y.dtype)
        return y, (() if not state else (x[:, -self.stream_context():],))

    def compute_output_shape(self, input_shape):
        length = input_shape[1]
        frames = None if length is None else -(-length // self.strides)
        return (input_shape[0], frames, self.filters)

    def get_config(self):
        config = super().get_config()
        config.update(
            filters=self.filters,
            kernel_size=self.kernel_size,
            strides=self.strides,
            dilation_rate=self.dilation_rate,
            groups=self.groups,
            use_bias=self.use_bias,
            norm=self.norm,
            causal=self.causal,
            pad_mode=self.pad_mode,
            seed=self.seed,
        )
        return config


@keras.saving.register_keras_serializable(package="keras_dmcodec")
class NormConv1DTranspose(keras.layers.Layer):
    """SEANet transposed convolution with weight norm and fixed trimming.

    Output length is ``time * strides``: the ``kernel_size - strides`` extra
    samples are trimmed, ``right = total // 2`` and the rest on the left
    (non-causal) or ``ceil(total * trim_right_ratio)`` on the right (causal),
    as the reference's ``SConvTranspose1d``.

    With ``norm="weight_norm"`` the kernel is stored as ``kernel_v`` with shape
    ``(kernel_size, filters, in_channels)`` and ``kernel_g`` with shape
    ``(in_channels,)``: torch normalises a transposed conv's weight
    ``(in, out, k)`` over all axes but the input-channel axis.

    Args:
        filters: int. Output channels.
        kernel_size: int. Kernel width.
        strides: int. Upsampling factor.
        use_bias: bool. Whether to add a bias.
        norm: str. ``"weight_norm"`` or ``"none"``.
        causal: bool. Trim on the right (by ``trim_right_ratio``).
        trim_right_ratio: float. Share of the trim taken on the right when causal.
        seed: int or None. Seed for the initialisers.

    Example:
    >>> up = NormConv1DTranspose(4, kernel_size=8, strides=4)
    >>> tuple(up(keras.ops.ones((2, 5, 6))).shape)
    (2, 20, 4)
    """

    def __init__(
        self,
        filters,
        kernel_size,
        strides=1,
        use_bias=True,
        norm="weight_norm",
        causal=False,
        trim_right_ratio=1.0,
        seed=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if norm not in ("weight_norm", "none"):
            raise ValueError(f"norm must be 'weight_norm' or 'none', got {norm!r}")
        if not causal and trim_right_ratio != 1.0:
            raise ValueError("trim_right_ratio != 1.0 only makes sense for causal convolutions")
        if not 0.0 <= trim_right_ratio <= 1.0:
            raise ValueError(f"trim_right_ratio must be in [0, 1], got {trim_right_ratio}")
        self.filters = int(filters)
        self.kernel_size = int(kernel_size)
        self.strides = int(strides)
        self.use_bias = bool(use_bias)
        self.norm = norm
        self.causal = bool(causal)
        self.trim_right_ratio = float(trim_right_ratio)
        self.seed = seed

    def build(self, input_shape):
        in_channels = int(input_shape[-1])
        shape = (self.kernel_size, self.filters, in_channels)
        # torch computes fan_in of a transposed conv weight (in, out, k) as out * k.
        fan_in = self.filters * self.kernel_size
        kernel_init, bias_init = torch_conv_initializers(fan_in, self.seed)
        if self.norm == "weight_norm":
            self.kernel_v, self.kernel_g = add_weight_norm_variables(self, shape, kernel_init)
        else:
            self.kernel = self.add_weight(name="kernel", shape=shape, initializer=kernel_init)
        if self.use_bias:
            self.bias = self.add_weight(name="bias", shape=(self.filters,), initializer=bias_init)
        else:
            self.bias = None

    def effective_kernel(self):
        """The kernel applied, shape ``(k, filters, in_channels)``."""
        if self.norm == "weight_norm":
            return weight_norm_kernel(self.kernel_v, self.kernel_g)
        return self.kernel

    def output_lengths(self, lengths):
        """Valid output samples for ``lengths`` valid input frames: ``lengths * strides``."""
        return lengths * self.strides

    def call(self, inputs, lengths=None):
        """Upsamples ``inputs``; with ``lengths`` (int ``[batch]``), frames past a row's length
        are zeroed first, so the row's first ``lengths[b] * strides`` samples equal the
        layer's output on its valid frames alone."""
        if lengths is not None:
            inputs = inputs * time_mask(lengths, _static_length(inputs), inputs.dtype)
        y = conv1d_transpose(inputs, ops.cast(self.effective_kernel(), inputs.dtype),
                             strides=self.strides)
        if self.bias is not None:
            y = y + ops.cast(self.bias, y.dtype)
        padding_total = self.kernel_size - self.strides
        if self.causal:
            right = math.ceil(padding_total * self.trim_right_ratio)
            left = padding_total - right
        else:
            right = padding_total // 2
            left = padding_total - right
        length = y.shape[1]
        if length is None:
            return ops.slice(y, [0, left, 0], [ops.shape(y)[0], ops.shape(y)[1] - left - right,
                                               ops.shape(y)[2]])
        return y[:, left : length - right]

    # ------------------------------------------------------------- streaming
    def initial_stream_state(self, batch_size=1):
        """The state before a stream's first step: ``(zeros [batch, kernel - strides,
        filters],)``, the overlap the next step adds to its first samples (``stream_step``)."""
        if not self.causal or self.trim_right_ratio != 1.0:
            raise ValueError(f"{self.name}: streaming needs causal=True and trim_right_ratio "
                             f"1.0 (got causal={self.causal}, trim_right_ratio="
                             f"{self.trim_right_ratio}): it cannot trim samples it has sent")
        overlap = self.kernel_size - self.strides
        if overlap <= 0:
            return ()
        return (ops.zeros((batch_size, overlap, self.filters), self.compute_dtype),)

    def stream_step(self, inputs, state):
        """One streaming step: ``(outputs, new_state)`` for the next ``inputs`` frames.

        ``inputs`` ``[batch, n, in]`` gives ``n * strides`` output samples: the complete
        ones, which equal the offline causal pass's (it trims the last ``kernel - strides``
        on the right). The incomplete tail, without bias, waits in the state and is added
        to the next step's first samples.
        """
        y = conv1d_transpose(inputs, ops.cast(self.effective_kernel(), inputs.dtype),
                             strides=self.strides)
        if state:
            overlap = self.kernel_size - self.strides
            y = ops.concatenate([y[:, :overlap] + ops.cast(state[0], y.dtype), y[:, overlap:]],
                                axis=1)
        complete = ops.shape(inputs)[1] * self.strides
        out = y[:, :complete]
        if self.bias is not None:
            out = out + ops.cast(self.bias, out.dtype)
        return out, (() if not state else (y[:, complete:],))

    def compute_output_shape(self, input_shape):
        length = input_shape[1]
        return (input_shape[0], None if length is None else length * self.strides, self.filters)

    def get_config(self):
        config = super().get_config()
        config.update(
            filters=self.filters,
            kernel_size=self.kernel_size,
            strides=self.strides,
            use_bias=self.use_bias,
            norm=self.norm,
            causal=self.causal,
            trim_right_ratio=self.trim_right_ratio,
            seed=self.seed,
        )
        return config
