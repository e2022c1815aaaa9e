"""Token files: one clip's RVQ codes plus what is needed to decode them safely.

A token file is an ``.npz`` (numpy zip, read with ``allow_pickle=False``) with:

=================  ==========================================================
``codes``          int16 ``[n_q, frames]`` (int32 when ``codebook_size`` > 32768)
``sample_rate``    int, the model's sample rate in Hz
``n_q``            int, codebooks stored (``codes.shape[0]``)
``num_samples``    int, original length in samples at ``sample_rate``
``hop_length``     int, samples per frame
``codebook_size``  int
``model``          str, the model's preset name (``ResolvedModel.name``: a preset name or
                   the preset folder's name), never a path
``fingerprint``    str, the whole model's fingerprint (``model_fingerprint(model).weights``)
``config_hash``    str, its architecture part (``model_fingerprint(model).config``)
``codebook_hash``  str, its codebook part (``model_fingerprint(model).codebooks``)
``format_version`` int, this layout's version (``FORMAT_VERSION``)
``version``        str, keras-dmcodec version that wrote the file
=================  ==========================================================

Format 1 files (no ``fingerprint``; ``model`` may be an absolute path) still load.
``check_compatible`` refuses tokens from another architecture or from other
codebooks (decoding them would give noise without an error). All failures are
``TokenFileError`` with a one-line message naming the file and the problem.

This module has no Keras import at module level, so data pipelines (e.g. Ray
workers) can read and write token files cheaply.
"""

import dataclasses
import hashlib
import json
import zipfile
from pathlib import Path

import numpy as np

from keras_dmcodec import __version__
from keras_dmcodec.utils.files import atomic_output

# 2: ``model`` is the preset name (not a path) and ``fingerprint`` was added.
FORMAT_VERSION = 2
SUFFIX = ".npz"

# Config keys that change which codes a waveform gets (training-only knobs such as
# EMA decay, k-means settings or quantiser dropout do not).
ARCHITECTURE_KEYS = (
    "sample_rate", "n_filters", "ratios", "dimension", "n_q", "codebook_size", "lstm_layers",
    "bidirectional", "dilation_base", "residual_kernel_size", "n_residual_layers", "causal",
    "compress",
)
_REQUIRED = ("codes", "sample_rate", "n_q", "num_samples", "hop_length", "codebook_size",
             "model", "config_hash", "codebook_hash", "format_version", "version")
_OPTIONAL = ("fingerprint",)  # absent from format 1


class TokenFileError(ValueError):
    """A token file that cannot be read or does not fit the model, with a one-line reason."""


