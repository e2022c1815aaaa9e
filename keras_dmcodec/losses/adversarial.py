"""Least-squares GAN and feature-matching losses (HiFi-GAN / reference trainer).

Each ``outputs`` argument is what a discriminator returns: a list of
``(logits, feature_maps)`` pairs, one per sub-discriminator.
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
