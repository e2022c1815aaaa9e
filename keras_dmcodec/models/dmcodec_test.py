import keras
import numpy as np
import pytest
from keras import ops

from keras_dmcodec import DMCodec
from keras_dmcodec.presets import PresetError
from keras_dmcodec.utils.testing import assert_codes_equal_up_to_ties


def _np(x):
    return ops.convert_to_numpy(x)


@pytest.fixture
def codec(tiny_config):
    model = DMCodec(**tiny_config, seed=7)
    audio = np.random.default_rng(0).normal(size=(2, 4000)).astype("float32") * 0.1
    model(audio, training=True)  # k-means initialises the codebooks
    return model


@pytest.fixture
def audio():
    return (np.random.default_rng(1).normal(size=(2, 3333)) * 0.1).astype("float32")


def test_reference_rates_without_building():
    model = DMCodec()
    assert model.hop_length == 320
    assert model.frame_rate == 50.0
    assert [model.bitrate(n) for n in range(1, 9)] == [500.0 * n for n in range(1, 9)]
    assert model.frames_for(16000) == 50 and model.frames_for(16001) == 51
    assert model.frames_for(0) == 0


def test_call_outputs(codec, audio):
    out = codec(audio)
    frames = codec.frames_for(audio.shape[1])
    assert tuple(out["audio"].shape) == audio.shape
    assert tuple(out["codes"].shape) == (2, 4, frames)
    assert tuple(out["latents"].shape) == (2, frames, 16)
    assert len(out["layer_outputs"]) == 4
    assert tuple(out["distill_features"].shape) == (2, frames, 8)
    assert np.isfinite(float(_np(out["commitment_loss"])))
    # [B, 1, T] gives the same result as [B, T]
    out3 = codec(audio[:, None, :])
    np.testing.assert_allclose(_np(out3["audio"]), _np(out["audio"]), atol=1e-6)


def test_training_call_updates_codebooks(codec, audio):
    before = _np(codec.quantizer.quantizers[0].codebook).copy()
    codec(audio, training=True)
    assert not np.array_equal(before, _np(codec.quantizer.quantizers[0].codebook))


@pytest.mark.parametrize("length", [1, 320, 3333])
def test_encode_decode_round_trip_shapes(codec, length):
    x = (np.random.default_rng(2).normal(size=(2, length)) * 0.1).astype("float32")
    codes = codec.encode(x)
    assert codes.dtype == np.int32 and codes.shape == (2, 4, codec.frames_for(length))
    assert codes.min() >= 0 and codes.max() < 32
    y = codec.decode(codes)
    assert y.shape == (2, codec.frames_for(length) * 320)
    assert codec.decode(codes, num_samples=length).shape == (2, length)
    # the graph path and the call path agree (up to float32 ties of the random codebooks)
    assert_codes_equal_up_to_ties(codec, x, _np(codec(x)["codes"]), codes)


def test_n_q_prefix_and_bitrate(codec, audio):
    codes = codec.encode(audio)
    for n_q in (1, 2, 3):
        np.testing.assert_array_equal(codec.encode(audio, n_q=n_q), codes[:, :n_q])
        assert codec.decode(codes[:, :n_q]).shape[0] == 2
    assert codec.bitrate(2) == 2 * 5 * 50  # log2(32) = 5 bits


def test_reconstruct_keeps_length(codec, audio):
    codes, y = codec.reconstruct(audio[:, None, :], n_q=2)
    assert codes.shape[1] == 2 and y.shape == audio.shape


def test_keras_file_round_trip_is_exact(codec, audio, tmp_path):
    codes = codec.encode(audio)
    y = codec.decode(codes)
    codec.save(tmp_path / "codec.keras")
    restored = keras.saving.load_model(tmp_path / "codec.keras")
    assert isinstance(restored, DMCodec)
    assert restored.get_config() == codec.get_config()
    np.testing.assert_array_equal(restored.encode(audio), codes)
    np.testing.assert_array_equal(restored.decode(codes), y)
    for a, b in zip(codec.weights, restored.weights, strict=True):
        np.testing.assert_array_equal(_np(a), _np(b))


def test_weights_file_and_preset_round_trip(codec, audio, tmp_path, tiny_config):
    codes = codec.encode(audio)
    codec.save_weights(tmp_path / "w.weights.h5")
    other = DMCodec(**tiny_config)
    other.build((None, None))
    other.load_weights(tmp_path / "w.weights.h5")
    np.testing.assert_array_equal(other.encode(audio), codes)

    codec.save_to_preset(tmp_path / "preset")
    with pytest.raises(FileExistsError):
        codec.save_to_preset(tmp_path / "preset")
    loaded = DMCodec.from_preset(tmp_path / "preset")
    np.testing.assert_array_equal(loaded.encode(audio), codes)
    np.testing.assert_array_equal(loaded.decode(codes), codec.decode(codes))
    # Overwriting replaces the model, and keeps the folder's other files (a model card).
    (tmp_path / "preset" / "README.md").write_text("model card")
    (tmp_path / "preset" / "plots").mkdir()
    (tmp_path / "preset" / "plots" / "a.png").write_bytes(b"png")
    other.save_to_preset(tmp_path / "preset", overwrite=True, metadata={"step": 2})
    assert (tmp_path / "preset" / "README.md").read_text() == "model card"
    assert (tmp_path / "preset" / "plots" / "a.png").read_bytes() == b"png"
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".tmp")) == []
    reloaded = DMCodec.from_preset(tmp_path / "preset")
    np.testing.assert_array_equal(reloaded.encode(audio), other.encode(audio))


