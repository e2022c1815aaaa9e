"""The distillation ablation of issue 9: same architecture, data, seed and steps, five targets.

    python -m training.ablation --steps 1500 --out runs/ablation \
        --data data/tts_corpus/test [--variants none lm sm lm_sm lm_sm_positional] \
        [--report saved_models/dmcodec_small]

For each variant, ``training/configs/ablation/small_<variant>.json`` (all extend the default
model's ``dmcodec_small_lm_sm.json``; ``lm_sm`` is that config unchanged) is trained for
``--steps`` steps into ``<out>/<variant>`` (``python -m training.train``, one process each;
a variant that already has its step-``N`` checkpoint is not retrained, an interrupted one
resumes), shipped as the preset ``<out>/presets/ablation_<variant>`` and evaluated on the
held-out split with ``dmcodec evaluate`` at 8 codebooks (resumable, keyed by model) in the
background while the next variant trains; a last ``dmcodec evaluate`` of all presets reuses
those results and adds the original audio's row and the plots. The report (``ablation.md`` +
``ablation.png``) gives WER, WIL, STOI, ViSQOL, PESQ and the WER change relative to ``none``,
whichever way it points.

Every variant keeps the default config's cosine schedule (defined over its 30 k steps), so
the step-``N`` models are the same as the first ``N`` steps of a full run.

``--shared-steps S`` (0 < S < N) trains one common trunk without distillation for the first
``S`` steps (``<out>/shared``, the ``none`` config) and branches every variant from its step-``S``
checkpoint (weights, optimizer moments, RNG state and data position) for the remaining
``N - S`` steps. With torch's initialisation (the reference's), this codec sits for ~1500-2000
steps or more on a plateau where the decoder outputs near-silence (``docs/default_model.md``),
and the step at which a run leaves it varies from run to run; at CPU-sized step counts that
timing would swamp the effect of the distillation target. A shared trunk removes it, at a
price: distillation then acts only on the last ``N - S`` steps. With ``--set
train.init=variance_preserving`` runs leave the plateau within ~500 steps, and every variant
can train from scratch.

``--set model.n_filters=8 model.dimension=128 ...`` changes every variant (and the trunk) the
same way: the ablation then trains ``<out>/configs/small_<variant>.json``, each extending its
variant's config with those values, and the report lists them. It is how a machine too slow
for the default model's architecture runs a smaller but otherwise identical comparison.
"""

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

from keras_dmcodec.asr.scoring import normalize_text
from training.ship import ship
from training.train import list_checkpoints

ROOT = Path(__file__).resolve().parent.parent
VARIANTS = ("none", "lm", "sm", "lm_sm", "lm_sm_positional")
DESCRIPTIONS = {
    "none": "no distillation",
    "lm": "LM only (MiniLM, word-aligned)",
    "sm": "SM only (Whisper tiny.en encoder)",
    "lm_sm": "LM + SM, word-aligned text (ours)",
    "lm_sm_positional": "LM + SM, positional text pairing (reference)",
}


def config_path(variant):
    return ROOT / "training" / "configs" / "ablation" / f"small_{variant}.json"


def parse_overrides(items):
    """``["model.n_filters=8", ...]`` -> ``{"model": {"n_filters": 8}}`` (values are JSON,
    or plain strings where they do not parse as JSON)."""
    overrides = {}
    for item in items or ():
        key, sep, value = item.partition("=")
        parts = key.split(".")
        if not sep or len(parts) < 2 or not all(parts):
            raise ValueError(f"--set {item!r}: expected SECTION.KEY=VALUE, e.g. "
                             "model.n_filters=8")
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            pass
        node = overrides
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ValueError(f"--set {item!r}: {part} is set twice")
        node[parts[-1]] = value
    return overrides


def variant_config(variant, out, overrides=None):
    """The config a variant trains with: its own, or (with ``overrides``) a derived one
    written to ``<out>/configs/`` that extends it."""
    if not overrides:
        return config_path(variant)
    path = Path(out) / "configs" / f"small_{variant}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps({"extends": str(config_path(variant)), **overrides}, indent=1) + "\n"
    if not path.is_file() or path.read_text() != text:
        path.write_text(text)
    return path


