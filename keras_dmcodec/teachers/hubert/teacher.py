"""The speech (SM) teacher: HuBERT / wav2vec 2.0 hidden states, and the audio checks it needs.

The DM-Codec reference (``extract_rep.py``) distils the mean of all 13 hidden
states of ``facebook/hubert-base-ls960``, on audio normalised as
``Wav2Vec2FeatureExtractor`` does when the checkpoint asks for it.
"""

from pathlib import Path

import numpy as np

from keras_dmcodec.teachers.hubert.convert import load_hubert_encoder, read_do_normalize


def check_audio(audio, min_samples):
    """``audio`` as float32 ``[batch, samples]`` (1-D: one utterance), or a one-line ValueError.

    Example:
    >>> check_audio(np.zeros(400, "float32"), min_samples=400).shape
    (1, 400)
    """
    array = np.asarray(audio)
    if array.dtype.kind not in "f":
        raise ValueError(f"audio must be floating point, got dtype {array.dtype}")
    if array.ndim == 1:
        array = array[None]
    if array.ndim != 2:
        raise ValueError(f"audio must be [batch, samples], got shape {array.shape}")
    if array.shape[0] == 0 or array.shape[1] == 0:
        raise ValueError(f"audio is empty (shape {array.shape})")
    if array.shape[1] < min_samples:
        raise ValueError(f"audio has {array.shape[1]} samples; the encoder needs at least "
                         f"{min_samples}")
    if not np.all(np.isfinite(array)):
        raise ValueError("audio contains NaN or infinite values")
    return array.astype(np.float32, copy=False)


def normalize_audio(audio):
    """Zero mean, unit variance per utterance, as ``Wav2Vec2FeatureExtractor`` (eps 1e-7)."""
    audio = np.asarray(audio, np.float64)
    mean = audio.mean(axis=-1, keepdims=True)
    var = audio.var(axis=-1, keepdims=True)
    return ((audio - mean) / np.sqrt(var + 1e-7)).astype(np.float32)


class HubertTeacher:
    """The speech (SM) teacher: HuBERT / wav2vec 2.0 features at 50 frames per second.

    Implements the SM teacher interface: ``name``, ``sample_rate``,
    ``frame_rate``, ``dimension``, ``num_hidden_states``, ``features(audio,
    layer)`` and ``num_frames(num_samples)``. ``layer="avg"`` is the mean of all
    hidden states, as the DM-Codec reference (``extract_rep.py``) distils; an
    int indexes the hidden states (negative from the end). The model is frozen.

    Args:
        encoder: a built ``HubertEncoder``.
        name: str. Teacher name (recorded with cached features).
        do_normalize: bool. Normalise each utterance to zero mean, unit variance first.
        sample_rate: int. Input sample rate (16000 for every released model).

    Example:
    >>> from keras_dmcodec.teachers.hubert import HubertEncoder
    >>> encoder = HubertEncoder(conv_dim=[8] * 7, hidden_size=16, num_hidden_layers=2,
    ...                         num_attention_heads=2, intermediate_size=32,
    ...                         num_conv_pos_embeddings=8, num_conv_pos_embedding_groups=2)
    >>> teacher = HubertTeacher(encoder, name="tiny")
    >>> teacher.num_hidden_states, teacher.frame_rate, teacher.num_frames(16000)
    (3, 50.0, 49)
    >>> teacher.features(np.zeros((2, 1600), "float32"), layer="avg").shape  # doctest: +SKIP
    (2, 4, 16)
    """

    def __init__(self, encoder, name="hubert", do_normalize=False, sample_rate=16000):
        self.encoder = encoder
        self.encoder.trainable = False
        self.name = name
        self.do_normalize = bool(do_normalize)
        self.sample_rate = int(sample_rate)

    @classmethod
    def from_pretrained(cls, directory, name=None, do_normalize=None):
        """Loads a local HF directory (e.g. a saved ``facebook/hubert-base-ls960``).

        ``name`` defaults to the directory's name; ``do_normalize`` to the
        directory's feature-extractor config (see ``read_do_normalize``).
        """
        encoder, config = load_hubert_encoder(directory)
        if do_normalize is None:
            do_normalize = read_do_normalize(directory, config)
        return cls(encoder, name=name or Path(directory).resolve().name,
                   do_normalize=do_normalize)

    @property
    def frame_rate(self):
        return self.sample_rate / self.encoder.hop_length

    @property
    def dimension(self):
        return self.encoder.hidden_size

    @property
    def num_hidden_states(self):
        return self.encoder.num_hidden_states

    def num_frames(self, num_samples):
        return self.encoder.num_frames(num_samples)

    def _layer_index(self, layer):
        n = self.num_hidden_states
        if isinstance(layer, (int, np.integer)) and not isinstance(layer, bool):
            if not -n <= layer < n:
                raise ValueError(f"layer {layer} is out of range for {n} hidden states")
            return int(layer) % n
        if layer == "avg":
            return None
        raise ValueError(f"layer must be 'avg' or an int index, not {layer!r}")

    def hidden_states(self, audio):
        """Every hidden state as float32 numpy ``[batch, frames, dimension]`` arrays."""
        audio = check_audio(audio, self.encoder.min_samples)
        if self.do_normalize:
            audio = normalize_audio(audio)
        # predict_on_batch runs compiled (jax.jit / tf.function) and without autograd (torch):
        # one compilation per input shape, much faster on JAX than op-by-op eager dispatch.
        outputs = self.encoder.predict_on_batch(audio)
        return [np.asarray(h, np.float32) for h in outputs["hidden_states"]]

    def features(self, audio, layer="avg"):
        """Teacher features, float32 ``[batch, frames, dimension]``.

        Args:
            audio: float ``[batch, samples]`` at ``sample_rate``.
            layer: ``"avg"`` (mean of all hidden states) or an int index.
        """
        index = self._layer_index(layer)
        hidden = self.hidden_states(audio)
        if index is None:
            return np.mean(np.stack(hidden, axis=0), axis=0, dtype=np.float32)
        return hidden[index]

