"""Training entry point: ``python -m training.train --config CONFIG --out DIR [--resume]``.

Builds the codec and discriminators from a JSON config (see ``training/configs``),
streams 3 s crops from a folder or LibriSpeech-layout corpus, and trains with
``model.fit`` on the current Keras backend. Writes to ``--out``:

- ``checkpoints/step-<N>/`` every ``checkpoint_every`` steps (trainer weights,
  optimizer state, step; the stream position follows from the step), written
  to a temporary folder and renamed, so a killed run never leaves half a
  checkpoint; the newest three are kept;
- ``train_log.csv`` and ``tensorboard/`` logs;
- ``codec/`` (the final codec as a preset) and ``best_codec/`` (lowest
  validation mel error, when there is validation data).

``--resume`` continues from the newest checkpoint and reproduces the
uninterrupted run (same backend). Training stops with a clear message at the
first non-finite loss, keeping the last good checkpoint.
"""

import argparse
import json
import math
import shutil
import sys
from pathlib import Path

import keras
import numpy as np
from keras import ops

from keras_dmcodec.layers.conv import (
    variance_preserving_init,
    weight_norm_magnitude,
)
from keras_dmcodec.models.dmcodec import DMCodec
from keras_dmcodec.models.loader import resolve_model
from keras_dmcodec.models.trainer import DMCodecTrainer
from keras_dmcodec.utils.files import atomic_directory
from training.data import make_dataset

KEEP_CHECKPOINTS = 3


