"""Least-squares GAN and feature-matching losses (HiFi-GAN / reference trainer).

Each ``outputs`` argument is what a discriminator returns: a list of
``(logits, feature_maps)`` pairs, one per sub-discriminator. ``AdversarialLoss``
applies them over a set of discriminators.
"""

from keras import ops


def discriminator_loss(real_outputs, fake_outputs):
    """``sum_k mean((1 - D_k(x))^2) + mean(D_k(x_hat)^2)`` over sub-discriminators."""
    loss = 0.0
    for (real, _), (fake, _) in zip(real_outputs, fake_outputs, strict=True):
        loss = loss + ops.mean(ops.square(1.0 - real)) + ops.mean(ops.square(fake))
    return loss


def generator_adversarial_loss(fake_outputs):
    """``sum_k mean((1 - D_k(x_hat))^2)``."""
    loss = 0.0
    for fake, _ in fake_outputs:
        loss = loss + ops.mean(ops.square(1.0 - fake))
    return loss


def feature_matching_loss(real_outputs, fake_outputs):
    """``2 * sum_k sum_l mean|f_kl(x) - f_kl(x_hat)|`` (real features carry no gradient)."""
    loss = 0.0
    for (_, real_maps), (_, fake_maps) in zip(real_outputs, fake_outputs, strict=True):
        for real, fake in zip(real_maps, fake_maps, strict=True):
            real = ops.stop_gradient(ops.convert_to_tensor(real))
            loss = loss + ops.mean(ops.abs(real - fake))
    return 2.0 * loss


def frozen_call(layer, *args, **kwargs):
    """Calls ``layer`` with its weights behind ``stop_gradient`` (gradients reach the inputs only).

    For generator terms computed in the same differentiated function as the
    discriminator loss, where the discriminators must not learn from them.
    """
    trainable = [ops.stop_gradient(v.value) for v in layer.trainable_variables]
    non_trainable = [v.value for v in layer.non_trainable_variables]
    outputs, _ = layer.stateless_call(trainable, non_trainable, *args, **kwargs)
    return outputs


class AdversarialLoss:
    """The GAN part of a codec's loss over a set of discriminators (LSGAN + feature matching).

    As audiocraft's ``AdversarialLoss``, it holds the discriminators and gives
    the two sides of the game; a trainer only composes its terms::

        L_D   = sum_k mean((1 - D_k(x))^2) + mean(D_k(stop_grad(x_hat))^2)
        L_adv = sum_k mean((1 - D_k(x_hat))^2)
        L_fm  = 2 * sum_k sum_l mean|f_kl(x) - f_kl(x_hat)|

    It is a plain object, not a Keras layer: the trainer tracks the
    discriminators itself (their weights keep their paths in trainer
    checkpoints), and their optimizer stays in the trainer's
    ``MultiOptimizer``, where Keras saves it and threads its state on JAX.

    Args:
        discriminators: list of discriminator layers, each returning a list of
            ``(logits, feature_maps)`` pairs; empty for no GAN terms (all zero).

    Example:
    >>> from keras_dmcodec.layers.discriminators import MultiScaleDiscriminator
    >>> adversarial = AdversarialLoss([MultiScaleDiscriminator(num_scales=1,
    ...                                                        channels=[4] * 7)])
    >>> real = np.random.default_rng(0).normal(size=(1, 512)).astype("float32")
    >>> adv, fm = adversarial.generator_terms(real, 0.5 * real)
    >>> float(ops.convert_to_numpy(fm)) > 0
    True
    """

    def __init__(self, discriminators):
        self.discriminators = list(discriminators)

    def discriminator_loss(self, real, fake, training=False):
        """``L_D`` on ``stop_gradient(fake)``: its gradient reaches the discriminators only."""
        fake = ops.stop_gradient(fake)
        loss = ops.zeros(())
        for disc in self.discriminators:
            loss = loss + discriminator_loss(disc(real, training=training),
                                             disc(fake, training=training))
        return loss

    def generator_terms(self, real, fake, frozen=False):
        """``(L_adv, L_fm)``, the generator's terms.

        Args:
            real: reference audio ``[batch, samples]``.
            fake: the codec's reconstruction ``[batch, samples]``.
            frozen: bool. Run the discriminators with their weights behind
                ``stop_gradient`` (see ``frozen_call``).
        """
        adversarial, feature = ops.zeros(()), ops.zeros(())
        for disc in self.discriminators:
            if frozen:
                real_out = frozen_call(disc, real, training=False)
                fake_out = frozen_call(disc, fake, training=False)
            else:
                real_out, fake_out = disc(real, training=False), disc(fake, training=False)
            adversarial = adversarial + generator_adversarial_loss(fake_out)
            feature = feature + feature_matching_loss(real_out, fake_out)
        return adversarial, feature
