"""SEANet encoder and decoder (EnCodec / SpeechTokenizer / DM-Codec family), channels-last."""

import keras
from keras import ops

from keras_dmcodec.layers.conv import NormConv1D, NormConv1DTranspose, gather_time
from keras_dmcodec.layers.recurrent import run_lstm
from keras_dmcodec.ops.lstm import lstm_sequence


def _activation(name, alpha):
    if name != "ELU":
        raise ValueError(f"Only the reference's 'ELU' activation is supported, got {name!r}")
    return keras.layers.ELU(alpha=alpha)


@keras.saving.register_keras_serializable(package="keras_dmcodec")
class SEANetResnetBlock(keras.layers.Layer):
    """SEANet residual block: ``shortcut(x) + conv_k1(elu(conv_k(elu(x))))``.

    The first conv reduces channels to ``dim // compress`` with the given
    dilation; the second restores ``dim``. The shortcut is a 1x1 weight-normed
    conv (``true_skip=False``, the reference) or the identity.

    Args:
        dim: int. Channels in and out.
        kernel_size: int. Kernel of the first conv (the second is 1).
        dilation: int. Dilation of the first conv.
        compress: int. Channel reduction of the hidden layer.
        true_skip: bool. Identity shortcut instead of a 1x1 conv.
        causal: bool. Causal padding.
        pad_mode: str. Padding mode of the convolutions.
        norm: str. ``"weight_norm"`` or ``"none"``.
        activation_alpha: float. ELU alpha.

    Example:
    >>> block = SEANetResnetBlock(16, dilation=2)
    >>> tuple(block(keras.ops.ones((1, 30, 16))).shape)
    (1, 30, 16)
    """

    def __init__(
        self,
        dim,
        kernel_size=3,
        dilation=1,
        compress=2,
        true_skip=False,
        causal=False,
        pad_mode="reflect",
        norm="weight_norm",
        activation="ELU",
        activation_alpha=1.0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.dim = int(dim)
        self.kernel_size = int(kernel_size)
        self.dilation = int(dilation)
        self.compress = int(compress)
        self.true_skip = bool(true_skip)
        self.causal = bool(causal)
        self.pad_mode = pad_mode
        self.norm = norm
        self.activation = activation
        self.activation_alpha = float(activation_alpha)
        hidden = self.dim // self.compress
        conv_kwargs = dict(norm=norm, causal=causal, pad_mode=pad_mode, dtype=self.dtype_policy)
        # Order mirrors the reference's nn.Sequential: [act, conv, act, conv].
        self.block = [
            _activation(activation, self.activation_alpha),
            NormConv1D(hidden, self.kernel_size, dilation_rate=self.dilation, name="conv_0",
                       **conv_kwargs),
            _activation(activation, self.activation_alpha),
            NormConv1D(self.dim, 1, name="conv_1", **conv_kwargs),
        ]
        self.shortcut = None if self.true_skip else NormConv1D(
            self.dim, 1, name="shortcut", **conv_kwargs
        )

    def build(self, input_shape):
        shape = tuple(input_shape)
        for layer in self.block:
            if not layer.built:
                layer.build(shape)
            shape = layer.compute_output_shape(shape)
        if self.shortcut is not None and not self.shortcut.built:
            self.shortcut.build(tuple(input_shape))

    def call(self, inputs, lengths=None):
        """Applies the block; ``lengths`` (int ``[batch]``, valid samples per row) makes each
        row's valid part equal the block's output on that part alone (see ``NormConv1D``)."""
        y = inputs
        for layer in self.block:
            y = layer(y, lengths=lengths) if isinstance(layer, NormConv1D) else layer(y)
        skip = inputs if self.shortcut is None else self.shortcut(inputs)
        return skip + y

    def _convs(self):
        convs = [layer for layer in self.block if isinstance(layer, NormConv1D)]
        return convs + ([self.shortcut] if self.shortcut is not None else [])

    def initial_stream_state(self, batch_size=1):
        """The state before a stream's first step: one entry per convolution."""
        return tuple(conv.initial_stream_state(batch_size) for conv in self._convs())

    def stream_step(self, inputs, state):
        """One streaming step (``NormConv1D.stream_step``): ``(outputs, new_state)``."""
        inputs = ops.convert_to_tensor(inputs, self.compute_dtype)
        y, states, new = inputs, iter(state), []
        for layer in self.block:
            if isinstance(layer, NormConv1D):
                y, conv_state = layer.stream_step(y, next(states))
                new.append(conv_state)
            else:
                y = layer(y)
        skip = inputs
        if self.shortcut is not None:
            skip, conv_state = self.shortcut.stream_step(inputs, next(states))
            new.append(conv_state)
        return skip + y, tuple(new)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update(
            dim=self.dim,
            kernel_size=self.kernel_size,
            dilation=self.dilation,
            compress=self.compress,
            true_skip=self.true_skip,
            causal=self.causal,
            pad_mode=self.pad_mode,
            norm=self.norm,
            activation=self.activation,
            activation_alpha=self.activation_alpha,
        )
        return config


@keras.saving.register_keras_serializable(package="keras_dmcodec")
class SLSTM(keras.layers.Layer):
    """Stacked LSTM with a residual connection, over ``[batch, time, channels]``.

    As the reference's ``SLSTM``: ``num_layers`` LSTMs of ``dim`` units; when
    bidirectional, each layer concatenates forward and backward outputs
    (``2 * dim`` channels) and the skip adds the input tiled twice along channels.

    Args:
        dim: int. Input channels and LSTM units.
        num_layers: int. Stacked LSTM layers.
        bidirectional: bool. Bidirectional LSTMs (output ``2 * dim`` channels).
        skip: bool. Add the (tiled) input to the output.

    Example:
    >>> lstm = SLSTM(8, num_layers=2, bidirectional=True)
    >>> tuple(lstm(keras.ops.ones((1, 5, 8))).shape)
    (1, 5, 16)
    """

    def __init__(self, dim, num_layers=2, bidirectional=False, skip=True, **kwargs):
        super().__init__(**kwargs)
        self.dim = int(dim)
        self.num_layers = int(num_layers)
        self.bidirectional = bool(bidirectional)
        self.skip = bool(skip)
        self.lstms = []
        for i in range(self.num_layers):
            # Torch's init: U(+-1/sqrt(hidden)) for every matrix and bias.
            bound = self.dim ** -0.5
            init = dict(
                kernel_initializer=keras.initializers.RandomUniform(-bound, bound),
                recurrent_initializer=keras.initializers.RandomUniform(-bound, bound),
                bias_initializer=keras.initializers.RandomUniform(-bound, bound),
                unit_forget_bias=False,
            )
            lstm = keras.layers.LSTM(
                self.dim, return_sequences=True, name=f"lstm_{i}", dtype=self.dtype_policy, **init
            )
            if self.bidirectional:
                lstm = keras.layers.Bidirectional(
                    lstm, merge_mode="concat", name=f"bilstm_{i}", dtype=self.dtype_policy
                )
            self.lstms.append(lstm)

    @staticmethod
    def _bidirectional(lstm, x, lengths):
        """``lstm(x)`` for a ``keras.layers.Bidirectional`` (concat), through ``run_lstm``.

        With ``lengths``, each row is rolled so that its frames end the buffer: the backward
        layer, which reads the buffer from its end, then starts at the row's last frame and
        reaches the padding only after the row's first. Its outputs come in reverse order
        (``out[j]`` belongs to frame ``length - 1 - j``), put back by one more gather.
        """
        forward = run_lstm(lstm.forward_layer, x)
        if lengths is None:
            backward = ops.flip(run_lstm(lstm.backward_layer, x), axis=1)
        else:
            time = ops.shape(x)[1]
            steps = ops.expand_dims(ops.arange(time, dtype="int32"), 0)
            length = ops.expand_dims(ops.cast(lengths, "int32"), -1)
            rolled = gather_time(x, ops.mod(steps - (time - length), time))
            backward = run_lstm(lstm.backward_layer, rolled)
            backward = gather_time(backward, ops.clip(length - 1 - steps, 0, time - 1))
        return ops.concatenate([forward, backward], axis=-1)

    @property
    def output_dim(self):
        return self.dim * (2 if self.bidirectional else 1)

    def build(self, input_shape):
        shape = tuple(input_shape)
        for lstm in self.lstms:
            if not lstm.built:
                lstm.build(shape)
            shape = shape[:-1] + (self.output_dim,)

    def call(self, inputs, lengths=None):
        """Runs the stack; with ``lengths`` (int ``[batch]``, valid frames per row) the backward
        direction of a bidirectional layer starts at each row's own last frame, so a row's
        valid frames equal the stack's output on them alone. (The forward direction never
        sees the padding after a row's frames.)"""
        y = inputs
        for lstm in self.lstms:
            if self.bidirectional:
                y = self._bidirectional(lstm, y, lengths)
            else:
                y = run_lstm(lstm, y)
        if self.skip:
            skip = ops.concatenate([inputs, inputs], axis=-1) if self.bidirectional else inputs
            y = y + skip
        return y

    def initial_stream_state(self, batch_size=1):
        """The state before a stream's first step: zero ``(h, c)`` per layer."""
        if self.bidirectional:
            raise ValueError(f"{self.name}: a bidirectional LSTM cannot stream (it reads the "
                             "future); build the model with causal=True")
        zeros = ops.zeros((batch_size, self.dim), self.compute_dtype)
        return tuple((zeros, zeros) for _ in self.lstms)

    def stream_step(self, inputs, state):
        """One streaming step: ``(outputs, new_state)``; each layer starts from its ``(h, c)``
        of the previous step, so the frames equal those of one pass over the whole stream."""
        inputs = ops.convert_to_tensor(inputs, self.compute_dtype)
        y, new = inputs, []
        for lstm, (h, c) in zip(self.lstms, state, strict=True):
            cell = lstm.cell
            y, h, c = lstm_sequence(y, h, c, cell.kernel, cell.recurrent_kernel, cell.bias)
            new.append((h, c))
        if self.skip:
            y = y + inputs
        return y, tuple(new)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.output_dim,)

    def get_config(self):
        config = super().get_config()
        config.update(
            dim=self.dim,
            num_layers=self.num_layers,
            bidirectional=self.bidirectional,
            skip=self.skip,
        )
        return config


