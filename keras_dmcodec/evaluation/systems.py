"""Codecs under evaluation behind one small interface.

A system has a filesystem-safe ``key``, a human ``label`` (shown in tables; it
must say when weights are random), ``sample_rate``, ``n_q_max``,
``codebook_size``, ``frame_rate``, a ``fingerprint`` (``tokens.model_fingerprint``:
changes when the weights change, so that cached results of another model are never
reused) and ``reconstruct(audio, n_q) -> (codes [n_q, frames], audio_hat [samples])``.
``OriginalAudio`` is the reference row: the audio itself, no coding.
"""

import re

import numpy as np

from keras_dmcodec.convert.reference import REFERENCE_BASE_CONFIG, build_random_reference
from keras_dmcodec.models.loader import resolve_model
from keras_dmcodec.tokens import model_fingerprint


def _safe_key(text):
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", str(text)).strip("_") or "model"


class CodecSystem:
    key = "codec"
    label = "codec"
    sample_rate = 16000
    n_q_max = 1
    codebook_size = 1
    frame_rate = 1.0
    fingerprint = ""
    has_codes = True

    def bitrate(self, n_q):
        if n_q is None:
            return float("nan")
        return float(n_q * np.log2(self.codebook_size) * self.frame_rate)

    def reconstruct(self, audio, n_q):
        raise NotImplementedError


class OriginalAudio(CodecSystem):
    """The unprocessed audio: the ASR judge's own error rate and each metric's ceiling."""

    key = "original"
    label = "Original audio (no codec)"
    fingerprint = "original"
    has_codes = False
    n_q_max = None

    def __init__(self, sample_rate=16000):
        self.sample_rate = int(sample_rate)

    def bitrate(self, n_q):
        return float(self.sample_rate * 16)  # the 16-bit PCM it was read as

    def reconstruct(self, audio, n_q):
        return None, np.asarray(audio, dtype=np.float32)


class _StateDict:
    """A PyTorch model's weights and config in the shape ``model_fingerprint`` reads."""

    def __init__(self, module, config):
        self._module = module
        self._config = dict(config)

    def get_config(self):
        return self._config

    def get_weights(self):
        return [p.detach().cpu().numpy() for p in self._module.state_dict().values()]


class KerasCodecSystem(CodecSystem):
    """A ``DMCodec`` (any backend).

    Each utterance is encoded at its own length: ``DMCodec.encode`` runs any length
    without compiling a graph per length. ``bucket_seconds > 0`` (the old behaviour,
    kept to reproduce earlier tables) zero-pads the input to a multiple of that length
    instead, so that the last frames also see the silence.

    Args:
        model: a built ``DMCodec``.
        label: table label.
        key: short unique name (default from the label).
        bucket_seconds: zero padding granularity in seconds (0, the default: none).
    """

    def __init__(self, model, label, key=None, bucket_seconds=0.0):
        self.model = model
        hop = int(model.hop_length)
        self.bucket = hop * max(1, round(bucket_seconds * model.sample_rate / hop)) \
            if bucket_seconds > 0 else 0
        self.label = label
        self.key = _safe_key(key or label)
        self.sample_rate = int(model.sample_rate)
        self.n_q_max = int(model.n_q)
        self.codebook_size = int(model.codebook_size)
        self.frame_rate = float(model.frame_rate)
        self.fingerprint = f"{model_fingerprint(model)}-pad{self.bucket}"

    def reconstruct(self, audio, n_q):
        audio = np.asarray(audio, np.float32)
        padded = audio
        if self.bucket:
            padded = np.pad(audio, (0, -len(audio) % self.bucket))
        codes, audio_hat = self.model.reconstruct(padded[None], n_q=n_q)
        frames = self.model.frames_for(len(audio))
        return codes[0, :, :frames], audio_hat[0, : len(audio)]


class SpeechTokenizerReference(CodecSystem):
    """The reference PyTorch model (``speechtokenizer.model``), random weights, base config.

    Official weights cannot be downloaded here, so the reference architecture is
    built with random weights (``keras_dmcodec.convert.reference.build_random_reference``:
    seeded, codebooks filled from the encoder's latents on ``probe_audio``). Its row
    shows the reference pipeline's numbers with untrained weights, not the paper's.

    Args:
        probe_audio: float array ``[samples]`` used to centre the latents and fill codebooks.
        seed: torch seed.
        checkpoint: optional reference state dict (``.pt``); with it, real weights are used.
        config: reference model config (default: the base config, as the paper's model).
    """

    def __init__(self, probe_audio, seed=0, checkpoint=None, config=None):
        # deferred: torch is an optional dependency, needed only for this reference row.
        import torch

        self._torch = torch
        cfg = dict(config or REFERENCE_BASE_CONFIG)
        probe = np.asarray(probe_audio, np.float32)[None]
        self._model = build_random_reference(cfg, seed=seed, probe_audio=probe)
        if checkpoint is not None:
            state = torch.load(checkpoint, map_location="cpu", weights_only=True)
            self._model.load_state_dict(state)
            self._model.eval()
            self.label = "SpeechTokenizer reference (PyTorch, checkpoint weights)"
            self.key = "speechtokenizer"
        else:
            self.label = (f"SpeechTokenizer reference (PyTorch) -- RANDOM weights, seed {seed} "
                          "(official weights not available offline)")
            self.key = "speechtokenizer_random"
        self.sample_rate = int(cfg["sample_rate"])
        self.n_q_max = int(cfg["n_q"])
        self.codebook_size = int(cfg["codebook_size"])
        self.frame_rate = self.sample_rate / float(np.prod(cfg["strides"]))
        self.fingerprint = str(model_fingerprint(_StateDict(self._model, cfg)))

    def reconstruct(self, audio, n_q):
        torch = self._torch
        x = torch.as_tensor(np.asarray(audio, np.float32))[None, None]
        with torch.no_grad():
            codes = self._model.encode(x, n_q=n_q)  # (n_q, 1, frames)
            audio_hat = self._model.decode(codes)  # (1, 1, frames * hop)
        return codes[:, 0].numpy().astype(np.int32), audio_hat[0, 0, : x.shape[-1]].numpy()


def load_codec_system(spec, init_audio=None, bucket_seconds=0.0):
    """A ``KerasCodecSystem`` for a model spec (``keras_dmcodec.models.loader.resolve_model``).

    Random weights only when the spec asks for them with the ``random:`` prefix
    (``random:dmcodec_base``); a preset without weights is otherwise an error. A random
    model's codebooks are k-means initialised by one training-mode pass on
    ``init_audio``, as ``dmcodec demo`` does, and its label says RANDOM.
    """
    resolved = resolve_model(spec)
    model = resolved.model
    if resolved.random_weights:
        if init_audio is not None:
            model(np.asarray(init_audio, np.float32)[None], training=True)
        label = f"{resolved.name} -- RANDOM weights (asked for), k-means codebooks"
        return KerasCodecSystem(model, label, key=f"{resolved.name}_random",
                                bucket_seconds=bucket_seconds)
    return KerasCodecSystem(model, resolved.name, key=resolved.name,
                            bucket_seconds=bucket_seconds)