def _run(argv, log):
    print("$", " ".join(map(str, argv)), flush=True)
    with open(log, "a") as handle:
        result = subprocess.run([str(a) for a in argv], stdout=handle, stderr=subprocess.STDOUT,
                                env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
    if result.returncode != 0:
        raise RuntimeError(f"{argv[2] if len(argv) > 2 else argv[0]} failed "
                           f"(exit {result.returncode}); see {log}")


def _train_run(config, run, steps):
    """Trains (or resumes) the run directory ``run`` with ``config`` to ``steps``."""
    done = {n for n, _ in list_checkpoints(run)} if run.exists() else set()
    if steps in done:
        print(f"{run}: step {steps} already trained")
        return run
    argv = [sys.executable, "-m", "training.train", "--config", config, "--out", run,
            "--steps", steps, "--verbose", "2"]
    if done:
        argv.append("--resume")
    run.mkdir(parents=True, exist_ok=True)
    _run(argv, run / "train.log")
    return run


def train_variant(variant, steps, out, shared_steps=0, overrides=None):
    """Trains (or resumes) one variant to ``steps``; returns its run directory.

    With ``shared_steps``, a variant with no checkpoint of its own starts from a copy of the
    shared trunk's step-``shared_steps`` checkpoint (see the module docstring).
    """
    run = Path(out) / variant
    if shared_steps and not (run.exists() and list_checkpoints(run)):
        if not 0 < shared_steps < steps:
            raise ValueError(f"--shared-steps ({shared_steps}) must be between 0 and --steps "
                             f"({steps})")
        trunk_run = _train_run(variant_config("none", out, overrides), Path(out) / "shared",
                               shared_steps)
        trunk = _checkpoint_at(trunk_run, shared_steps)
        checkpoints = run / "checkpoints"
        checkpoints.mkdir(parents=True, exist_ok=True)
        tmp = checkpoints / f".tmp_{trunk.name}"
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.copytree(trunk, tmp)
        os.replace(tmp, checkpoints / trunk.name)  # atomic: a half copy is never a checkpoint
        print(f"{variant}: branching from {trunk}")
    return _train_run(variant_config(variant, out, overrides), run, steps)


def _checkpoint_at(run, step):
    found = dict(list_checkpoints(run))
    if step not in found:
        raise FileNotFoundError(f"{run}: no step-{step} checkpoint (kept: {sorted(found)})")
    return found[step]


def ship_variant(variant, steps, out):
    preset = Path(out) / "presets" / f"ablation_{variant}"
    ship(Path(out) / variant, preset, step=steps, overwrite=True)
    return preset


def _evaluate_argv(presets, data, out, plots=True):
    argv = [sys.executable, "-m", "keras_dmcodec", "evaluate", "--data", data, "--n-q", "8",
            "-o", Path(out) / "eval", "--no-progress"]
    if not plots:
        argv.append("--no-plots")
    for preset in presets:
        argv += ["--model", preset]
    return argv


def evaluate(presets, data, out):
    """Evaluates ``presets`` (cached results are reused) and returns ``results.json``."""
    _run(_evaluate_argv(presets, data, out), Path(out) / "eval.log")
    return json.loads((Path(out) / "eval" / "results.json").read_text())


def load_records(out):
    """The per-utterance evaluation records in ``<out>/eval`` (a truncated line is skipped)."""
    path = Path(out) / "eval" / "results.jsonl"
    records = []
    if path.is_file():
        for line in path.read_text().splitlines():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return records


class _BackgroundEvaluation:
    """At most one ``dmcodec evaluate`` of a single preset in the background at a time (they
    share one results file), so a finished variant is scored while the next one trains."""

    def __init__(self, data, out):
        self.data, self.out, self.proc, self.handle = data, Path(out), None, None

    def start(self, preset):
        self.wait()
        argv = [str(a) for a in _evaluate_argv([preset], self.data, self.out, plots=False)]
        print("$ (background)", " ".join(argv), flush=True)
        self.handle = open(self.out / "eval.log", "a")
        self.proc = subprocess.Popen(argv, stdout=self.handle, stderr=subprocess.STDOUT,
                                     env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))

    def wait(self):
        if self.proc is None:
            return
        code = self.proc.wait()
        self.handle.close()
        self.proc = self.handle = None
        if code != 0:
            raise RuntimeError(f"evaluate failed (exit {code}); see {self.out / 'eval.log'}")


def _fmt(value, spec):
    return "–" if value is None or (isinstance(value, float) and math.isnan(value)) \
        else format(value, spec)


PAIRED_METRICS = (("wil", "WIL", ".1f", 100.0), ("stoi", "STOI", ".3f", 1.0),
                  ("visqol", "ViSQOL", ".3f", 1.0), ("mel_distance", "mel dist.", ".3f", 1.0))


def paired_differences(records, variant, metric, base="none"):
    """Mean per-utterance difference ``variant - base`` of ``metric`` over the utterances both
    were scored on, with a normal 95 % interval: ``(mean, half_width, n)`` or None."""
    def scores(system):
        return {r["id"]: r[metric] for r in records if r["system"] == f"ablation_{system}"
                and r.get(metric) is not None and not math.isnan(r[metric])}

    a, b = scores(variant), scores(base)
    diffs = [a[i] - b[i] for i in sorted(a.keys() & b.keys())]
    if len(diffs) < 2:
        return None
    mean = sum(diffs) / len(diffs)
    var = sum((d - mean) ** 2 for d in diffs) / (len(diffs) - 1)
    return mean, 1.96 * math.sqrt(var / len(diffs)), len(diffs)