class _SEANetBase(keras.layers.Layer):
    """Shared config handling of the SEANet encoder and decoder."""

    def __init__(
        self,
        channels=1,
        dimension=1024,
        n_filters=64,
        n_residual_layers=1,
        ratios=(8, 5, 4, 2),
        activation="ELU",
        activation_alpha=1.0,
        norm="weight_norm",
        kernel_size=7,
        last_kernel_size=7,
        residual_kernel_size=3,
        dilation_base=2,
        causal=False,
        pad_mode="reflect",
        true_skip=False,
        compress=2,
        lstm_layers=2,
        bidirectional=False,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if causal and bidirectional:
            raise ValueError("causal=True needs bidirectional=False: a bidirectional LSTM "
                             "reads the future")
        self.channels = int(channels)
        self.dimension = int(dimension)
        self.n_filters = int(n_filters)
        self.n_residual_layers = int(n_residual_layers)
        self.ratios = [int(r) for r in ratios]
        self.activation = activation
        self.activation_alpha = float(activation_alpha)
        self.norm = norm
        self.kernel_size = int(kernel_size)
        self.last_kernel_size = int(last_kernel_size)
        self.residual_kernel_size = int(residual_kernel_size)
        self.dilation_base = int(dilation_base)
        self.causal = bool(causal)
        self.pad_mode = pad_mode
        self.true_skip = bool(true_skip)
        self.compress = int(compress)
        self.lstm_layers = int(lstm_layers)
        self.bidirectional = bool(bidirectional)
        self.hop_length = 1
        for r in self.ratios:
            self.hop_length *= r

    def _conv_kwargs(self):
        return dict(norm=self.norm, causal=self.causal, pad_mode=self.pad_mode,
                    dtype=self.dtype_policy)

    def _resblock(self, dim, j, name):
        return SEANetResnetBlock(
            dim,
            kernel_size=self.residual_kernel_size,
            dilation=self.dilation_base**j,
            compress=self.compress,
            true_skip=self.true_skip,
            causal=self.causal,
            pad_mode=self.pad_mode,
            norm=self.norm,
            activation=self.activation,
            activation_alpha=self.activation_alpha,
            name=name,
            dtype=self.dtype_policy,
        )

    def build(self, input_shape):
        shape = tuple(input_shape)
        for layer in self.model_layers:
            if not layer.built:
                layer.build(shape)
            shape = tuple(layer.compute_output_shape(shape))

    def call(self, inputs, lengths=None):
        """Runs the stack on ``inputs``.

        ``lengths`` (int ``[batch]``, optional): the valid length of each row (samples for
        the encoder, frames for the decoder); the rest is padding. Every convolution then
        pads at the row's own end and the LSTM's backward direction starts there, so a
        row's valid outputs (``output_lengths(lengths)``) equal the stack's output on that
        row alone, up to float rounding: clips of any lengths batch together.
        """
        x = inputs
        for layer in self.model_layers:
            if lengths is None or isinstance(layer, keras.layers.ELU):
                x = layer(x)
                continue
            x = layer(x, lengths=lengths)
            if isinstance(layer, NormConv1D | NormConv1DTranspose):
                lengths = layer.output_lengths(lengths)
        return x

    def initial_stream_state(self, batch_size=1):
        """The state before a stream's first step (causal stacks only): one entry per layer,
        ``()`` for those without state (activations). A nest of tensors, so compiled and
        exported step functions take it as it is (``keras.tree.flatten`` flattens it)."""
        if not self.causal:
            raise ValueError(f"{self.name}: only a causal stack streams (causal=True)")
        return tuple(layer.initial_stream_state(batch_size)
                     if hasattr(layer, "stream_step") else () for layer in self.model_layers)

    def stream_step(self, inputs, state):
        """One streaming step: ``(outputs, new_state)`` for the next chunk of ``inputs``.

        A chunk is a whole number of output frames: ``k * hop_length`` samples for the
        encoder (``k`` latent frames out), any ``k`` frames for the decoder
        (``k * hop_length`` samples out). Convolutions carry their left context, transposed
        convolutions their overlap, LSTMs their ``(h, c)``; the outputs equal the offline
        causal pass over the whole stream so far, however it is cut into chunks.
        """
        x, new = ops.convert_to_tensor(inputs, self.compute_dtype), []
        for layer, layer_state in zip(self.model_layers, state, strict=True):
            if hasattr(layer, "stream_step"):
                x, layer_state = layer.stream_step(x, layer_state)
            else:
                x = layer(x)
            new.append(layer_state)
        return x, tuple(new)

    def output_lengths(self, lengths):
        """Valid output lengths for ``lengths`` valid inputs (frames for the encoder,
        samples for the decoder)."""
        for layer in self.model_layers:
            if isinstance(layer, NormConv1D | NormConv1DTranspose):
                lengths = layer.output_lengths(lengths)
        return lengths

    def get_config(self):
        config = super().get_config()
        config.update(
            channels=self.channels,
            dimension=self.dimension,
            n_filters=self.n_filters,
            n_residual_layers=self.n_residual_layers,
            ratios=list(self.ratios),
            activation=self.activation,
            activation_alpha=self.activation_alpha,
            norm=self.norm,
            kernel_size=self.kernel_size,
            last_kernel_size=self.last_kernel_size,
            residual_kernel_size=self.residual_kernel_size,
            dilation_base=self.dilation_base,
            causal=self.causal,
            pad_mode=self.pad_mode,
            true_skip=self.true_skip,
            compress=self.compress,
            lstm_layers=self.lstm_layers,
            bidirectional=self.bidirectional,
        )
        return config


@keras.saving.register_keras_serializable(package="keras_dmcodec")
class SEANetEncoder(_SEANetBase):
    """SEANet encoder: waveform ``[batch, time, 1]`` to latents ``[batch, frames, dimension]``.

    Conv k7 to ``n_filters``; per stride (``ratios`` reversed: 2, 4, 5, 8) a
    residual block then ELU and a strided conv (kernel ``2 * stride``) doubling
    channels; a stacked (bidirectional by default in DM-Codec) LSTM with skip;
    ELU; conv k7 to ``dimension``. ``model_layers`` keeps the reference's
    ``encoder.model.<i>`` order, which the checkpoint converter relies on.
    Defaults are DM-Codec's (``n_filters=64``, ``dimension=1024``, 50 Hz at 16 kHz).

    Args:
        channels: int. Audio channels.
        dimension: int. Latent channels.
        n_filters: int. Base width.
        n_residual_layers: int. Residual blocks per stage.
        ratios: list of int. Decoder-order strides (the encoder applies them reversed).
        activation: str. ``"ELU"``.
        activation_alpha: float. ELU alpha.
        norm: str. ``"weight_norm"`` or ``"none"``.
        kernel_size: int. First conv kernel.
        last_kernel_size: int. Last conv kernel.
        residual_kernel_size: int. Residual block kernel.
        dilation_base: int. Dilation growth across residual blocks of a stage.
        causal: bool. Causal convolutions (requires ``bidirectional=False``).
            Use ``pad_mode="constant"`` for strict causality: reflect padding
            (the reference's mode) mirrors the first samples into the left pad.
        pad_mode: str. Convolution padding mode.
        true_skip: bool. Identity shortcuts in residual blocks.
        compress: int. Residual hidden channel reduction.
        lstm_layers: int. LSTM layers (0 for none).
        bidirectional: bool. Bidirectional LSTM.

    Example:
    >>> enc = SEANetEncoder(dimension=32, n_filters=4, lstm_layers=1, bidirectional=True)
    >>> tuple(enc(keras.ops.ones((1, 640, 1))).shape)
    (1, 2, 32)
    """

    def __init__(self, bidirectional=True, **kwargs):
        super().__init__(bidirectional=bidirectional, **kwargs)
        conv = self._conv_kwargs()
        mult = 1
        layers = [NormConv1D(mult * self.n_filters, self.kernel_size, name="conv_in", **conv)]
        for i, ratio in enumerate(reversed(self.ratios)):
            for j in range(self.n_residual_layers):
                layers.append(self._resblock(mult * self.n_filters, j, f"res_{i}_{j}"))
            layers.append(_activation(self.activation, self.activation_alpha))
            layers.append(NormConv1D(mult * self.n_filters * 2, ratio * 2, strides=ratio,
                                     name=f"down_{i}", **conv))
            mult *= 2
        if self.lstm_layers:
            layers.append(SLSTM(mult * self.n_filters, self.lstm_layers, self.bidirectional,
                                name="lstm", dtype=self.dtype_policy))
        layers.append(_activation(self.activation, self.activation_alpha))
        layers.append(NormConv1D(self.dimension, self.last_kernel_size, name="conv_out", **conv))
        self.model_layers = layers

    def compute_output_shape(self, input_shape):
        length = input_shape[1]
        frames = None if length is None else -(-length // self.hop_length)
        return (input_shape[0], frames, self.dimension)


@keras.saving.register_keras_serializable(package="keras_dmcodec")
class SEANetDecoder(_SEANetBase):
    """SEANet decoder: latents ``[batch, frames, dimension]`` to audio ``[batch, frames * hop, 1]``.

    Conv k7 to ``n_filters * 2**len(ratios)``; a stacked unidirectional LSTM
    with skip; per stride (8, 5, 4, 2) ELU, a transposed conv (kernel
    ``2 * stride``) halving channels and a residual block; ELU; conv k7 to
    ``channels``. No final activation (as the reference). ``model_layers``
    keeps the reference's ``decoder.model.<i>`` order.

    Args:
        channels: int. Audio channels.
        dimension: int. Latent channels.
        n_filters: int. Base width.
        n_residual_layers: int. Residual blocks per stage.
        ratios: list of int. Upsampling strides.
        activation: str. ``"ELU"``.
        activation_alpha: float. ELU alpha.
        norm: str. ``"weight_norm"`` or ``"none"``.
        kernel_size: int. First conv kernel.
        last_kernel_size: int. Last conv kernel.
        residual_kernel_size: int. Residual block kernel.
        dilation_base: int. Dilation growth across residual blocks of a stage.
        causal: bool. Causal convolutions.
        pad_mode: str. Convolution padding mode.
        true_skip: bool. Identity shortcuts in residual blocks.
        compress: int. Residual hidden channel reduction.
        lstm_layers: int. LSTM layers (0 for none).
        bidirectional: bool. Bidirectional LSTM (the reference decoder uses False).
        trim_right_ratio: float. Causal transposed-conv trimming split.

    Example:
    >>> dec = SEANetDecoder(dimension=32, n_filters=4, lstm_layers=1)
    >>> tuple(dec(keras.ops.ones((1, 2, 32))).shape)
    (1, 640, 1)
    """

    def __init__(self, bidirectional=False, trim_right_ratio=1.0, **kwargs):
        super().__init__(bidirectional=bidirectional, **kwargs)
        self.trim_right_ratio = float(trim_right_ratio)
        conv = self._conv_kwargs()
        mult = 2 ** len(self.ratios)
        layers = [NormConv1D(mult * self.n_filters, self.kernel_size, name="conv_in", **conv)]
        if self.lstm_layers:
            layers.append(SLSTM(mult * self.n_filters, self.lstm_layers, self.bidirectional,
                                name="lstm", dtype=self.dtype_policy))
            if self.bidirectional:
                raise ValueError("A bidirectional decoder LSTM changes the channel count; "
                                 "the reference decoder is unidirectional")
        for i, ratio in enumerate(self.ratios):
            layers.append(_activation(self.activation, self.activation_alpha))
            layers.append(NormConv1DTranspose(
                mult * self.n_filters // 2, ratio * 2, strides=ratio, norm=self.norm,
                causal=self.causal, trim_right_ratio=self.trim_right_ratio, name=f"up_{i}",
                dtype=self.dtype_policy))
            for j in range(self.n_residual_layers):
                layers.append(self._resblock(mult * self.n_filters // 2, j, f"res_{i}_{j}"))
            mult //= 2
        layers.append(_activation(self.activation, self.activation_alpha))
        layers.append(NormConv1D(self.channels, self.last_kernel_size, name="conv_out", **conv))
        self.model_layers = layers

    def compute_output_shape(self, input_shape):
        frames = input_shape[1]
        length = None if frames is None else frames * self.hop_length
        return (input_shape[0], length, self.channels)

    def get_config(self):
        config = super().get_config()
        config["trim_right_ratio"] = self.trim_right_ratio
        return config
