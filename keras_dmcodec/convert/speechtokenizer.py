"""Reference SpeechTokenizer / DM-Codec PyTorch checkpoints -> Keras ``DMCodec``.

The DM-Codec repository (``codec/model.py``) and SpeechTokenizer 1.0.1
(``speechtokenizer/model.py``) share one model definition, so one converter
serves both. A reference checkpoint is a PyTorch state dict:

- weight-normalised convolutions ``<path>.conv.conv.{weight_g,weight_v,bias}``
  (transposed: ``<path>.convtr.convtr.*``), torch layout ``(out, in, k)``
  (transposed: ``(in, out, k)``);
- LSTMs ``<path>.lstm.{weight_ih,weight_hh,bias_ih,bias_hh}_l<k>[_reverse]``;
- RVQ buffers ``quantizer.vq.layers.<i>._codebook.{embed,embed_avg,cluster_size,inited}``;
- ``transform.{weight,bias}``, the distillation projection (absent when the
  config's ``semantic_dimension`` equals ``dimension``: an identity there).

``encoder.model.<i>`` / ``decoder.model.<i>`` index the same positions as our
``SEANetEncoder.model_layers`` / ``SEANetDecoder.model_layers``.

PyTorch is imported only inside the functions that read ``.pt`` files, so
importing this module (and converting from a dict of numpy arrays or a
``.safetensors`` file) does not need it.
"""

import hashlib
import json
from pathlib import Path

import numpy as np

from keras_dmcodec.layers.conv import NormConv1D, NormConv1DTranspose
from keras_dmcodec.layers.seanet import SLSTM, SEANetResnetBlock
from keras_dmcodec.models.dmcodec import DMCodec
from keras_dmcodec.presets import save_preset
from keras_dmcodec.utils.files import atomic_output

# Keys of the reference JSON config that the model code reads, and our names for them.
_INT_KEYS = {
    "n_filters": "n_filters",
    "dimension": "dimension",
    "semantic_dimension": "semantic_dimension",
    "dilation_base": "dilation_base",
    "residual_kernel_size": "residual_kernel_size",
    "n_residual_layers": "n_residual_layers",
    "lstm_layers": "lstm_layers",
    "codebook_size": "codebook_size",
    "n_q": "n_q",
}
_REQUIRED_KEYS = sorted(set(_INT_KEYS) | {"strides", "bidirectional"})
_MIN_VALUE = {"n_residual_layers": 0, "lstm_layers": 0}

# Values the reference model code hard-codes (SEANet and RVQ defaults it never overrides).
_FIXED_KWARGS = dict(
    causal=False,
    compress=2,
    decay=0.99,
    kmeans_init=True,
    kmeans_iters=50,
    threshold_ema_dead_code=2.0,
)

# Keys under which training scripts nest the generator's state dict.
_WRAPPER_KEYS = ("generator", "model", "state_dict", "model_state_dict", "module")


