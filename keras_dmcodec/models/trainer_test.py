import keras
import numpy as np
import pytest
from keras import ops

from keras_dmcodec.layers.discriminators import MultiScaleDiscriminator
from keras_dmcodec.losses import frozen_call
from keras_dmcodec.models.dmcodec import DMCodec
from keras_dmcodec.models.trainer import LOSS_NAMES, DMCodecTrainer

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


# Both teachers, the text one 6-d (its own projection) and distilled into RVQ layer 1: every
# path by which the generator loss reaches the codec's weights.
DISTILLING = dict(distill="lm+sm", lm_dimension=6, lm_rvq_layer=1)


def test_fit_lowers_generator_loss_and_trains_every_part():
    trainer = _tiny_trainer(**DISTILLING)
    trainer.compile(optimizer=keras.optimizers.Adam(3e-3, beta_1=0.9, beta_2=0.99))
    x = _speechlike(4, 3200)
    teacher = np.random.default_rng(1).normal(size=(4, 10, 8)).astype("float32")
    data = {"audio": x, "sm_features": teacher, "lm_features": teacher[:, ::-1, :6].copy()}
    lm_before = [_np(v).copy() for v in trainer.lm_projection.trainable_variables]
    disc_before = [_np(v).copy() for v in trainer.discriminators[1].trainable_variables]
    codec_before = [_np(v).copy() for v in trainer.codec.trainable_variables]
    initial = trainer.get_weights()
    after_first_step = []  # one batch per epoch: epoch 0 is the first step
    keep = keras.callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: epoch or
                                          after_first_step.extend(trainer.get_weights()))
    history = trainer.fit(data, batch_size=4, epochs=12, verbose=0, shuffle=False,
                          callbacks=[keep])
    _assert_step_logs_composed_by_hand(
        {k: v[0] for k, v in history.history.items()}, initial, after_first_step, data)
    g = history.history["generator_loss"]
    assert g[-1] < g[1], g  # epoch 0 includes the k-means initialisation
    for name in ("discriminator_loss", "mel_error", "distill_loss", "feature_loss",
                 "sm_distill_loss", "lm_distill_loss"):
        assert np.all(np.isfinite(history.history[name]))
    assert any(not np.allclose(a, _np(b)) for a, b in
               zip(disc_before, trainer.discriminators[1].trainable_variables, strict=True))
    assert any(not np.allclose(a, _np(b)) for a, b in
               zip(codec_before, trainer.codec.trainable_variables, strict=True))
    assert all(not np.allclose(a, _np(b)) for a, b in
               zip(lm_before, trainer.lm_projection.trainable_variables, strict=True))
    assert float(_np(trainer.codec.quantizer.quantizers[0].initialized)) == 1.0
    logs = trainer.evaluate(data, batch_size=4, verbose=0, return_dict=True)
    assert {"mel_error", "recon_loss", "commitment_loss"} <= set(logs)


def _assert_step_logs_composed_by_hand(logs, initial, after_step, batch):
    """A sequential step (this backend's ``train_steps`` module, compiled as ``fit`` compiles
    it) logs L_D of the starting discriminators and every L_G term with the *updated* ones, on
    one codec forward: the numbers of the trainer's backend-neutral loss methods evaluated
    eagerly from the step's start, with its new discriminator weights put in by hand."""
    by_hand = _tiny_trainer(**DISTILLING)
    by_hand.set_weights(initial)  # incl. RNG states: the same k-means draws as the step's
    audio, targets = by_hand.unpack_batch(batch)
    out = by_hand.codec(audio, training=True)
    d_loss = by_hand.discriminator_loss(audio, out["audio"], training=True)
    stale = by_hand.generator_losses(audio, out, targets)
    stepped = _tiny_trainer(**DISTILLING)
    stepped.set_weights(after_step)
    for mine, theirs in zip(by_hand.discriminator_variables(),
                            stepped.discriminator_variables(), strict=True):
        mine.assign(theirs)
    expected = by_hand.generator_losses(audio, out, targets)
    expected["discriminator_loss"] = d_loss
    expected["loss"] = expected["generator_loss"] + d_loss
    for name in (*LOSS_NAMES, "loss"):
        assert logs[name] == pytest.approx(float(_np(expected[name])), rel=1e-4, abs=1e-6), name
    assert float(_np(stale["adversarial_loss"])) != pytest.approx(logs["adversarial_loss"],
                                                                  rel=1e-3)


