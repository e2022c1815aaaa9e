"""GAN training of a DMCodec with Keras's own ``fit`` / ``evaluate`` on every backend."""

import keras
from keras import ops

from keras_dmcodec.layers.discriminators import (
    MultiPeriodDiscriminator,
    MultiScaleDiscriminator,
    MultiScaleSTFTDiscriminator,
)
from keras_dmcodec.losses import (
    MultiScaleMelLoss,
    d_axis_distill_loss,
    discriminator_loss,
    feature_matching_loss,
    generator_adversarial_loss,
    t_axis_distill_loss,
    time_l1_loss,
)
from keras_dmcodec.models.dmcodec import DMCodec

DISCRIMINATORS = {
    "mpd": MultiPeriodDiscriminator,
    "msd": MultiScaleDiscriminator,
    "mstft": MultiScaleSTFTDiscriminator,
}

LOSS_NAMES = ("generator_loss", "discriminator_loss", "adversarial_loss", "feature_loss",
              "mel_loss", "mel_error", "recon_loss", "commitment_loss", "distill_loss")


def _frozen_call(layer, *args, **kwargs):
    """Calls ``layer`` with its weights behind ``stop_gradient`` (gradients reach the inputs only).

    The generator's adversarial and feature-matching terms must not train the
    discriminators; this runs them as pure functions of detached weights.
    """
    trainable = [ops.stop_gradient(v.value) for v in layer.trainable_variables]
    non_trainable = [v.value for v in layer.non_trainable_variables]
    outputs, _ = layer.stateless_call(trainable, non_trainable, *args, **kwargs)
    return outputs


