import numpy as np
import pytest

from keras_dmcodec import DMCodec
from keras_dmcodec.tokens import (
    TokenFile,
    TokenFileError,
    check_compatible,
    codebook_fingerprint,
    config_fingerprint,
    load_tokens,
    save_tokens,
)

CONFIG = dict(n_filters=4, dimension=16, semantic_dimension=8, n_q=4, codebook_size=32,
              lstm_layers=1, kmeans_iters=3)


@pytest.fixture(scope="module")
def model():
    codec = DMCodec(**CONFIG, seed=0)
    codec.build((None, None))
    return codec


def _tokens(model, frames=7, num_samples=None):
    codes = np.arange(model.n_q * frames).reshape(model.n_q, frames) % model.codebook_size
    num_samples = frames * model.hop_length - 5 if num_samples is None else num_samples
    return TokenFile.from_model(model, codes, num_samples, "tiny")


def test_round_trip_and_dtype(model, tmp_path):
    path = save_tokens(tmp_path / "a.npz", _tokens(model))
    loaded = load_tokens(path)
    assert loaded.codes.dtype == np.int16
    np.testing.assert_array_equal(loaded.codes, _tokens(model).codes)
    assert (loaded.n_q, loaded.frames, loaded.num_samples) == (4, 7, 7 * 320 - 5)
    assert loaded.sample_rate == 16000 and loaded.model == "tiny"
    check_compatible(loaded, model)
    with pytest.raises(FileExistsError, match="already exists"):
        save_tokens(path, _tokens(model))
    save_tokens(path, _tokens(model), overwrite=True)


def test_large_codebooks_use_int32(model):
    tokens = _tokens(model)
    tokens.codebook_size = 40000
    from keras_dmcodec.tokens import validate

    assert validate(tokens).codes.dtype == np.int32


def test_bad_files(model, tmp_path):
    with pytest.raises(TokenFileError, match="no such file"):
        load_tokens(tmp_path / "missing.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a zip at all")
    with pytest.raises(TokenFileError, match="corrupt or truncated"):
        load_tokens(tmp_path / "junk.npz")
    good = save_tokens(tmp_path / "good.npz", _tokens(model)).read_bytes()
    (tmp_path / "cut.npz").write_bytes(good[: len(good) // 2])
    with pytest.raises(TokenFileError, match="corrupt or truncated"):
        load_tokens(tmp_path / "cut.npz")
    np.savez(tmp_path / "other.npz", codes=np.zeros((2, 3), np.int16))
    with pytest.raises(TokenFileError, match="missing sample_rate"):
        load_tokens(tmp_path / "other.npz")
    np.savez(tmp_path / "obj.npz", **{k: np.array([None], dtype=object) for k in
                                      ("codes", "sample_rate")})
    with pytest.raises(TokenFileError):
        load_tokens(tmp_path / "obj.npz")


def test_invalid_contents(model, tmp_path):
    def write(name, **changes):
        fields = dict(np.load(save_tokens(tmp_path / f"{name}_src.npz", _tokens(model))))
        fields.update(changes)
        np.savez(tmp_path / f"{name}.npz", **fields)
        return tmp_path / f"{name}.npz"

    with pytest.raises(TokenFileError, match=r"out of range \[0, 32\)"):
        load_tokens(write("range", codes=np.full((4, 7), 40, np.int16)))
    with pytest.raises(TokenFileError, match=r"shape \[n_q, frames\]"):
        load_tokens(write("shape", codes=np.zeros((1, 4, 7), np.int16)))
    with pytest.raises(TokenFileError, match="n_q 4 does not match"):
        load_tokens(write("nq", codes=np.zeros((3, 7), np.int16)))
    with pytest.raises(TokenFileError, match="does not match 7 frames"):
        load_tokens(write("len", num_samples=np.int64(10 * 320)))
    with pytest.raises(TokenFileError, match="integers"):
        load_tokens(write("float", codes=np.zeros((4, 7), np.float32)))


def test_wrong_model_is_refused(model):
    tokens = _tokens(model)
    other_config = DMCodec(**dict(CONFIG, codebook_size=64))
    other_config.build((None, None))
    with pytest.raises(TokenFileError, match="different model configuration"):
        check_compatible(tokens, other_config)
    retrained = DMCodec(**CONFIG, seed=5)
    retrained.build((None, None))
    codebook = retrained.quantizer.quantizers[0].codebook
    codebook.assign(np.ones(codebook.shape, "float32"))  # as training would change it
    assert config_fingerprint(retrained) == config_fingerprint(model)
    assert codebook_fingerprint(retrained) != codebook_fingerprint(model)
    with pytest.raises(TokenFileError, match="other codebooks"):
        check_compatible(tokens, retrained)
    check_compatible(tokens, retrained, check_codebooks=False)
