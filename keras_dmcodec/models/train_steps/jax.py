"""The sequential GAN step on JAX (stateless, inside Keras's ``jax.jit``).

Keras's JAX trainer passes every variable's value in ``state`` and expects the
new values back. The codec runs once, through its ``stateless_call``; ``jax.vjp``
keeps that forward pass so that ``L_G``, computed after the discriminators'
step, is pulled back through it (codebook updates happen once per step, as on
the other backends). Values are matched to variables by identity, never by
position in a list.
"""

import keras


def train_step(trainer, state, data):
    """Returns the metrics' results and the new ``(trainable, non_trainable,
    optimizer, metrics)`` values, as Keras's JAX ``train_step``. With
    ``adversarial_every`` k > 1, ``jax.lax.cond`` runs the adversarial step on
    every k-th iteration and a reconstruction-only step (no discriminators) on the
    others; both branches are compiled once."""
    import jax  # deferred: the backend's framework, loaded only when it is active

    trainable, non_trainable, optimizer_values, metric_values = state
    audio, targets = trainer.unpack_batch(data)
    model_vars = trainer.trainable_variables + trainer.non_trainable_variables
    values = _by_id(model_vars, list(trainable) + list(non_trainable))
    optimizer = _by_id(trainer.optimizer.variables, optimizer_values)
    iterations = trainer.optimizer.iterations
    steps = (_AdversarialStep(jax, trainer, audio, targets),
             _ReconstructionStep(jax, trainer, audio, targets))
    if trainer.adversarial_every == 1:
        adversarial = True
        logs, d_loss, values, optimizer = steps[0](values, optimizer)
    else:
        adversarial = optimizer[id(iterations)] % trainer.adversarial_every == 0
        logs, d_loss, values, optimizer = jax.lax.cond(adversarial, *steps, values, optimizer)
    optimizer[id(iterations)] = optimizer[id(iterations)] + 1

    results, metrics = _stateless(trainer.metrics_variables,
                                  _by_id(trainer.metrics_variables, metric_values),
                                  lambda: trainer.record_step(logs, d_loss, adversarial))
    new_state = (_pick(values, trainer.trainable_variables),
                 _pick(values, trainer.non_trainable_variables),
                 _pick(optimizer, trainer.optimizer.variables),
                 _pick(metrics, trainer.metrics_variables))
    return results, new_state


class _AdversarialStep:
    """The reference's sequential step, as a function of ``(values, optimizer)`` (dicts by
    variable id) returning ``(logs, L_D, values, optimizer)``."""

    def __init__(self, jax, trainer, audio, targets):
        self.jax, self.trainer, self.audio, self.targets = jax, trainer, audio, targets

    def __call__(self, values, optimizer):
        jax, trainer, audio, targets = self.jax, self.trainer, self.audio, self.targets
        values, optimizer = dict(values), dict(optimizer)
        codec = trainer.codec
        model_vars = trainer.trainable_variables + trainer.non_trainable_variables
        g_vars, d_vars = trainer.generator_variables(), trainer.discriminator_variables()

        # 1. The codec's forward pass, differentiable in the generator's weights.
        def forward(g_values):
            current = {**values, **_by_id(g_vars, g_values)}
            out, codec_state = codec.stateless_call(
                _pick(current, codec.trainable_variables),
                _pick(current, codec.non_trainable_variables), audio, training=True)
            floats, others = _split_floats(out)
            return floats, (others, codec_state)

        g_values = _pick(values, g_vars)
        floats, pull_back, (others, codec_state) = jax.vjp(forward, g_values, has_aux=True)
        values.update(_by_id(codec.non_trainable_variables, codec_state))

        # 2. The discriminators' step on L_D(x, stop_grad(x_hat)).
        def discriminator_loss(d_values):
            current = {**values, **_by_id(d_vars, d_values)}
            return _stateless(model_vars, current, lambda: trainer.discriminator_loss(
                audio, floats["audio"], training=True))

        d_values = _pick(values, d_vars)
        (d_loss, after_d), d_grads = jax.value_and_grad(discriminator_loss,
                                                        has_aux=True)(d_values)
        values.update(after_d)
        values.update(_by_id(d_vars, _apply(trainer.discriminator_optimizer, optimizer,
                                            d_grads, d_values)))

        # 3. L_G with the updated discriminators. Its gradient reaches the codec's
        #    weights through the forward pass (vjp) and, where the loss uses a weight
        #    directly (a distillation projection), straight from the loss.
        def generator_loss(floats, g_values):
            current = {**values, **_by_id(g_vars, g_values)}
            out = _merge(floats, others)
            logs, _ = _stateless(model_vars, current,
                                 lambda: trainer.generator_losses(audio, out, targets))
            return logs["generator_loss"], logs

        (_, logs), (d_floats, direct) = jax.value_and_grad(
            generator_loss, argnums=(0, 1), has_aux=True)(floats, g_values)
        (through_codec,) = pull_back(d_floats)
        g_grads = [a + b for a, b in zip(through_codec, direct, strict=True)]
        values.update(_by_id(g_vars, _apply(trainer.generator_optimizer, optimizer,
                                            g_grads, g_values)))
        return logs, d_loss, values, optimizer