def _merge(base, override):
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _read_json(path, seen=()):
    path = Path(path)
    if path.resolve() in seen:
        raise ValueError(f"{path}: 'extends' loops back to itself")
    try:
        config = json.loads(path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: no such config file") from None
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: invalid JSON ({err.msg} at line {err.lineno})") from None
    if not isinstance(config, dict):
        raise ValueError(f"{path}: a config must be a JSON object")
    parent = config.pop("extends", None)
    if parent is not None:
        base = _read_json(path.parent / parent, seen + (path.resolve(),))
        base.pop("description", None)
        config = _merge(base, config)
    return config


def load_config(path):
    """Reads and checks a training config (JSON).

    A config may start from another with ``"extends": "other.json"`` (relative to
    its own folder); its sections are merged key by key over the parent's.
    """
    path = Path(path)
    config = _read_json(path)
    for key in ("model", "data", "optimizer", "train"):
        if key not in config:
            raise ValueError(f"{path}: missing section {key!r}")
    train = config["train"]
    if train["checkpoint_every"] % train["steps_per_epoch"]:
        raise ValueError(f"{path}: train.checkpoint_every must be a multiple of steps_per_epoch")
    if train["steps"] % train["steps_per_epoch"]:
        raise ValueError(f"{path}: train.steps must be a multiple of steps_per_epoch")
    return config


def _distribution_scope(config):
    """Sets up multi-device training; returns a context manager for model creation."""
    import contextlib

    mode = config.get("distribution", "none")
    backend = keras.backend.backend()
    if mode == "none":
        return contextlib.nullcontext()
    if mode == "data_parallel":
        if backend != "jax":
            raise ValueError("distribution 'data_parallel' (keras.distribution) needs the JAX "
                             "backend; use 'mirrored' on TensorFlow")
        distribution = keras.distribution.DataParallel(devices=config.get("devices"))
        keras.distribution.set_distribution(distribution)
        print(f"data parallel over {len(distribution.device_mesh.devices.flatten())} devices")
        return contextlib.nullcontext()
    if mode in ("mirrored", "multi_worker_mirrored"):
        if backend != "tensorflow":
            raise ValueError(f"distribution {mode!r} (tf.distribute) needs the TensorFlow backend")
        import tensorflow as tf

        strategy = (tf.distribute.MirroredStrategy(devices=config.get("devices"))
                    if mode == "mirrored" else tf.distribute.MultiWorkerMirroredStrategy())
        print(f"{mode}: {strategy.num_replicas_in_sync} replicas")
        return strategy.scope()
    raise ValueError(f"unknown distribution {mode!r}: none, data_parallel, mirrored, "
                     "multi_worker_mirrored")


WARM_START_TRANSFERS = ("exact", "causal")


def _warm_start(codec, preset, transfer="exact"):
    """Copies the weights of a trained preset (``resolve_model`` spec: name, folder or
    handle) into ``codec``.

    ``transfer="exact"``: the architectures must match; every weight (codebooks and their
    EMA state included) is copied. ``transfer="causal"``: ``codec`` is the causal,
    unidirectional twin of a non-causal preset (only ``causal`` and ``bidirectional``
    differ); ``causal_transfer`` maps the weights. The step, optimizer state and
    learning-rate schedule start afresh: this is a fine-tune, not a resume (``--resume`` is
    for continuing one run from its own checkpoints).
    """
    if transfer not in WARM_START_TRANSFERS:
        raise ValueError(f"train.init_transfer must be one of {list(WARM_START_TRANSFERS)}, "
                         f"got {transfer!r}")
    source = resolve_model(preset).model
    codec.build((None, None))
    ours, theirs = codec.get_config(), source.get_config()
    # Training-time settings of the quantizer's codebook updates may change in a fine-tune.
    allowed = ("seed", "name", "dtype", "trainable") + DMCodec.TRAINING_SETTINGS
    if transfer == "causal":
        if not ours["causal"] or ours["bidirectional"]:
            raise ValueError("train.init_transfer 'causal' needs a model with causal=true and "
                             "bidirectional=false")
        allowed += ("causal", "bidirectional")
    differ = sorted(k for k in ours if k not in allowed and ours[k] != theirs.get(k))
    if differ:
        raise ValueError(f"train.init_from {preset}: its model differs from the config's in "
                         + ", ".join(f"{k} ({theirs.get(k)!r} vs {ours[k]!r})" for k in differ))
    if transfer == "causal":
        causal_transfer(source, codec)
    else:
        codec.set_weights(source.get_weights())


def _relative_path(variable):
    return variable.path.split("/", 1)[1]


def causal_transfer(source, codec):
    """Warm-starts a causal, unidirectional ``codec`` from a non-causal ``source`` codec of
    the same size.

    Every weight whose path and shape match is copied: all convolutions (their windows
    move from centred to left-only padding, which fine-tuning adapts to), the decoder, the
    quantizer (codebooks and EMA state) and the distillation projection. A bidirectional
    encoder LSTM becomes unidirectional:

    - each layer takes its forward direction's weights; from layer 2 on, the input kernel
      keeps only the rows that read the previous layer's forward half;
    - the output convolution, which read ``[forward + x, backward + x]`` (twice the LSTM
      width), gets the sum of its two input halves as one kernel, so it still maps the skip
      path ``x`` exactly as before and sees the forward LSTM in place of both directions.
    """
    # numpy copies: on JAX an assigned array would otherwise share the source's buffer,
    # which the source's next compiled call may donate and delete.
    theirs = {_relative_path(v): ops.convert_to_numpy(v) for v in source.weights}
    wide = _find_conv_out(source)
    narrow = _find_conv_out(codec)
    merge = tuple(wide.kernel_v.shape) != tuple(narrow.kernel_v.shape)
    for variable in codec.weights:
        path = _relative_path(variable)
        if merge and path.startswith("encoder/conv_out/kernel_"):
            continue  # below
        if path in theirs and tuple(theirs[path].shape) == tuple(variable.shape):
            variable.assign(theirs[path])
            continue
        parts = path.split("/")
        if parts[:2] != ["encoder", "lstm"] or not parts[2].startswith("lstm_"):
            raise ValueError(f"causal warm start: no source weight for {path} "
                             f"{tuple(variable.shape)}")
        index = parts[2].split("_", 1)[1]
        value = theirs[f"encoder/lstm/bilstm_{index}/forward_lstm_{index}/"
                       + "/".join(parts[3:])]
        variable.assign(value[: variable.shape[0]] if parts[-1] == "kernel" else value)
    if merge:
        kernel = ops.convert_to_numpy(wide.effective_kernel())
        half = narrow.kernel_v.shape[1]
        if kernel.shape[1] != 2 * half:
            raise ValueError(f"causal warm start: encoder conv_out reads {kernel.shape[1]} "
                             f"channels, not twice {half}")
        merged = kernel[:, :half] + kernel[:, half:]
        narrow.kernel_v.assign(merged)
        narrow.kernel_g.assign(weight_norm_magnitude(merged))


def _find_conv_out(codec):
    conv = codec.encoder.model_layers[-1]  # the encoder ends with its output convolution
    if conv.name != "conv_out":
        raise ValueError(f"causal warm start: the encoder ends with {conv.name}, not conv_out")
    return conv


def build_trainer(config):
    """A compiled ``DMCodecTrainer`` for ``config``."""

    init = config["train"].get("init", "torch")
    if init not in ("torch", "variance_preserving"):
        raise ValueError(f"train.init must be 'torch' or 'variance_preserving', got {init!r}")
    init_from = config["train"].get("init_from")
    if init_from and "init" in config["train"]:
        raise ValueError("train.init and train.init_from are exclusive: a warm start replaces "
                         "every codec weight")
    codec = DMCodec(**config["model"], seed=config["train"].get("seed"))
    if init_from:
        _warm_start(codec, init_from, config["train"].get("init_transfer", "exact"))
    elif init == "variance_preserving":
        # Before the first batch, so the k-means codebooks see the new latents; a resumed run
        # overwrites these weights with its checkpoint's.
        codec.build((None, None))
        variance_preserving_init(codec, seed=int(config["train"].get("seed", 1234)))
    trainer = DMCodecTrainer(codec, discriminators=config.get("discriminators"),
                             **config.get("loss", {}))
    opt = config["optimizer"]

    def adam(ema=None):
        # The reference's two optimizers (optim_g, optim_d): Adam lr 1e-4, betas (0.9, 0.99),
        # weight decay 0, CosineAnnealingLR stepped once per training step.
        lr = opt.get("learning_rate", 1e-4)
        warmup = int(opt.get("warmup_steps", 0))  # linear warm-up (not in the reference)
        if opt.get("schedule", "cosine") == "cosine":
            # With a warm-up, the rate climbs from 0 to `lr`, then decays over the rest.
            lr = keras.optimizers.schedules.CosineDecay(
                0.0 if warmup else lr, decay_steps=config["train"]["steps"] - warmup,
                warmup_target=lr if warmup else None, warmup_steps=warmup)
        # Optional global-norm gradient clipping (not in the reference), applied by each
        # optimizer to its own gradients (codec and discriminators separately).
        # ema: keep an exponential moving average of the weights (not in the reference), for
        # evaluation and shipping (DMCodecTrainer.use_weight_average); training uses the raw ones.
        ema_kwargs = {"use_ema": True, "ema_momentum": float(ema)} if ema else {}
        return keras.optimizers.Adam(lr, beta_1=opt.get("beta_1", 0.9),
                                     beta_2=opt.get("beta_2", 0.99),
                                     global_clipnorm=opt.get("global_clipnorm"), **ema_kwargs)

    ema = opt.get("ema_momentum")
    if ema is not None and not 0.0 < float(ema) < 1.0:
        raise ValueError(f"optimizer.ema_momentum must be between 0 and 1 (exclusive), got {ema}")
    trainer.compile(optimizer=adam(ema), discriminator_optimizer=adam())
    return trainer


def list_checkpoints(out_dir):
    """``[(step, folder)]`` of the run's checkpoints, oldest first."""
    root = Path(out_dir) / "checkpoints"
    found = [(int(p.name.split("-")[1]), p) for p in root.glob("step-*")
             if p.is_dir() and (p / "state.json").is_file()]
    return sorted(found)


def _seed_states(trainer):
    return [v for v in trainer.variables if v.path.endswith("seed_generator_state")]


def save_checkpoint(trainer, out_dir, step):
    """Writes ``checkpoints/step-<step>`` atomically and prunes old ones."""
    import numpy as np

    root = Path(out_dir) / "checkpoints"
    with atomic_directory(root / f"step-{step}", prefix=".tmp_step-") as tmp:
        trainer.save_weights(tmp / "trainer.weights.h5")  # includes codebooks (EMA state)
        opt_vars = {f"v{i}": np.asarray(v.numpy() if hasattr(v, "numpy") else v)
                    for i, v in enumerate(trainer.optimizer.variables)}
        np.savez(tmp / "optimizer.npz", **opt_vars)
        # Keras weight files leave out SeedGenerator states (k-means / dead-code draws,
        # quantiser dropout); save them so a resumed run draws the same numbers.
        np.savez(tmp / "rng.npz", **{f"v{i}": np.asarray(ops.convert_to_numpy(v))
                                     for i, v in enumerate(_seed_states(trainer))})
        (tmp / "state.json").write_text(json.dumps({"step": int(step)}))
    for _, old in list_checkpoints(out_dir)[:-KEEP_CHECKPOINTS]:
        shutil.rmtree(old, ignore_errors=True)
    return root / f"step-{step}"


def load_checkpoint(trainer, path):
    """Restores trainer weights, optimizer and RNG state; returns the step."""
    import numpy as np
    path = Path(path)
    trainer.load_weights(path / "trainer.weights.h5")
    with np.load(path / "optimizer.npz", allow_pickle=False) as saved:
        variables = trainer.optimizer.variables
        if len(saved.files) != len(variables):
            raise ValueError(f"{path}: optimizer state has {len(saved.files)} variables, "
                             f"the model needs {len(variables)} (different config?)")
        for i, var in enumerate(variables):
            var.assign(ops.convert_to_tensor(saved[f"v{i}"], dtype=var.dtype))
    with np.load(path / "rng.npz", allow_pickle=False) as saved:
        states = _seed_states(trainer)
        if len(saved.files) != len(states):
            raise ValueError(f"{path}: RNG state count differs from the model's")
        for i, var in enumerate(states):
            var.assign(ops.convert_to_tensor(saved[f"v{i}"], dtype=var.dtype))
    return int(json.loads((path / "state.json").read_text())["step"])


def _callbacks(trainer, config, out_dir, resumed):
    steps_per_epoch = config["train"]["steps_per_epoch"]
    every = config["train"]["checkpoint_every"]

    class CheckpointAndGuard(keras.callbacks.Callback):
        """Checkpoints every ``every`` steps; stops on a non-finite loss; keeps the best codec."""

        def __init__(self):
            super().__init__()
            self.best = math.inf
            self.nan_step = None

        def on_train_batch_end(self, batch, logs=None):
            loss = (logs or {}).get("loss")
            if loss is not None and not np.isfinite(loss):
                self.nan_step = batch
                self.model.stop_training = True

        def on_epoch_end(self, epoch, logs=None):
            if self.nan_step is not None:
                return
            step = (epoch + 1) * steps_per_epoch
            if step % every == 0:
                save_checkpoint(trainer, out_dir, step)
            val = (logs or {}).get("val_mel_error")
            if val is not None and val < self.best:
                self.best = val
                trainer.codec.save_to_preset(Path(out_dir) / "best_codec", overwrite=True,
                                             metadata={"step": step, "val_mel_error": val})

    guard = CheckpointAndGuard()
    callbacks = [
        guard,
        keras.callbacks.CSVLogger(str(Path(out_dir) / "train_log.csv"), append=resumed),
    ]
    try:
        import tensorflow  # noqa: F401  (the TensorBoard callback writes with tf.summary)

        callbacks.append(keras.callbacks.TensorBoard(str(Path(out_dir) / "tensorboard"),
                                                     update_freq="epoch"))
    except ImportError:
        pass
    return callbacks, guard


def train(config, out_dir, resume=False, steps=None, verbose="auto"):
    """Runs (or resumes) training; returns ``{"step", "history", "stopped_on_nan"}``."""

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    total = int(steps or config["train"]["steps"])
    spe = int(config["train"]["steps_per_epoch"])
    if total % spe:
        raise ValueError(f"steps ({total}) must be a multiple of steps_per_epoch ({spe})")
    seed = int(config["train"].get("seed", 1234))
    keras.utils.set_random_seed(seed)
    with _distribution_scope(config):
        trainer = build_trainer(config)
    start = 0
    if resume:
        found = list_checkpoints(out_dir)
        if not found:
            raise FileNotFoundError(f"{out_dir}: --resume given but no checkpoint found")
        start = load_checkpoint(trainer, found[-1][1])
        print(f"resuming from {found[-1][1]} (step {start})")
    elif list_checkpoints(out_dir):
        raise FileExistsError(f"{out_dir}: holds checkpoints; pass --resume to continue or "
                              "choose another --out")
    (out_dir / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    if start >= total:
        print(f"nothing to do: step {start} >= {total}")
        return {"step": start, "history": {}, "stopped_on_nan": False}

    data = config["data"]
    rate = config["model"].get("sample_rate", 16000)
    # Distillation targets come from a teacher cache (`dmcodec cache-teachers`); the
    # trainer's "distill" mode (loss section) decides which teachers the batches carry.
    distill = config.get("loss", {}).get("distill") or "none"
    teacher_kwargs = {"teacher_cache": data.get("teacher_cache"), "distill": distill}
    train_ds, source = make_dataset(data["train"], rate, data.get("segment_seconds", 3.0),
                                    data.get("batch_size", 6), seed=seed, start_step=start,
                                    **teacher_kwargs)
    val_ds, val_steps = None, int(config["train"].get("validation_steps", 0))
    if data.get("valid") and val_steps:
        val_ds, _ = make_dataset(data["valid"], rate, data.get("segment_seconds", 3.0),
                                 data.get("batch_size", 6), seed=seed, shuffle=False,
                                 **teacher_kwargs)
    callbacks, guard = _callbacks(trainer, config, out_dir, resumed=start > 0)
    history = trainer.fit(train_ds, epochs=total // spe, initial_epoch=start // spe, shuffle=False,
                          steps_per_epoch=spe, validation_data=val_ds,
                          validation_steps=val_steps or None, callbacks=callbacks,
                          verbose=verbose)
    if source.bad_files:
        print(f"skipped {len(source.bad_files)} unreadable file(s)")
    if guard.nan_step is not None:
        done = list_checkpoints(out_dir)
        last = f"; last good checkpoint: {done[-1][1]}" if done else ""
        print(f"stopped: non-finite loss in epoch {len(history.epoch)} "
              f"(batch {guard.nan_step}){last}", file=sys.stderr)
        return {"step": None, "history": history.history, "stopped_on_nan": True}
    trainer.codec.save_to_preset(out_dir / "codec", overwrite=True, metadata={"step": total})
    return {"step": total, "history": history.history, "stopped_on_nan": False}


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m training.train", description=__doc__)
    parser.add_argument("--config", required=True, help="training config (JSON)")
    parser.add_argument("--out", required=True, help="output directory")
    parser.add_argument("--resume", action="store_true", help="continue from the newest checkpoint")
    parser.add_argument("--steps", type=int, default=None, help="override train.steps")
    parser.add_argument("--verbose", type=int, choices=(0, 1, 2), default=None,
                        help="Keras fit verbosity: 1 progress bar, 2 one line per epoch "
                             "(for logs of background runs), 0 silent (default: auto)")
    args = parser.parse_args(argv)
    verbose = "auto" if args.verbose is None else args.verbose
    try:
        result = train(load_config(args.config), args.out, resume=args.resume, steps=args.steps,
                       verbose=verbose)
    except (ValueError, FileNotFoundError, FileExistsError) as err:
        print(f"error: {str(err).splitlines()[0]}", file=sys.stderr)
        return 1
    return 2 if result["stopped_on_nan"] else 0


if __name__ == "__main__":
    sys.exit(main())
