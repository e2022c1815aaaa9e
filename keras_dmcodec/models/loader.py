"""The one model resolver: a spec (preset name, folder or keras-hub handle) to a built codec.

Every command, the evaluation suite, the exporters, the corpus tokenizer and training's
``init_from`` load models here (``DMCodec.from_preset`` takes the same path), so they agree
on what a spec means, on random weights (only when asked) and on the model's fingerprint.

Example:
>>> resolved = resolve_model("dmcodec_small")  # doctest: +SKIP
>>> resolved.name, resolved.random_weights  # doctest: +SKIP
('dmcodec_small', False)
>>> resolve_model("dmcodec_base")  # doctest: +SKIP
Traceback (most recent call last):
PresetError: no trained weights ship for preset 'dmcodec_base': ... ask for random weights ...
>>> resolve_model("random:dmcodec_base").random_weights  # doctest: +SKIP
True
"""

import dataclasses
from pathlib import Path

from keras_dmcodec.models.dmcodec import DMCodec
from keras_dmcodec.presets import PresetError, locate_preset
from keras_dmcodec.tokens import ModelFingerprint, model_fingerprint

# A spec prefix that asks for random weights, for places that take a spec string only
# (``dmcodec evaluate --model random:dmcodec_base``).
RANDOM_PREFIX = "random:"

__all__ = ["RANDOM_PREFIX", "PresetError", "ResolvedModel", "resolve_model"]


@dataclasses.dataclass(frozen=True)
class ResolvedModel:
    """A built codec and what identifies it.

    Attributes:
        model: the ``DMCodec``, built, weights loaded.
        name: the preset's name (a ``PRESETS`` key, a folder's or a handle's last part):
            what token files record, and what ``dmcodec decode`` looks up again.
        identity: the ``ModelFingerprint`` (architecture, codebooks, all weights).
        directory: the preset folder the weights came from, or None.
        random_weights: True when the weights are random (asked for explicitly).
    """

    model: DMCodec
    name: str
    identity: ModelFingerprint
    directory: Path | None
    random_weights: bool

    @property
    def fingerprint(self):
        """The whole model's fingerprint (str): changes when any weight or setting changes."""
        return str(self.identity)

    @property
    def description(self):
        """A one-line label, e.g. ``dmcodec_small (trained weights)``."""
        if self.random_weights:
            return f"{self.name} (RANDOM weights, seed {self.model.seed})"
        return f"{self.name} (trained weights, fingerprint {self.fingerprint})"


def split_random_prefix(spec):
    """``("dmcodec_base", True)`` for ``"random:dmcodec_base"``; ``(spec, False)`` otherwise."""
    if isinstance(spec, str) and spec.startswith(RANDOM_PREFIX):
        return spec[len(RANDOM_PREFIX):], True
    return spec, False


def resolve_model(spec, random_weights=False, **overrides):
    """Builds the codec ``spec`` names; the one loader every caller uses.

    Args:
        spec: a name in ``keras_dmcodec.presets.PRESETS`` (with its shipped weights from
            ``saved_models/<name>``), the name of another folder in ``saved_models/``, a
            preset folder (``config.json`` + ``model.weights.h5``, either layout), a
            keras-hub handle (``hf://org/model``, ``kaggle://...``), or any of these
            prefixed with ``random:``.
        random_weights: build the architecture with random weights (seeded,
            ``presets.RANDOM_SEED``) instead of loading any: tests and demos only. Without
            it, a preset without weights is a ``PresetError`` that says how to ask.
        **overrides: config values to change (e.g. ``quantizer_dropout``).

    Returns:
        a ``ResolvedModel``.

    Raises:
        PresetError: unknown spec, no weights, or a missing, truncated or corrupt weights
            file (the message names the file and what is wrong).
    """
    spec, prefixed = split_random_prefix(spec)
    random_weights = bool(random_weights or prefixed)
    source = locate_preset(spec)
    model = source.instantiate(DMCodec, random_weights=random_weights, **overrides)
    return ResolvedModel(model=model, name=source.name, identity=model_fingerprint(model),
                         directory=source.directory, random_weights=random_weights)
