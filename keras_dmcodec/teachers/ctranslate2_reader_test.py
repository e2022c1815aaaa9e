import struct

import keras
import numpy as np
import pytest

from keras_dmcodec.teachers.ctranslate2_reader import (
    CTranslate2FormatError,
    packaged_whisper_model_dir,
    read_ctranslate2_model,
)

pytestmark = pytest.mark.skipif(keras.backend.backend() != "tensorflow",
                                reason="backend-independent; runs once")


def _string(text):
    raw = text.encode("utf-8")
    return struct.pack("<H", len(raw) + 1) + raw + b"\0"


def _variable(name, array, dtype_id, data=None):
    data = array.tobytes() if data is None else data
    header = _string(name) + struct.pack("<B", array.ndim)
    header += b"".join(struct.pack("<I", dim) for dim in array.shape)
    return header + struct.pack("<BI", dtype_id, len(data)) + data


def _model(variables, aliases=(), version=6, name="TestSpec", revision=2):
    blob = struct.pack("<I", version) + _string(name) + struct.pack("<II", revision, len(variables))
    blob += b"".join(variables)
    blob += struct.pack("<I", len(aliases))
    blob += b"".join(_string(alias) + _string(target) for alias, target in aliases)
    return blob


def _write(tmp_path, blob):
    path = tmp_path / "model.bin"
    path.write_bytes(blob)
    return path


def _sample_blob():
    bf16 = np.array([1.5, -2.0, 0.25], np.float32)
    bf16_bits = (bf16.view(np.uint32) >> 16).astype("<u2")
    return _model([
        _variable("a/f32", np.arange(6, dtype="<f4").reshape(2, 3), 0),
        _variable("a/f16", np.array([[0.5, -1.0]], "<f2"), 4),
        _variable("b/bf16", bf16, 5, data=bf16_bits.tobytes()),
        _variable("b/heads", np.array(6, "<i2"), 2),
        _variable("b/flag", np.array(1, "i1"), 1),
        _variable("b/ids", np.array([3, -4], "<i4"), 3),
    ], aliases=[("a/tied", "a/f16")])


def test_reads_every_dtype_scalars_and_aliases(tmp_path):
    path = _write(tmp_path, _sample_blob())
    variables, info = read_ctranslate2_model(path)
    assert info == dict(binary_version=6, spec_name="TestSpec", spec_revision=2,
                        num_variables=6)
    np.testing.assert_array_equal(variables["a/f32"], np.arange(6).reshape(2, 3))
    assert variables["a/f16"].dtype == np.float32
    np.testing.assert_array_equal(variables["a/f16"], [[0.5, -1.0]])
    np.testing.assert_array_equal(variables["b/bf16"], [1.5, -2.0, 0.25])
    assert variables["b/heads"].shape == () and int(variables["b/heads"]) == 6
    assert int(variables["b/flag"]) == 1
    np.testing.assert_array_equal(variables["b/ids"], [3, -4])
    assert variables["a/tied"] is variables["a/f16"]
    # The directory works as well as the file; float32=False keeps float16.
    raw, _ = read_ctranslate2_model(tmp_path, float32=False)
    assert raw["a/f16"].dtype == np.float16


def test_include_skips_unselected_variables(tmp_path):
    path = _write(tmp_path, _sample_blob())
    variables, _ = read_ctranslate2_model(path, include="a/")
    assert sorted(variables) == ["a/f16", "a/f32", "a/tied"]
    variables, _ = read_ctranslate2_model(path, include=lambda name: name.endswith("heads"))
    assert sorted(variables) == ["b/heads"]


def _assert_one_line_error(path, *fragments):
    with pytest.raises(CTranslate2FormatError) as info:
        read_ctranslate2_model(path)
    message = str(info.value)
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message, message


@pytest.mark.parametrize("keep", [0, 3, 10, 40, -5, -1])
def test_truncated_file_is_a_clear_error(tmp_path, keep):
    blob = _sample_blob()
    _assert_one_line_error(_write(tmp_path, blob[:keep] if keep > 0 else blob[:keep]),
                           "truncated")


def test_unsupported_version_and_dtype(tmp_path):
    _assert_one_line_error(_write(tmp_path, _model([], version=5)), "unsupported", "version 5")
    blob = _model([_variable("x", np.zeros(2, "<f4"), 9)])
    _assert_one_line_error(_write(tmp_path, blob), "unsupported dtype id 9", "x")


def test_corrupt_records(tmp_path):
    wrong_size = _model([_variable("x", np.zeros(2, "<f4"), 0, data=b"\0" * 4)])
    _assert_one_line_error(_write(tmp_path, wrong_size), "corrupt", "expected 8")
    trailing = _sample_blob() + b"junk"
    _assert_one_line_error(_write(tmp_path, trailing), "4 unexpected trailing bytes")
    huge_count = struct.pack("<I", 6) + _string("S") + struct.pack("<II", 1, 2**31)
    _assert_one_line_error(_write(tmp_path, huge_count), "variable count")
    no_nul = struct.pack("<I", 6) + struct.pack("<H", 2) + b"ab" + struct.pack("<II", 1, 0)
    _assert_one_line_error(_write(tmp_path, no_nul), "NUL")
    twice = _model([_variable("x", np.zeros(1, "<f4"), 0)] * 2)
    _assert_one_line_error(_write(tmp_path, twice), "appears twice")


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="no CTranslate2 model file"):
        read_ctranslate2_model(tmp_path / "absent")


def test_packaged_whisper_tiny_en():
    model_dir = packaged_whisper_model_dir()
    variables, info = read_ctranslate2_model(model_dir)
    assert info == dict(binary_version=6, spec_name="WhisperSpec", spec_revision=3,
                        num_variables=148)
    # 148 stored tensors plus the tied output projection alias.
    assert len(variables) == 149
    assert variables["decoder/projection/weight"] is variables["decoder/embeddings/weight"]
    assert variables["encoder/conv1/weight"].shape == (384, 80, 3)
    assert variables["encoder/conv2/weight"].shape == (384, 384, 3)
    qkv = variables["encoder/layer_0/self_attention/linear_0/weight"]
    assert qkv.shape == (1152, 384) and qkv.dtype == np.float32
    assert variables["encoder/position_encodings/encodings"].shape == (1500, 384)
    assert int(variables["encoder/num_heads"]) == 6
    encoder_only, _ = read_ctranslate2_model(model_dir, include="encoder/")
    assert len(encoder_only) == 56 and all(name.startswith("encoder/") for name in encoder_only)
