"""Named DMCodec configurations and preset folders: data and files, no model code.

A preset folder has the keras-hub layout, so a DM-Codec published the keras-hub way
(``keras_hub.upload_preset``) loads like any keras-hub model:

=====================  ===================================================================
``config.json``        the serialized model: ``module``, ``class_name``, ``config``,
                       ``registered_name`` (``keras_dmcodec>DMCodec``), ``build_config``
``metadata.json``      ``keras_version``, ``keras_dmcodec_version``, ``parameter_count``,
                       ``date_saved``, plus the writer's own keys (training step, ...)
``model.weights.h5``   the weights (Keras ``save_weights``; loads under any backend)
=====================  ===================================================================

Folders written before that layout (``config.json`` holding ``class_name``, ``config``,
``keras_dmcodec_version`` and ``metadata``, and no ``metadata.json``, as
``saved_models/dmcodec_small``) read the same way.

``locate_preset`` turns a spec into a ``PresetSource`` (config, metadata, weights file)
without building anything: a name in ``PRESETS`` (shipped weights in
``saved_models/<name>``), the name of another folder in ``saved_models/``, a local folder,
or a keras-hub handle (``hf://org/model``, ``kaggle://org/model/keras/variant``,
``gs://bucket/dir``), whose files keras-hub's ``get_file`` fetches.
``PresetSource.instantiate(cls)`` builds the model from them, as keras-hub's preset loader
does with the class it is given; ``keras_dmcodec.models.loader.resolve_model`` is the one
place callers go through.
"""

import dataclasses
import datetime
import json
import shutil
from pathlib import Path

from keras_dmcodec import __version__
from keras_dmcodec.utils.files import atomic_directory

CONFIG_FILE = "config.json"
METADATA_FILE = "metadata.json"
WEIGHTS_FILE = "model.weights.h5"
REGISTERED_NAME = "keras_dmcodec>DMCodec"
CLASS_NAME = "DMCodec"
# Files a preset consists of; saving over a folder replaces these and keeps the rest.
PRESET_FILES = (CONFIG_FILE, METADATA_FILE, WEIGHTS_FILE)
# Config entries that describe one Python object, not the architecture (keras-hub keeps
# them in config.json; a loaded model gets its own name).
_INSTANCE_KEYS = ("name", "trainable")

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
    "dmcodec_small_causal": {
        "description": "The streaming twin of dmcodec_small: same size, causal convolutions "
        "(left-only zero padding) and a unidirectional encoder LSTM, so it encodes and decodes "
        "20 ms at a time with no lookahead (docs/streaming.md); trained weights ship in "
        "saved_models/dmcodec_small_causal.",
        "config": dict(
            sample_rate=16000, n_filters=16, ratios=[8, 5, 4, 2], dimension=256,
            semantic_dimension=384, n_q=8, codebook_size=1024, lstm_layers=2,
            bidirectional=False, causal=True, dilation_base=2, residual_kernel_size=3,
            n_residual_layers=1,
        ),
    },
}

# Seed of randomly initialised presets, so that the same spec gives the same weights in
# every process of one backend (what decoding such a model's token files relies on).
RANDOM_SEED = 0


class PresetError(ValueError):
    """A preset name, folder or handle that cannot be loaded, with a one-line reason."""


