"""Backend-neutral losses of the DM-Codec trainer."""

from keras_dmcodec.losses.adversarial import (
    AdversarialLoss,
    discriminator_loss,
    feature_matching_loss,
    frozen_call,
    generator_adversarial_loss,
)
from keras_dmcodec.losses.distillation import d_axis_distill_loss, t_axis_distill_loss
from keras_dmcodec.losses.reconstruction import (
    MelSpectrogram,
    MultiScaleMelLoss,
    time_l1_loss,
)

__all__ = [
    "AdversarialLoss",
    "MelSpectrogram",
    "MultiScaleMelLoss",
    "d_axis_distill_loss",
    "discriminator_loss",
    "feature_matching_loss",
    "frozen_call",
    "generator_adversarial_loss",
    "t_axis_distill_loss",
    "time_l1_loss",
]
