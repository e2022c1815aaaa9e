import numpy as np
import pytest
from keras import ops

from keras_dmcodec import DMCodec, inference
from keras_dmcodec.audio import bundled_sample, load_audio
from keras_dmcodec.utils.testing import assert_codes_equal_up_to_ties, untied_frames

CONFIG = dict(n_filters=4, dimension=16, semantic_dimension=8, n_q=4, codebook_size=32,
              lstm_layers=1, kmeans_iters=10)
CHUNK = 40


@pytest.fixture(scope="module")
def codec_and_audio():
    audio, _ = load_audio(bundled_sample()[0], sample_rate=16000)
    # A noise floor keeps silent stretches from mapping every frame onto tied codes.
    audio = (audio[:64123] + 0.01 * np.random.default_rng(0).standard_normal(64123))
    audio = audio.astype("float32")
    model = DMCodec(**CONFIG, seed=1)
    model.build((None, None))
    # Random weights give latents with a large common offset, which leaves every frame's
    # two nearest codes tied within float32 rounding; centring them (as training does in
    # effect) makes code comparisons meaningful.
    latents = model.encode_latents(ops.convert_to_tensor(audio[None]))
    last_conv = model.encoder.model_layers[-1]
    offset = ops.mean(latents, axis=(0, 1))
    last_conv.bias.assign(last_conv.bias - offset)
    model(audio[None, 8000:40000], training=True)  # k-means codebooks on part of the clip
    return model, audio


def test_conv_context(codec_and_audio):
    model, _ = codec_and_audio
    assert inference.conv_context_frames(model) == 5
    assert inference.conv_context_frames(DMCodec()) == 5


def test_chunked_encoding_matches_whole_file(codec_and_audio):
    model, audio = codec_and_audio
    whole = model.encode(audio[None], n_q=1)[0]
    untied = untied_frames(model, audio)
    assert untied.mean() > 0.8
    done = []
    chunked = inference.encode_long(model, audio, n_q=1, chunk_frames=CHUNK, context_frames=40,
                                    progress=done.append)
    assert chunked.shape == whole.shape == (1, model.frames_for(len(audio)))
    assert done[-1] == whole.shape[1] and len(done) == whole.shape[1] // CHUNK
    np.testing.assert_array_equal(chunked[:, untied], whole[:, untied])

    # Hard cuts: differences appear, but only near the seams.
    cut = inference.encode_long(model, audio, n_q=1, chunk_frames=CHUNK, context_frames=0)
    differ = np.nonzero(np.any(cut != whole, axis=0) & untied)[0]
    assert len(differ) > 0
    seam_distance = np.minimum(differ % CHUNK, CHUNK - differ % CHUNK)
    assert seam_distance.max() <= inference.HARD_CUT_SEAM_FRAMES


def test_streamed_blocks_match_in_memory(codec_and_audio):
    model, audio = codec_and_audio
    blocks = [audio[i: i + 7001] for i in range(0, len(audio), 7001)]
    streamed = np.concatenate(list(inference.encode_stream(
        model, blocks, n_q=1, chunk_frames=CHUNK, context_frames=40)), axis=1)
    in_memory = inference.encode_long(model, audio, n_q=1, chunk_frames=CHUNK, context_frames=40)
    np.testing.assert_array_equal(streamed, in_memory)


def test_chunked_decoding_matches_whole(codec_and_audio):
    model, audio = codec_and_audio
    codes = model.encode(audio[None])[0]
    whole = model.decode(codes[None], num_samples=len(audio))[0]
    chunked = inference.decode_long(model, codes, num_samples=len(audio), chunk_frames=CHUNK,
                                    context_frames=25)
    assert chunked.shape == whole.shape
    np.testing.assert_allclose(chunked, whole, atol=1e-5 * np.abs(whole).max())