def relative_wer_interval(records, variant, base="none", resamples=5000, seed=0):
    """The corpus WER's relative change ``variant`` vs ``base`` (the paper's "WER -13.46 %"),
    with a paired bootstrap 95 % interval over the utterances both were scored on.

    Each utterance's word errors are its WER times its reference's word count (after the
    judge's normalisation, as the corpus WER counts them); a resample draws utterances with
    replacement and recomputes ``errors(variant) / errors(base) - 1`` on the same draw.

    Returns:
        ``(change, low, high, n)`` as fractions (``-0.1`` is 10 % fewer errors), or None with
        fewer than two paired utterances (records without a WER or a transcript are left
        out) or no errors in ``base``.
    """
    def errors(system):
        return {r["id"]: r["wer"] * len(normalize_text(r["text"]).split()) for r in records
                if r["system"] == f"ablation_{system}" and r.get("wer") is not None
                and not math.isnan(r["wer"]) and r.get("text") is not None}

    a, b = errors(variant), errors(base)
    ids = sorted(a.keys() & b.keys())
    ea, eb = np.array([a[i] for i in ids]), np.array([b[i] for i in ids])
    if len(ids) < 2 or eb.sum() == 0:
        return None
    draws = np.random.default_rng(seed).integers(0, len(ids), size=(resamples, len(ids)))
    base_sums = eb[draws].sum(axis=1)
    ratios = ea[draws].sum(axis=1)[base_sums > 0] / base_sums[base_sums > 0] - 1.0
    low, high = np.percentile(ratios, [2.5, 97.5])
    return float(ea.sum() / eb.sum() - 1.0), float(low), float(high), len(ids)


def _paired_table(records, variants):
    lines = ["", "Differences from `none` on the same utterances. WER: the corpus WER's relative "
             "change with a paired bootstrap 95 % interval (5000 resamples of the utterances); "
             "the rest: mean per-utterance difference ± the 95 % interval's half-width. An "
             "interval that excludes 0 is a difference this test set resolves.", "",
             "| variant | WER vs none [95 % CI] | "
             + " | ".join(f"Δ {title}" for _, title, _, _ in PAIRED_METRICS) + " |",
             "|---|" + "---:|" * (len(PAIRED_METRICS) + 1)]
    for variant in variants:
        if variant == "none":
            continue
        found = relative_wer_interval(records, variant)
        cells = ["–" if found is None else
                 f"{100 * found[0]:+.1f} % [{100 * found[1]:+.1f}, {100 * found[2]:+.1f}]"]
        for metric, _, spec, factor in PAIRED_METRICS:
            found = paired_differences(records, variant, metric)
            cells.append("–" if found is None else
                         f"{found[0] * factor:+{spec}} ± {found[1] * factor:{spec}}")
        lines.append(f"| {DESCRIPTIONS[variant]} | " + " | ".join(cells) + " |")
    return lines


