"""The real ``dmcodec stream`` command in subprocesses: the Keras stream and an exported TFLite
stream of a tiny causal model, its latency table, outputs and one-line errors.

Backend-independent (each subprocess picks its own backend), so it runs once, in the
TensorFlow pass.
"""

import json

import keras
import numpy as np
import pytest
import soundfile as sf

from keras_dmcodec.utils.testing import assert_one_line_errors, run_dmcodec

pytestmark = pytest.mark.skipif(keras.backend.backend() != "tensorflow",
                                reason="backend-independent; runs once")

CONFIG = dict(n_filters=4, dimension=16, semantic_dimension=8, n_q=4, codebook_size=32,
              lstm_layers=1, kmeans_iters=3, causal=True, bidirectional=False)


def _run(*args, cwd, backend="tensorflow"):
    return run_dmcodec(*args, cwd=cwd, backend=backend)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    from keras_dmcodec import DMCodec
    from keras_dmcodec.audio import bundled_sample, load_audio

    root = tmp_path_factory.mktemp("stream_cli")
    speech, _ = load_audio(bundled_sample()[0], sample_rate=16000)
    model = DMCodec(**CONFIG, seed=1)
    model(speech[None, :32000], training=True)
    model.save_to_preset(root / "causal")
    offline = DMCodec(**{**CONFIG, "causal": False, "bidirectional": True})
    offline.build((None, None))
    offline.save_to_preset(root / "offline")
    sf.write(root / "in.wav", speech[:16000 + 123], 16000, subtype="PCM_16")
    return root, model, speech[:16000 + 123]


def _table(stdout):
    rows = {}
    for line in stdout.splitlines():
        parts = line.split()
        if parts and parts[0] in ("encode", "decode", "total", "latency"):
            rows[parts[0]] = [float(x) for x in parts[1:]]
    return rows


def test_keras_stream_prints_latency_and_writes_the_decoded_stream(workspace):
    from keras_dmcodec.audio import load_audio

    root, model, speech = workspace
    for backend, chunk in (("jax", 40), ("torch", 20)):
        result = _run("stream", "in.wav", "-o", f"out_{chunk}.wav", "--model", "causal",
                      "--chunk-ms", chunk, "--json", f"stats_{chunk}.json", cwd=root,
                      backend=backend)
        assert result.returncode == 0, result.stderr[-2000:]
        assert f"chunks of {chunk} ms = {chunk // 20} frame(s)" in result.stdout
        assert f"algorithmic  : {chunk} ms" in result.stdout
        table = _table(result.stdout)
        assert set(table) == {"encode", "decode", "total", "latency"}
        assert all(len(row) == 3 and 0 < row[0] <= row[1] <= row[2] for row in table.values())
        stats = json.loads((root / f"stats_{chunk}.json").read_text())
        assert stats["chunks"] == -(-len(speech) // (16 * chunk)) and not stats["realtime"]
        # The decoded stream is the offline causal pass over the (padded) input.
        decoded, _ = load_audio(root / f"out_{chunk}.wav", sample_rate=16000)
        padded = np.zeros((1, 16000 + 640), "float32")
        padded[0, : len(speech)] = speech
        offline = keras.ops.convert_to_numpy(
            model.decode_tensor(model.encode_tensor(padded)))[0, : len(speech)]
        assert decoded.shape == speech.shape
        assert np.max(np.abs(decoded - offline)) < 2e-4 + 1e-3 * np.max(np.abs(offline))


def test_exported_stream_and_realtime_pace(workspace):
    root, _, speech = workspace
    result = _run("export", "--model", "causal", "-o", "export", "--format", "tflite",
                  "--stream-frames", "2", cwd=root)
    assert result.returncode == 0, result.stderr[-2000:]
    result = _run("stream", "in.wav", "--runtime", "tflite", "--export", "export",
                  "--chunk-ms", "80", "--realtime", cwd=root)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "(tflite export)" in result.stdout and "real-time pace" in result.stdout
    table = _table(result.stdout)
    # At real-time pace a chunk's latency is at least its compute time.
    assert table["latency"][0] >= table["total"][0]
    result = _run("stream", "in.wav", "--runtime", "tflite", "--export", "export",
                  "--chunk-ms", "20", cwd=root)
    assert result.returncode == 1
    assert "not a multiple of the export's 40 ms step" in result.stderr


def test_stream_errors_are_one_line(workspace):
    root, _, _ = workspace
    (root / "exists.wav").write_bytes(b"x")
    cases = {
        "is not causal and cannot stream": ["in.wav", "--model", "offline"],
        "needs --export DIR": ["in.wav", "--model", "causal", "--runtime", "onnx"],
        "--export needs --runtime": ["in.wav", "--model", "causal", "--export", "somewhere"],
        "already exists": ["in.wav", "--model", "causal", "-o", "exists.wav"],
        "must be a .wav or .flac file": ["in.wav", "--model", "causal", "-o", "out.mp3"],
        "missing.wav: no such file": ["missing.wav", "--model", "causal"],
        "no export.json": ["in.wav", "--runtime", "tflite", "--export", "."],
    }
    assert_one_line_errors({k: ["stream", *v] for k, v in cases.items()}, cwd=root)
    assert (root / "exists.wav").read_bytes() == b"x" and not (root / "out.mp3").exists()
