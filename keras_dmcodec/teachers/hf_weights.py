"""Reading Hugging Face-format model directories (config + weights) without ``transformers``.

A Hugging Face model directory holds ``config.json`` and its weights as
``model.safetensors`` (preferred), a sharded ``model.safetensors.index.json``, or
``pytorch_model.bin`` (read with ``torch.load(weights_only=True)``: no pickle code runs).
Every problem is a ``HFWeightsError``, a ``ValueError`` with a one-line message
naming the file and the problem.
"""

import json
import pickle
from pathlib import Path

import numpy as np
from safetensors import SafetensorError, safe_open


class HFWeightsError(ValueError):
    """A Hugging Face directory, config or weight file that cannot be used."""


def _directory(directory):
    path = Path(directory)
    if not path.exists():
        raise HFWeightsError(f"model directory not found: {path}")
    if not path.is_dir():
        raise HFWeightsError(f"not a model directory (a file): {path}")
    return path


def read_json(path, required=True):
    """Reads a JSON object from ``path``; ``None`` if absent and not ``required``."""
    path = Path(path)
    if not path.is_file():
        if required:
            raise HFWeightsError(f"missing {path.name} in {path.parent}")
        return None
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise HFWeightsError(f"{path} is not valid JSON: {error}") from None
    if not isinstance(value, dict):
        raise HFWeightsError(f"{path} must hold a JSON object, not {type(value).__name__}")
    return value


def read_config(directory):
    """``config.json`` of a Hugging Face model directory, as a dict."""
    return read_json(_directory(directory) / "config.json")


def weights_file(directory):
    """The weight file to read: safetensors first, then a safetensors index, then torch."""
    path = _directory(directory)
    for name in ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin"):
        if (path / name).is_file():
            return path / name
    raise HFWeightsError(
        f"no weights in {path}: expected model.safetensors, model.safetensors.index.json "
        "or pytorch_model.bin"
    )


def _to_float32(name, array, path):
    array = np.asarray(array)
    # Not np.issubdtype(..., np.floating): bfloat16 (ml_dtypes) is not a numpy floating type.
    if array.dtype.kind in "biuOSUc":
        raise HFWeightsError(f"tensor {name} in {path.name} has dtype {array.dtype}, not float")
    return array.astype(np.float32, copy=False)


def _read_safetensors(path):
    tensors = {}
    try:
        with safe_open(str(path), framework="np") as handle:
            for name in handle.keys():
                try:
                    tensors[name] = handle.get_tensor(name)
                except (TypeError, ValueError):
                    tensors[name] = None  # bfloat16 has no numpy dtype: read below via torch
        missing = [name for name, value in tensors.items() if value is None]
        if missing:
            with safe_open(str(path), framework="pt") as handle:
                for name in missing:
                    tensors[name] = handle.get_tensor(name).float().numpy()
    except (SafetensorError, OSError) as error:
        raise HFWeightsError(f"cannot read {path}: {error}") from None
    return {name: _to_float32(name, value, path) for name, value in tensors.items()}


def _read_torch(path):
    # Heavy optional dependency (torch), only for pytorch_model.bin checkpoints.
    import torch

    try:
        state = torch.load(str(path), map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError, ValueError) as error:
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error)
        raise HFWeightsError(f"cannot read {path} as a weights-only torch file: {first_line}") \
            from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise HFWeightsError(f"{path} holds a {type(state).__name__}, not a state dict")
    tensors = {}
    for name, value in state.items():
        if not isinstance(value, torch.Tensor):
            raise HFWeightsError(f"entry {name!r} in {path.name} is not a tensor")
        if not value.is_floating_point():
            raise HFWeightsError(f"tensor {name} in {path.name} has dtype "
                                 f"{str(value.dtype).removeprefix('torch.')}, not float")
        tensors[name] = value.detach().float().numpy()
    return tensors