@dataclasses.dataclass(frozen=True)
class PresetSource:
    """What a preset spec points to, before any model is built.

    Attributes:
        name: the preset's name: a ``PRESETS`` key, a folder's name or a handle's last part.
        config: the model's constructor arguments (a copy is made for each model).
        metadata: the writer's record (training step, teachers, ...); ``{}`` when none.
        directory: the folder holding the files (a local copy for handles), or None for a
            ``PRESETS`` entry without shipped weights.
        weights: the weights file, or None when the preset has none.
        spec: the spec as given.
    """

    name: str
    config: dict
    metadata: dict
    directory: Path | None
    weights: Path | None
    spec: str

    def instantiate(self, cls, random_weights=False, **overrides):
        """Builds ``cls(**config, **overrides)`` and loads the weights.

        Args:
            cls: the model class (``DMCodec``); it must take the config as keyword
                arguments and have ``build`` and ``load_weights``, as keras-hub's
                ``KerasPresetLoader.load_backbone`` expects of a backbone.
            random_weights: skip the weights: the architecture with random weights, seeded
                with ``RANDOM_SEED`` (or ``overrides["seed"]``) and Keras's global seed set
                to the same value, so every process gets the same weights.
            **overrides: config values to change (e.g. ``quantizer_dropout``).

        Raises:
            PresetError: no weights and ``random_weights`` not asked for, or a weights file
                that is missing, truncated, corrupt or of another architecture.
        """
        if not random_weights and self.weights is None:
            raise PresetError(self._no_weights_message())
        config = dict(self.config)
        config.update(overrides)
        if random_weights:
            # deferred: keras is heavy, and listing or reading presets must not need it.
            import keras

            config["seed"] = overrides.get("seed", RANDOM_SEED)
            # Layers without a seed of their own draw from Keras's global generator.
            keras.utils.set_random_seed(RANDOM_SEED if config["seed"] is None
                                        else int(config["seed"]))
        try:
            model = cls(**config)
        except (TypeError, ValueError) as err:
            raise PresetError(f"{self._where()}: config does not fit {cls.__name__} "
                              f"({_one_line(err)})") from None
        model.build((None, None))
        if not random_weights:
            load_weights_file(model, self.weights)
        return model

    def _where(self):
        return str(self.directory / CONFIG_FILE) if self.directory else repr(self.spec)

    def _no_weights_message(self):
        where = (f"no trained weights ship for preset {self.spec!r}" if self.directory is None
                 else f"{self.directory}: missing {WEIGHTS_FILE}")
        return (f"{where}: pass a preset folder with weights, or ask for random weights "
                f"(--random-weights, or the spec 'random:{self.spec}'; tests and demos only)")


def _one_line(err):
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def load_weights_file(model, path):
    """``model.load_weights(path)`` with a one-line ``PresetError`` naming the file.

    A truncated or corrupt HDF5 file makes h5py raise ``OSError`` ("Unable to synchronously
    open file (truncated file: eof = ...)"), which names no file; weights of another
    architecture raise ``ValueError``.
    """
    path = Path(path)
    if not path.is_file():
        raise PresetError(f"{path}: no such weights file")
    try:
        model.load_weights(path)
    except (OSError, KeyError) as err:
        reason = _one_line(err)
        if "truncated" in reason:
            what = "truncated weights file (an interrupted copy or download?)"
        elif "signature" in reason or "not an hdf5" in reason.lower():
            what = "not an HDF5 weights file"
        else:
            what = "unreadable or corrupt weights file"
        raise PresetError(f"{path}: {what} ({reason})") from None
    except ValueError as err:
        raise PresetError(f"{path}: weights do not fit the model's config "
                          f"({_one_line(err)})") from None


def preset_weights_dir(name):
    """Folder of shipped weights for a name (``saved_models/<name>``), or None when none ship."""
    if not _is_name(name):
        return None
    path = SAVED_MODELS_DIR / name
    if (path / CONFIG_FILE).is_file() and (path / WEIGHTS_FILE).is_file():
        return path
    return None


def is_handle(spec):
    """True for a keras-hub handle such as ``hf://org/model`` or ``kaggle://org/m/keras/v``."""
    return isinstance(spec, str) and "://" in spec


def _read_json(path, what):
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PresetError(f"{Path(path).parent}: not a preset folder (no {what})") from None
    except (OSError, UnicodeDecodeError) as err:
        raise PresetError(f"{path}: unreadable ({_one_line(err)})") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise PresetError(f"{path}: invalid JSON ({err.msg} at line {err.lineno})") from None
    if not isinstance(data, dict):
        raise PresetError(f"{path}: expected a JSON object")
    return data