def _codec_after_one_step(d_learning_rate, update_order, initial_weights):
    trainer = _tiny_trainer(update_order=update_order)
    trainer.set_weights(initial_weights)  # same start (incl. RNG states) for every run
    trainer.compile(optimizer=keras.optimizers.SGD(0.1),
                    discriminator_optimizer=keras.optimizers.SGD(d_learning_rate),
                    # One step: the same step code without a compile, except on JAX, whose
                    # eager ops compile one by one (the run's compilation cache shares the
                    # jitted step between the runs instead).
                    run_eagerly=keras.backend.backend() != "jax")
    trainer.fit(_speechlike(2, 3200), batch_size=2, epochs=1, verbose=0, shuffle=False)
    return [_np(v) for v in trainer.codec.trainable_variables]


def test_generator_step_sees_the_updated_discriminators():
    """Sequential (reference) order: the codec's update depends on the discriminators' step.

    With a frozen discriminator optimizer (lr 0) the codec's first update is
    the same in both orders; with a moving one it changes only when the
    generator loss is computed after the discriminator step.
    """
    initial = _tiny_trainer().get_weights()
    still = _codec_after_one_step(0.0, "sequential", initial)
    moved = _codec_after_one_step(50.0, "sequential", initial)
    assert any(not np.allclose(a, b, atol=1e-7) for a, b in zip(still, moved, strict=True))
    simultaneous = _codec_after_one_step(50.0, "simultaneous", initial)
    for a, b in zip(still, simultaneous, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=2e-5)


def test_distillation_modes_and_masks():
    rng = np.random.default_rng(3)
    x = _speechlike(2, 3200)
    sm = rng.normal(size=(2, 10, 8)).astype("float32")
    lm = rng.normal(size=(2, 10, 8)).astype("float32")
    mask = np.ones((2, 10), "float32")
    mask[1, 6:] = 0.0
    batch = {"audio": x, "sm_features": sm, "sm_mask": mask, "lm_features": lm, "lm_mask": mask}
    logs = {}
    for mode in ("none", "sm", "lm", "lm+sm"):
        trainer = _tiny_trainer(distill=mode)
        logs[mode] = {k: float(_np(v)) for k, v in trainer(batch).items()}
    assert logs["none"]["distill_loss"] == 0.0
    assert logs["sm"]["lm_distill_loss"] == 0.0 and logs["sm"]["sm_distill_loss"] > 0
    assert logs["lm"]["sm_distill_loss"] == 0.0 and logs["lm"]["lm_distill_loss"] > 0
    both = logs["lm+sm"]
    assert both["distill_loss"] == pytest.approx(
        0.5 * both["sm_distill_loss"] + 0.5 * both["lm_distill_loss"], rel=1e-5)
    with pytest.raises(ValueError, match="lm_features"):
        _tiny_trainer(distill="lm+sm")({"audio": x, "sm_features": sm})


def test_distillation_gradient_reaches_encoder_and_projection_only():
    """The distillation loss trains the encoder, the quantiser path and the projection,
    never the decoder (the teachers are fixed inputs, so they cannot change)."""
    trainer = _tiny_trainer(distill="sm")
    x = _speechlike(2, 3200)
    sm = np.random.default_rng(2).normal(size=(2, 10, 8)).astype("float32")
    trainer.codec(x, training=True)  # k-means initialisation outside the gradient
    variables = trainer.codec.trainable_variables
    backend = keras.backend.backend()

    def loss_fn():
        out = trainer.codec(ops.convert_to_tensor(x), training=False)
        return trainer.distill_loss(out, {"sm_features": ops.convert_to_tensor(sm)})[0]

    if backend == "tensorflow":
        import tensorflow as tf

        with tf.GradientTape() as tape:
            loss = loss_fn()
        grads = tape.gradient(loss, variables)
    elif backend == "jax":
        import jax

        def f(values):
            with keras.StatelessScope(state_mapping=list(zip(variables, values, strict=True))):
                return loss_fn()

        grads = jax.grad(f)([v.value for v in variables])
    else:
        trainer.codec.zero_grad()
        loss_fn().backward()
        grads = [v.value.grad for v in variables]
    paths = [v.path for v, g in zip(variables, grads, strict=True)
             if g is not None and np.any(_np(g))]
    assert any("/encoder/" in p for p in paths), paths
    assert any("distill_projection" in p for p in paths), paths
    assert not any("/decoder/" in p for p in paths), paths


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
            loss = loss_of(frozen_call(disc, xv))
        weight_grads = tape.gradient(loss, [v.value for v in disc.trainable_variables])
        input_grad = tape.gradient(loss, xv)
        assert all(g is None or not np.any(_np(g)) for g in weight_grads)
    elif backend == "jax":
        import jax

        def f(weights, inp):
            mapping = list(zip(disc.trainable_variables, weights, strict=True))
            with keras.StatelessScope(state_mapping=mapping):
                return loss_of(frozen_call(disc, inp))

        values = [v.value for v in disc.trainable_variables]
        weight_grads, input_grad = jax.grad(f, argnums=(0, 1))(values, x)
        assert all(not np.any(np.asarray(g)) for g in weight_grads)
    else:
        import torch

        xv = torch.tensor(x, requires_grad=True)
        loss_of(frozen_call(disc, xv)).backward()
        input_grad = xv.grad
        assert all(v.value.grad is None or not torch.any(v.value.grad)
                   for v in disc.trainable_variables)
    assert np.any(_np(input_grad))