class _ReconstructionStep(_AdversarialStep):
    """A codec-only step (no discriminators, adversarial terms 0) with the same signature."""

    def __call__(self, values, optimizer):
        jax, trainer, audio, targets = self.jax, self.trainer, self.audio, self.targets
        values, optimizer = dict(values), dict(optimizer)
        codec = trainer.codec
        model_vars = trainer.trainable_variables + trainer.non_trainable_variables
        g_vars = trainer.generator_variables()

        def generator_loss(g_values):
            current = {**values, **_by_id(g_vars, g_values)}
            out, codec_state = codec.stateless_call(
                _pick(current, codec.trainable_variables),
                _pick(current, codec.non_trainable_variables), audio, training=True)
            logs, _ = _stateless(model_vars, current, lambda: trainer.generator_losses(
                audio, out, targets, adversarial=False))
            return logs["generator_loss"], (logs, codec_state)

        g_values = _pick(values, g_vars)
        (_, (logs, codec_state)), g_grads = jax.value_and_grad(
            generator_loss, has_aux=True)(g_values)
        values.update(_by_id(codec.non_trainable_variables, codec_state))
        values.update(_by_id(g_vars, _apply(trainer.generator_optimizer, optimizer,
                                            g_grads, g_values)))
        return logs, jax.numpy.zeros((), "float32"), values, optimizer


def _by_id(variables, values):
    return {id(v): x for v, x in zip(variables, values, strict=True)}


def _pick(values, variables):
    return [values[id(v)] for v in variables]


def _stateless(variables, values, fn):
    """``fn()`` with ``variables`` read from ``values`` (by id); returns the result and the
    variables' values after it (by id)."""
    mapping = [(v, values[id(v)]) for v in variables]
    with keras.StatelessScope(state_mapping=mapping) as scope:
        result = fn()
    return result, {id(v): scope.get_current_value(v) for v in variables}


def _apply(inner_optimizer, optimizer_values, grads, weights):
    """One step of an optimizer inside the trainer's ``MultiOptimizer``: reads and updates
    its own variables' entries of ``optimizer_values``; returns the new ``weights``."""
    own = inner_optimizer.variables
    new_weights, new_own = inner_optimizer.stateless_apply(_pick(optimizer_values, own),
                                                           grads, weights)
    optimizer_values.update(_by_id(own, new_own))
    return new_weights


def _is_float(x):
    return x is not None and hasattr(x, "dtype") and \
        keras.backend.is_float_dtype(keras.backend.standardize_dtype(x.dtype))


def _split_floats(out):
    """The codec's outputs as two trees of its structure: the float tensors (differentiated)
    and the rest (codes, ``n_q_used``), each with ``None`` where the other has a value."""
    floats = keras.tree.map_structure(lambda x: x if _is_float(x) else None, out)
    others = keras.tree.map_structure(lambda x: None if _is_float(x) else x, out)
    return floats, others


def _merge(floats, others):
    return keras.tree.map_structure(lambda a, b: b if a is None else a, floats, others)