def config_fingerprint(config):
    """Short hash of the architecture part of a ``DMCodec`` config (dict) or model.

    The ``config`` field of ``model_fingerprint``; usable on a config alone (a preset's
    ``config.json``), before any model is built.

    Example:
    >>> a = config_fingerprint(dict(sample_rate=16000, n_q=8, codebook_size=1024))
    >>> a == config_fingerprint(dict(sample_rate=16000, n_q=8, codebook_size=1024, decay=0.9))
    True
    >>> a == config_fingerprint(dict(sample_rate=24000, n_q=8, codebook_size=1024))
    False
    """
    if not isinstance(config, dict):
        config = config.get_config()
    subset = {}
    for key in ARCHITECTURE_KEYS:
        value = config.get(key)
        subset[key] = list(value) if isinstance(value, (list, tuple)) else value
    blob = json.dumps(subset, sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


@dataclasses.dataclass(frozen=True)
class ModelFingerprint:
    """What identifies a model, at three levels (16 hex digits each).

    Attributes:
        config: the architecture (``config_fingerprint``): which codes a waveform can get.
        codebooks: the codebook values: two models with equal ``config`` and ``codebooks``
            give codes the same meaning, so token files of one decode with the other.
        weights: every weight and setting: the model's identity (``str(fingerprint)``),
            which changes with any training step.
    """

    config: str
    codebooks: str
    weights: str

    def __str__(self):
        return self.weights


def _array_digest(arrays, header=None):
    # No shapes are hashed: the config, in the header or in the fingerprint beside, fixes them.
    digest = hashlib.sha256()
    if header is not None:
        digest.update(json.dumps(header, sort_keys=True, default=str).encode())
    for array in arrays:
        digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()[:16]


def model_fingerprint(model):
    """The one fingerprint of a model: a ``ModelFingerprint``; the same on every backend.

    Duck-typed: ``model`` needs ``get_config()`` and ``get_weights()`` (numpy arrays), and
    for the ``codebooks`` part a ``quantizer.quantizers`` list whose items have a
    ``codebook`` variable (a ``DMCodec``; anything else gets ``codebooks=""``). Token files,
    tokenized shards, evaluation results and export manifests all record it.

    Example:
    >>> codec = DMCodec(n_filters=4, dimension=16, semantic_dimension=8, n_q=2,
    ...                 codebook_size=16, lstm_layers=1)  # doctest: +SKIP
    >>> codec.build((None, None))  # doctest: +SKIP
    >>> fingerprint = model_fingerprint(codec)  # doctest: +SKIP
    >>> fingerprint.config == config_fingerprint(codec.get_config())  # doctest: +SKIP
    True
    """
    config = {k: v for k, v in model.get_config().items() if k != "name"}
    quantizers = getattr(getattr(model, "quantizer", None), "quantizers", None) or []
    codebooks = [np.asarray(vq.codebook.numpy(), dtype=np.float32) for vq in quantizers]
    return ModelFingerprint(
        config=config_fingerprint(config),
        codebooks=_array_digest(codebooks) if codebooks else "",
        weights=_array_digest([np.asarray(w) for w in model.get_weights()], header=config),
    )


@dataclasses.dataclass
class TokenFile:
    """Contents of a token file (see the module docstring for the fields)."""

    codes: np.ndarray
    sample_rate: int
    num_samples: int
    hop_length: int
    codebook_size: int
    model: str
    config_hash: str
    codebook_hash: str
    version: str
    format_version: int = FORMAT_VERSION
    fingerprint: str = ""

    @property
    def n_q(self):
        return int(self.codes.shape[0])

    @property
    def frames(self):
        return int(self.codes.shape[1])

    @property
    def duration(self):
        """Seconds of audio the codes stand for."""
        return self.num_samples / self.sample_rate

    @property
    def model_label(self):
        """The model these tokens need, for messages: its name and fingerprint."""
        if self.fingerprint:
            return f"{self.model!r} (fingerprint {self.fingerprint})"
        return f"{self.model!r} (config {self.config_hash}, codebooks {self.codebook_hash})"

    @classmethod
    def from_model(cls, model, codes, num_samples, model_name, fingerprint=None):
        """Builds a token file for ``codes`` ``[n_q, frames]`` produced by ``model``.

        Args:
            model: the codec.
            codes: int array ``[n_q, frames]``.
            num_samples: original length in samples.
            model_name: the model's preset name (``ResolvedModel.name``).
            fingerprint: the model's ``ModelFingerprint`` (computed when None; pass it
                when writing many files with one model).
        """
        fingerprint = model_fingerprint(model) if fingerprint is None else fingerprint
        return cls(
            codes=np.asarray(codes), sample_rate=model.sample_rate, num_samples=int(num_samples),
            hop_length=model.hop_length, codebook_size=model.codebook_size, model=str(model_name),
            config_hash=fingerprint.config, codebook_hash=fingerprint.codebooks,
            fingerprint=fingerprint.weights, version=__version__,
        )


def codes_dtype(codebook_size):
    """int16 while every code fits (codebook_size <= 32768), else int32."""
    return np.int16 if codebook_size <= 32768 else np.int32


def validate(tokens, name="tokens"):
    """Checks a ``TokenFile``'s internal consistency; returns it with codes in the storage dtype."""
    codes = np.asarray(tokens.codes)
    if codes.ndim != 2:
        raise TokenFileError(f"{name}: codes must have shape [n_q, frames], got {codes.shape}")
    if not np.issubdtype(codes.dtype, np.integer):
        raise TokenFileError(f"{name}: codes must be integers, got dtype {codes.dtype}")
    if codes.shape[0] < 1 or codes.shape[1] < 1:
        raise TokenFileError(f"{name}: codes are empty (shape {codes.shape})")
    if tokens.codebook_size < 1 or tokens.hop_length < 1 or tokens.sample_rate < 1:
        raise TokenFileError(f"{name}: codebook_size, hop_length and sample_rate must be positive")
    low, high = int(codes.min()), int(codes.max())
    if low < 0 or high >= tokens.codebook_size:
        raise TokenFileError(
            f"{name}: codes out of range [0, {tokens.codebook_size}): found {low}..{high}"
        )
    frames = codes.shape[1]
    if not (frames - 1) * tokens.hop_length < tokens.num_samples <= frames * tokens.hop_length:
        raise TokenFileError(
            f"{name}: num_samples {tokens.num_samples} does not match {frames} frames of "
            f"{tokens.hop_length} samples"
        )
    tokens.codes = codes.astype(codes_dtype(tokens.codebook_size))
    return tokens


def save_tokens(path, tokens, overwrite=False):
    """Writes a ``TokenFile`` to ``path`` (``.npz``) atomically; no overwrite unless asked."""
    path = Path(path)
    if path.suffix != SUFFIX:
        raise TokenFileError(f"{path}: token files must end in {SUFFIX}")
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path}: already exists (use --force to replace it)")
    tokens = validate(tokens, name=str(path))
    fields = dict(
        codes=tokens.codes, sample_rate=np.int64(tokens.sample_rate), n_q=np.int64(tokens.n_q),
        num_samples=np.int64(tokens.num_samples), hop_length=np.int64(tokens.hop_length),
        codebook_size=np.int64(tokens.codebook_size), model=np.str_(tokens.model),
        config_hash=np.str_(tokens.config_hash), codebook_hash=np.str_(tokens.codebook_hash),
        format_version=np.int64(tokens.format_version), version=np.str_(tokens.version),
        fingerprint=np.str_(tokens.fingerprint),
    )
    with atomic_output(path) as tmp:
        np.savez(tmp, **fields)
    return path


