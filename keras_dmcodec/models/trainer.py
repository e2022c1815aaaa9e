"""GAN training of a DMCodec with Keras's own ``fit`` / ``evaluate`` on every backend.

The step follows the reference trainer (DM-Codec ``trainer.py``, from SpeechTokenizer):
the codec reconstructs the batch once; the discriminators take an Adam step on
``L_D(x, stop_grad(x_hat))``; then the generator loss is computed with the
*updated* discriminators and the codec takes its own Adam step. The two
optimizers live in one ``keras.optimizers.MultiOptimizer`` so that Keras saves,
restores and (on JAX) threads their state like any optimizer's.

The losses are written once here, with ``keras.ops`` (the GAN terms in
``losses.AdversarialLoss``); the sequential step that differentiates them on each
backend lives in ``models/train_steps/<backend>.py``, which uses only the public
methods below (``unpack_batch``, ``generator_losses``, ``record_step``, ...).
"""

import keras
from keras import ops

from keras_dmcodec.layers.discriminators import (
    MultiPeriodDiscriminator,
    MultiScaleDiscriminator,
    MultiScaleSTFTDiscriminator,
)
from keras_dmcodec.losses import (
    AdversarialLoss,
    MultiScaleMelLoss,
    d_axis_distill_loss,
    t_axis_distill_loss,
    time_l1_loss,
)
from keras_dmcodec.models import train_steps
from keras_dmcodec.models.dmcodec import DMCodec

DISCRIMINATORS = {
    "mpd": MultiPeriodDiscriminator,
    "msd": MultiScaleDiscriminator,
    "mstft": MultiScaleSTFTDiscriminator,
}

DISTILL_MODES = ("none", "lm", "sm", "lm+sm")

# Metrics of the adversarial part of the step, averaged over the steps that run it.
ADVERSARIAL_METRICS = ("adversarial_loss", "feature_loss", "discriminator_loss")

LOSS_NAMES = ("generator_loss", "discriminator_loss", "adversarial_loss", "feature_loss",
              "mel_loss", "mel_error", "recon_loss", "commitment_loss", "distill_loss",
              "sm_distill_loss", "lm_distill_loss")


def _clone_optimizer(optimizer):
    return optimizer.__class__.from_config(optimizer.get_config())


