"""DMCodec: SEANet encoder, residual vector quantiser and SEANet decoder as one Keras model."""

import math

import keras
import numpy as np
from keras import ops

from keras_dmcodec.layers.quantization import ResidualVectorQuantizer
from keras_dmcodec.layers.seanet import SEANetDecoder, SEANetEncoder
from keras_dmcodec.ops.graphs import (
    bucket_batch,
    bucket_frames,
    pads_to_buckets,
    shape_agnostic_function,
)
from keras_dmcodec.presets import locate_preset, save_preset


class _Untracked:
    """Holder Keras does not track, for cached inference models (no weight duplication)."""

    def __init__(self):
        self.items = {}


# Compiled inference functions kept per (kind, n_q[, shape]) by default; the oldest are
# dropped (``DMCodec.set_compiled_cache_size``).
MAX_COMPILED = 16


class _InferenceModel(keras.Model):
    """Runs one of the codec's graph functions through Keras's compiled predict path.

    ``predict_on_batch`` jit-compiles on JAX and wraps a ``tf.function`` on
    TensorFlow, so inference is compiled without backend-specific code here.
    """

    def __init__(self, codec, method, **kwargs):
        super().__init__(**kwargs)
        self.codec = codec
        self.method = method
        # No weights of its own, and the codec is built before one is made. Unbuilt, JAX's
        # predict_on_batch would first run the whole model eagerly to build it: ~450 eager
        # ops, each compiled for its shape (18 s of a 31 s `dmcodec encode` of 20 files).
        self.built = True

    def call(self, inputs):
        return self.method(inputs)