def test_encode_file_resamples_and_downmixes(codec_and_audio, tmp_path):
    import soundfile as sf

    model, audio = codec_and_audio
    stereo = np.stack([audio[:16000], audio[:16000]], axis=1)
    sf.write(tmp_path / "s.wav", stereo, 16000, subtype="FLOAT")
    codes, n = inference.encode_file(model, tmp_path / "s.wav", chunk_frames=20)
    assert n == 16000
    np.testing.assert_array_equal(codes, inference.encode_long(model, audio[:16000],
                                                               chunk_frames=20))
    sf.write(tmp_path / "r.wav", audio[:16000], 8000, subtype="FLOAT")  # "2 s at 8 kHz"
    codes, n = inference.encode_file(model, tmp_path / "r.wav")
    assert n == 32000 and codes.shape == (4, 100)
    sf.write(tmp_path / "nan.wav", np.full(100, np.nan, np.float32), 16000, subtype="FLOAT")
    with pytest.raises(ValueError, match="NaN"):
        inference.encode_file(model, tmp_path / "nan.wav")
    sf.write(tmp_path / "empty.wav", np.zeros(0, np.float32), 16000)
    with pytest.raises(ValueError, match="empty"):
        inference.encode_file(model, tmp_path / "empty.wav")


def test_batch_of_different_lengths_equals_one_by_one(codec_and_audio):
    model, audio = codec_and_audio
    lengths = [3200, 4481, 3200, 3200]
    clips = [audio[i * 900: i * 900 + n] for i, n in enumerate(lengths)]
    batched = inference.encode_batch(model, clips, max_batch=2)
    for clip, codes in zip(clips, batched, strict=True):
        np.testing.assert_array_equal(codes, model.encode(clip[None])[0])
    decoded = inference.decode_batch(model, batched, num_samples=lengths)
    for codes, n, wave in zip(batched, lengths, decoded, strict=True):
        alone = model.decode(codes[None], num_samples=n)[0]
        # Batched float kernels may round differently from batch 1 (TF's oneDNN does).
        np.testing.assert_allclose(wave, alone, atol=1e-5 * np.abs(alone).max())


@pytest.fixture(scope="module")
def causal_codec_and_audio():
    """A causal codec with k-means codebooks on speech, and two 3.2 s streams."""
    speech, _ = load_audio(bundled_sample()[0], sample_rate=16000)
    rng = np.random.default_rng(5)
    audio = np.stack([speech[:51200], speech[20000:71200]]) + 0.01 * rng.standard_normal(
        (2, 51200))
    audio = audio.astype("float32")
    model = DMCodec(**CONFIG, causal=True, bidirectional=False, seed=3)
    model.build((None, None))
    latents = model.encode_latents(ops.convert_to_tensor(audio))  # centred, as above
    last_conv = model.encoder.model_layers[-1]
    last_conv.bias.assign(last_conv.bias - ops.mean(latents, axis=(0, 1)))
    model(audio[:, :32000], training=True)
    return model, audio


def _cuts(frames, rng):
    """Random chunk sizes (1-9 frames) that add up to ``frames``."""
    sizes = []
    while sum(sizes) < frames:
        sizes.append(int(min(rng.integers(1, 10), frames - sum(sizes))))
    return sizes


