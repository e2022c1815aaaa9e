"""The sequential GAN training step, one module per backend.

As Keras's own ``backend/<name>/trainer.py``: the losses are defined once,
backend-neutral, by ``DMCodecTrainer`` (``generator_losses``,
``discriminator_loss``); each module here only differentiates them in the
reference's order (the discriminators step on ``L_D(x, stop_grad(x_hat))``,
then ``L_G`` is computed with the *updated* discriminators and the codec
steps) and applies the two optimizers. These modules are the only place the
trainer touches tensorflow, jax or torch; each imports its framework inside
``train_step``, so only the active backend's is ever loaded.
"""

import keras

from keras_dmcodec.models.train_steps import jax as jax_step
from keras_dmcodec.models.train_steps import tensorflow as tensorflow_step
from keras_dmcodec.models.train_steps import torch as torch_step

_STEPS = {
    "jax": jax_step.train_step,
    "tensorflow": tensorflow_step.train_step,
    "torch": torch_step.train_step,
}


def sequential_train_step(trainer, *args):
    """Runs ``trainer``'s sequential step on the active Keras backend.

    Args:
        trainer: a compiled ``DMCodecTrainer``.
        *args: what Keras passes to ``train_step``: ``(data,)``, or on JAX
            ``(state, data)``.

    Returns:
        the metrics' results (on JAX, with the new state).
    """
    backend = keras.backend.backend()
    if backend not in _STEPS:
        raise NotImplementedError(f"sequential GAN step not implemented for backend {backend!r}")
    return _STEPS[backend](trainer, *args)
