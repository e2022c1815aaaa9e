"""Named DMCodec configurations and preset directories (``config.json`` + ``model.weights.h5``).

A preset directory is what ``save_preset`` writes and ``load_preset`` (or
``DMCodec.from_preset``) reads; it loads under any Keras backend.
"""

import json
import os
from pathlib import Path

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.weights.h5"

# Trained weights shipped with the repository live in saved_models/<name>/.
SAVED_MODELS_DIR = Path(__file__).resolve().parent.parent / "saved_models"

PRESETS = {
    "dmcodec_base": {
        "description": "Reference DM-Codec / SpeechTokenizer architecture (103.7 M parameters, "
        "16 kHz, 8 x 1024 codes at 50 Hz = 4 kbit/s). No weights ship: convert a reference "
        "checkpoint with `dmcodec convert`.",
        "config": dict(
            sample_rate=16000, n_filters=64, ratios=[8, 5, 4, 2], dimension=1024,
            semantic_dimension=768, n_q=8, codebook_size=1024, lstm_layers=2,
            bidirectional=True, dilation_base=2, residual_kernel_size=3, n_residual_layers=1,
        ),
    },
    "dmcodec_small": {
        "description": "CPU-sized DM-Codec (16 kHz, 8 x 1024 codes at 50 Hz = 4 kbit/s, "
        "n_filters 16, 256-d latent, 384-d teacher projection for the MiniLM / Whisper tiny.en "
        "teachers); trained weights ship in saved_models/dmcodec_small.",
        "config": dict(
            sample_rate=16000, n_filters=16, ratios=[8, 5, 4, 2], dimension=256,
            semantic_dimension=384, n_q=8, codebook_size=1024, lstm_layers=2,
            bidirectional=True, dilation_base=2, residual_kernel_size=3, n_residual_layers=1,
        ),
    },
}


class PresetError(ValueError):
    """A preset name or directory that cannot be loaded."""


def preset_weights_dir(name):
    """Directory of shipped weights for a named preset, or None when none ship."""
    path = SAVED_MODELS_DIR / name
    if (path / CONFIG_FILE).is_file() and (path / WEIGHTS_FILE).is_file():
        return path
    return None


def _read_config(directory):
    path = Path(directory) / CONFIG_FILE
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise PresetError(f"{directory}: not a preset directory (no {CONFIG_FILE})") from None
    except json.JSONDecodeError as err:
        raise PresetError(f"{path}: invalid JSON ({err.msg} at line {err.lineno})") from None
    if not isinstance(data, dict) or data.get("class_name") != "DMCodec":
        raise PresetError(f"{path}: not a DMCodec config (expected class_name 'DMCodec')")
    return data


def load_preset(preset, load_weights=True, **overrides):
    """Builds a ``DMCodec`` from a preset name or a preset directory.

    Args:
        preset: a name in ``PRESETS`` or a directory written by ``save_preset``.
        load_weights: load the weights (a named preset without shipped
            weights then raises; pass False for a randomly initialised model).
        **overrides: config values to change (e.g. ``quantizer_dropout``).
    """
    from keras_dmcodec.models.dmcodec import DMCodec

    directory = None
    if isinstance(preset, (str, os.PathLike)) and Path(preset).is_dir():
        directory = Path(preset)
        config = dict(_read_config(directory)["config"])
    elif preset in PRESETS:
        directory = preset_weights_dir(preset)
        config = (dict(_read_config(directory)["config"]) if directory
                  else dict(PRESETS[preset]["config"]))
    else:
        raise PresetError(
            f"unknown preset {preset!r}: expected one of {sorted(PRESETS)} or a preset directory"
        )
    config.update(overrides)
    weights = None
    if load_weights:
        if directory is None:
            raise PresetError(
                f"no trained weights ship for preset {preset!r}; use load_weights=False for a "
                "randomly initialised model"
            )
        weights = directory / WEIGHTS_FILE
        if not weights.is_file():
            raise PresetError(f"{directory}: missing {WEIGHTS_FILE}")
    model = DMCodec(**config)
    model.build((None, None))
    if weights is not None:
        model.load_weights(weights)
    return model


def save_preset(model, directory, overwrite=False, metadata=None):
    """Writes ``config.json`` + ``model.weights.h5`` to ``directory`` atomically.

    Overwriting replaces those two files only: anything else in the folder (a model card,
    plots, reports) is carried over into the new preset.
    """
    import shutil

    from keras_dmcodec import __version__
    from keras_dmcodec.utils.files import atomic_directory

    directory = Path(directory)
    if directory.exists() and not overwrite:
        raise FileExistsError(f"{directory}: already exists (pass overwrite=True to replace it)")
    if directory.exists() and not directory.is_dir():
        raise FileExistsError(f"{directory}: exists and is not a folder")
    with atomic_directory(directory, prefix=".tmp_preset_") as tmp:
        if directory.is_dir():
            for entry in directory.iterdir():
                if entry.name in (CONFIG_FILE, WEIGHTS_FILE):
                    continue
                if entry.is_dir():
                    shutil.copytree(entry, tmp / entry.name, symlinks=True)
                else:
                    shutil.copy2(entry, tmp / entry.name, follow_symlinks=False)
        config = {
            "class_name": "DMCodec",
            "config": model.get_config(),
            "keras_dmcodec_version": __version__,
            "metadata": metadata or {},
        }
        for key in ("name", "trainable", "dtype"):
            config["config"].pop(key, None)
        (tmp / CONFIG_FILE).write_text(json.dumps(config, indent=2) + "\n")
        model.save_weights(tmp / WEIGHTS_FILE)
    return directory