def config_from_reference(cfg):
    """Maps a reference ``config.json`` (as a dict) to ``DMCodec`` keyword arguments.

    Only the keys the reference model code reads are used (``n_filters``,
    ``strides``, ``dimension``, ``semantic_dimension``, ``bidirectional``,
    ``dilation_base``, ``residual_kernel_size``, ``n_residual_layers``,
    ``lstm_layers``, ``activation``, ``codebook_size``, ``n_q``, ``sample_rate``);
    training keys are ignored. Configurations our model cannot represent
    (another activation, e.g. the ``Snake`` variant) raise ``ValueError``.

    Args:
        cfg: dict. The parsed reference configuration.

    Returns:
        dict of ``DMCodec`` keyword arguments.

    Example:
    >>> kwargs = config_from_reference({
    ...     "n_filters": 64, "strides": [8, 5, 4, 2], "dimension": 1024,
    ...     "semantic_dimension": 768, "bidirectional": True, "dilation_base": 2,
    ...     "residual_kernel_size": 3, "n_residual_layers": 1, "lstm_layers": 2,
    ...     "activation": "ELU", "codebook_size": 1024, "n_q": 8, "sample_rate": 16000})
    >>> kwargs["ratios"], kwargs["n_q"], kwargs["semantic_dimension"]
    ([8, 5, 4, 2], 8, 768)
    """
    if not isinstance(cfg, dict):
        raise ValueError(f"reference config must be a JSON object, got {type(cfg).__name__}")
    missing = [key for key in _REQUIRED_KEYS if cfg.get(key) is None]
    if missing:
        raise ValueError(f"reference config lacks required model keys: {', '.join(missing)}")

    activation = cfg.get("activation", "ELU")
    if activation != "ELU":
        raise ValueError(
            f"reference config uses activation {activation!r}; only 'ELU' (SpeechTokenizer "
            "and DM-Codec) is supported, not e.g. the 'Snake' variant"
        )
    kwargs = {}
    for key, name in _INT_KEYS.items():
        value = cfg[key]
        low = _MIN_VALUE.get(key, 1)
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"reference config {key!r} must be an integer >= {low}, got {value!r}")
        kwargs[name] = value
    strides = cfg["strides"]
    if (not isinstance(strides, (list, tuple)) or not strides
            or any(isinstance(s, bool) or not isinstance(s, int) or s < 1 for s in strides)):
        raise ValueError(f"reference config 'strides' must be a list of positive integers, "
                         f"got {strides!r}")
    bidirectional = cfg["bidirectional"]
    if not isinstance(bidirectional, bool):
        raise ValueError(f"reference config 'bidirectional' must be true or false, "
                         f"got {bidirectional!r}")
    if bidirectional and kwargs["lstm_layers"] == 0:
        # The reference then sizes the last encoder conv for 2x channels that nothing produces.
        raise ValueError("reference config has bidirectional=true with lstm_layers=0, which the "
                         "reference model itself cannot run")
    sample_rate = cfg.get("sample_rate", 16000)
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, int) or sample_rate < 1:
        raise ValueError(f"reference config 'sample_rate' must be a positive integer, "
                         f"got {sample_rate!r}")
    kwargs.update(sample_rate=sample_rate, ratios=[int(s) for s in strides],
                  bidirectional=bidirectional, **_FIXED_KWARGS)
    return kwargs


# ----------------------------------------------------------------- key mapping
def _shape(variable):
    """A variable's shape as a tuple of Python ints."""
    return tuple(int(d) for d in variable.shape)


def _conv_entries(layer, prefix):
    """Entries for a ``NormConv1D`` / ``NormConv1DTranspose`` at reference ``prefix``.

    Our kernels are ``(k, a, b)`` with ``b`` the weight-norm axis; the torch
    weight is ``(b, a, k)`` for both kinds (conv ``(out, in, k)``, transposed
    ``(in, out, k)``), so one transpose serves both.
    """
    entries = []
    if layer.norm == "weight_norm":
        k, a, b = _shape(layer.kernel_v)
        entries.append((layer.kernel_v, {f"{prefix}.weight_v": (b, a, k)},
                        lambda v: np.transpose(v, (2, 1, 0))))
        entries.append((layer.kernel_g, {f"{prefix}.weight_g": (b, 1, 1)},
                        lambda g: g.reshape(-1)))
    else:
        k, a, b = _shape(layer.kernel)
        entries.append((layer.kernel, {f"{prefix}.weight": (b, a, k)},
                        lambda w: np.transpose(w, (2, 1, 0))))
    if layer.bias is not None:
        entries.append((layer.bias, {f"{prefix}.bias": _shape(layer.bias)}, lambda x: x))
    return entries


def _lstm_cell_entries(cell, prefix, suffix):
    """Entries for one LSTM direction: torch ``W (4H, in)`` -> Keras ``(in, 4H)``.

    Both frameworks order the gates input, forget, cell, output; torch keeps two
    biases that are always summed, Keras one.
    """
    kernel, recurrent = _shape(cell.kernel), _shape(cell.recurrent_kernel)
    four_h = kernel[1]
    entries = [
        (cell.kernel, {f"{prefix}.weight_ih{suffix}": kernel[::-1]}, np.transpose),
        (cell.recurrent_kernel, {f"{prefix}.weight_hh{suffix}": recurrent[::-1]}, np.transpose),
    ]
    if cell.use_bias:
        entries.append((cell.bias, {f"{prefix}.bias_ih{suffix}": (four_h,),
                                    f"{prefix}.bias_hh{suffix}": (four_h,)},
                        lambda b_ih, b_hh: b_ih + b_hh))
    return entries


