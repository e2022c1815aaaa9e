import os

import keras
import numpy as np

from keras_dmcodec.ops.graphs import (
    bucket_batch,
    bucket_frames,
    shape_agnostic_function,
    use_persistent_compilation_cache,
)


def test_bucket_ladder():
    assert [bucket_frames(f) for f in (1, 16, 17, 33, 50, 64, 65, 500)] == \
        [16, 16, 20, 40, 56, 64, 80, 512]
    assert all(f <= bucket_frames(f) <= 1.25 * f for f in range(17, 5000))
    assert [bucket_batch(b) for b in (1, 2, 3, 5, 8, 9)] == [1, 2, 4, 8, 8, 16]


def test_shape_agnostic_function_traces_once():
    run = shape_agnostic_function(lambda x: keras.ops.sum(x, axis=1), [((None, None), "float32")])
    if keras.backend.backend() != "tensorflow":
        assert run is None  # JAX buckets, torch is eager
        return
    for length in (3, 7, 11):
        np.testing.assert_allclose(run(np.ones((2, length), "float32")), [length, length])
    assert run.traces() == 1


def test_persistent_compilation_cache(monkeypatch, tmp_path):
    # setenv first records the caller's value (or its absence), restored after the test.
    for name in ("JAX_COMPILATION_CACHE_DIR", "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"):
        monkeypatch.setenv(name, "")
        monkeypatch.delenv(name)
    if keras.backend.backend() != "jax":
        assert use_persistent_compilation_cache(tmp_path) is None
        return
    import jax

    before = jax.config.jax_compilation_cache_dir
    min_time = jax.config.jax_persistent_cache_min_compile_time_secs
    try:
        assert use_persistent_compilation_cache(tmp_path / "c") == tmp_path / "c"
        assert jax.config.jax_compilation_cache_dir == str(tmp_path / "c")
        assert os.environ["JAX_COMPILATION_CACHE_DIR"] == str(tmp_path / "c")  # for workers
        assert jax.config.jax_persistent_cache_min_compile_time_secs == 0  # small ones too
        monkeypatch.setenv("JAX_COMPILATION_CACHE_DIR", str(tmp_path / "env"))
        assert use_persistent_compilation_cache(tmp_path / "c") == tmp_path / "env"
    finally:
        jax.config.update("jax_compilation_cache_dir", before)
        jax.config.update("jax_persistent_cache_min_compile_time_secs", min_time)
    assert os.path.isdir(tmp_path / "c")