@keras.saving.register_keras_serializable(package="keras_dmcodec")
class DMCodecTrainer(keras.Model):
    """Trains a ``DMCodec`` as the reference does: GAN, reconstruction, commitment, distillation.

    ``fit`` batches are audio ``[batch, samples]`` or dicts with ``"audio"`` and,
    for distillation, teacher targets aligned to the codec's frames:
    ``"sm_features"`` / ``"sm_mask"`` (speech model) and ``"lm_features"`` /
    ``"lm_mask"`` (text model), features ``[batch, frames, dim]`` and masks
    ``[batch, frames]`` (1 = a real teacher frame). ``"teacher_features"`` is an
    alias of ``"sm_features"``. Generator loss (reference weights)::

        L_G = L_fm + L_adv + sum_i w_mel_i * L_mel_i + 10 * L_commit + 500 * L1_time
              + 120 * L_distill
        L_distill = (L_SM + L_LM) / 2            (distill="lm+sm", weights 0.5 / 0.5)
        L_D = sum_k mean((1 - D_k(x))^2) + mean(D_k(stop_grad(x_hat))^2)

    Each step (``update_order="sequential"``, the reference's order): one codec
    forward pass; the discriminators take a step on ``L_D``; ``L_G`` is then
    computed with the updated discriminators and the codec takes its step.
    Two Adam optimizers (the reference's ``optim_d`` and ``optim_g``) share
    the settings of the optimizer passed to ``compile`` unless
    ``discriminator_optimizer`` is given. ``update_order="simultaneous"``
    instead minimises ``L_G + L_D`` in one step with both losses computed from
    the step's starting weights (each loss still reaches only its own
    networks); it is about 15 % cheaper and kept for comparison.
    Works under ``fit`` on TensorFlow (``tf.function``), JAX (``jax.jit``,
    stateless) and PyTorch; codebook EMA updates happen once per step in the
    codec's forward pass, outside the gradient path.

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
        distill: str. ``"none"``, ``"lm"``, ``"sm"`` or ``"lm+sm"``; ``None``
            distils from whichever teacher targets the batches carry.
        sm_weight: float. Weight of the speech-teacher loss in ``L_distill``.
        lm_weight: float. Weight of the text-teacher loss in ``L_distill``.
            With both teachers the reference averages them (0.5 / 0.5, its
            ``combined``); ``combined_<w_sm>_<w_lm>`` weights map to these.
            With one teacher its weight is used as given (default 1.0 then).
        distill_type: str. ``"d_axis"`` (reference default) or ``"t_axis"``.
        lambda_sim: float. Cosine weight of the ``t_axis`` loss.
        sm_rvq_layer: int or None. RVQ layer distilled towards the speech
            teacher (None: the codec's ``distill_layer``, the reference's 0).
        lm_rvq_layer: int or None. RVQ layer distilled towards the text teacher
            (the reference's ``--lock`` option distils the two teachers into
            different layers).
        lm_dimension: int or None. Width of the text teacher when it differs
            from the codec's ``semantic_dimension`` (then the trainer owns a
            separate ``lm_projection``; the reference shares one projection).
        distill_frame0_only: bool. Reproduce the released reference's defect
            of distilling only the first frame (see ``losses/distillation.py``).
        update_order: str. ``"sequential"`` (reference) or ``"simultaneous"``.
        adversarial_every: int. Run the adversarial part of the step (the
            discriminators' update and the generator's adversarial and
            feature-matching terms) on every ``k``-th step only, counted from
            step 0; the other steps train the codec on its reconstruction,
            commitment and distillation terms alone, without running the
            discriminators. 1 (the reference) is every step. A cheaper GAN
            phase on small machines: with MS-STFT alone the adversarial step
            costs ~7x a reconstruction step here. The logged
            ``adversarial_loss``, ``feature_loss`` and ``discriminator_loss``
            average the adversarial steps only. The discriminators' learning-rate
            schedule advances with their own updates (once per ``k`` steps).
            Needs ``update_order="sequential"``.

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
        distill=None,
        sm_weight=None,
        lm_weight=None,
        distill_type="d_axis",
        lambda_sim=1.0,
        sm_rvq_layer=None,
        lm_rvq_layer=None,
        lm_dimension=None,
        distill_frame0_only=False,
        update_order="sequential",
        adversarial_every=1,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if isinstance(codec, dict):
            codec = keras.saving.deserialize_keras_object(codec) if "class_name" in codec \
                else DMCodec(**codec)
        if distill_type not in ("d_axis", "t_axis"):
            raise ValueError(f"distill_type must be 'd_axis' or 't_axis', got {distill_type!r}")
        if distill is not None and distill not in DISTILL_MODES:
            raise ValueError(f"distill must be one of {DISTILL_MODES} or None, got {distill!r}")
        if update_order not in ("sequential", "simultaneous"):
            raise ValueError("update_order must be 'sequential' or 'simultaneous', got "
                             f"{update_order!r}")
        if int(adversarial_every) != adversarial_every or adversarial_every < 1:
            raise ValueError("adversarial_every must be an integer >= 1, got "
                             f"{adversarial_every!r}")
        if adversarial_every > 1 and update_order != "sequential":
            raise ValueError("adversarial_every > 1 needs update_order='sequential', got "
                             f"{update_order!r}")
        if distill not in (None, "none") and not codec.semantic_dimension:
            raise ValueError(f"distill={distill!r} needs a codec with semantic_dimension > 0")
        self.codec = codec
        if discriminators is None:
            discriminators = {"mpd": {}, "msd": {}, "mstft": {}}
        unknown = set(discriminators) - set(DISCRIMINATORS)
        if unknown:
            raise ValueError(f"unknown discriminators {sorted(unknown)}; "
                             f"choose from {sorted(DISCRIMINATORS)}")
        self.discriminator_configs = {k: dict(v) for k, v in discriminators.items()}
        # The discriminators compute in the codec's dtype policy (e.g. mixed_bfloat16) unless
        # their config names one.
        self.discriminators = [DISCRIMINATORS[k](**{"dtype": codec.dtype_policy, **v}, name=k)
                               for k, v in self.discriminator_configs.items()]
        self.adversarial = AdversarialLoss(self.discriminators)
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
        self.distill = distill
        both = distill == "lm+sm" or distill is None
        self.sm_weight = float(sm_weight if sm_weight is not None else (0.5 if both else 1.0))
        self.lm_weight = float(lm_weight if lm_weight is not None else (0.5 if both else 1.0))
        self.distill_type = distill_type
        self.lambda_sim = float(lambda_sim)
        for name, layer in (("sm_rvq_layer", sm_rvq_layer), ("lm_rvq_layer", lm_rvq_layer)):
            if layer is not None and not 0 <= int(layer) < codec.n_q:
                raise ValueError(f"{name} must be in [0, {codec.n_q}), got {layer}")
        self.sm_rvq_layer = None if sm_rvq_layer is None else int(sm_rvq_layer)
        self.lm_rvq_layer = None if lm_rvq_layer is None else int(lm_rvq_layer)
        self.lm_dimension = None if lm_dimension is None else int(lm_dimension)
        self.lm_projection = None
        if self.lm_dimension and self.lm_dimension != codec.semantic_dimension:
            self.lm_projection = keras.layers.Dense(self.lm_dimension, name="lm_projection")
        self.distill_frame0_only = bool(distill_frame0_only)
        self.update_order = update_order
        self.adversarial_every = int(adversarial_every)
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
        if self.lm_projection is not None:
            self.lm_projection.build((None, None, self.codec.dimension))
        self.built = True

    @property
    def metrics(self):
        return [self._loss_tracker] + list(self.trackers.values())

    # ----------------------------------------------------------- optimizers
    def compile(self, optimizer="adam", discriminator_optimizer=None, **kwargs):
        """Compiles with a generator optimizer and a discriminator optimizer.

        Args:
            optimizer: the codec's (generator's) optimizer; the reference uses
                ``Adam(1e-4, beta_1=0.9, beta_2=0.99)`` with per-step cosine decay.
            discriminator_optimizer: the discriminators' optimizer (default: a
                fresh copy of ``optimizer``'s configuration, as the reference).
            **kwargs: passed to ``keras.Model.compile`` (e.g. ``jit_compile``).
        """
        g_opt = keras.optimizers.get(optimizer)
        d_opt = discriminator_optimizer
        d_opt = _clone_optimizer(g_opt) if d_opt is None else keras.optimizers.get(d_opt)
        d_ids = {id(v) for v in self.discriminator_variables()}
        self._g_opt, self._d_opt = g_opt, d_opt
        # Variables are routed by identity; the codec's come first in
        # ``trainable_variables``, so the generator optimizer is inner optimizer 0.
        multi = keras.optimizers.MultiOptimizer(lambda v: d_opt if id(v) in d_ids else g_opt,
                                                name="gan_optimizer")
        super().compile(optimizer=multi, **kwargs)
        multi.build(self.trainable_variables)
        if multi.optimizers != [g_opt, d_opt] and self.discriminator_variables():
            raise RuntimeError("optimizer routing failed: expected [generator, discriminator]")

    @property
    def generator_optimizer(self):
        return self._g_opt

    def use_weight_average(self):
        """Replaces the codec's trainable weights with their moving average, if one is kept.

        The average is the generator optimizer's EMA of the weights (an optimizer built with
        ``use_ema=True, ema_momentum=m``, updated after every generator update on every
        backend). Codebooks are not trainable weights: they keep their own EMA and their
        current values. ``fit`` makes the same swap when it ends; this call does it for a
        trainer restored from a checkpoint (``training.ship``). Returns True if it swapped.
        """
        if not getattr(self._g_opt, "use_ema", False):
            return False
        # The generator optimizer was built on generator_variables() in this order (compile).
        self._g_opt.finalize_variable_values(self.generator_variables())
        return True

    @property
    def discriminator_optimizer(self):
        return self._d_opt

    def discriminator_variables(self):
        """The discriminators' weights (``discriminator_optimizer``'s), in ``trainable_variables``
        order."""
        d_ids = {id(v) for disc in self.discriminators for v in disc.trainable_variables}
        return [v for v in self.trainable_variables if id(v) in d_ids]

    def generator_variables(self):
        """Every other trainable weight (codec, ``lm_projection``: ``generator_optimizer``'s), in
        ``trainable_variables`` order."""
        d_ids = {id(v) for v in self.discriminator_variables()}
        return [v for v in self.trainable_variables if id(v) not in d_ids]

    # --------------------------------------------------------------- losses
    def unpack_batch(self, data):
        """``(audio, teacher targets)`` of a ``fit`` batch (``x`` or ``(x, y, sample_weight)``)."""
        x, _, _ = keras.utils.unpack_x_y_sample_weight(data)
        return self._split_inputs(x)

    @staticmethod
    def _split_inputs(inputs):
        if not isinstance(inputs, dict):
            return ops.cast(inputs, "float32"), {}
        targets = {}
        for key in ("sm_features", "sm_mask", "lm_features", "lm_mask"):
            if key in inputs:
                targets[key] = inputs[key]
        if "teacher_features" in inputs and "sm_features" not in targets:
            targets["sm_features"] = inputs["teacher_features"]
        return ops.cast(inputs["audio"], "float32"), targets

    def _active_teachers(self, targets):
        if self.distill == "none":
            return []
        wanted = ["sm", "lm"] if self.distill in (None, "lm+sm") else [self.distill]
        active = [t for t in wanted if f"{t}_features" in targets]
        if self.distill is not None:
            missing = [t for t in wanted if t not in active]
            if missing:
                raise ValueError(f"distill={self.distill!r} needs batches with "
                                 f"{', '.join(repr(m + '_features') for m in missing)}")
        if active and self.codec.distill_projection is None:
            raise ValueError("teacher features given but the codec has semantic_dimension=0")
        return active

    def _student_features(self, out, teacher):
        layer = self.sm_rvq_layer if teacher == "sm" else self.lm_rvq_layer
        if layer is None or layer == self.codec.distill_layer:
            if teacher == "sm" or self.lm_projection is None:
                return out["distill_features"]
        layer = self.codec.distill_layer if layer is None else layer
        projection = self.lm_projection if teacher == "lm" and self.lm_projection is not None \
            else self.codec.distill_projection
        return projection(out["layer_outputs"][layer])

    def distill_loss(self, out, targets):
        """Weighted distillation loss and its per-teacher parts (zeros when inactive).

        Args:
            out: the dict ``DMCodec.call`` returns.
            targets: the teacher targets of ``unpack_batch``.

        Returns:
            ``(total, {"sm": loss, "lm": loss})``.
        """
        zero = ops.zeros(())
        parts = {"sm": zero, "lm": zero}
        total = zero
        for teacher in self._active_teachers(targets):
            features = self._student_features(out, teacher)
            target = ops.cast(targets[f"{teacher}_features"], "float32")
            mask = targets.get(f"{teacher}_mask")
            if self.distill_type == "d_axis":
                loss = d_axis_distill_loss(features, target, mask=mask,
                                           frame0_only=self.distill_frame0_only)
            else:
                loss = t_axis_distill_loss(features, target, self.lambda_sim, mask=mask,
                                           frame0_only=self.distill_frame0_only)
            parts[teacher] = loss
            total = total + (self.sm_weight if teacher == "sm" else self.lm_weight) * loss
        return total, parts

    def discriminator_loss(self, audio, fake, training=False):
        """``L_D`` of the discriminators on ``stop_gradient(fake)``."""
        return self.adversarial.discriminator_loss(audio, fake, training=training)

    def generator_losses(self, audio, out, targets, frozen=False, adversarial=True):
        """``L_G`` and its terms, as a dict of scalars named as the trainer's metrics.

        Args:
            audio: the batch's audio ``[batch, samples]``.
            out: the dict ``DMCodec.call`` returns for ``audio``.
            targets: the teacher targets of ``unpack_batch``.
            frozen: bool. Run the discriminators with their weights behind
                ``stop_gradient``, for a function that also differentiates ``L_D``.
            adversarial: bool. False leaves the discriminators out: the
                adversarial and feature-matching terms are 0 (the reconstruction
                steps of ``adversarial_every``).
        """
        fake = out["audio"]
        if adversarial:
            adv, fm = self.adversarial.generator_terms(audio, fake, frozen=frozen)
        else:
            adv, fm = ops.zeros(()), ops.zeros(())
        mel_parts = self.mel_loss.scale_losses(audio, fake)
        mel = sum(w * p for w, p in zip(self.mel_weights, mel_parts, strict=True))
        recon = time_l1_loss(audio, fake)
        commit = out["commitment_loss"]
        distill, parts = self.distill_loss(out, targets)
        g_loss = (self.feature_weight * fm + self.adversarial_weight * adv + mel
                  + self.commitment_weight * commit + self.recon_weight * recon
                  + self.distill_weight * distill)
        return {
            "generator_loss": g_loss,
            "adversarial_loss": adv,
            "feature_loss": fm,
            "mel_loss": mel,
            "mel_error": mel_parts[0],
            "recon_loss": recon,
            "commitment_loss": commit,
            "distill_loss": distill,
            "sm_distill_loss": parts["sm"],
            "lm_distill_loss": parts["lm"],
        }

    def call(self, inputs, training=False):
        """All loss terms from the current weights (``evaluate``, the simultaneous step)."""
        audio, targets = self._split_inputs(inputs)
        out = self.codec(audio, training=training)
        d_loss = self.discriminator_loss(audio, out["audio"], training)
        logs = self.generator_losses(audio, out, targets, frozen=True)
        logs["discriminator_loss"] = d_loss
        logs["loss"] = logs["generator_loss"] + d_loss
        return logs

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        return y_pred["loss"]

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        for name, tracker in self.trackers.items():
            tracker.update_state(y_pred[name])
        return self.get_metrics_result()

    def record_step(self, logs, d_loss, adversarial=True):
        """Updates the metrics with a sequential step's losses; returns their results.

        Args:
            logs: the dict of ``generator_losses``.
            d_loss: ``L_D`` of the step (before the discriminators' update).
            adversarial: bool (or a boolean tensor). Whether the step ran the
                discriminators; the adversarial metrics average those steps only.
        """
        logs = dict(logs, discriminator_loss=d_loss)
        logs["loss"] = logs["generator_loss"] + d_loss
        self._loss_tracker.update_state(logs["loss"])
        weight = ops.cast(adversarial, "float32")
        for name, tracker in self.trackers.items():
            if name in ADVERSARIAL_METRICS:
                tracker.update_state(logs[name], sample_weight=weight)
            else:
                tracker.update_state(logs[name])
        return self.get_metrics_result()

    def is_adversarial_step(self):
        """Whether the step about to run is adversarial (a boolean tensor; see
        ``adversarial_every``)."""
        return ops.equal(ops.mod(self.optimizer.iterations, self.adversarial_every), 0)

    # ----------------------------------------------------------- train step
    def train_step(self, *args, **kwargs):
        if self.update_order == "simultaneous" or not self.discriminator_variables():
            return super().train_step(*args, **kwargs)
        return train_steps.sequential_train_step(self, *args, **kwargs)

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
            distill=self.distill,
            sm_weight=self.sm_weight,
            lm_weight=self.lm_weight,
            distill_type=self.distill_type,
            lambda_sim=self.lambda_sim,
            sm_rvq_layer=self.sm_rvq_layer,
            lm_rvq_layer=self.lm_rvq_layer,
            lm_dimension=self.lm_dimension,
            distill_frame0_only=self.distill_frame0_only,
            update_order=self.update_order,
            adversarial_every=self.adversarial_every,
        )
        return config