def _slstm_entries(slstm, prefix):
    """Entries for an ``SLSTM`` (one torch ``nn.LSTM`` over all layers)."""
    import keras

    entries = []
    for index, lstm in enumerate(slstm.lstms):
        if isinstance(lstm, keras.layers.Bidirectional):
            directions = [(lstm.forward_layer, ""), (lstm.backward_layer, "_reverse")]
        else:
            directions = [(lstm, "")]
        for layer, reverse in directions:
            entries += _lstm_cell_entries(layer.cell, f"{prefix}.lstm", f"_l{index}{reverse}")
    return entries


def _seanet_entries(seanet, prefix):
    """Entries for every weight of a SEANet encoder or decoder."""
    entries = []
    for index, layer in enumerate(seanet.model_layers):
        path = f"{prefix}.model.{index}"
        if isinstance(layer, NormConv1D):
            entries += _conv_entries(layer, f"{path}.conv.conv")
        elif isinstance(layer, NormConv1DTranspose):
            entries += _conv_entries(layer, f"{path}.convtr.convtr")
        elif isinstance(layer, SEANetResnetBlock):
            for position, sub in enumerate(layer.block):
                if isinstance(sub, NormConv1D):
                    entries += _conv_entries(sub, f"{path}.block.{position}.conv.conv")
            if layer.shortcut is not None:
                entries += _conv_entries(layer.shortcut, f"{path}.shortcut.conv.conv")
        elif isinstance(layer, SLSTM):
            entries += _slstm_entries(layer, path)
        elif layer.weights:
            raise TypeError(f"no reference mapping for layer {layer.name!r} "
                            f"({type(layer).__name__}) with weights")
    return entries


def _quantizer_entries(quantizer):
    """Entries for the RVQ codebook buffers (the reference's ``inited`` has shape ``(1,)``)."""
    entries = []
    for index, vq in enumerate(quantizer.quantizers):
        prefix = f"quantizer.vq.layers.{index}._codebook"
        entries += [
            (vq.codebook, {f"{prefix}.embed": _shape(vq.codebook)}, lambda x: x),
            (vq.embed_avg, {f"{prefix}.embed_avg": _shape(vq.embed_avg)}, lambda x: x),
            (vq.cluster_size, {f"{prefix}.cluster_size": _shape(vq.cluster_size)}, lambda x: x),
            (vq.initialized, {f"{prefix}.inited": (1,)}, lambda x: x.reshape(())),
        ]
    return entries


def _projection_is_identity(model):
    """True when the reference would use ``nn.Identity`` for ``transform``."""
    return model.distill_projection is not None and model.semantic_dimension == model.dimension


def reference_weight_map(model):
    """Every reference state-dict key our ``model`` takes, and where it goes.

    Returns a list of ``(variable, {reference_key: reference_shape}, fn)``;
    ``fn`` maps the reference arrays (in key order) to the variable's value.
    Builds the model first if needed.
    """
    if not model.built:
        model.build((None, None))
    entries = _seanet_entries(model.encoder, "encoder")
    entries += _quantizer_entries(model.quantizer)
    entries += _seanet_entries(model.decoder, "decoder")
    projection = model.distill_projection
    if projection is not None and not _projection_is_identity(model):
        kernel = _shape(projection.kernel)
        entries.append((projection.kernel, {"transform.weight": kernel[::-1]}, np.transpose))
        entries.append((projection.bias, {"transform.bias": _shape(projection.bias)},
                        lambda x: x))
    return entries


# ----------------------------------------------------------------- loading
def _to_numpy(value):
    """A float32 numpy array from a numpy array or a torch tensor (any float dtype)."""
    if hasattr(value, "detach"):  # torch.Tensor, without importing torch here
        value = value.detach().cpu()
        if value.is_floating_point():
            value = value.float()
        value = value.numpy()
    return np.asarray(value)


def _normalise_keys(state_dict):
    """Canonical reference keys: drops a ``module.`` prefix (DDP) and maps the newer
    ``parametrizations.weight.original0/1`` weight-norm names and plain (weight
    norm removed) conv ``weight`` tensors to ``weight_g`` / ``weight_v``."""
    out = {}
    for key, value in state_dict.items():
        if not isinstance(key, str):
            raise ValueError(f"state dict keys must be strings, got {key!r}")
        if key.startswith("module."):
            key = key[len("module."):]
        key = key.replace(".parametrizations.weight.original0", ".weight_g")
        key = key.replace(".parametrizations.weight.original1", ".weight_v")
        out[key] = value
    for key in [k for k in out if k.endswith((".conv.conv.weight", ".convtr.convtr.weight"))]:
        base = key[: -len("weight")]
        if base + "weight_v" in out or base + "weight_g" in out:
            continue
        weight = _to_numpy(out.pop(key)).astype("float32")
        if weight.ndim != 3:
            raise ValueError(f"{key}: expected a 3-D conv weight, got shape {weight.shape}")
        # weight = g * v / ||v|| with v = weight and g = ||weight|| reproduces it exactly.
        out[base + "weight_v"] = weight
        out[base + "weight_g"] = np.sqrt(np.sum(np.square(weight), axis=(1, 2), keepdims=True))
    return out


