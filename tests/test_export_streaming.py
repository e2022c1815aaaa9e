"""Stateful streaming exports of a causal codec: TFLite (ai_edge_litert, builtin ops only) and
ONNX (onnxruntime) ``encode_step`` / ``decode_step`` against the Keras stream and the offline
causal pass.

One tiny causal model per backend pass, exported through the real command (``dmcodec export``,
which rebuilds the weights in a TensorFlow process). The TensorFlow pass exports under the JAX
backend and writes TFLite and ONNX with 20 ms steps; the JAX and torch passes write TFLite only,
and check it against that backend's Keras model.
"""

import json
from pathlib import Path

import keras
import numpy as np
import pytest

from keras_dmcodec.utils.testing import assert_codes_equal_up_to_ties, run_dmcodec

BACKEND = keras.backend.backend()
CONFIG = dict(n_filters=4, dimension=16, semantic_dimension=8, n_q=4, codebook_size=32,
              lstm_layers=2, kmeans_iters=3, causal=True, bidirectional=False)
HOP = 320


def _export(preset, out, *args):
    # In the TensorFlow pass the command runs under JAX: weights rebuilt in a TF process.
    return run_dmcodec("export", "--backend", "jax" if BACKEND == "tensorflow" else BACKEND,
                       "--model", preset, "-o", out, *args, cwd=Path(out).parent, timeout=900)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    from keras_dmcodec import DMCodec
    from keras_dmcodec.audio import bundled_sample, load_audio

    root = tmp_path_factory.mktemp("stream_export")
    speech, _ = load_audio(bundled_sample()[0], sample_rate=16000)
    model = DMCodec(**CONFIG, seed=3)
    model(speech[None, 8000:40000], training=True)  # k-means codebooks from speech
    model.save_to_preset(root / "preset")
    formats = (["--format", "tflite", "--format", "onnx"] if BACKEND == "tensorflow"
               else ["--format", "tflite"])
    result = _export(root / "preset", root / "out", *formats)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "streaming steps encode_step/decode_step: 320 samples (20 ms)" in result.stdout
    audio = speech[None, 4000:4000 + 40 * HOP]  # 40 frames = 0.8 s
    return root / "out", model, audio


def _runtimes():
    return ["tflite", "onnx"] if BACKEND == "tensorflow" else ["tflite"]


def _chunked(total, sizes):
    out, start = [], 0
    for size in sizes:
        size = min(size, total - start)
        if size <= 0:
            break
        out.append((start, size))
        start += size
    if start < total:
        out.append((start, total - start))
    return out


@pytest.mark.parametrize("runtime", _runtimes())
@pytest.mark.parametrize("chunks", [[1], [2], [3], [7], "random"])
def test_exported_stream_equals_keras_offline(exported, runtime, chunks):
    from keras_dmcodec.export.streaming import ExportedStreamingDecoder, ExportedStreamingEncoder

    out, model, audio = exported
    frames = audio.shape[1] // HOP
    sizes = (list(np.random.default_rng(7).integers(1, 10, size=frames)) if chunks == "random"
             else chunks * frames)
    pieces = _chunked(frames, sizes)
    encoder = ExportedStreamingEncoder(out, runtime)
    decoder = ExportedStreamingDecoder(out, runtime)
    codes = np.concatenate([encoder.step(audio[:, s * HOP:(s + k) * HOP]) for s, k in pieces],
                           axis=-1)
    expected = keras.ops.convert_to_numpy(model.encode_tensor(audio, n_q=4))
    assert codes.shape == expected.shape == (1, 4, frames) and encoder.frames == frames
    assert assert_codes_equal_up_to_ties(model, audio, codes, expected) <= 0.05 * frames
    decoded = np.concatenate([decoder.step(expected[:, :, s:s + k]) for s, k in pieces], axis=-1)
    offline = keras.ops.convert_to_numpy(model.decode_tensor(expected))
    assert decoded.shape == (1, frames * HOP)
    assert np.max(np.abs(decoded - offline)) <= 1e-5 * np.max(np.abs(offline))


