"""Weights saved under one Keras backend load under another and give the same codes.

Each backend run of the suite saves with the next backend in a subprocess
(tensorflow -> jax -> torch -> tensorflow), so the three CI runs cover every pair's direction
once around the cycle.
"""

import os
import subprocess
import sys
import textwrap

import keras
import numpy as np

from keras_dmcodec import DMCodec

BACKENDS = ["tensorflow", "jax", "torch"]
CONFIG = dict(n_filters=4, dimension=16, semantic_dimension=8, n_q=4, codebook_size=32,
              lstm_layers=1, kmeans_iters=3)

SAVER = textwrap.dedent(
    """
    import sys, numpy as np, keras
    from keras_dmcodec import DMCodec
    out = sys.argv[1]
    keras.utils.set_random_seed(0)
    model = DMCodec(**{config!r}, seed=3)
    rng = np.random.default_rng(0)
    model(rng.normal(size=(2, 6400)).astype("float32") * 0.1, training=True)  # k-means init
    audio = (rng.normal(size=(2, 3000)) * 0.1).astype("float32")
    codes = model.encode(audio)
    np.savez(out + "/ref.npz", audio=audio, codes=codes, decoded=model.decode(codes))
    model.save_weights(out + "/model.weights.h5")
    model.save(out + "/model.keras")
    print(keras.backend.backend())
    """
)


def test_weights_from_another_backend_give_same_codes(tmp_path):
    here = keras.backend.backend()
    other = BACKENDS[(BACKENDS.index(here) + 1) % 3]
    env = dict(os.environ, KERAS_BACKEND=other)
    result = subprocess.run(
        [sys.executable, "-c", SAVER.format(config=CONFIG), str(tmp_path)],
        env=env, capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().splitlines()[-1] == other
    ref = np.load(tmp_path / "ref.npz")

    model = DMCodec(**CONFIG)
    model.build((None, None))
    model.load_weights(tmp_path / "model.weights.h5")
    codes = model.encode(ref["audio"])
    assert (codes == ref["codes"]).mean() >= 0.999
    np.testing.assert_allclose(model.decode(ref["codes"]), ref["decoded"], atol=1e-4)

    restored = keras.saving.load_model(tmp_path / "model.keras")
    np.testing.assert_array_equal(restored.encode(ref["audio"]), codes)