def _format_keys(keys):
    """One indented line per key, for error messages."""
    return "\n".join(f"    {key}" for key in keys)


def load_reference_weights(model, state_dict):
    """Copies a reference state dict into ``model`` (a ``DMCodec``).

    Every tensor is checked before any is written: keys the model has no place
    for, keys it needs that are missing, and shape mismatches are all reported
    in one ``ValueError`` (the first line summarises; the lines after list
    every key). Weight-norm parameters are copied as ``g`` and ``v`` (not
    folded), so further training behaves like the reference. When the
    reference's projection is an identity (``semantic_dimension == dimension``)
    our ``distill_projection`` is set to the identity.

    Args:
        model: ``DMCodec`` built with ``config_from_reference`` of the checkpoint's config.
        state_dict: mapping of reference key to numpy array (or torch tensor).

    Returns:
        ``model``, for chaining.
    """
    if not hasattr(state_dict, "items"):
        raise ValueError(f"state dict must be a mapping, got {type(state_dict).__name__}")
    state = _normalise_keys(state_dict)
    entries = reference_weight_map(model)
    expected = {}
    for _, shapes, _ in entries:
        expected.update(shapes)
    unknown = sorted(set(state) - set(expected))
    missing = sorted(set(expected) - set(state))
    arrays, mismatched = {}, []
    for key in sorted(set(state) & set(expected)):
        value = state[key]
        try:
            array = _to_numpy(value)
        except Exception as err:  # noqa: BLE001 - report any unreadable value by key
            mismatched.append(f"{key}: unreadable value of type {type(value).__name__} ({err})")
            continue
        if array.dtype.kind not in "fiu" or tuple(array.shape) != expected[key]:
            mismatched.append(f"{key}: checkpoint {tuple(array.shape)} {array.dtype}, "
                              f"expected {expected[key]} float")
            continue
        arrays[key] = array.astype("float32")
    if unknown or missing or mismatched:
        lines = [
            f"checkpoint does not match the model built from the config: {len(unknown)} "
            f"unknown key(s), {len(missing)} missing key(s), {len(mismatched)} shape "
            f"mismatch(es); first: {(unknown + missing + mismatched)[0]}"
        ]
        if unknown:
            lines.append(f"  unknown keys ({len(unknown)}):\n{_format_keys(unknown)}")
        if missing:
            lines.append(f"  missing keys ({len(missing)}):\n{_format_keys(missing)}")
        if mismatched:
            lines.append(f"  shape mismatches ({len(mismatched)}):\n{_format_keys(mismatched)}")
        raise ValueError("\n".join(lines))

    for variable, shapes, fn in entries:
        value = fn(*(arrays[key] for key in shapes))
        variable.assign(np.array(value, dtype=variable.dtype, order="C"))
    if _projection_is_identity(model):
        projection = model.distill_projection
        projection.kernel.assign(np.eye(model.dimension, dtype=projection.kernel.dtype))
        projection.bias.assign(np.zeros(_shape(projection.bias), dtype=projection.bias.dtype))
    return model


# ----------------------------------------------------------------- files
def _unwrap_state_dict(obj, path):
    """The generator state dict inside what ``torch.load`` returned.

    The reference trainers save the bare state dict for the best model
    (``SpeechTokenizer_best_dev.pt`` / ``Model_best_dev.pt``) and a package
    dict with the state dict under ``"generator"`` for resumable checkpoints.
    """
    if not isinstance(obj, dict):
        raise ValueError(f"{path}: expected a state dict, found a {type(obj).__name__}")
    looks_like_model = any(isinstance(k, str) and k.split(".")[0] in
                           ("encoder", "decoder", "quantizer", "module") for k in obj)
    if not looks_like_model:
        for key in _WRAPPER_KEYS:
            if isinstance(obj.get(key), dict):
                return _unwrap_state_dict(obj[key], f"{path}[{key!r}]")
        raise ValueError(f"{path}: no SpeechTokenizer / DM-Codec state dict found (top-level "
                         f"keys: {', '.join(map(str, list(obj)[:10]))})")
    return obj


