import keras
import numpy as np
import pytest
from keras import ops

from keras_dmcodec.layers.quantization import (
    ResidualVectorQuantizer,
    VectorQuantizer,
    kmeans,
    nearest_code,
)
from keras_dmcodec.utils.testing import run_layer_test, run_serialization_test


def _np(x):
    return ops.convert_to_numpy(x)


def _clusters(n_per=20, centers=None, noise=0.01, seed=0):
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(4, 3)).astype("float32") * 3 if centers is None else centers
    x = np.concatenate([c + noise * rng.normal(size=(n_per, 3)) for c in centers])
    return x.astype("float32"), centers


def test_nearest_code_matches_bruteforce():
    x = np.random.randn(50, 6).astype("float32")
    cb = np.random.randn(9, 6).astype("float32")
    expected = ((x[:, None] - cb[None]) ** 2).sum(-1).argmin(-1)
    np.testing.assert_array_equal(_np(nearest_code(x, cb)), expected)


def test_kmeans_finds_separated_clusters():
    x, centers = _clusters()
    means, bins = kmeans(ops.convert_to_tensor(x), 4, 10, ops.convert_to_tensor(x[::20]))
    means = _np(means)
    for c in centers:
        assert np.min(np.linalg.norm(means - c, axis=1)) < 0.05
    assert _np(bins).sum() == len(x)


def test_kmeans_init_happens_once_on_first_training_batch():
    x, centers = _clusters()
    vq = VectorQuantizer(codebook_size=4, kmeans_iters=10, threshold_ema_dead_code=0, seed=3)
    vq.build((None, 3))
    assert float(_np(vq.initialized)) == 0.0
    np.testing.assert_array_equal(_np(vq.codebook), 0)
    # inference does not initialise
    vq(x, training=False)
    assert float(_np(vq.initialized)) == 0.0
    vq(x, training=True)
    assert float(_np(vq.initialized)) == 1.0
    cb = _np(vq.codebook)
    for c in centers:
        assert np.min(np.linalg.norm(cb - c, axis=1)) < 0.1
    # a second, very different batch updates by EMA only (no re-initialisation)
    vq(x + 100.0, training=True)
    assert float(_np(vq.initialized)) == 1.0
    cb2 = _np(vq.codebook)
    # k-means on this batch would put every code near centers + 100
    assert max(np.min(np.linalg.norm(cb2 - (c + 100.0), axis=1)) for c in centers) > 50.0


def test_ema_update_matches_hand_computation():
    decay, eps, k = 0.9, 1e-5, 3
    vq = VectorQuantizer(codebook_size=k, decay=decay, epsilon=eps, kmeans_init=False,
                         threshold_ema_dead_code=0)
    vq.build((None, 2))
    cb = np.array([[0, 0], [1, 1], [5, 5]], "float32")
    avg = cb * 2.0
    size = np.array([2.0, 2.0, 2.0], "float32")
    vq.codebook.assign(cb)
    vq.embed_avg.assign(avg)
    vq.cluster_size.assign(size)
    x = np.array([[0.1, 0.0], [0.9, 1.2], [1.1, 0.8], [4.0, 6.0]], "float32")
    q, codes, loss = vq(x, training=True)
    assign = np.array([0, 1, 1, 2])
    onehot = np.eye(k)[assign]
    size_new = size * decay + onehot.sum(0) * (1 - decay)
    avg_new = avg * decay + (onehot.T @ x) * (1 - decay)
    n = size_new.sum()
    smoothed = (size_new + eps) / (n + k * eps) * n
    np.testing.assert_array_equal(_np(codes), assign)
    np.testing.assert_allclose(_np(vq.cluster_size), size_new, rtol=1e-6)
    np.testing.assert_allclose(_np(vq.embed_avg), avg_new, rtol=1e-6)
    np.testing.assert_allclose(_np(vq.codebook), avg_new / smoothed[:, None], rtol=1e-5)
    # quantised output and commitment loss use the codebook of this step (before the update)
    np.testing.assert_allclose(_np(q), cb[assign], atol=1e-6)
    np.testing.assert_allclose(float(_np(loss)), np.mean((cb[assign] - x) ** 2), rtol=1e-5)


def test_dead_codes_are_replaced_by_batch_vectors_and_persist():
    vq = VectorQuantizer(codebook_size=4, kmeans_init=False, threshold_ema_dead_code=2.0, seed=5)
    vq.build((None, 3))
    x, _ = _clusters(n_per=10)
    cb = np.stack([x[0], x[10], np.full(3, 50.0), np.full(3, -50.0)]).astype("float32")
    vq.codebook.assign(cb)
    vq.embed_avg.assign(cb * 10)
    vq.cluster_size.assign(np.array([10.0, 10.0, 10.0, 10.0], "float32"))
    for _ in range(200):  # unused codes decay below the threshold
        vq(x[:20], training=True)
    out = _np(vq.codebook)
    # the two far-away codes were replaced by batch vectors and stayed in the data
    for i in (2, 3):
        assert np.min(np.linalg.norm(x[:20] - out[i], axis=1)) < 0.5
    assert np.all(_np(vq.cluster_size)[2:] > 0.0)


