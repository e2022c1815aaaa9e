"""The sequential GAN step on TensorFlow (inside Keras's ``tf.function``)."""


def train_step(trainer, data):
    """One persistent tape: ``L_D`` is differentiated and applied while recording stops,
    then ``L_G`` is computed with the updated discriminators on the same codec forward.
    With ``adversarial_every`` k > 1, a ``tf.cond`` runs that step on every k-th
    iteration and a reconstruction-only step (no discriminators) on the others."""
    import tensorflow as tf  # deferred: the backend's framework, loaded only when it is active

    audio, targets = trainer.unpack_batch(data)
    # Under tf.distribute the per-replica loss is scaled by 1 / replicas and
    # the optimizers sum gradients over replicas (as Keras's own train_step).
    replicas = tf.distribute.get_strategy().num_replicas_in_sync
    if trainer.adversarial_every == 1:
        adversarial = True
        logs, d_loss = _adversarial_step(tf, trainer, audio, targets, replicas)
    else:
        adversarial = trainer.is_adversarial_step()
        logs, d_loss = tf.cond(
            adversarial,
            lambda: _adversarial_step(tf, trainer, audio, targets, replicas),
            lambda: _reconstruction_step(tf, trainer, audio, targets, replicas))
    trainer.optimizer.iterations.assign_add(1)
    return trainer.record_step(logs, d_loss, adversarial)


def _adversarial_step(tf, trainer, audio, targets, replicas):
    g_vars, d_vars = trainer.generator_variables(), trainer.discriminator_variables()
    with tf.GradientTape(persistent=True) as tape:
        out = trainer.codec(audio, training=True)
        d_loss = trainer.discriminator_loss(audio, out["audio"], training=True)
        scaled_d_loss = d_loss / replicas
        with tape.stop_recording():
            d_grads = tape.gradient(scaled_d_loss, d_vars)
            trainer.discriminator_optimizer.apply(d_grads, d_vars)
        logs = trainer.generator_losses(audio, out, targets)
        scaled_g_loss = logs["generator_loss"] / replicas
    g_grads = tape.gradient(scaled_g_loss, g_vars)
    del tape
    trainer.generator_optimizer.apply(g_grads, g_vars)
    return logs, d_loss


def _reconstruction_step(tf, trainer, audio, targets, replicas):
    g_vars = trainer.generator_variables()
    with tf.GradientTape() as tape:
        out = trainer.codec(audio, training=True)
        logs = trainer.generator_losses(audio, out, targets, adversarial=False)
        scaled_g_loss = logs["generator_loss"] / replicas
    trainer.generator_optimizer.apply(tape.gradient(scaled_g_loss, g_vars), g_vars)
    return logs, tf.zeros(())