def test_config_round_trip_and_validation():
    trainer = _tiny_trainer(distill_type="t_axis", lambda_sim=2.0, distill="lm+sm",
                            lm_dimension=6, lm_rvq_layer=1, update_order="simultaneous")
    clone = DMCodecTrainer.from_config(trainer.get_config())
    assert clone.get_config() == trainer.get_config()
    assert len(clone.weights) == len(trainer.weights)
    with pytest.raises(ValueError, match="unknown discriminators"):
        DMCodecTrainer(trainer.codec, discriminators={"hifi": {}})
    with pytest.raises(ValueError, match="distill_type"):
        DMCodecTrainer(trainer.codec, discriminators={}, distill_type="cosine")
    with pytest.raises(ValueError, match="distill must be"):
        DMCodecTrainer(trainer.codec, discriminators={}, distill="text")
    with pytest.raises(ValueError, match="update_order"):
        DMCodecTrainer(trainer.codec, discriminators={}, update_order="alternating")
    with pytest.raises(ValueError, match="lm_rvq_layer"):
        DMCodecTrainer(trainer.codec, discriminators={}, lm_rvq_layer=5)
    every = DMCodecTrainer(trainer.codec, discriminators={}, adversarial_every=4)
    assert DMCodecTrainer.from_config(every.get_config()).adversarial_every == 4
    for bad in (0, 1.5, -2):
        with pytest.raises(ValueError, match="adversarial_every must be an integer >= 1"):
            DMCodecTrainer(trainer.codec, discriminators={}, adversarial_every=bad)
    with pytest.raises(ValueError, match="needs update_order='sequential'"):
        DMCodecTrainer(trainer.codec, discriminators={}, adversarial_every=2,
                       update_order="simultaneous")


def test_adversarial_every_k_runs_the_discriminators_on_every_kth_step_only():
    """``adversarial_every=2``: steps 0 and 2 update the discriminators and add the GAN terms;
    steps 1 and 3 train the codec alone; the adversarial metrics average their own steps."""
    codec = DMCodec(n_filters=4, dimension=16, semantic_dimension=8, n_q=2, codebook_size=16,
                    lstm_layers=1, kmeans_iters=2, seed=0)
    trainer = DMCodecTrainer(codec, discriminators={"msd": {"num_scales": 1, "channels": [4] * 7}},
                             mel_weights=(45.0, 1.0), distill="sm", adversarial_every=2)
    # Compiled on TensorFlow and JAX (their tf.cond / lax.cond), eager on torch.
    trainer.compile(optimizer=keras.optimizers.Adam(1e-3),
                    run_eagerly=keras.backend.backend() == "torch")
    data = {"audio": _speechlike(2, 3200),
            "sm_features": np.random.default_rng(1).normal(size=(2, 10, 8)).astype("float32")}
    disc = trainer.discriminators[0]
    snapshots = [([_np(v).copy() for v in disc.trainable_variables],
                  [_np(v).copy() for v in codec.trainable_variables])]
    keep = keras.callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: snapshots.append(
        ([_np(v).copy() for v in disc.trainable_variables],
         [_np(v).copy() for v in codec.trainable_variables])))
    # One batch per epoch, so each epoch's logs are one step's.
    history = trainer.fit(data, batch_size=2, epochs=4, verbose=0, shuffle=False,
                          callbacks=[keep]).history

    def moved(before, after):
        return any(not np.array_equal(a, b) for a, b in zip(before, after, strict=True))

    for step in range(4):
        adversarial = step % 2 == 0
        (disc_before, codec_before), (disc_after, codec_after) = snapshots[step:step + 2]
        assert moved(disc_before, disc_after) == adversarial, step
        assert moved(codec_before, codec_after), step
        logs = {k: v[step] for k, v in history.items()}
        for name in ("discriminator_loss", "adversarial_loss", "feature_loss"):
            assert (logs[name] > 0) == adversarial, (step, name, logs[name])
        reconstruction = (logs["mel_loss"] + 10 * logs["commitment_loss"]
                          + 500 * logs["recon_loss"] + 120 * logs["distill_loss"])
        gan = logs["adversarial_loss"] + logs["feature_loss"] if adversarial else 0.0
        np.testing.assert_allclose(logs["generator_loss"], reconstruction + gan, rtol=1e-4)
    assert int(_np(trainer.optimizer.iterations)) == 4
    assert int(_np(trainer.generator_optimizer.iterations)) == 4
    assert int(_np(trainer.discriminator_optimizer.iterations)) == 2