def test_straight_through_value_and_gradient():
    vq = VectorQuantizer(codebook_size=8, kmeans_init=False)
    x = np.random.randn(5, 4).astype("float32")
    q, codes, _ = vq(x, training=False)
    np.testing.assert_allclose(_np(q), _np(vq.codebook)[_np(codes)], atol=1e-6)

    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        grad = jax.grad(lambda v: (vq(v)[0] * 3.0).sum())(x)
    elif backend == "tensorflow":
        import tensorflow as tf

        v = tf.Variable(x)
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(vq(v)[0] * 3.0)
        grad = tape.gradient(loss, v)
    else:
        import torch

        v = torch.tensor(x, requires_grad=True)
        (vq(v)[0] * 3.0).sum().backward()
        grad = v.grad
    np.testing.assert_allclose(_np(grad), np.full_like(x, 3.0))


def test_rvq_encode_decode_and_n_q_prefix():
    rvq = ResidualVectorQuantizer(n_q=4, codebook_size=16, kmeans_iters=3, seed=0)
    x = np.random.randn(2, 30, 8).astype("float32")
    out = rvq(x, training=True)
    codes = _np(rvq.encode(x))
    assert codes.shape == (2, 4, 30) and codes.dtype == np.int32
    for n_q in (1, 2, 3):
        np.testing.assert_array_equal(_np(rvq.encode(x, n_q=n_q)), codes[:, :n_q])
    # decode is the sum of per-layer codebook vectors, and residuals shrink
    decoded = _np(rvq.decode(codes))
    manual = sum(_np(rvq.quantizers[i].codebook)[codes[:, i]] for i in range(4))
    np.testing.assert_allclose(decoded, manual, atol=1e-5)
    errors = [np.mean((x - _np(rvq.decode(codes[:, :n]))) ** 2) for n in (1, 2, 3, 4)]
    assert errors == sorted(errors, reverse=True)
    assert tuple(out["codes"].shape) == (2, 4, 30)
    with pytest.raises(ValueError, match="n_q"):
        rvq.encode(x, n_q=5)
    with pytest.raises(ValueError, match="n_q"):
        rvq.encode(x, n_q=0)


def test_quantizer_dropout_draws_every_depth_and_freezes_inactive_layers():
    rvq = ResidualVectorQuantizer(n_q=4, codebook_size=8, kmeans_init=False,
                                  quantizer_dropout=1.0, seed=0)
    x = np.random.randn(2, 16, 4).astype("float32")
    rvq.build(x.shape)
    seen = set()
    for _ in range(40):
        before = [_np(vq.codebook).copy() for vq in rvq.quantizers]
        out = rvq(x, training=True)
        n_used = int(float(_np(out["n_q_used"])))
        seen.add(n_used)
        for i, vq in enumerate(rvq.quantizers):
            changed = not np.array_equal(before[i], _np(vq.codebook))
            assert changed == (i < n_used), (i, n_used)
        expected = sum(_np(out["layer_outputs"][i]) for i in range(n_used))
        np.testing.assert_allclose(_np(out["quantized"]), expected, atol=1e-5)
    assert seen == {1, 2, 3, 4}
    # no dropout at inference
    assert float(_np(rvq(x, training=False)["n_q_used"])) == 4.0


def test_serialization_round_trip():
    run_serialization_test(ResidualVectorQuantizer(n_q=3, codebook_size=8, quantizer_dropout=0.5,
                                                   seed=1))
    x = np.random.default_rng(0).normal(size=(2, 10, 4)).astype("float32")
    # No k-means initialisation, so the codebooks are random and the outputs say something.
    run_layer_test(ResidualVectorQuantizer,
                   dict(n_q=3, codebook_size=8, quantizer_dropout=0.5, kmeans_init=False, seed=1),
                   x, {"quantized": (2, 10, 4), "codes": (2, 3, 10),
                       "layer_outputs": [(2, 10, 4)] * 3, "commitment_loss": (),
                       "n_q_used": ()},
                   expected_num_trainable_weights=0, expected_num_non_trainable_weights=12)
    run_layer_test(VectorQuantizer, dict(codebook_size=8, kmeans_init=False,
                                         threshold_ema_dead_code=0),
                   x[0], ((10, 4), (10,), ()))