def report(results, steps, report_dir, data, shared_steps=0, overrides=None, records=None):
    """Writes ``ablation.md`` and ``ablation.png``; returns the Markdown text.

    ``records`` (the evaluation's per-utterance ``results.jsonl`` rows) add a table of paired
    differences from ``none`` with 95 % intervals."""
    rows = {row["label"]: row for row in results["summary"]}
    original = next((r for r in results["summary"] if r["label"].startswith("Original")), None)
    base = rows.get("ablation_none")
    lines = [
        f"# Distillation ablation ({steps} steps each, held-out test split)",
        "",
        "Same architecture (`dmcodec_small`"
        + (f" with {_flat(overrides)}" if overrides else "")
        + f"), data, seed, schedule and {steps} training steps; "
        f"only the distillation target differs"
        + (f" (all variants share their first {shared_steps} steps, trained without "
           f"distillation, and branch from that checkpoint for the last {steps - shared_steps}; "
           "see `training/ablation.py`)" if shared_steps else "")
        + f". Evaluated with `dmcodec evaluate` on `{data}` "
        "(unseen sentences and two unseen voices) at 8 codebooks (4 kbit/s); ASR judge Whisper "
        "tiny.en. Produced by `python -m training.ablation`.",
        "",
        "| variant | WER % | WIL % | WER vs none | STOI | ViSQOL | PESQ | mel dist. |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    if original:
        lines.append(f"| original audio (judge's own error) | {original['wer']:.2f} | "
                     f"{original['wil']:.2f} | | {_fmt(original['stoi'], '.3f')} | "
                     f"{_fmt(original['visqol'], '.3f')} | {_fmt(original['pesq'], '.2f')} | |")
    plotted = []
    for variant in VARIANTS:
        row = rows.get(f"ablation_{variant}")
        if row is None:
            continue
        rel = ""
        if base is not None and base["wer"] > 0:
            rel = f"{100 * (row['wer'] - base['wer']) / base['wer']:+.1f} %"
        lines.append(f"| {DESCRIPTIONS[variant]} | {row['wer']:.2f} | {row['wil']:.2f} | {rel} | "
                     f"{_fmt(row['stoi'], '.3f')} | {_fmt(row['visqol'], '.3f')} | "
                     f"{_fmt(row['pesq'], '.2f')} | {_fmt(row['mel_distance'], '.3f')} |")
        plotted.append((variant, row))
    if records and base is not None:
        lines += _paired_table(records, [v for v, _ in plotted])
    if any(v in ("sm", "lm_sm", "lm_sm_positional") for v, _ in plotted):
        lines += ["", "The SM teacher (the Whisper tiny.en encoder) is also the ASR judge's "
                  "encoder, so SM distillation may favour this judge more than another ASR "
                  "system."]
    text = "\n".join(lines) + "\n"
    report_dir = Path(report_dir)
    report_dir.mkdir(parents=True, exist_ok=True)
    (report_dir / "ablation.md").write_text(text)
    _plot(plotted, original, steps, report_dir / "ablation.png", resized=bool(overrides))
    return text


def _flat(overrides, prefix=""):
    items = []
    for key, value in overrides.items():
        if isinstance(value, dict):
            items.append(_flat(value, f"{prefix}{key}."))
        else:
            items.append(f"`{prefix}{key}={json.dumps(value)}`")
    return ", ".join(items)


def _plot(plotted, original, steps, path, resized=False):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [v for v, _ in plotted]
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.6))
    for ax, key, title in zip(axes, ("wer", "stoi", "visqol"), ("WER % (lower is better)",
                                                                  "STOI", "ViSQOL"), strict=True):
        values = [row[key] for _, row in plotted]
        ax.bar(range(len(values)), values, color=["#999999", "#4c72b0", "#55a868", "#c44e52",
                                                  "#8172b2"][: len(values)])
        if original is not None and original.get(key) is not None:
            ax.axhline(original[key], color="k", linestyle="--", linewidth=1, label="original")
            ax.legend(loc="lower right", fontsize=7)
        ax.set_xticks(range(len(values)), names, rotation=30, ha="right", fontsize=8)
        ax.set_title(title, fontsize=9)
    model = "dmcodec_small" + (" with the changes listed in ablation.md" if resized else "")
    fig.suptitle(f"Distillation ablation, {model}, {steps} steps, 8 codebooks", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m training.ablation", description=__doc__)
    parser.add_argument("--steps", type=int, required=True, help="training steps per variant")
    parser.add_argument("--out", default="runs/ablation", help="runs, presets and evaluation")
    parser.add_argument("--data", default="data/tts_corpus/test", help="held-out split")
    parser.add_argument("--variants", nargs="+", choices=VARIANTS, default=list(VARIANTS))
    parser.add_argument("--report", default=None,
                        help="folder for ablation.md / ablation.png (default: --out)")
    parser.add_argument("--shared-steps", type=int, default=0,
                        help="train the first S steps once without distillation and branch "
                             "every variant from there (see above)")
    parser.add_argument("--set", nargs="+", action="extend", default=[], metavar="KEY=VALUE",
                        help="change every variant's config the same way, e.g. "
                             "model.n_filters=8 model.dimension=128 (see above)")
    parser.add_argument("--train-only", action="store_true", help="train and ship, no evaluation")
    args = parser.parse_args(argv)
    try:
        overrides = parse_overrides(args.set)
        background = None if args.train_only else _BackgroundEvaluation(args.data, args.out)
        presets = []
        try:
            for i, variant in enumerate(args.variants):
                train_variant(variant, args.steps, args.out, args.shared_steps, overrides)
                presets.append(ship_variant(variant, args.steps, args.out))
                if background is not None and i < len(args.variants) - 1:
                    background.start(presets[-1])  # scored while the next variant trains
        finally:
            if background is not None:
                background.wait()
        if args.train_only:
            return 0
        results = evaluate(presets, args.data, args.out)
    except (RuntimeError, FileNotFoundError, ValueError) as err:
        print(f"error: {str(err).splitlines()[0]}", file=sys.stderr)
        return 1
    print(report(results, args.steps, args.report or args.out, args.data,
                 args.shared_steps, overrides, records=load_records(args.out)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