@pytest.mark.skipif(keras.backend.backend() == "jax",
                    reason="JAX needs its jit for speed (~2 min to compile here); its EMA path is "
                           "checked exactly by training/train_test.py's shipped-average test")
def test_weight_average_is_the_codec_optimizers_ema_swapped_in_by_fit():
    """An EMA generator optimizer: ``fit`` ends with the codec's trainable weights replaced by
    their moving average (recomputed here from each step's raw weights); the discriminators
    keep their last weights; ``use_weight_average`` repeats the swap (same values) and is a
    no-op without an EMA."""
    momentum = 0.5
    codec = DMCodec(n_filters=4, dimension=16, semantic_dimension=0, n_q=2, codebook_size=16,
                    lstm_layers=1, kmeans_iters=2, seed=0)
    trainer = DMCodecTrainer(codec, discriminators={"msd": {"num_scales": 1, "channels": [4] * 7}},
                             mel_weights=(45.0, 1.0))
    trainer.compile(optimizer=keras.optimizers.Adam(1e-3, use_ema=True, ema_momentum=momentum),
                    discriminator_optimizer=keras.optimizers.Adam(1e-3),
                    run_eagerly=True)  # 3 steps: compiling would cost more than they do
    disc = trainer.discriminators[0]
    raw = []  # (codec, discriminator) trainable weights after each step, before fit's swap
    keep = keras.callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: raw.append(
        ([_np(v).copy() for v in codec.trainable_variables],
         [_np(v).copy() for v in disc.trainable_variables])))
    trainer.fit({"audio": _speechlike(2, 3200)}, batch_size=2, epochs=3, verbose=0,
                shuffle=False, callbacks=[keep])
    # Keras's EMA: the first step copies the weights, then average = m * average + (1 - m) * w.
    average = raw[0][0]
    for codec_weights, _ in raw[1:]:
        average = [momentum * a + (1 - momentum) * w for a, w in zip(average, codec_weights,
                                                                     strict=True)]
    assert any(not np.allclose(a, w) for a, w in zip(average, raw[-1][0], strict=True))
    for variable, expected in zip(codec.trainable_variables, average, strict=True):
        np.testing.assert_allclose(_np(variable), expected, rtol=1e-5, atol=1e-6,
                                   err_msg=variable.path)
    for variable, expected in zip(disc.trainable_variables, raw[-1][1], strict=True):
        np.testing.assert_array_equal(_np(variable), expected)
    assert trainer.use_weight_average()
    for variable, expected in zip(codec.trainable_variables, average, strict=True):
        np.testing.assert_allclose(_np(variable), expected, rtol=1e-5, atol=1e-6)
    plain = _tiny_trainer()
    plain.compile(optimizer=keras.optimizers.Adam(1e-3))
    assert not plain.use_weight_average()


def test_mixed_bfloat16_fit_step():
    """A codec built with ``dtype="mixed_bfloat16"`` trains with ``fit``: its discriminators
    take the codec's policy, losses are float32 and finite, and every part's weights move."""
    codec = DMCodec(n_filters=4, dimension=16, semantic_dimension=8, n_q=2, codebook_size=16,
                    lstm_layers=1, kmeans_iters=2, seed=0, dtype="mixed_bfloat16")
    # One small discriminator: the step's compile dominates this test on JAX.
    trainer = DMCodecTrainer(codec, discriminators={"msd": {"num_scales": 1, "channels": [4] * 7}},
                             mel_weights=(45.0, 1.0), distill="sm")
    # Eager on TensorFlow and torch: tracing one step costs more than running it.
    trainer.compile(optimizer=keras.optimizers.Adam(1e-3),
                    run_eagerly=keras.backend.backend() != "jax")
    assert all(d.compute_dtype == "bfloat16" for d in trainer.discriminators)
    x = _speechlike(2, 3200)
    teacher = np.random.default_rng(1).normal(size=(2, 10, 8)).astype("float32")
    codec_before = [_np(v).copy() for v in codec.trainable_variables]
    disc_before = [_np(v).copy() for v in trainer.discriminators[0].trainable_variables]
    history = trainer.fit({"audio": x, "sm_features": teacher}, batch_size=2, epochs=1,
                          verbose=0)
    for name in ("generator_loss", "discriminator_loss", "mel_error", "distill_loss"):
        assert all(np.isfinite(history.history[name])), name
    assert all(keras.backend.standardize_dtype(v.dtype) == "float32"
               for v in codec.trainable_variables)
    assert any(not np.array_equal(b, _np(v))
               for b, v in zip(codec_before, codec.trainable_variables, strict=True))
    assert any(not np.array_equal(b, _np(v)) for b, v in zip(
        disc_before, trainer.discriminators[0].trainable_variables, strict=True))