def test_presets():
    with pytest.raises(PresetError, match="unknown preset"):
        DMCodec.from_preset("no_such_codec")
    with pytest.raises(PresetError, match="no trained weights"):
        DMCodec.from_preset("dmcodec_base")


def test_causal_codec_builds_and_runs(tiny_config):
    model = DMCodec(**{**tiny_config, "bidirectional": False}, causal=True)
    x = np.zeros((1, 640), "float32")
    assert model.decode(model.encode(x), num_samples=640).shape == (1, 640)


@pytest.mark.parametrize(
    "bad, error, message",
    [
        (np.zeros(100, "float32"), ValueError, "rank 1"),
        (np.zeros((1, 1, 1, 100), "float32"), ValueError, "rank 4"),
        (np.zeros((1, 2, 100), "float32"), ValueError, "2 channels"),
        (np.zeros((1, 100), "int16"), TypeError, "floating point"),
        (np.zeros((1, 0), "float32"), ValueError, "empty"),
        (np.zeros((0, 100), "float32"), ValueError, "empty"),
        (np.array([[0.0, np.nan, 0.1]], "float32"), ValueError, "NaN"),
        (np.array([[0.0, np.inf, 0.1]], "float32"), ValueError, "infinite"),
        ([[0.0, 0.1]], TypeError, "list"),
    ],
)
def test_audio_validation_errors(codec, bad, error, message):
    with pytest.raises(error, match=message):
        codec.encode(bad)


@pytest.mark.parametrize(
    "bad, error, message",
    [
        (np.full((1, 2, 5), 32, "int32"), ValueError, r"out of range \[0, 32\)"),
        (np.full((1, 2, 5), -1, "int32"), ValueError, "out of range"),
        (np.zeros((1, 2, 5), "float32"), TypeError, "integers"),
        (np.zeros((1, 5, 5), "int32"), ValueError, "5 codebooks but the model has 4"),
        (np.zeros((2, 5), "int32"), ValueError, "rank 2"),
        (np.zeros((1, 2, 0), "int32"), ValueError, "empty"),
    ],
)
def test_code_validation_errors(codec, bad, error, message):
    with pytest.raises(error, match=message):
        codec.decode(bad)


@pytest.mark.parametrize("n_q", [0, 5, 1.5, True])
def test_n_q_validation(codec, audio, n_q):
    with pytest.raises(ValueError, match=r"n_q must be an integer in \[1, 4\]"):
        codec.encode(audio, n_q=n_q)


def test_num_samples_validation(codec, audio):
    codes = codec.encode(audio)
    with pytest.raises(ValueError, match="num_samples"):
        codec.decode(codes, num_samples=codes.shape[2] * 320 + 1)


def test_codes_do_not_depend_on_previously_encoded_lengths(tiny_config):
    """A clip's codes are the same in a fresh model and after other lengths were encoded
    (TensorFlow's relaxed retracing used to give shape-generic graphs that round differently)."""
    from pathlib import Path

    from keras_dmcodec.audio import load_audio

    speech = sorted(Path(__file__).resolve().parents[2].glob("tests/data/speech/*/1/*.flac"))
    clip = load_audio(speech[0], sample_rate=16000)[0][None]
    others = [load_audio(p, sample_rate=16000)[0][None] for p in speech[1:3]]
    fresh = DMCodec(**tiny_config, seed=0)
    fresh(clip, training=True)  # k-means initialisation on real speech
    used = DMCodec(**tiny_config, seed=0)
    used.build((None, None))
    used.set_weights(fresh.get_weights())
    for other in others:
        used.encode(other)
    np.testing.assert_array_equal(used.encode(clip[:, :40000]), fresh.encode(clip[:, :40000]))


def test_compiled_cache_is_bounded_and_clearable(codec, audio):
    assert codec.compiled_cache_size == 16
    codes = codec.encode(audio)
    codec.set_compiled_cache_size(1)
    assert codec.compiled_cache_size == 1
    for n_q in (1, 2, 3):  # one compiled function per n_q; only the newest is kept
        codec.encode(audio, n_q=n_q)
    np.testing.assert_array_equal(codec.encode(audio), codes)
    codec.clear_compiled_cache()
    codec.set_compiled_cache_size(0)  # nothing kept: every call compiles afresh, same codes
    np.testing.assert_array_equal(codec.encode(audio), codes)
    with pytest.raises(ValueError, match="must be >= 0"):
        codec.set_compiled_cache_size(-1)


