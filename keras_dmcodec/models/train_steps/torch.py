"""The sequential GAN step on PyTorch (eager)."""


def train_step(trainer, data):
    """Two backward passes on one codec forward: ``L_D`` on the detached
    reconstruction first, then ``L_G`` with the updated discriminators. With
    ``adversarial_every`` k > 1, the steps between every k-th one train the
    codec alone, without the discriminators."""
    import torch  # deferred: the backend's framework, loaded only when it is active

    audio, targets = trainer.unpack_batch(data)
    adversarial = bool(trainer.is_adversarial_step())
    g_vars, d_vars = trainer.generator_variables(), trainer.discriminator_variables()
    out = trainer.codec(audio, training=True)
    d_loss = torch.zeros((), device=out["audio"].device)
    if adversarial:
        trainer.zero_grad()
        d_loss = trainer.discriminator_loss(audio, out["audio"].detach(), training=True)
        d_loss.backward()
        with torch.no_grad():
            trainer.discriminator_optimizer.apply([v.value.grad for v in d_vars], d_vars)
    trainer.zero_grad()
    logs = trainer.generator_losses(audio, out, targets, adversarial=adversarial)
    logs["generator_loss"].backward()
    with torch.no_grad():
        trainer.generator_optimizer.apply([v.value.grad for v in g_vars], g_vars)
        trainer.optimizer.iterations.assign_add(1)
    logs = {k: v.detach() for k, v in logs.items()}
    return trainer.record_step(logs, d_loss.detach(), adversarial)