@keras.saving.register_keras_serializable(package="keras_dmcodec")
class DMCodecTrainer(keras.Model):
    """Trains a ``DMCodec`` as the reference does: GAN, reconstruction, commitment, distillation.

    ``fit`` batches are audio ``[batch, samples]`` or dicts with ``"audio"`` and,
    for distillation, ``"teacher_features"`` ``[batch, frames, semantic_dimension]``.
    Generator loss (reference weights)::

        L_G = L_fm + L_adv + sum_i w_mel_i * L_mel_i + 10 * L_commit + 500 * L1_time
              + 120 * L_distill
        L_D = sum_k mean((1 - D_k(x))^2) + mean(D_k(stop_grad(x_hat))^2)

    The model minimises ``L_G + L_D`` with one optimizer over all weights: the
    discriminators see the reconstruction behind ``stop_gradient`` in ``L_D``,
    and ``L_G`` runs them with detached weights, so each loss only reaches its
    own networks. With Adam this equals two Adam optimizers with equal settings
    (the reference's two, lr 1e-4, betas (0.9, 0.99)); the one difference is
    that the reference updates the discriminators before computing ``L_G``
    within a step, here both use the discriminators of the step's start.
    Because it is Keras's standard ``train_step``, ``fit`` runs jit-compiled on
    TensorFlow, JAX and PyTorch, with codebook EMA updates carried as
    non-trainable state.

    Args:
        codec: a ``DMCodec`` (or its config dict).
        discriminators: dict name -> config of the discriminators to use
            (``"mpd"``, ``"msd"``, ``"mstft"``); ``{}`` trains without GAN terms.
        mel_weights: list of float. Multi-scale mel weights (reference 45, 1, 1, 1).
        mel_n_fft: int. Largest mel FFT (reference 1024).
        mel_hop_length: int. Largest mel hop (reference 240).
        recon_weight: float. Time-domain L1 weight (500).
        commitment_weight: float. RVQ commitment weight (10).
        adversarial_weight: float. LSGAN generator weight (1).
        feature_weight: float. Feature-matching weight (1; the loss is already x2).
        distill_weight: float. Distillation weight (120).
        distill_type: str. ``"d_axis"`` (reference default) or ``"t_axis"``.
        lambda_sim: float. Cosine weight of the ``t_axis`` loss.

    Example:
    >>> codec = DMCodec(n_filters=4, dimension=16, semantic_dimension=0, n_q=2,
    ...                 codebook_size=16, lstm_layers=1, kmeans_iters=2)
    >>> trainer = DMCodecTrainer(codec, discriminators={"msd": {"num_scales": 1,
    ...                          "channels": [8] * 7}}, mel_weights=(45.0,))
    >>> trainer.compile(optimizer=keras.optimizers.Adam(1e-4, beta_2=0.99))
    >>> history = trainer.fit(np.random.randn(4, 3200).astype("float32") * 0.1,
    ...                       batch_size=2, epochs=1, verbose=0)
    >>> sorted(history.history)[:3]
    ['adversarial_loss', 'commitment_loss', 'discriminator_loss']
    """

    def __init__(
        self,
        codec,
        discriminators=None,
        mel_weights=(45.0, 1.0, 1.0, 1.0),
        mel_n_fft=1024,
        mel_hop_length=240,
        recon_weight=500.0,
        commitment_weight=10.0,
        adversarial_weight=1.0,
        feature_weight=1.0,
        distill_weight=120.0,
        distill_type="d_axis",
        lambda_sim=1.0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if isinstance(codec, dict):
            codec = keras.saving.deserialize_keras_object(codec) if "class_name" in codec \
                else DMCodec(**codec)
        if distill_type not in ("d_axis", "t_axis"):
            raise ValueError(f"distill_type must be 'd_axis' or 't_axis', got {distill_type!r}")
        self.codec = codec
        if discriminators is None:
            discriminators = {"mpd": {}, "msd": {}, "mstft": {}}
        unknown = set(discriminators) - set(DISCRIMINATORS)
        if unknown:
            raise ValueError(f"unknown discriminators {sorted(unknown)}; "
                             f"choose from {sorted(DISCRIMINATORS)}")
        self.discriminator_configs = {k: dict(v) for k, v in discriminators.items()}
        self.discriminators = [DISCRIMINATORS[k](**v, name=k)
                               for k, v in self.discriminator_configs.items()]
        self.mel_weights = [float(w) for w in mel_weights]
        self.mel_n_fft = int(mel_n_fft)
        self.mel_hop_length = int(mel_hop_length)
        self.mel_loss = MultiScaleMelLoss(codec.sample_rate, self.mel_n_fft, self.mel_hop_length,
                                          weights=self.mel_weights, name="mel_loss")
        self.recon_weight = float(recon_weight)
        self.commitment_weight = float(commitment_weight)
        self.adversarial_weight = float(adversarial_weight)
        self.feature_weight = float(feature_weight)
        self.distill_weight = float(distill_weight)
        self.distill_type = distill_type
        self.lambda_sim = float(lambda_sim)
        self.trackers = {name: keras.metrics.Mean(name=name) for name in LOSS_NAMES}
        self.build()

    def build(self, input_shape=None):
        """Creates every weight eagerly (weight-norm gains are initialised from their kernels)."""
        if self.built:
            return
        if not self.codec.built:
            self.codec.build((None, None))
        dummy = ops.zeros((1, self.codec.sample_rate // 2))
        for disc in self.discriminators:
            disc(dummy)
        self.mel_loss(dummy, dummy)
        self.built = True

    @property
    def metrics(self):
        return [self._loss_tracker] + list(self.trackers.values())

    def _distill(self, features, targets):
        if self.distill_type == "d_axis":
            return d_axis_distill_loss(features, targets)
        return t_axis_distill_loss(features, targets, self.lambda_sim)

    def call(self, inputs, training=False):
        if isinstance(inputs, dict):
            audio = inputs["audio"]
            targets = inputs.get("teacher_features")
        else:
            audio, targets = inputs, None
        audio = ops.cast(audio, "float32")
        out = self.codec(audio, training=training)
        fake = out["audio"]

        zero = ops.zeros(())
        d_loss, adv, fm = zero, zero, zero
        for disc in self.discriminators:
            real_out = disc(audio, training=training)
            fake_out_d = disc(ops.stop_gradient(fake), training=training)
            d_loss = d_loss + discriminator_loss(real_out, fake_out_d)
            fake_out_g = _frozen_call(disc, fake, training=False)
            adv = adv + generator_adversarial_loss(fake_out_g)
            fm = fm + feature_matching_loss(real_out, fake_out_g)

        mel_parts = self.mel_loss.scale_losses(audio, fake)
        mel = sum(w * p for w, p in zip(self.mel_weights, mel_parts, strict=True))
        recon = time_l1_loss(audio, fake)
        commit = out["commitment_loss"]
        distill = zero
        if targets is not None:
            if out["distill_features"] is None:
                raise ValueError("teacher_features given but the codec has semantic_dimension=0")
            distill = self._distill(out["distill_features"], ops.cast(targets, "float32"))
        g_loss = (self.feature_weight * fm + self.adversarial_weight * adv + mel
                  + self.commitment_weight * commit + self.recon_weight * recon
                  + self.distill_weight * distill)
        return {
            "loss": g_loss + d_loss,
            "generator_loss": g_loss,
            "discriminator_loss": d_loss,
            "adversarial_loss": adv,
            "feature_loss": fm,
            "mel_loss": mel,
            "mel_error": mel_parts[0],
            "recon_loss": recon,
            "commitment_loss": commit,
            "distill_loss": distill,
        }

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        return y_pred["loss"]

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        for name, tracker in self.trackers.items():
            tracker.update_state(y_pred[name])
        return self.get_metrics_result()

    def get_config(self):
        config = super().get_config()
        config.update(
            codec=keras.saving.serialize_keras_object(self.codec),
            discriminators=self.discriminator_configs,
            mel_weights=self.mel_weights,
            mel_n_fft=self.mel_n_fft,
            mel_hop_length=self.mel_hop_length,
            recon_weight=self.recon_weight,
            commitment_weight=self.commitment_weight,
            adversarial_weight=self.adversarial_weight,
            feature_weight=self.feature_weight,
            distill_weight=self.distill_weight,
            distill_type=self.distill_type,
            lambda_sim=self.lambda_sim,
        )
        return config