def test_public_helpers_for_callers(codec, audio):
    latents = _np(codec.encode_latents(audio))
    assert latents.shape == (2, codec.frames_for(audio.shape[1]), 16)
    np.testing.assert_array_equal(_np(codec.encode_latents(audio[:, None])), latents)
    assert tuple(codec.as_channels_last(ops.convert_to_tensor(audio)).shape) == (2, 3333, 1)
    assert codec.quantizer.check_n_q(None) == 4 and codec.quantizer.check_n_q(2) == 2


# Lengths around every padding edge case: 1 sample, shorter than the deepest conv's
# padding, exact multiples of the hop and one past them.
PADDED_LENGTHS = [3333, 1, 100, 320, 641, 1600, 4000]


def _padded_batch(lengths, seed=5):
    rng = np.random.default_rng(seed)
    clips = [(rng.normal(size=n) * 0.1).astype("float32") for n in lengths]
    batch = np.zeros((len(clips), max(lengths)), "float32")
    for row, clip in enumerate(clips):
        batch[row, : len(clip)] = clip
    return clips, batch


def test_padded_batch_codes_and_audio_equal_each_clip_alone(codec):
    clips, batch = _padded_batch(PADDED_LENGTHS)
    codes = codec.encode(batch, lengths=PADDED_LENGTHS)
    frames = [codec.frames_for(n) for n in PADDED_LENGTHS]
    assert codes.shape == (len(clips), 4, max(frames))
    for row, (clip, n) in enumerate(zip(clips, frames, strict=True)):
        alone = codec.encode(clip[None])
        assert_codes_equal_up_to_ties(codec, clip[None], codes[row: row + 1, :, :n], alone)
        assert np.all(codes[row, :, n:] == -1)  # padding frames are marked
    audio = codec.decode(codes, lengths=frames)  # -1 past a row's frames is ignored
    for row, n in enumerate(frames):
        alone = codec.decode(codes[row: row + 1, :, :n])[0]
        np.testing.assert_allclose(audio[row, : n * 320], alone, atol=1e-5)
        assert not audio[row, n * 320:].any()


def test_lengths_are_checked(codec, audio):
    with pytest.raises(ValueError, match=r"lengths must be in \[1, 3333\] samples"):
        codec.encode(audio, lengths=[3333, 4000])
    with pytest.raises(ValueError, match="lengths must be 2 integers"):
        codec.encode(audio, lengths=[3333])
    codes = codec.encode(audio)
    with pytest.raises(ValueError, match=r"lengths must be in \[1, 11\] frames"):
        codec.decode(codes, lengths=[0, 11])
    with pytest.raises(ValueError, match="out of range"):  # inside the valid frames
        codec.decode(np.where(codes > 0, -5, codes), lengths=[11, 11])


def test_any_length_runs_without_a_graph_per_length(codec):
    """TensorFlow traces one graph for every length; JAX pads to a few buckets; the codes
    of a clip do not depend on which lengths ran before it."""
    clips, _ = _padded_batch([4000, 3001, 2999, 1234, 777, 3200, 4000])
    first = codec.encode(clips[0][None])
    for clip in clips[1:]:
        codec.encode(clip[None])
    np.testing.assert_array_equal(codec.encode(clips[0][None]), first)
    assert len(codec._inference.items) == 1  # one entry (kind, n_q) serves every length
    if keras.backend.backend() == "tensorflow":
        run = codec._inference.items[("encode", 4)]
        assert run.traces() == 1
    from keras_dmcodec.ops.graphs import bucket_frames

    # 1-10 s at 50 Hz: 14 padded sizes, none more than 25 % longer than its clips
    sizes = {bucket_frames(f) for f in range(50, 501)}
    assert len(sizes) == 14
    assert all(f <= bucket_frames(f) <= 1.25 * f for f in range(17, 2000))


def test_mixed_bfloat16_policy(codec, audio, tiny_config):
    """``dtype="mixed_bfloat16"``: the same weights load, every layer but the quantiser
    computes in bfloat16, outputs the losses see are float32, and most codes stay."""
    mixed = DMCodec(**tiny_config, seed=7, dtype="mixed_bfloat16")
    mixed.build((None, None))
    mixed.set_weights(codec.get_weights())
    assert mixed.encoder.compute_dtype == "bfloat16"
    assert all(keras.backend.standardize_dtype(v.dtype) == "float32" for v in mixed.weights)
    # The shared ``audio`` fixture: the float model's programs for it are compiled by other
    # tests already (JAX's compilation cache is shared across the run).
    if keras.backend.backend() != "jax":  # eager JAX compiles every bfloat16 op: ~50 s
        out = mixed(audio)
        assert {keras.backend.standardize_dtype(out[k].dtype)
                for k in ("audio", "distill_features")} == {"float32"}
    codes, expected = mixed.encode(audio), codec.encode(audio)
    assert codes.shape == expected.shape
    # bfloat16 has 8 mantissa bits: the first codebook mostly agrees, later ones drift
    # (measured on the shipped model: 99 % / 88 %).
    assert np.mean(codes[:, 0] == expected[:, 0]) >= 0.7
    decoded = mixed.decode(expected)
    assert decoded.dtype == np.float32
    reference = codec.decode(expected)
    assert np.abs(decoded - reference).max() <= 0.1 * np.abs(reference).max() + 1e-3
