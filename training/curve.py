"""Learning curve of a training run: its checkpoints evaluated on a fixed test subset.

    python -m training.curve --run runs/dmcodec_small_v2 --data data/tts_corpus/test_curve20.tsv \
        [--every 2000] [--baseline saved_models/dmcodec_small] [--watch]

Every ``--every`` steps (and the run's last step) the checkpoint is shipped to
``<run>/curve/step-<N>/preset`` (``training.ship``) and scored by the evaluation
runner (STOI, ViSQOL, PESQ, mel distance, SI-SNR, WER by the Whisper tiny.en judge) on
the data given; each point is kept in ``<run>/curve/curve.json`` and the whole curve is
drawn in ``curve.png`` and tabled in ``curve.md``. ``--baseline`` adds the preset the
run started from as its first point. The x axis counts total steps, those of the
warm-start lineage included (``training.ship``'s ``total_steps``).

``--watch`` keeps going while the run trains: checkpoints are pruned to the newest
three, so it ships each one that is due as soon as it appears (a copy of the weights,
seconds) and evaluates afterwards; it stops once the last step is on the curve, or when
no checkpoint has appeared for ``--idle-minutes``. Run it under ``nice`` beside the
training, and with ``--resume`` semantics for free: points already in ``curve.json``
are not evaluated again.

A model trained in phases (each a run warm-started from the last one's preset) gets one
curve over all of them::

    python -m training.curve --merge "3: continuation=runs/a" "4: gan=runs/b" \
        --to saved_models/dmcodec_small

reads each run's ``curve.json``, tags its points with the phase, drops a later run's
starting point where the earlier run already has that total step (the same weights), and
writes ``learning_curve.json``, ``learning_curve.md`` and ``learning_curve.png`` (dotted
lines where a phase starts) into ``--to``.
"""

import argparse
import json
import sys
import time
from pathlib import Path

from keras_dmcodec.asr import make_asr
from keras_dmcodec.evaluation.runner import run_evaluation
from keras_dmcodec.presets import PresetError, locate_preset
from keras_dmcodec.utils.files import atomic_output
from training.ship import ship
from training.train import list_checkpoints

METRICS = ("stoi", "mel_distance", "wer", "visqol", "pesq", "si_snr", "codebook_usage")


def _curve_dir(run):
    return Path(run) / "curve"


def load_points(run):
    """The curve's points so far (``[{step, total_steps, label, metrics...}]``, by step)."""
    path = _curve_dir(run) / "curve.json"
    return json.loads(path.read_text()) if path.is_file() else []


def _save_points(run, points):
    points = sorted(points, key=lambda p: p["total_steps"])
    path = _curve_dir(run) / "curve.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_output(path) as tmp:
        Path(tmp).write_text(json.dumps(points, indent=1) + "\n")
    return points


def evaluate_preset(preset, data, out_dir, judge):
    """The codec row of ``run_evaluation`` on ``data`` (and the original audio's WER)."""
    result = run_evaluation([str(preset)], data, out_dir, judge=judge, progress=False,
                            plots=False, html=False, log=lambda message: None)
    rows = {row["system"]: row for row in result["rows"]}
    codec = next(row for key, row in rows.items() if key != "original")
    point = {name: codec.get(name) for name in METRICS}
    point["original_wer"] = rows["original"]["wer"]
    point["utterances"] = codec["utterances"]
    return point


def _total_steps(preset):
    try:
        meta = locate_preset(preset).metadata
    except (OSError, PresetError):
        return 0
    return int(meta.get("total_steps", meta.get("step")) or 0)


def ship_due(run, every, points, final_step):
    """Ships every due checkpoint not yet on the curve; returns ``[(step, preset dir)]``."""
    done = {p["step"] for p in points if p.get("run_step", True)}
    shipped = []
    for step, _ in list_checkpoints(run):
        if step in done or not (step % every == 0 or step == final_step):
            continue
        preset = _curve_dir(run) / f"step-{step}" / "preset"
        if not (preset / "config.json").is_file():
            ship(run, preset, step=step, overwrite=True)
        shipped.append((step, preset))
    # already shipped earlier (by an interrupted watcher) but not evaluated
    for folder in sorted(_curve_dir(run).glob("step-*/preset")):
        step = int(folder.parent.name.split("-")[1])
        if step not in done and (step, folder) not in shipped:
            shipped.append((step, folder))
    return sorted(shipped)


