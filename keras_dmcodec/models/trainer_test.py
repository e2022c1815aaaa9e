import keras
import numpy as np
import pytest
from keras import ops

from keras_dmcodec.layers.discriminators import MultiScaleDiscriminator
from keras_dmcodec.models.dmcodec import DMCodec
from keras_dmcodec.models.trainer import DMCodecTrainer, _frozen_call

TINY_DISCS = {
    "mpd": {"periods": [2, 3], "channels": [4, 8]},
    "msd": {"num_scales": 2, "channels": [8] * 7},
    "mstft": {"filters": 4, "n_ffts": [256, 128], "hop_lengths": [64, 32]},
}


def _np(x):
    return ops.convert_to_numpy(x)


def _tiny_trainer(**kwargs):
    codec = DMCodec(n_filters=4, dimension=16, semantic_dimension=8, n_q=2, codebook_size=16,
                    lstm_layers=1, kmeans_iters=2, seed=0)
    return DMCodecTrainer(codec, discriminators=TINY_DISCS, mel_weights=(45.0, 1.0), **kwargs)


def _speechlike(n, length, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(length) / 16000
    f0 = rng.uniform(100, 250, size=(n, 1))
    x = sum(np.sin(2 * np.pi * f0 * k * t) / k for k in range(1, 6))
    return (0.1 * x * (1 + 0.5 * np.sin(2 * np.pi * 3 * t))).astype("float32")


def test_fit_lowers_generator_loss_and_trains_every_part():
    trainer = _tiny_trainer()
    trainer.compile(optimizer=keras.optimizers.Adam(3e-3, beta_1=0.9, beta_2=0.99))
    x = _speechlike(4, 3200)
    teacher = np.random.default_rng(1).normal(size=(4, 10, 8)).astype("float32")
    data = {"audio": x, "teacher_features": teacher}
    disc_before = [_np(v).copy() for v in trainer.discriminators[1].trainable_variables]
    codec_before = [_np(v).copy() for v in trainer.codec.trainable_variables]
    history = trainer.fit(data, batch_size=4, epochs=12, verbose=0, shuffle=False)
    g = history.history["generator_loss"]
    assert g[-1] < g[1], g  # epoch 0 includes the k-means initialisation
    for name in ("discriminator_loss", "mel_error", "distill_loss", "feature_loss"):
        assert np.all(np.isfinite(history.history[name]))
    assert any(not np.allclose(a, _np(b)) for a, b in
               zip(disc_before, trainer.discriminators[1].trainable_variables, strict=True))
    assert any(not np.allclose(a, _np(b)) for a, b in
               zip(codec_before, trainer.codec.trainable_variables, strict=True))
    assert float(_np(trainer.codec.quantizer.quantizers[0].initialized)) == 1.0
    logs = trainer.evaluate(data, batch_size=4, verbose=0, return_dict=True)
    assert {"mel_error", "recon_loss", "commitment_loss"} <= set(logs)


def test_frozen_discriminator_passes_gradient_to_input_only():
    disc = MultiScaleDiscriminator(num_scales=1, channels=[4] * 7)
    x = np.random.default_rng(0).normal(size=(1, 512)).astype("float32")
    disc(x)
    backend = keras.backend.backend()

    def loss_of(outputs):
        return sum(ops.sum(logits) for logits, _ in outputs)

    if backend == "tensorflow":
        import tensorflow as tf

        xv = tf.Variable(x)
        with tf.GradientTape(persistent=True) as tape:
            loss = loss_of(_frozen_call(disc, xv))
        weight_grads = tape.gradient(loss, [v.value for v in disc.trainable_variables])
        input_grad = tape.gradient(loss, xv)
        assert all(g is None or not np.any(_np(g)) for g in weight_grads)
    elif backend == "jax":
        import jax

        def f(weights, inp):
            mapping = list(zip(disc.trainable_variables, weights, strict=True))
            with keras.StatelessScope(state_mapping=mapping):
                return loss_of(_frozen_call(disc, inp))

        values = [v.value for v in disc.trainable_variables]
        weight_grads, input_grad = jax.grad(f, argnums=(0, 1))(values, x)
        assert all(not np.any(np.asarray(g)) for g in weight_grads)
    else:
        import torch

        xv = torch.tensor(x, requires_grad=True)
        loss_of(_frozen_call(disc, xv)).backward()
        input_grad = xv.grad
        assert all(v.value.grad is None or not torch.any(v.value.grad)
                   for v in disc.trainable_variables)
    assert np.any(_np(input_grad))


def test_config_round_trip_and_validation():
    trainer = _tiny_trainer(distill_type="t_axis", lambda_sim=2.0)
    clone = DMCodecTrainer.from_config(trainer.get_config())
    assert clone.get_config() == trainer.get_config()
    assert len(clone.weights) == len(trainer.weights)
    with pytest.raises(ValueError, match="unknown discriminators"):
        DMCodecTrainer(trainer.codec, discriminators={"hifi": {}})
    with pytest.raises(ValueError, match="distill_type"):
        DMCodecTrainer(trainer.codec, discriminators={}, distill_type="cosine")
