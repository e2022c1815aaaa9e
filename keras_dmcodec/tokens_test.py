import numpy as np
import pytest

from keras_dmcodec import DMCodec, presets
from keras_dmcodec.commands.codec import CommandError, model_for_tokens
from keras_dmcodec.tokens import (
    FORMAT_VERSION,
    TokenFile,
    TokenFileError,
    check_compatible,
    config_fingerprint,
    load_tokens,
    model_fingerprint,
    save_tokens,
    validate,
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
    assert model_fingerprint(retrained).config == model_fingerprint(model).config
    assert model_fingerprint(retrained).codebooks != model_fingerprint(model).codebooks
    with pytest.raises(TokenFileError, match="other codebooks"):
        check_compatible(tokens, retrained)
    check_compatible(tokens, retrained, check_codebooks=False)


def test_one_fingerprint(model):
    fingerprint = model_fingerprint(model)
    assert fingerprint.config == config_fingerprint(model.get_config())
    assert str(fingerprint) == fingerprint.weights and len(fingerprint.weights) == 16
    assert model_fingerprint(model) == fingerprint  # deterministic
    other = DMCodec(**CONFIG, seed=0)
    other.build((None, None))
    other.set_weights(model.get_weights())
    assert model_fingerprint(other) == fingerprint  # weights and config, not the object
    weights = other.get_weights()
    weights[0] = weights[0] + 1.0  # a change outside the codebooks (the first conv)
    other.set_weights(weights)
    changed = model_fingerprint(other)
    assert changed.weights != fingerprint.weights and changed.codebooks == fingerprint.codebooks


def test_name_and_fingerprint_stored(model, tmp_path):
    loaded = load_tokens(save_tokens(tmp_path / "a.npz", _tokens(model)))
    assert loaded.model == "tiny" and loaded.format_version == FORMAT_VERSION == 2
    assert loaded.fingerprint == model_fingerprint(model).weights
    assert loaded.config_hash == model_fingerprint(model).config
    assert "'tiny' (fingerprint " in loaded.model_label
    # Format 1 (no fingerprint; a path as the model) still loads.
    fields = dict(np.load(tmp_path / "a.npz"))
    del fields["fingerprint"]
    fields.update(format_version=np.int64(1), model=np.str_("/old/abs/preset"))
    np.savez(tmp_path / "old.npz", **fields)
    old = load_tokens(tmp_path / "old.npz")
    assert old.fingerprint == "" and old.model == "/old/abs/preset"
    check_compatible(old, model)


@pytest.fixture
def shipped(model, tmp_path, monkeypatch):
    """``saved_models/`` replaced by a folder holding ``model`` as the preset ``tiny``."""
    monkeypatch.setattr(presets, "SAVED_MODELS_DIR", tmp_path / "saved_models")
    model.save_to_preset(tmp_path / "saved_models" / "tiny")
    return tmp_path / "saved_models"


def test_decode_finds_the_model_by_name(model, shipped, tmp_path, monkeypatch):
    tokens = _tokens(model)
    monkeypatch.chdir(tmp_path)  # a folder named like the preset must not be picked up
    (tmp_path / "tiny").mkdir()
    resolved = model_for_tokens(tokens, "a.npz")
    assert resolved.name == "tiny" and resolved.directory == shipped / "tiny"
    assert resolved.fingerprint == tokens.fingerprint
    # --model overrides the name.
    assert model_for_tokens(tokens, "a.npz", model_spec=shipped / "tiny").name == "tiny"


def test_decode_refuses_with_one_line_that_says_how(model, shipped):
    tokens = _tokens(model)
    tokens.model = "elsewhere"
    with pytest.raises(CommandError) as err:
        model_for_tokens(tokens, "a.npz")
    assert str(err.value) == (
        f"a.npz: the tokens need model 'elsewhere' (fingerprint {tokens.fingerprint}) (not a "
        "preset name or a folder in saved_models/ here): pass its preset folder with --model")
    tokens.model = "/abs/path/to/preset"  # format 1 recorded a path: never loaded from a file
    with pytest.raises(CommandError, match="records a path, not a name.*--model"):
        model_for_tokens(tokens, "a.npz")
    # The preset of that name is another model: its codebooks differ.
    retrained = DMCodec(**CONFIG, seed=5)
    retrained.build((None, None))
    codebook = retrained.quantizer.quantizers[0].codebook
    codebook.assign(np.ones(codebook.shape, "float32"))  # as training would change it
    retrained.save_to_preset(shipped / "tiny", overwrite=True)
    tokens.model = "tiny"
    with pytest.raises(CommandError, match=r"^a.npz: the tokens need model 'tiny' .*, but "
                                           r".*tiny \(fingerprint \w+\) has another "
                                           "configuration or other codebooks: pass the model "
                                           "that encoded them with --model$"):
        model_for_tokens(tokens, "a.npz")