def plot_curve(points, path):
    """STOI, mel distance and WER against total steps (the original audio's WER dashed).

    Points may carry a ``phase`` (a curve merged from several runs): a dotted line marks
    where it changes (at the new phase's starting point), labelled in the STOI panel with
    the text before the phase's first colon.
    """
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    steps = [p["total_steps"] for p in points]
    # Where a point's phase differs from the one before: the new phase starts at the point
    # before it (the previous run's last, which the next run warm-starts from).
    phase_starts = [(steps[i - 1], p["phase"]) for i, p in enumerate(points)
                    if i and p.get("phase") and p["phase"] != points[i - 1].get("phase")]
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    for ax, (key, title) in zip(axes, (("stoi", "STOI (higher is better)"),
                                       ("mel_distance", "Mel distance (lower is better)"),
                                       ("wer", "WER % (lower is better)")), strict=True):
        ax.plot(steps, [p[key] for p in points], marker="o", color="#1f77b4")
        if key == "wer":
            ax.axhline(points[-1]["original_wer"], color="grey", linestyle="--",
                       label="original audio")
            ax.legend(fontsize=8, frameon=False, loc="upper right")
        for start, phase in phase_starts:
            ax.axvline(start, color="#d62728", alpha=0.5, linestyle=":")
            if key == "stoi":
                ax.annotate(" phase " + phase.split(":")[0], (start, 0.02),
                            xycoords=("data", "axes fraction"), fontsize=7,
                            color="#d62728", ha="left", va="bottom")
        ax.set_title(title, loc="left", fontsize=10)
        ax.set_xlabel("total training steps")
        ax.grid(alpha=0.3)
    utterances = points[-1].get("utterances")
    fig.suptitle(f"Learning curve ({utterances} fixed test utterances)", x=0.01, ha="left",
                 fontsize=11, fontweight="bold")
    fig.tight_layout()
    with atomic_output(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png", facecolor="white")
    plt.close(fig)
    return Path(path)


def _table(points, column, label, align="---:"):
    """Markdown table of ``points``: total steps, ``column`` (``label(i, point)``, aligned by
    ``align``), the metrics, and the original audio's WER on the curve's utterances."""
    lines = [f"| total steps | {column} | STOI | mel dist. | WER % | ViSQOL | PESQ-WB | SI-SNR dB "
             f"| codes used % |", f"|---:|{align}|---:|---:|---:|---:|---:|---:|---:|"]
    for i, p in enumerate(points):
        lines.append(f"| {p['total_steps']} | {label(i, p)} | {p['stoi']:.3f} | "
                     f"{p['mel_distance']:.3f} | {p['wer']:.1f} | {p['visqol']:.3f} | "
                     f"{p['pesq']:.3f} | {p['si_snr']:.2f} | {p['codebook_usage']:.1f} |")
    if points:
        count = points[-1].get("utterances")
        lines.append(f"\nOriginal audio WER on these {f'{count} ' if count else ''}utterances: "
                     f"{points[-1]['original_wer']:.1f} %")
    return "\n".join(lines) + "\n"


def write_outputs(run, points):
    """``curve.md`` and ``curve.png`` of the points."""
    text = _table(points, "run step",
                  lambda i, p: p["step"] if p.get("run_step", True) else "start")
    with atomic_output(_curve_dir(run) / "curve.md") as tmp:
        Path(tmp).write_text(text)
    if points:
        plot_curve(points, _curve_dir(run) / "curve.png")


def merge_curves(parts):
    """One curve from the runs of a phased training.

    Args:
        parts: ``[(phase, run_dir)]`` in training order; each run has a ``curve.json``.

    Returns:
        The points by total step, each with its ``phase``. A run's starting point (its
        ``--baseline``) is dropped where an earlier phase already has a point at that total
        step: it is the previous run's shipped checkpoint evaluated again.
    """
    merged = {}
    for phase, run in parts:
        points = load_points(run)
        if not points:
            raise ValueError(f"{run}: no learning curve (run python -m training.curve "
                             f"--run {run} first)")
        for point in points:
            total = point["total_steps"]
            if total in merged and not point.get("run_step", True):
                continue
            if total in merged:
                raise ValueError(f"{run}: total step {total} is also in phase "
                                 f"{merged[total]['phase']!r}; are the phases in order?")
            merged[total] = {**point, "phase": phase}
    return [merged[k] for k in sorted(merged)]


def _parse_part(text):
    phase, sep, run = text.rpartition("=")
    if not sep or not phase or not run:
        raise argparse.ArgumentTypeError(f"--merge takes PHASE=RUN_DIR, got {text!r}")
    return phase, run


def write_merged(points, out_dir):
    """``learning_curve.{json,md,png}`` of merged ``points`` in ``out_dir``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)

    def phase(i, p):  # "3", "3 (start)" for a curve that begins at a run's baseline
        start = i == 0 and not p.get("run_step", True)
        return p["phase"].split(":")[0] + (" (start)" if start else "")

    text = _table(points, "phase", phase, align="---")
    with atomic_output(out_dir / "learning_curve.json") as tmp:
        Path(tmp).write_text(json.dumps(points, indent=1) + "\n")
    with atomic_output(out_dir / "learning_curve.md") as tmp:
        Path(tmp).write_text(text)
    plot_curve(points, out_dir / "learning_curve.png")
    return out_dir


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m training.curve", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", help="training output directory")
    parser.add_argument("--data", help="fixed test subset (folder or manifest)")
    parser.add_argument("--every", type=int, default=2000, help="steps between points")
    parser.add_argument("--baseline", default=None,
                        help="preset the run started from, evaluated as the first point")
    parser.add_argument("--watch", action="store_true", help="follow the run while it trains")
    parser.add_argument("--idle-minutes", type=float, default=20.0,
                        help="--watch stops after this long without a new checkpoint")
    parser.add_argument("--merge", nargs="+", type=_parse_part, metavar="PHASE=RUN",
                        help="join the curves of these runs (in training order) into one")
    parser.add_argument("--to", help="--merge's output folder (e.g. the shipped preset)")
    args = parser.parse_args(argv)
    if args.merge:
        if not args.to:
            parser.error("--merge needs --to (the folder for learning_curve.*)")
        try:
            points = merge_curves(args.merge)
        except ValueError as error:
            parser.error(str(error))
        write_merged(points, args.to)
        print(f"wrote {Path(args.to) / 'learning_curve.json'}, .md and .png "
              f"({len(points)} points, {len(args.merge)} phases)")
        return 0
    if not args.run or not args.data:
        parser.error("--run and --data are required (or --merge with --to)")
    run = Path(args.run)
    config = json.loads((run / "config.json").read_text())
    final_step = int(config["train"]["steps"])
    judge = make_asr()
    points = load_points(run)
    if args.baseline and not any(not p.get("run_step", True) for p in points):
        point = evaluate_preset(args.baseline, args.data, _curve_dir(run) / "baseline", judge)
        points = _save_points(run, points + [{**point, "step": 0, "run_step": False,
                                              "total_steps": _total_steps(args.baseline),
                                              "label": str(args.baseline)}])
        write_outputs(run, points)
        print(f"baseline {args.baseline}: STOI {point['stoi']:.3f}, WER {point['wer']:.1f} %",
              flush=True)
    last_new, newest = time.monotonic(), None
    while True:
        found = list_checkpoints(run)
        if found and found[-1][0] != newest:  # the run is alive while checkpoints appear
            last_new, newest = time.monotonic(), found[-1][0]
        # Ship everything due before each evaluation: checkpoints are pruned meanwhile.
        due = ship_due(run, args.every, points, final_step)
        if due:
            step, preset = due[0]
            total = _total_steps(preset)  # the lineage training.ship recorded at ship time
            point = evaluate_preset(preset, args.data, preset.parent / "eval", judge)
            points = _save_points(run, points + [{**point, "step": step, "total_steps": total,
                                                  "label": f"step {step}"}])
            write_outputs(run, points)
            print(f"step {step} (total {total}): STOI {point['stoi']:.3f}, mel "
                  f"{point['mel_distance']:.3f}, WER {point['wer']:.1f} %", flush=True)
            continue
        if not args.watch or any(p["step"] == final_step and p.get("run_step", True)
                                 for p in points):
            break
        if time.monotonic() - last_new > 60 * args.idle_minutes:
            print(f"no new checkpoint for {args.idle_minutes:g} min: stopping", flush=True)
            break
        time.sleep(30)
    write_outputs(run, points)
    print(f"wrote {_curve_dir(run) / 'curve.md'} and curve.png ({len(points)} points)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