def test_exported_stream_equals_the_keras_stream_and_resets(exported):
    from keras_dmcodec.export.streaming import ExportedStreamingEncoder
    from keras_dmcodec.inference import StreamingEncoder

    out, model, audio = exported
    exported_stream, keras_stream = ExportedStreamingEncoder(out), StreamingEncoder(model)
    first = exported_stream.step(audio[:, :10 * HOP])
    assert assert_codes_equal_up_to_ties(model, audio[:, :10 * HOP], first,
                                         keras_stream.step(audio[:, :10 * HOP])) <= 1
    exported_stream.reset()
    assert exported_stream.frames == 0
    np.testing.assert_array_equal(exported_stream.step(audio[:, :10 * HOP]), first)


def test_manifest_state_and_errors(exported, tmp_path):
    from keras_dmcodec.export import ExportError
    from keras_dmcodec.export.streaming import (
        ExportedStreamingDecoder,
        ExportedStreamingEncoder,
        open_stream_runtime,
    )

    out, model, audio = exported
    stream = json.loads((out / "export.json").read_text())["stream"]
    assert stream["frames"] == 1 and stream["samples"] == HOP
    assert stream["encoder_state"] == [list(s.shape) for s in
                                       keras.tree.flatten(model.initial_encoder_state(1))]
    assert b"Flex" not in (out / "codec.tflite").read_bytes()
    encoder, decoder = ExportedStreamingEncoder(out), ExportedStreamingDecoder(out)
    with pytest.raises(ValueError, match="multiple of the exported step"):
        encoder.step(audio[:, :100])
    with pytest.raises(ValueError, match="finite"):
        encoder.step(np.full((1, HOP), np.nan, np.float32))
    with pytest.raises(ValueError, match="one stream"):
        encoder.step(np.zeros((2, HOP), np.float32))
    with pytest.raises(ValueError, match=r"in \[0, 32\)"):
        decoder.step(np.full((1, 4, 1), 32))
    with pytest.raises(ValueError, match="4"):
        decoder.step(np.zeros((1, 3, 1), np.int32))
    with pytest.raises(ValueError, match="unknown streaming runtime"):
        open_stream_runtime(out, "saved_model")
    if BACKEND != "tensorflow":
        with pytest.raises(ExportError, match="no onnx export"):
            open_stream_runtime(out, "onnx")


@pytest.mark.skipif(BACKEND != "tensorflow", reason="backend-independent; runs once")
def test_80_ms_steps_and_non_causal_exports(exported, tmp_path):
    from keras_dmcodec import DMCodec
    from keras_dmcodec.export import ExportError
    from keras_dmcodec.export.streaming import ExportedStreamingDecoder, ExportedStreamingEncoder

    out, model, audio = exported
    result = _export(out.parent / "preset", tmp_path / "80ms", "--format", "tflite",
                     "--stream-frames", "4")
    assert result.returncode == 0, result.stderr[-3000:]
    encoder = ExportedStreamingEncoder(tmp_path / "80ms")
    assert encoder.step_samples == 4 * HOP
    codes = np.concatenate([encoder.step(audio[:, s:s + 8 * HOP])
                            for s in range(0, audio.shape[1], 8 * HOP)], axis=-1)
    expected = keras.ops.convert_to_numpy(model.encode_tensor(audio, n_q=4))
    assert assert_codes_equal_up_to_ties(model, audio, codes, expected) <= 2
    with pytest.raises(ValueError, match="multiple of the exported step"):
        ExportedStreamingDecoder(tmp_path / "80ms").step(expected[:, :, :3])

    offline = DMCodec(**{**CONFIG, "causal": False, "bidirectional": True})
    offline.build((None, None))
    offline.save_to_preset(tmp_path / "offline")
    result = _export(tmp_path / "offline", tmp_path / "offline_out", "--format", "tflite")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "stream" not in json.loads((tmp_path / "offline_out" / "export.json").read_text())
    with pytest.raises(ExportError, match="not causal"):
        ExportedStreamingEncoder(tmp_path / "offline_out")
    result = _export(tmp_path / "offline", tmp_path / "bad", "--stream-frames", "0")
    assert result.returncode != 0 and "stream frames must be at least 1" in result.stderr
