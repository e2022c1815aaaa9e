"""Turns a training checkpoint into a preset directory (e.g. the shipped default model).

    python -m training.ship --run runs/dmcodec_small [--step N] --out saved_models/dmcodec_small \
        [--force] [--raw-weights]

Reads ``<run>/config.json`` (written by ``training.train``) and
``<run>/checkpoints/step-<N>/trainer.weights.h5`` (the newest when ``--step`` is not
given), rebuilds the trainer, and writes the codec alone with ``save_preset`` (atomically).
The preset's ``metadata.json`` records the step, the distillation mode, the teacher cache
settings and the training data, so a model card can be checked against it.

A run trained with ``"optimizer": {"ema_momentum": m}`` keeps a moving average of the codec's
weights in its optimizer state; its presets carry that average (the checkpoint's
``optimizer.npz`` is read too), recorded as ``"weights": "ema"`` with the momentum in the
metadata. ``--raw-weights`` ships the trained weights themselves instead, for comparison.
"""

import argparse
import json
import sys
from pathlib import Path

from keras_dmcodec.presets import PresetError, locate_preset
from keras_dmcodec.teachers.cache import open_teacher_cache
from training.train import build_trainer, list_checkpoints, load_checkpoint


def checkpoint_dir(run, step=None):
    """``(step, path)`` of a run's checkpoint: ``step`` or the newest."""
    found = list_checkpoints(run)
    if not found:
        raise FileNotFoundError(f"{run}: no checkpoints")
    if step is None:
        return found[-1]
    for number, path in found:
        if number == int(step):
            return number, path
    raise FileNotFoundError(f"{run}: no checkpoint for step {step} (have "
                            f"{[n for n, _ in found]})")


def codec_from_checkpoint(run, step=None, average=True):
    """``(codec, config, step)`` restored from a run directory.

    With ``average`` (the default) and a run that keeps a moving average of the weights
    (``optimizer.ema_momentum``), the codec holds that average; otherwise its trained weights.
    """
    run = Path(run)
    config_path = run / "config.json"
    if not config_path.is_file():
        raise FileNotFoundError(f"{run}: no config.json (not a training.train output directory)")
    config = json.loads(config_path.read_text())
    step, path = checkpoint_dir(run, step)
    # The checkpoint replaces every weight: skip the warm start / re-initialisation (the
    # warm-start preset may be gone, or be the very folder being shipped to).
    trainer = build_trainer({**config, "train": {k: v for k, v in config["train"].items()
                                                 if k not in ("init", "init_from",
                                                              "init_transfer")}})
    if average and config.get("optimizer", {}).get("ema_momentum"):
        load_checkpoint(trainer, path)  # the weights and the optimizer state holding the average
        trainer.use_weight_average()
    else:
        trainer.load_weights(path / "trainer.weights.h5")
    return trainer.codec, config, step


def _teacher_settings(spec):
    if not spec:
        return None
    try:
        return open_teacher_cache(spec).settings
    except (FileNotFoundError, ValueError):
        return {"cache": spec, "note": "cache not found at ship time"}


def _lineage(preset):
    """What a warm-started run started from: the preset's own training record."""
    try:
        meta = locate_preset(preset).metadata
    except (OSError, PresetError):
        return {"preset": str(preset), "note": "preset not found at ship time"}
    return {"preset": str(preset), "step": meta.get("step"),
            "total_steps": meta.get("total_steps", meta.get("step")),
            "train_data": meta.get("train_data"), "init_from": meta.get("init_from")}


def ship(run, out, step=None, overwrite=False, average=True):
    """Writes the codec of ``run`` (at ``step``) to the preset directory ``out``.

    ``average``: the moving average of the weights where the run keeps one (see the module
    docstring); False ships the trained weights.
    """
    codec, config, step = codec_from_checkpoint(run, step, average=average)
    loss = config.get("loss", {})
    ema = config.get("optimizer", {}).get("ema_momentum")
    metadata = {
        "step": int(step),
        "distill": loss.get("distill") or "none",
        "train_data": config["data"].get("train"),
        "segment_seconds": config["data"].get("segment_seconds"),
        "batch_size": config["data"].get("batch_size"),
        "discriminators": sorted(config.get("discriminators") or {}),
        "teachers": _teacher_settings(config["data"].get("teacher_cache"))
        if loss.get("distill") not in (None, "none") else None,
        "training_config": config.get("description", ""),
    }
    if ema:
        metadata["weights"] = "ema" if average else "raw"
        metadata["ema_momentum"] = float(ema)
    if config["train"].get("init_from"):  # a fine-tune: record where it started
        start = _lineage(config["train"]["init_from"])
        start["transfer"] = config["train"].get("init_transfer", "exact")
        metadata["init_from"] = start
        metadata["total_steps"] = int(step) + int(start.get("total_steps") or 0)
    codec.save_to_preset(out, overwrite=overwrite, metadata=metadata)
    return out, metadata


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m training.ship", description=__doc__)
    parser.add_argument("--run", required=True, help="training output directory")
    parser.add_argument("--step", type=int, default=None, help="checkpoint step (default: newest)")
    parser.add_argument("--out", required=True, help="preset directory to write")
    parser.add_argument("--force", action="store_true", help="replace an existing --out")
    parser.add_argument("--raw-weights", action="store_true",
                        help="a run with optimizer.ema_momentum: ship the trained weights, not "
                             "their moving average")
    args = parser.parse_args(argv)
    try:
        out, metadata = ship(args.run, args.out, args.step, overwrite=args.force,
                             average=not args.raw_weights)
    except (ValueError, FileNotFoundError, FileExistsError) as err:
        print(f"error: {str(err).splitlines()[0]}", file=sys.stderr)
        return 1
    print(f"wrote {out} (step {metadata['step']}, distill {metadata['distill']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