@pytest.mark.parametrize("chunk", [1, 2, 3, 7, "random"])
def test_streaming_equals_the_offline_causal_pass(causal_codec_and_audio, chunk):
    model, audio = causal_codec_and_audio
    hop, frames = model.hop_length, audio.shape[1] // model.hop_length
    offline = ops.convert_to_numpy(model.encode_tensor(audio))
    decoded = ops.convert_to_numpy(model.decode_tensor(offline))
    sizes = _cuts(frames, np.random.default_rng(7)) if chunk == "random" else (
        [chunk] * (frames // chunk) + ([frames % chunk] if frames % chunk else []))
    encoder = inference.StreamingEncoder(model, batch_size=2)
    decoder = inference.StreamingDecoder(model, batch_size=2)
    codes, restored, start = [], [], 0
    for size in sizes:
        step_codes = encoder.step(audio[:, start * hop:(start + size) * hop])
        assert step_codes.shape == (2, model.n_q, size) and step_codes.dtype == np.int32
        codes.append(step_codes)
        restored.append(decoder.step(offline[:, :, start:start + size]))
        start += size
    codes = np.concatenate(codes, axis=-1)
    assert encoder.frames == decoder.frames == frames
    # two independent streams in one batch; a frame may differ only at a float32 tie
    differing = assert_codes_equal_up_to_ties(model, audio, codes, offline)
    assert differing <= 0.02 * frames
    restored = np.concatenate(restored, axis=-1)
    assert restored.shape == decoded.shape
    np.testing.assert_allclose(restored, decoded, atol=1e-5 * np.abs(decoded).max())


def test_streams_reset_and_refuse_bad_input(causal_codec_and_audio, codec_and_audio):
    model, audio = causal_codec_and_audio
    encoder = inference.StreamingEncoder(model, n_q=2)
    first = encoder.step(audio[0, :3200])
    encoder.step(audio[0, 3200:6400])
    encoder.reset()
    assert encoder.frames == 0
    np.testing.assert_array_equal(encoder.step(audio[0, :3200]), first)  # afresh
    with pytest.raises(ValueError, match="positive multiple of the hop \\(320 samples = 20 ms"):
        encoder.step(audio[0, :500])
    with pytest.raises(ValueError, match="must be finite floats"):
        encoder.step(np.full(320, np.nan, "float32"))
    with pytest.raises(ValueError, match="audio must be \\[1, ...\\] for 1 stream"):
        encoder.step(audio[:, :320])
    decoder = inference.StreamingDecoder(model)
    with pytest.raises(ValueError, match="codes must be integers in \\[0, 32\\)"):
        decoder.step(np.full((4, 2), 32, "int32"))
    with pytest.raises(ValueError, match="at least one frame"):
        decoder.step(np.zeros((4, 0), "int32"))
    with pytest.raises(ValueError, match="streaming needs a causal model"):
        inference.StreamingEncoder(codec_and_audio[0])


class _FakeClock:
    """A clock that each step advances by a fixed cost; ``sleep`` advances it too."""

    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        assert seconds > 0
        self.now += seconds


class _Timed:
    """Wraps a stream so that each step costs ``cost`` seconds of the fake clock."""

    def __init__(self, stream, clock, cost):
        self.stream, self.clock, self.cost = stream, clock, cost
        self.sample_rate = stream.sample_rate

    def step(self, value):
        self.clock.now += self.cost
        return self.stream.step(value)

    def reset(self):
        self.stream.reset()


def test_stream_through_matches_offline_and_times_each_chunk(causal_codec_and_audio):
    model, audio = causal_codec_and_audio
    clip = audio[0, :7 * 640 + 100]  # not a whole number of chunks: the last one is padded
    run = inference.stream_through(inference.StreamingEncoder(model),
                                   inference.StreamingDecoder(model), clip, chunk_samples=640)
    padded = np.concatenate([clip, np.zeros(540, "float32")])[None]
    offline = ops.convert_to_numpy(model.encode_tensor(padded))
    assert run.codes.shape == (model.n_q, 16) and run.audio.shape == clip.shape
    assert assert_codes_equal_up_to_ties(model, padded, run.codes[None], offline) <= 1
    decoded = ops.convert_to_numpy(model.decode_tensor(run.codes[None]))[0, : clip.size]
    np.testing.assert_allclose(run.audio, decoded, atol=1e-5 * np.abs(decoded).max())
    assert len(run.encode_seconds) == 8 and run.chunk_seconds == 0.04
    stats = run.summary()
    assert stats["chunks"] == 8 and stats["total_p99_ms"] >= stats["total_median_ms"] > 0
    assert stats["real_time_factor"] > 0

    # Real-time pace with a fake clock: encoding costs 10 ms and decoding 5 ms of a 20 ms
    # chunk, so each chunk is ready 15 ms after it arrived and nothing runs late.
    clock = _FakeClock()
    encoder = _Timed(inference.StreamingEncoder(model), clock, 0.010)
    decoder = _Timed(inference.StreamingDecoder(model), clock, 0.005)
    run = inference.stream_through(encoder, decoder, clip[:3200], 320, realtime=True,
                                   clock=clock, sleep=clock.sleep)
    np.testing.assert_allclose(run.encode_seconds, 0.010)
    np.testing.assert_allclose(run.latency_seconds, 0.015)
    assert run.summary()["late_chunks"] == 0 and run.warmup_seconds == pytest.approx(0.015)
    assert encoder.stream.frames == 10  # the warm-up step was reset away
    # 30 ms per 20 ms chunk: it falls behind, and the latency grows by 10 ms per chunk.
    encoder.cost = 0.025
    run = inference.stream_through(encoder, decoder, clip[:3200], 320, realtime=True,
                                   clock=clock, sleep=clock.sleep)
    np.testing.assert_allclose(np.diff(run.latency_seconds), 0.010, atol=1e-9)
    stats = run.summary()
    assert stats["late_chunks"] == 10 and stats["real_time_factor"] == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="non-empty 1-D"):
        inference.stream_through(encoder, decoder, np.zeros(0, "float32"), 320)