def load_state_dict(directory):
    """Every tensor of a Hugging Face model directory as float32 numpy arrays.

    Returns ``(tensors, path)``: a dict from the checkpoint's names to arrays in
    the checkpoint's (PyTorch) layout, and the file they came from.
    """
    path = weights_file(directory)
    if path.name.endswith(".index.json"):
        index = read_json(path)
        weight_map = index.get("weight_map")
        if not isinstance(weight_map, dict) or not weight_map:
            raise HFWeightsError(f"{path} has no weight_map")
        tensors = {}
        for shard in sorted(set(weight_map.values())):
            shard_path = path.parent / shard
            if Path(shard).name != shard or not shard_path.is_file():
                raise HFWeightsError(f"shard {shard!r} named in {path.name} is missing")
            tensors.update(_read_safetensors(shard_path))
        return tensors, path
    if path.suffix == ".safetensors":
        return _read_safetensors(path), path
    return _read_torch(path), path


def strip_prefix(tensors, prefixes):
    """Removes the first of ``prefixes`` that some tensor names start with, from those names.

    Head checkpoints (``Wav2Vec2ForCTC``) keep the base model under a prefix
    (``wav2vec2.``) and their heads (``lm_head.``) at the top level; base-model
    checkpoints (``HubertModel``) have no prefix.
    """
    for prefix in prefixes:
        if any(name.startswith(prefix) for name in tensors):
            return {(name[len(prefix):] if name.startswith(prefix) else name): value
                    for name, value in tensors.items()}
    return dict(tensors)


class WeightLoader:
    """Assigns named checkpoint tensors to Keras variables, checking names and shapes.

    Args:
        tensors: dict from checkpoint names to numpy arrays.
        source: str. The file the tensors came from (for error messages).
        ignore_prefixes: names starting with one of these may stay unused
            (training-only tensors such as ``masked_spec_embed``).

    Example:
    >>> layer = keras.layers.Dense(2)
    >>> layer.build((None, 3))
    >>> loader = WeightLoader({"w": np.ones((2, 3)), "b": np.zeros(2)}, "x.safetensors")
    >>> loader.assign(layer.kernel, "w", transpose=(1, 0))
    >>> loader.assign(layer.bias, "b")
    >>> loader.finish()
    """

    def __init__(self, tensors, source, ignore_prefixes=()):
        self.tensors = tensors
        self.source = Path(source).name
        self.ignore_prefixes = tuple(ignore_prefixes)
        self.used = set()

    def has(self, name):
        return name in self.tensors

    def get(self, name, shape=None, transpose=None):
        """The tensor ``name`` (transposed by ``transpose``), checked against ``shape``."""
        if name not in self.tensors:
            raise HFWeightsError(f"missing tensor {name} in {self.source}")
        value = self.tensors[name]
        if transpose is not None:
            if value.ndim != len(transpose):
                raise HFWeightsError(f"tensor {name} in {self.source} has rank {value.ndim}, "
                                     f"expected {len(transpose)}")
            value = np.transpose(value, transpose)
        if shape is not None and tuple(value.shape) != tuple(shape):
            raise HFWeightsError(f"tensor {name} in {self.source} has shape {tuple(value.shape)} "
                                 f"(after layout change), the config expects {tuple(shape)}")
        self.used.add(name)
        return value

    def assign(self, variable, name, transpose=None):
        """Assigns the tensor ``name`` to a Keras ``variable`` (shape-checked)."""
        variable.assign(self.get(name, tuple(variable.shape), transpose))

    def finish(self):
        """Raises if a tensor was neither used nor ignorable (config and weights disagree)."""
        unused = sorted(name for name in self.tensors
                        if name not in self.used and not name.startswith(self.ignore_prefixes))
        if unused:
            more = f" (and {len(unused) - 1} more)" if len(unused) > 1 else ""
            raise HFWeightsError(f"unexpected tensor {unused[0]}{more} in {self.source}: "
                                 "the weights do not match this model or its config.json")