def load_tokens(path):
    """Reads and validates a token file (no pickle); returns a ``TokenFile``.

    Raises:
        TokenFileError: missing, corrupt or truncated file, missing fields,
            wrong shape or dtype, codes out of range, inconsistent lengths.
    """
    path = Path(path)
    if not path.exists():
        raise TokenFileError(f"{path}: no such file")
    if path.is_dir():
        raise TokenFileError(f"{path}: is a directory, expected a token file")
    try:
        with np.load(path, allow_pickle=False) as data:
            if not hasattr(data, "files"):
                raise TokenFileError(f"{path}: not a token file (a bare .npy array, not an .npz)")
            missing = [key for key in _REQUIRED if key not in data.files]
            if missing:
                raise TokenFileError(f"{path}: not a token file (missing {', '.join(missing)})")
            fields = {key: data[key] for key in _REQUIRED + _OPTIONAL if key in data.files}
    except TokenFileError:
        raise
    except (zipfile.BadZipFile, EOFError, OSError, ValueError, KeyError) as err:
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise TokenFileError(f"{path}: corrupt or truncated token file ({reason})") from None
    try:
        scalars = {key: value.item() for key, value in fields.items() if key != "codes"}
        tokens = TokenFile(
            codes=fields["codes"], sample_rate=int(scalars["sample_rate"]),
            num_samples=int(scalars["num_samples"]), hop_length=int(scalars["hop_length"]),
            codebook_size=int(scalars["codebook_size"]), model=str(scalars["model"]),
            config_hash=str(scalars["config_hash"]), codebook_hash=str(scalars["codebook_hash"]),
            version=str(scalars["version"]), format_version=int(scalars["format_version"]),
            fingerprint=str(scalars.get("fingerprint", "")),
        )
    except (ValueError, TypeError) as err:
        raise TokenFileError(f"{path}: malformed field ({err})") from None
    if tokens.format_version > FORMAT_VERSION:
        raise TokenFileError(
            f"{path}: token format version {tokens.format_version} is newer than this "
            f"keras-dmcodec supports ({FORMAT_VERSION}); upgrade keras-dmcodec"
        )
    tokens = validate(tokens, name=str(path))
    if int(scalars["n_q"]) != tokens.n_q:
        raise TokenFileError(
            f"{path}: n_q {scalars['n_q']} does not match codes shape {tuple(tokens.codes.shape)}"
        )
    return tokens


def check_compatible(tokens, model, name="tokens", check_codebooks=True, fingerprint=None):
    """Raises ``TokenFileError`` unless ``model`` can decode ``tokens`` meaningfully.

    The architecture and the codebooks must match (the ``config`` and ``codebooks`` parts
    of ``model_fingerprint``); the decoder's other weights may differ (a decoder fine-tuned
    with frozen codebooks decodes the same codes).

    Args:
        tokens: a ``TokenFile``.
        model: the codec.
        name: the token file's name, for messages.
        check_codebooks: also compare the codebook values.
        fingerprint: the model's ``ModelFingerprint`` (computed when None).
    """
    fingerprint = model_fingerprint(model) if fingerprint is None else fingerprint
    if tokens.config_hash != fingerprint.config:
        raise TokenFileError(
            f"{name}: written by a different model configuration ({tokens.model!r}, config "
            f"{tokens.config_hash}) than the one loaded (config {fingerprint.config})"
        )
    if tokens.n_q > model.n_q:
        raise TokenFileError(f"{name}: {tokens.n_q} codebooks but the model has {model.n_q}")
    if tokens.codebook_size != model.codebook_size or tokens.hop_length != model.hop_length:
        raise TokenFileError(f"{name}: codebook size or hop does not match the model")
    if check_codebooks and tokens.codebook_hash != fingerprint.codebooks:
        raise TokenFileError(
            f"{name}: codes come from other codebooks ({tokens.model!r}, codebooks "
            f"{tokens.codebook_hash}) than the loaded model's ({fingerprint.codebooks}); "
            "decode with the model that encoded them"
        )
    return tokens