def read_state_dict(checkpoint_path):
    """Reads a reference checkpoint to a dict of numpy arrays.

    ``.safetensors`` files are read with the ``safetensors`` package; anything
    else with ``torch.load(..., map_location="cpu", weights_only=True)``, which
    refuses pickled code, so an untrusted file cannot execute anything.
    """
    path = Path(checkpoint_path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: checkpoint not found")
    if path.suffix == ".safetensors":
        try:
            from safetensors.numpy import load_file

            return load_file(str(path))
        except TypeError:  # dtypes numpy lacks (bfloat16): go through torch
            from safetensors.torch import load_file

            return {k: _to_numpy(v) for k, v in load_file(str(path)).items()}
        except Exception as err:  # noqa: BLE001 - malformed file -> clear error
            raise ValueError(f"{path}: not a readable safetensors file ({err})") from None
    import torch

    try:
        obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - pickle / zip errors of malformed or unsafe files
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ValueError(f"{path}: cannot read as a PyTorch state dict with weights_only=True "
                         f"({first})") from None
    state = _unwrap_state_dict(obj, path)
    return {key: _to_numpy(value) if hasattr(value, "detach") else value
            for key, value in state.items()}


def read_reference_config(config_path):
    """Parses a reference ``config.json`` (path) and returns the dict."""
    path = Path(config_path)
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: config not found") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{path}: invalid JSON config ({err})") from None


def convert_checkpoint(checkpoint_path, config_path):
    """Builds a ``DMCodec`` from a reference config and loads the checkpoint into it.

    Args:
        checkpoint_path: reference state dict (``.pt`` / ``.pth`` / ``.bin`` via
            ``torch.load(weights_only=True)``, or ``.safetensors``); a trainer
            package with the state dict under ``"generator"`` also works.
        config_path: the reference ``config.json`` (or an already parsed dict).

    Returns:
        the built ``DMCodec`` with the reference weights.
    """
    cfg = config_path if isinstance(config_path, dict) else read_reference_config(config_path)
    model = DMCodec(**config_from_reference(cfg))
    model.build((None, None))
    return load_reference_weights(model, read_state_dict(checkpoint_path))


def _sha256(path):
    """Hex SHA-256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def convert_to_file(checkpoint_path, config_path, out_path, overwrite=False):
    """Converts a reference checkpoint and writes it as a Keras model.

    ``out_path`` ending in ``.keras`` gives a single Keras archive (load with
    ``keras.saving.load_model``); any other path gives a preset directory with
    ``config.json`` + ``model.weights.h5`` (load with ``DMCodec.from_preset``),
    whose metadata names the source checkpoint and its SHA-256. Output is
    written to a temporary name beside ``out_path`` and renamed, so a failed
    conversion leaves nothing half-written.

    Args:
        checkpoint_path: reference state dict (see ``convert_checkpoint``).
        config_path: reference ``config.json``.
        out_path: ``*.keras`` file or preset directory to write.
        overwrite: replace an existing output (otherwise ``FileExistsError``).

    Returns:
        ``Path`` of what was written.
    """
    out = Path(out_path)
    if out.exists() or out.is_symlink():
        if not overwrite:
            raise FileExistsError(f"{out}: already exists (overwrite=True, or --force on the "
                                  "command line, replaces it)")
        if out.suffix == ".keras" and out.is_dir():
            raise FileExistsError(f"{out}: is a directory, cannot replace it with a .keras file")
        if out.suffix != ".keras" and not out.is_dir():
            raise FileExistsError(f"{out}: is a file, cannot replace it with a preset directory")
    model = convert_checkpoint(checkpoint_path, config_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix != ".keras":
        metadata = {
            "converted_from": Path(checkpoint_path).name,
            "checkpoint_sha256": _sha256(checkpoint_path),
            "source": "SpeechTokenizer / DM-Codec reference PyTorch checkpoint",
        }
        return save_preset(model, out, overwrite=overwrite, metadata=metadata)
    with atomic_output(out) as tmp:
        model.save(tmp, overwrite=True)
    return out