@keras.saving.register_keras_serializable(package="keras_dmcodec")
class DMCodec(keras.Model):
    """DM-Codec speech tokenizer: waveform to RVQ codes and back.

    Audio ``[batch, samples]`` (or ``[batch, 1, samples]``) at ``sample_rate``
    is encoded by a SEANet encoder to latents at ``sample_rate / prod(ratios)``
    frames per second (50 Hz for 16 kHz), quantised by an RVQ of ``n_q``
    codebooks and decoded by a SEANet decoder. Output length equals input
    length (the reference returns a multiple of the hop; we crop).
    ``distill_projection`` maps the first RVQ layer's output to the teachers'
    width (``semantic_dimension``) for LM/SM distillation in training.

    Defaults are the reference DM-Codec / SpeechTokenizer configuration
    (about 103.7 M trainable parameters, 8 x 1024 codes, 4 kbit/s).

    Args:
        sample_rate: int. Audio sample rate in Hz.
        n_filters: int. SEANet base width.
        ratios: list of int. Decoder strides (encoder uses them reversed).
        dimension: int. Latent / codebook dimension.
        semantic_dimension: int. Teacher feature width for the distillation
            projection (0 disables the projection).
        n_q: int. Number of RVQ codebooks.
        codebook_size: int. Codes per codebook.
        lstm_layers: int. LSTM layers in encoder and decoder.
        bidirectional: bool. Bidirectional encoder LSTM (decoder is unidirectional).
        dilation_base: int. Residual dilation growth.
        residual_kernel_size: int. Residual block kernel size.
        n_residual_layers: int. Residual blocks per stage.
        causal: bool. Causal convolutions (requires ``bidirectional=False``);
            also switches to zero padding, since reflect padding would mirror
            the first samples of the future into the left pad.
        compress: int. Residual hidden channel reduction.
        decay: float. Codebook EMA decay.
        kmeans_init: bool. k-means codebook initialisation on the first training batch.
        kmeans_iters: int. k-means iterations.
        threshold_ema_dead_code: float. Dead-code replacement threshold.
        quantizer_dropout: float. Probability of a random ``n_q`` per training batch.
        distill_layer: int. RVQ layer whose output is projected for distillation.
        seed: int or None. Seed for initialisers and quantiser randomness.

    Example:
    >>> codec = DMCodec(n_filters=4, dimension=16, semantic_dimension=8, n_q=2,
    ...                 codebook_size=16, lstm_layers=1)
    >>> audio = np.random.randn(1, 8000).astype("float32") * 0.1
    >>> codes = codec.encode(audio)
    >>> codes.shape
    (1, 2, 25)
    >>> codec.decode(codes, num_samples=8000).shape
    (1, 8000)
    """

    # Config keys of the quantizer's codebook updates: they shape no weight and leave
    # inference alone, so two models that differ only in them share an architecture (a
    # fine-tune may change them, ``training.train``'s warm start).
    TRAINING_SETTINGS = ("decay", "threshold_ema_dead_code", "kmeans_iters", "quantizer_dropout")

    def __init__(
        self,
        sample_rate=16000,
        n_filters=64,
        ratios=(8, 5, 4, 2),
        dimension=1024,
        semantic_dimension=768,
        n_q=8,
        codebook_size=1024,
        lstm_layers=2,
        bidirectional=True,
        dilation_base=2,
        residual_kernel_size=3,
        n_residual_layers=1,
        causal=False,
        compress=2,
        decay=0.99,
        kmeans_init=True,
        kmeans_iters=50,
        threshold_ema_dead_code=2.0,
        quantizer_dropout=0.0,
        distill_layer=0,
        seed=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.sample_rate = int(sample_rate)
        self.n_filters = int(n_filters)
        self.ratios = [int(r) for r in ratios]
        self.dimension = int(dimension)
        self.semantic_dimension = int(semantic_dimension)
        self.n_q = int(n_q)
        self.codebook_size = int(codebook_size)
        self.lstm_layers = int(lstm_layers)
        self.bidirectional = bool(bidirectional)
        self.dilation_base = int(dilation_base)
        self.residual_kernel_size = int(residual_kernel_size)
        self.n_residual_layers = int(n_residual_layers)
        self.causal = bool(causal)
        self.compress = int(compress)
        self.decay = float(decay)
        self.kmeans_init = bool(kmeans_init)
        self.kmeans_iters = int(kmeans_iters)
        self.threshold_ema_dead_code = float(threshold_ema_dead_code)
        self.quantizer_dropout = float(quantizer_dropout)
        self.distill_layer = int(distill_layer)
        self.seed = seed
        if not 0 <= self.distill_layer < self.n_q:
            raise ValueError(f"distill_layer must be in [0, {self.n_q}), got {distill_layer}")

        seanet = dict(
            channels=1,
            dimension=self.dimension,
            n_filters=self.n_filters,
            n_residual_layers=self.n_residual_layers,
            ratios=self.ratios,
            residual_kernel_size=self.residual_kernel_size,
            dilation_base=self.dilation_base,
            causal=self.causal,
            pad_mode="constant" if self.causal else "reflect",
            compress=self.compress,
            lstm_layers=self.lstm_layers,
            dtype=self.dtype_policy,
        )
        self.encoder = SEANetEncoder(bidirectional=self.bidirectional, name="encoder", **seanet)
        self.quantizer = ResidualVectorQuantizer(
            n_q=self.n_q,
            codebook_size=self.codebook_size,
            decay=self.decay,
            kmeans_init=self.kmeans_init,
            kmeans_iters=self.kmeans_iters,
            threshold_ema_dead_code=self.threshold_ema_dead_code,
            quantizer_dropout=self.quantizer_dropout,
            seed=seed,
            name="quantizer",
        )
        self.decoder = SEANetDecoder(bidirectional=False, name="decoder", **seanet)
        if self.semantic_dimension:
            bound = 1.0 / math.sqrt(self.dimension)  # torch nn.Linear's init
            self.distill_projection = keras.layers.Dense(
                self.semantic_dimension,
                kernel_initializer=keras.initializers.RandomUniform(-bound, bound, seed=seed),
                bias_initializer=keras.initializers.RandomUniform(-bound, bound, seed=seed),
                name="distill_projection",
                dtype=self.dtype_policy,
            )
        else:
            self.distill_projection = None
        self._inference = _Untracked()
        self._compiled_cache_size = MAX_COMPILED

    # ------------------------------------------------------------------ sizes
    @property
    def hop_length(self):
        """Samples per code frame (320 for the reference)."""
        return int(np.prod(self.ratios))

    @property
    def frame_rate(self):
        """Code frames per second (50.0 for the reference at 16 kHz)."""
        return self.sample_rate / self.hop_length

    def frames_for(self, num_samples):
        """Number of code frames for ``num_samples`` samples: ``ceil(num_samples / hop)``."""
        num_samples = int(num_samples)
        if num_samples < 0:
            raise ValueError(f"num_samples must be >= 0, got {num_samples}")
        return -(-num_samples // self.hop_length)

    def bitrate(self, n_q=None):
        """Bits per second with ``n_q`` codebooks (default all); 500 per codebook here."""
        n_q = self.quantizer.check_n_q(n_q)
        return n_q * math.log2(self.codebook_size) * self.frame_rate

    # ------------------------------------------------------------------ graph
    def build(self, input_shape=None):
        if self.built:
            return
        batch = None if input_shape is None else input_shape[0]
        audio_shape = (batch, None, 1)
        latent_shape = (batch, None, self.dimension)
        parts = [(self.encoder, audio_shape), (self.quantizer, latent_shape),
                 (self.decoder, latent_shape), (self.distill_projection, latent_shape)]
        for layer, shape in parts:
            if layer is not None and not layer.built:
                layer.build(shape)
        self.built = True

    @staticmethod
    def as_channels_last(audio):
        """Audio ``[batch, samples]`` or ``[batch, 1, samples]`` to the encoder's
        ``[batch, samples, 1]``."""
        if len(audio.shape) == 3:
            audio = ops.squeeze(audio, axis=1)
        return ops.expand_dims(audio, -1)

    def call(self, inputs, training=False, n_q=None):
        """Reconstructs audio and returns what training needs.

        Args:
            inputs: float audio ``[batch, samples]`` or ``[batch, 1, samples]``.
            training: bool. Updates codebooks (EMA / k-means / dead codes) and
                applies quantiser dropout.
            n_q: int or None. Codebooks to use (default all).

        Returns:
            dict with ``audio`` (reconstruction ``[batch, samples]``), ``codes``
            ``[batch, n_q, frames]``, ``latents`` (encoder output),
            ``quantized`` (sum of used layers), ``layer_outputs`` (list of
            per-layer quantised outputs ``[batch, frames, dimension]``),
            ``distill_features`` (projection of layer ``distill_layer``, or
            None), ``commitment_loss`` and ``n_q_used``.
        """
        num_samples = inputs.shape[-1]
        x = self.as_channels_last(inputs)
        latents = self.encoder(x)
        rvq = self.quantizer(latents, n_q=n_q, training=training)
        y = self.decoder(rvq["quantized"])[..., 0]
        if num_samples is not None:
            y = y[:, :num_samples]
        else:
            y = y[:, : ops.shape(inputs)[-1]]
        features = None
        if self.distill_projection is not None:
            # float32 like every output the losses see (under a mixed policy the layers
            # compute in bfloat16; the quantiser is float32 throughout).
            features = ops.cast(
                self.distill_projection(rvq["layer_outputs"][self.distill_layer]), "float32")
        return {
            "audio": ops.cast(y, "float32"),
            "codes": rvq["codes"],
            "latents": latents,
            "quantized": rvq["quantized"],
            "layer_outputs": rvq["layer_outputs"],
            "distill_features": features,
            "commitment_loss": rvq["commitment_loss"],
            "n_q_used": rvq["n_q_used"],
        }

    def encode_latents(self, audio, lengths=None):
        """Graph-friendly: float audio ``[batch, samples]`` (or ``[batch, 1, samples]``) to
        the encoder's latents ``[batch, frames, dimension]``, before quantisation.

        ``lengths`` (int ``[batch]``, optional): valid samples per row of a padded batch;
        row ``b``'s first ``frames_for(lengths[b])`` latents then equal its latents alone.
        """
        x = self.as_channels_last(ops.cast(audio, self.compute_dtype))
        return self.encoder(x, lengths=lengths)

    def encode_tensor(self, audio, n_q=None, lengths=None):
        """Graph-friendly encode: float audio tensor to int32 codes ``[batch, n_q, frames]``.

        No validation; use ``encode`` for user input. ``lengths`` as in ``encode_latents``
        (codes past a row's frames are then padding).
        """
        return self.quantizer.encode(self.encode_latents(audio, lengths), n_q=n_q)

    def decode_tensor(self, codes, lengths=None):
        """Graph-friendly decode: codes ``[batch, n_q, frames]`` to audio ``[batch, T]``.

        ``lengths`` (int ``[batch]``, optional): valid frames per row of a padded batch;
        row ``b``'s first ``lengths[b] * hop_length`` samples then equal its audio alone.
        """
        latents = self.quantizer.decode(codes)
        return self.decoder(ops.cast(latents, self.compute_dtype), lengths=lengths)[..., 0]

    # ------------------------------------------------------------- streaming
    def initial_encoder_state(self, batch_size=1):
        """The encoder's state before a stream's first step (``causal=True`` models only).

        A nest of zero tensors (each convolution's left context, each LSTM layer's
        ``(h, c)``) for ``batch_size`` independent streams.
        """
        return self.encoder.initial_stream_state(batch_size)

    def encode_step(self, state, audio, n_q=None):
        """Graph-friendly streaming encode: ``(new_state, codes [batch, n_q, k])`` for the
        next ``k * hop_length`` samples of each stream (``audio`` ``[batch, samples]``).

        The codes equal those of ``encode_tensor`` over the whole stream so far, however
        it is cut into chunks: the model is causal, so a frame's code depends only on the
        samples up to its end, and the state carries what the next step needs. No
        validation (the chunk must be a whole number of hops; see
        ``keras_dmcodec.inference.StreamingEncoder``).
        """
        x = self.as_channels_last(ops.cast(audio, self.compute_dtype))
        latents, state = self.encoder.stream_step(x, state)
        return state, self.quantizer.encode(latents, n_q=n_q)

    def initial_decoder_state(self, batch_size=1):
        """The decoder's state before a stream's first step (``causal=True`` models only)."""
        return self.decoder.initial_stream_state(batch_size)

    def decode_step(self, state, codes):
        """Graph-friendly streaming decode: ``(new_state, audio [batch, k * hop_length])`` for
        the next ``k`` frames of codes ``[batch, n_q, k]``; the samples equal those of
        ``decode_tensor`` over all the codes so far."""
        latents = self.quantizer.decode(codes)
        audio, state = self.decoder.stream_step(ops.cast(latents, self.compute_dtype), state)
        return state, audio[..., 0]

    # ------------------------------------------------------------- public API
    @property
    def compiled_cache_size(self):
        """How many compiled encode/decode functions ``encode``/``decode`` keep (LRU)."""
        return self._compiled_cache_size

    def set_compiled_cache_size(self, size):
        """Bounds the compiled-function cache to ``size`` entries (dropping the oldest).

        Each entry holds one compiled graph; on TensorFlow there is one per (kind, n_q,
        input shape), so a process that sees many input lengths (a corpus tokenizer)
        bounds its memory with a small size. ``0`` keeps nothing: every call compiles.
        """
        size = int(size)
        if size < 0:
            raise ValueError(f"compiled cache size must be >= 0, got {size}")
        self._compiled_cache_size = size
        models = self._inference.items
        while len(models) > size:
            models.pop(next(iter(models)))

    def clear_compiled_cache(self):
        """Drops every compiled encode/decode function; the next call compiles afresh."""
        self._inference.items.clear()

    def _compiled(self, key, method, signature):
        """A compiled ``method(inputs, lengths)`` for ``key`` (kind, n_q), on numpy arrays.

        TensorFlow gets one graph for every batch and time size (``ops.graphs``); JAX
        compiles per (bucketed) shape inside Keras's jitted predict function; torch runs
        eagerly. Either way one entry serves every length.
        """
        models = self._inference.items
        if key in models:
            models[key] = models.pop(key)  # most recently used last
            return models[key]
        if not self.built:
            self.build((None, None))
        while models and len(models) >= self._compiled_cache_size:
            models.pop(next(iter(models)))
        run = shape_agnostic_function(method, signature)
        if run is None:
            model = _InferenceModel(self, lambda inputs: method(*inputs),
                                    name=f"dmcodec_{key[0]}_{key[1]}")

            def run(*arrays):
                return np.asarray(model.predict_on_batch(arrays))

        if self._compiled_cache_size:
            models[key] = run
        return run

    @staticmethod
    def _padded_to_bucket(array, valid, hop):
        """Pads ``array`` (time on its last axis, ``valid`` per row) to the bucket shape on
        backends that compile per shape; returns ``(array, valid)``."""
        if not pads_to_buckets():
            return array, valid
        batch, time = array.shape[0], array.shape[-1]
        target = bucket_frames(-(-time // hop)) * hop
        rows = bucket_batch(batch)
        widths = [(0, rows - batch)] + [(0, 0)] * (array.ndim - 2) + [(0, target - time)]
        valid = np.concatenate([valid, np.full(rows - batch, valid[0], "int32")])
        return np.pad(array, widths), valid

    def _check_lengths(self, lengths, batch, size, unit):
        if lengths is None:
            return np.full(batch, size, "int32")
        arr = ops.convert_to_numpy(lengths) if ops.is_tensor(lengths) else np.asarray(lengths)
        if arr.shape != (batch,) or not np.issubdtype(arr.dtype, np.integer):
            raise ValueError(f"lengths must be {batch} integers (one per row), got "
                             f"{arr.dtype} array of shape {arr.shape}")
        if arr.min() < 1 or arr.max() > size:
            raise ValueError(f"lengths must be in [1, {size}] {unit}; got values from "
                             f"{int(arr.min())} to {int(arr.max())}")
        return arr.astype("int32")

    def _validate_audio(self, audio):
        if isinstance(audio, (list, tuple)):
            raise TypeError("audio must be an array [batch, samples], not a Python list")
        arr = ops.convert_to_numpy(audio) if not isinstance(audio, np.ndarray) else audio
        if arr.ndim == 3:
            if arr.shape[1] != 1:
                raise ValueError(
                    f"audio must be mono [batch, 1, samples]; got {arr.shape[1]} channels "
                    f"(shape {arr.shape}): downmix first"
                )
            arr = arr[:, 0]
        elif arr.ndim != 2:
            raise ValueError(
                f"audio must have shape [batch, samples] or [batch, 1, samples]; got rank "
                f"{arr.ndim} (shape {arr.shape})"
            )
        if not np.issubdtype(arr.dtype, np.floating):
            raise TypeError(
                f"audio must be floating point in [-1, 1]; got dtype {arr.dtype} "
                "(convert integer PCM with x / 32768.0)"
            )
        if arr.shape[0] == 0 or arr.shape[1] == 0:
            raise ValueError(f"audio is empty (shape {arr.shape})")
        if not np.all(np.isfinite(arr)):
            raise ValueError("audio contains NaN or infinite values")
        return np.ascontiguousarray(arr, dtype="float32")

    def _validate_codes(self, codes, lengths=None):
        arr = ops.convert_to_numpy(codes) if not isinstance(codes, np.ndarray) else codes
        if arr.ndim != 3:
            raise ValueError(
                f"codes must have shape [batch, n_q, frames]; got rank {arr.ndim} "
                f"(shape {arr.shape})"
            )
        if not np.issubdtype(arr.dtype, np.integer):
            raise TypeError(f"codes must be integers; got dtype {arr.dtype}")
        if arr.shape[1] < 1 or arr.shape[1] > self.n_q:
            raise ValueError(
                f"codes have {arr.shape[1]} codebooks but the model has {self.n_q} (n_q must be "
                f"1..{self.n_q})"
            )
        if arr.shape[0] == 0 or arr.shape[2] == 0:
            raise ValueError(f"codes are empty (shape {arr.shape})")
        frames = self._check_lengths(lengths, arr.shape[0], arr.shape[2], "frames")
        arr = np.ascontiguousarray(arr, dtype="int32")
        if lengths is not None:  # what follows a row's frames is padding: any value
            arr = np.where(np.arange(arr.shape[2]) < frames[:, None, None], arr, 0)
        low, high = int(arr.min()), int(arr.max())
        if low < 0 or high >= self.codebook_size:
            raise ValueError(
                f"codes out of range [0, {self.codebook_size}): found values from {low} to {high}"
            )
        return arr.astype("int32"), frames

    def encode(self, audio, n_q=None, lengths=None):
        """Encodes audio to codes.

        Any length runs without compiling a new graph per length (TensorFlow traces one
        graph for all sizes; JAX pads to a few bucketed sizes; torch is eager), and the
        codes do not depend on that padding: every convolution pads at each row's own
        end, and the LSTM's backward direction starts there.

        Args:
            audio: float array ``[batch, samples]`` or ``[batch, 1, samples]``
                at ``sample_rate`` (numpy or a backend tensor).
            n_q: int or None. Number of codebooks, 1..``n_q`` (default all).
            lengths: int array ``[batch]`` or None. Valid samples of each row when the
                rows are clips of different lengths padded to one array; row ``b``
                then gets the codes of ``audio[b, :lengths[b]]`` alone (to float
                near-ties), and its frames past ``frames_for(lengths[b])`` are ``-1``.

        Returns:
            numpy int32 codes ``[batch, n_q, frames]``, ``frames = frames_for(samples)``.
        """
        n_q = self.quantizer.check_n_q(n_q)
        clean = self._validate_audio(audio)
        return self._encode_valid(clean, n_q, self._check_lengths(
            lengths, clean.shape[0], clean.shape[1], "samples"), padded=lengths is not None)

    def _encode_valid(self, audio, n_q, lengths, padded=False):
        run = self._compiled(("encode", n_q),
                             lambda x, n: self.encode_tensor(x, n_q=n_q, lengths=n),
                             [((None, None), "float32"), ((None,), "int32")])
        batch, frames = audio.shape[0], self.frames_for(audio.shape[1])
        codes = run(*self._padded_to_bucket(audio, lengths, self.hop_length))
        codes = np.asarray(codes[:batch, :, :frames], dtype="int32")
        if padded:
            valid = -(-lengths // self.hop_length)
            codes = np.where(np.arange(frames) < valid[:, None, None], codes, -1)
        return codes.astype("int32")

    def _decode_valid(self, codes, frames):
        run = self._compiled(("decode", codes.shape[1]), self.decode_tensor,
                             [((None, codes.shape[1], None), "int32"), ((None,), "int32")])
        batch, samples = codes.shape[0], codes.shape[2] * self.hop_length
        audio = run(*self._padded_to_bucket(codes, frames, 1))
        return np.asarray(audio[:batch, :samples], dtype="float32")

    def decode(self, codes, num_samples=None, lengths=None):
        """Decodes codes to audio.

        Args:
            codes: int array ``[batch, n_q, frames]`` with ``1 <= n_q <= self.n_q``
                and values in ``[0, codebook_size)``.
            num_samples: int or None. Crop the output to this many samples
                (e.g. the original length); default ``frames * hop_length``.
            lengths: int array ``[batch]`` or None. Valid frames of each row when the rows
                are codes of different lengths padded to one array (values past them are
                ignored); row ``b``'s first ``lengths[b] * hop_length`` samples then equal
                its audio alone, and the rest is zero.

        Returns:
            numpy float32 audio ``[batch, samples]``.
        """
        codes, frames = self._validate_codes(codes, lengths)
        audio = self._decode_valid(codes, frames)
        if lengths is not None:
            audio = audio * (np.arange(audio.shape[1]) < frames[:, None] * self.hop_length)
        if num_samples is not None:
            num_samples = int(num_samples)
            max_len = audio.shape[1]
            if not 0 < num_samples <= max_len:
                raise ValueError(
                    f"num_samples must be in [1, {max_len}] for {codes.shape[2]} frames, "
                    f"got {num_samples}"
                )
            audio = audio[:, :num_samples]
        return audio

    def reconstruct(self, audio, n_q=None):
        """Encode then decode; returns ``(codes, audio_hat)`` with the input's length."""
        n_q = self.quantizer.check_n_q(n_q)
        clean = self._validate_audio(audio)
        lengths = np.full(clean.shape[0], clean.shape[1], "int32")
        codes = self._encode_valid(clean, n_q, lengths)  # the model's own codes: no re-check
        frames = np.full(clean.shape[0], codes.shape[2], "int32")
        return codes, self._decode_valid(codes, frames)[:, : clean.shape[1]]

    @classmethod
    def from_preset(cls, preset, load_weights=True, **overrides):
        """Builds a codec from a preset name, folder or keras-hub handle.

        The same path as ``keras_dmcodec.models.loader.resolve_model`` (which also gives
        the preset's name and the model's fingerprint).

        Args:
            preset: a name in ``keras_dmcodec.presets.PRESETS``, a folder in
                ``saved_models/``, a preset folder (``config.json`` + ``model.weights.h5``)
                or a handle such as ``hf://org/model``.
            load_weights: False gives the architecture with random weights (seeded).
            **overrides: config values to change.
        """
        source = locate_preset(preset)
        return source.instantiate(cls, random_weights=not load_weights, **overrides)

    def save_to_preset(self, directory, overwrite=False, metadata=None):
        """Writes a keras-hub-layout preset folder: ``config.json``, ``metadata.json`` and
        ``model.weights.h5`` (loadable under any backend). ``metadata``: a JSON dict to
        record (e.g. the training step)."""
        return save_preset(self, directory, overwrite=overwrite, metadata=metadata)

    def get_config(self):
        config = super().get_config()
        config.update(
            sample_rate=self.sample_rate,
            n_filters=self.n_filters,
            ratios=list(self.ratios),
            dimension=self.dimension,
            semantic_dimension=self.semantic_dimension,
            n_q=self.n_q,
            codebook_size=self.codebook_size,
            lstm_layers=self.lstm_layers,
            bidirectional=self.bidirectional,
            dilation_base=self.dilation_base,
            residual_kernel_size=self.residual_kernel_size,
            n_residual_layers=self.n_residual_layers,
            causal=self.causal,
            compress=self.compress,
            decay=self.decay,
            kmeans_init=self.kmeans_init,
            kmeans_iters=self.kmeans_iters,
            threshold_ema_dead_code=self.threshold_ema_dead_code,
            quantizer_dropout=self.quantizer_dropout,
            distill_layer=self.distill_layer,
            seed=self.seed,
        )
        return config

    @classmethod
    def from_config(cls, config):
        return cls(**config)
