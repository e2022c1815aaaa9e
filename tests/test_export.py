"""Export parity: SavedModel, TFLite (ai_edge_litert, no Flex ops) and ONNX (onnxruntime).

One tiny model, exported once through the real command under the JAX backend (so the
TensorFlow rebuild path for weights from another backend is exercised); backend-independent,
so it runs in the TensorFlow pass only.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

from keras_dmcodec.tokens import model_fingerprint
from keras_dmcodec.utils.testing import assert_codes_equal_up_to_ties

pytestmark = pytest.mark.skipif(keras.backend.backend() != "tensorflow",
                                reason="backend-independent; runs once")

CONFIG = dict(n_filters=4, dimension=16, semantic_dimension=8, n_q=4, codebook_size=32,
              lstm_layers=1, kmeans_iters=3)
NUM_SAMPLES = 4000


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    from keras_dmcodec import DMCodec
    from keras_dmcodec.audio import bundled_sample, load_audio

    root = tmp_path_factory.mktemp("export")
    speech, _ = load_audio(bundled_sample()[0], sample_rate=16000)
    model = DMCodec(**CONFIG, seed=1)
    model(speech[None, 8000:40000], training=True)
    model.save_to_preset(root / "preset")
    env = dict(os.environ, KERAS_BACKEND="tensorflow", TF_CPP_MIN_LOG_LEVEL="3")
    result = subprocess.run(
        [str(Path(sys.executable).parent / "dmcodec"), "export", "--backend", "jax", "--model",
         str(root / "preset"), "-o", str(root / "out"), "--num-samples", str(NUM_SAMPLES),
         "--int8"], env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "codes [1, 4, 13]" in result.stdout
    audio = np.stack([speech[12000 + i * 5000: 12000 + i * 5000 + NUM_SAMPLES] for i in range(4)])
    return root / "out", model, audio[:, None]


def test_manifest_and_no_flex_ops(exported):
    out, model, _ = exported
    manifest = json.loads((out / "export.json").read_text())
    assert manifest["frames"] == 13 and manifest["decoded_samples"] == 13 * 320
    fingerprint = model_fingerprint(model)
    assert manifest["codebook_hash"] == fingerprint.codebooks
    assert manifest["config_hash"] == fingerprint.config
    assert manifest["fingerprint"] == fingerprint.weights and manifest["model"] == "preset"
    blob = (out / "codec.tflite").read_bytes()
    assert b"Flex" not in blob and b"FlexDelegate" not in blob


def _check(encode, decode, model, audio, max_tied_frames=0.05, atol=1e-4):
    """Exported codes equal the Keras model's except at float32 ties
    (``keras_dmcodec.utils.testing``; a random 32-entry codebook has a few), and
    decoding the Keras codes matches within ``atol``."""
    differing = frames = 0
    for clip in audio:
        expected = model.encode(clip)
        differing += assert_codes_equal_up_to_ties(model, clip, encode(clip), expected)
        frames += expected.shape[-1]
        np.testing.assert_allclose(decode(expected), model.decode(expected), atol=atol)
    assert differing <= max_tied_frames * frames, f"{differing} of {frames} frames differ"


def test_saved_model_parity(exported):
    import tensorflow as tf

    out, model, audio = exported
    loaded = tf.saved_model.load(str(out / "saved_model"))
    encode, decode = loaded.signatures["encode"], loaded.signatures["decode"]
    _check(lambda x: encode(audio=tf.constant(x))["codes"].numpy(),
           lambda c: decode(codes=tf.constant(c))["audio"].numpy(), model, audio)


def test_tflite_parity(exported):
    from keras_dmcodec.export import TFLiteCodec

    out, model, audio = exported
    codec = TFLiteCodec(out / "codec.tflite")
    _check(codec.encode, codec.decode, model, audio)
    int8 = TFLiteCodec(out / "codec_int8.tflite")  # quality loss is measured, not asserted tight
    codes = int8.encode(audio[0])
    assert codes.shape == (1, 4, 13) and np.mean(codes == model.encode(audio[0])) > 0.5


def test_onnx_parity(exported):
    from keras_dmcodec.export import OnnxCodec

    out, model, audio = exported
    codec = OnnxCodec(out)
    _check(codec.encode, codec.decode, model, audio)


def test_onnx_takes_any_length(exported):
    """The ONNX graphs are dynamic in time (native LSTM, no unrolling): a clip of another
    length than the static TFLite window gives the Keras model's codes and audio."""
    from keras_dmcodec.export import OnnxCodec

    out, model, audio = exported
    manifest = json.loads((out / "export.json").read_text())
    assert "any length" in manifest["onnx"]["encode"]
    codec = OnnxCodec(out)
    clip = np.concatenate([audio[0], audio[1][:, :1234]], axis=-1)  # 5234 samples, 17 frames
    codes = codec.encode(clip)
    assert codes.shape == (1, 4, 17)
    assert assert_codes_equal_up_to_ties(model, clip, codes, model.encode(clip)) <= 1
    np.testing.assert_allclose(codec.decode(codes), model.decode(codes), atol=1e-4)