def read_preset(directory, name=None, spec=None):
    """Reads a preset folder (either layout); returns a ``PresetSource``.

    The weights file need not exist (``PresetSource.weights`` is then None); the config
    must be a DMCodec's.

    Example:
    >>> source = read_preset(SAVED_MODELS_DIR / "dmcodec_small")
    >>> source.name, source.config["n_q"], source.weights.name
    ('dmcodec_small', 8, 'model.weights.h5')
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise PresetError(f"{directory}: no such preset folder")
    config_path = directory / CONFIG_FILE
    data = _read_json(config_path, CONFIG_FILE)
    registered = data.get("registered_name")
    if data.get("class_name") != CLASS_NAME or registered not in (None, REGISTERED_NAME):
        found = registered or data.get("class_name") or data.get("model_type") or "no class_name"
        raise PresetError(f"{config_path}: not a DMCodec config (found {found!r}, expected "
                          f"class_name {CLASS_NAME!r})")
    config = data.get("config")
    if not isinstance(config, dict):
        raise PresetError(f"{config_path}: 'config' must be a JSON object")
    config = {k: v for k, v in config.items() if k not in _INSTANCE_KEYS}
    metadata = dict(data.get("metadata") or {})  # the layout before metadata.json
    if (directory / METADATA_FILE).is_file():
        metadata.update(_read_json(directory / METADATA_FILE, METADATA_FILE))
    weights = directory / WEIGHTS_FILE
    return PresetSource(name=name or directory.resolve().name, config=config, metadata=metadata,
                        directory=directory, weights=weights if weights.is_file() else None,
                        spec=str(spec if spec is not None else directory))


def _read_handle(handle):
    """A ``PresetSource`` for a keras-hub handle: keras-hub fetches (and caches) the files."""
    # deferred: keras_hub imports TensorFlow (+3.5 s, +750 MB under JAX); only handles need it.
    from keras_hub.src.utils.preset_utils import get_file

    def fetch(filename):
        try:
            return Path(get_file(handle, filename))
        except FileNotFoundError:
            return None
        except (ImportError, ValueError, OSError) as err:
            raise PresetError(f"{handle}: cannot fetch {filename} ({_one_line(err)})") from None

    config_path = fetch(CONFIG_FILE)
    if config_path is None:
        raise PresetError(f"{handle}: not a preset (no {CONFIG_FILE})")
    metadata_path = fetch(METADATA_FILE)
    weights = fetch(WEIGHTS_FILE)
    parts = handle.split("://", 1)[1].rstrip("/").split("/")
    # kaggle://org/model/keras/variant/2: the variant names the preset, not the version.
    name = parts[-2] if parts[-1].isdigit() and len(parts) > 1 else parts[-1]
    source = read_preset(config_path.parent, name=name, spec=handle)
    # A hub cache may keep each file in a folder of its own.
    if metadata_path is not None and metadata_path.parent != config_path.parent:
        metadata = {**source.metadata, **_read_json(metadata_path, METADATA_FILE)}
        source = dataclasses.replace(source, metadata=metadata)
    if weights is not None and weights.parent != config_path.parent:
        source = dataclasses.replace(source, weights=weights)
    return source


def locate_preset(spec):
    """Finds what ``spec`` names; reads its config and metadata; builds nothing.

    Args:
        spec: a name in ``PRESETS`` (its shipped folder ``saved_models/<name>`` when there
            is one, else its config alone, without weights), the name of another folder in
            ``saved_models/``, a local preset folder, or a keras-hub handle
            (``hf://``, ``kaggle://``, ``gs://``, ...). A local folder wins over a name.

    Returns:
        a ``PresetSource``.

    Raises:
        PresetError: unknown name, not a preset folder, invalid config.
    """
    if isinstance(spec, PresetSource):
        return spec
    if not isinstance(spec, (str, Path)) or not str(spec):
        raise PresetError(f"a preset spec must be a name, folder or handle, got {spec!r}")
    text = str(spec)
    if is_handle(text):
        return _read_handle(text)
    path = Path(text)
    if path.is_dir():
        return read_preset(path, spec=text)
    if _is_name(text) and (preset_weights_dir(text) or text in PRESETS):
        return find_named_preset(text)
    if path.exists():
        raise PresetError(f"{path}: not a preset folder (a file, expected a folder with "
                          f"{CONFIG_FILE} and {WEIGHTS_FILE})")
    raise PresetError(f"unknown preset {text!r}: expected one of {sorted(PRESETS)}, a folder "
                      "in saved_models/, a preset folder or a keras-hub handle (hf://...)")


def _is_name(text):
    return (isinstance(text, str) and bool(text) and "/" not in text and "\\" not in text
            and not text.startswith(".") and not is_handle(text))


def find_named_preset(name):
    """A ``PresetSource`` for a preset *name* only: a folder in ``saved_models/`` or a
    ``PRESETS`` key (without weights when none ship); never a path, so that a name read from
    a file (a token file's ``model``) cannot point anywhere else.

    Raises:
        PresetError: ``name`` is not such a name.
    """
    if not _is_name(name):
        raise PresetError(f"{name!r} is not a preset name")
    shipped = preset_weights_dir(name)
    if shipped is not None:
        return read_preset(shipped, name=name, spec=name)
    if name in PRESETS:
        return PresetSource(name=name, config=dict(PRESETS[name]["config"]), metadata={},
                            directory=None, weights=None, spec=name)
    raise PresetError(f"no preset named {name!r} (not in PRESETS, no saved_models/{name})")


def save_preset(model, directory, overwrite=False, metadata=None):
    """Writes ``config.json``, ``metadata.json`` and ``model.weights.h5`` atomically.

    Overwriting replaces those files only: anything else in the folder (a model card,
    plots, reports) is carried over into the new preset.

    Args:
        model: a built model with ``get_config`` and ``save_weights`` (``DMCodec``).
        directory: the preset folder.
        overwrite: replace an existing preset folder.
        metadata: JSON-serializable dict recorded in ``metadata.json`` (e.g. the training
            step); the standard keys (versions, parameter count, date) take precedence.
    """
    # deferred: keras is heavy, and reading presets must not need it (a model exists here,
    # so it is loaded already).
    import keras

    directory = Path(directory)
    if directory.exists() and not overwrite:
        raise FileExistsError(f"{directory}: already exists (pass overwrite=True to replace it)")
    if directory.exists() and not directory.is_dir():
        raise FileExistsError(f"{directory}: exists and is not a folder")
    config = {
        "module": type(model).__module__,
        "class_name": type(model).__name__,
        "config": model.get_config(),
        "registered_name": keras.saving.get_registered_name(type(model)),
        # Keras's deserializer (keras-hub's loader) builds from this before loading weights;
        # DMCodec builds for any batch and length.
        "build_config": {"input_shape": [None, None]},
    }
    info = dict(metadata or {})
    info.update(
        keras_version=keras.version(),
        keras_dmcodec_version=__version__,
        parameter_count=int(model.count_params()),
        date_saved=datetime.datetime.now().strftime("%Y-%m-%d@%H:%M:%S"),
    )
    config_text = json.dumps(config, indent=2) + "\n"
    metadata_text = json.dumps(info, indent=2) + "\n"
    with atomic_directory(directory, prefix=".tmp_preset_") as tmp:
        if directory.is_dir():
            for entry in directory.iterdir():
                if entry.name in PRESET_FILES:
                    continue
                if entry.is_dir():
                    shutil.copytree(entry, tmp / entry.name, symlinks=True)
                else:
                    shutil.copy2(entry, tmp / entry.name, follow_symlinks=False)
        (tmp / CONFIG_FILE).write_text(config_text)
        (tmp / METADATA_FILE).write_text(metadata_text)
        model.save_weights(tmp / WEIGHTS_FILE)
    return directory
