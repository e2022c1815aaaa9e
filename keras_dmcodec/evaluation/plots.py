"""Figures of an evaluation run (matplotlib, Agg backend; PNG files).

- ``spectrograms.png``: log-mel spectrograms of one utterance, original and each
  reconstruction, on one colour scale, with its scores and what the ASR judge heard;
- ``codebook_usage.png``: per-quantizer share of codes used and perplexity;
- ``metrics_vs_bitrate.png``: WER, ViSQOL, STOI, PESQ, mel distance and SI-SNR
  against bitrate, one line per model, the original audio as a dashed reference;
- ``write_spectrogram_image``: bare spectrogram PNGs for the HTML listening report.
"""

import math
from pathlib import Path

import numpy as np

from keras_dmcodec.audio import load_audio
from keras_dmcodec.evaluation.layout import showcase_path
from keras_dmcodec.utils.files import atomic_output

_COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2",
           "#17becf"]


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def short_label(label):
    """A legend-sized name: the label up to ' -- ', plus '(random weights)' when it says so."""
    head = label.split(" -- ")[0]
    return head + (" (random weights)" if "RANDOM" in label else "")


def _save(fig, path):
    plt = _pyplot()
    with atomic_output(path) as tmp:
        fig.savefig(tmp, dpi=120, bbox_inches="tight", facecolor="white")
    plt.close(fig)
    return Path(path)


def log_mel(audio, sample_rate):
    """Log-mel spectrogram in dB, ``[80 mel bins, frames]`` (10 ms hop), as the figures show it."""
    import librosa

    mel = librosa.feature.melspectrogram(y=np.asarray(audio, np.float32), sr=sample_rate,
                                         n_fft=1024, hop_length=160, n_mels=80, fmax=8000)
    return 10 * np.log10(np.maximum(mel, 1e-10))


def plot_spectrograms(path, panels, sample_rate=16000):
    """Stacked log-mel spectrograms.

    Args:
        path: output PNG.
        panels: list of dicts with ``audio`` (``[samples]``), ``title`` and
            optional ``subtitle``; the first is the original and sets the colour scale.
    """
    plt = _pyplot()
    mels = [log_mel(p["audio"], sample_rate) for p in panels]
    vmax = float(mels[0].max())
    vmin = vmax - 80.0
    fig, axes = plt.subplots(len(panels), 1, figsize=(11, 2.5 * len(panels) + 0.4),
                             sharex=True, squeeze=False, gridspec_kw={"hspace": 0.6})
    image = None
    for ax, panel, mel in zip(axes[:, 0], panels, mels, strict=True):
        seconds = mel.shape[1] * 160 / sample_rate
        image = ax.imshow(mel, origin="lower", aspect="auto", cmap="magma", vmin=vmin, vmax=vmax,
                          extent=(0, seconds, 0, mel.shape[0]), interpolation="nearest")
        ax.set_title(panel["title"], loc="left", fontsize=10, fontweight="bold",
                     pad=15 if panel.get("subtitle") else 6)
        if panel.get("subtitle"):
            ax.text(0.0, 1.015, panel["subtitle"], transform=ax.transAxes, ha="left",
                    va="bottom", fontsize=8.5, color="#333333")
        ax.set_ylabel("mel bin")
    axes[-1, 0].set_xlabel("time (s)")
    fig.colorbar(image, ax=axes[:, 0].tolist(), label="dB", pad=0.01, fraction=0.025)
    return _save(fig, path)


def write_spectrogram_image(path, mel, vmin, vmax, levels=64):
    """A bare spectrogram image for web pages: one pixel per mel bin and 10 ms frame, low
    frequencies at the bottom, ``levels`` magma colours from ``vmin`` to ``vmax`` dB, no axes.

    A palette PNG (one byte per pixel): about 4 kB per second of speech, against about
    14 kB for a full-colour one.
    """
    from matplotlib import colormaps
    from PIL import Image  # matplotlib's own dependency

    scaled = (np.clip(mel, vmin, vmax) - vmin) / max(vmax - vmin, 1e-9)
    index = np.round(scaled[::-1] * (levels - 1)).astype(np.uint8)
    palette = (colormaps["magma"](np.linspace(0.0, 1.0, levels))[:, :3] * 255).round()
    image = Image.fromarray(index, mode="P")
    image.putpalette(palette.astype(np.uint8).ravel().tolist())
    with atomic_output(path) as tmp:
        image.save(tmp, format="PNG", optimize=True)
    return Path(path)


def plot_codebook_usage(path, rows):
    """Per-quantizer codebook usage (% of codes seen) and perplexity, grouped by model row."""
    plt = _pyplot()
    rows = [r for r in rows if r.get("usage_per_quantizer")]
    if not rows:
        return None
    n_q = max(len(r["usage_per_quantizer"]) for r in rows)
    size = max(r["codebook_size"] for r in rows)
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.3))
    width = 0.8 / len(rows)
    for i, row in enumerate(rows):
        q = np.arange(1, len(row["usage_per_quantizer"]) + 1) + (i - (len(rows) - 1) / 2) * width
        name = f"{short_label(row['label'])}, n_q={row['n_q']}"
        color = _COLORS[i % len(_COLORS)]
        left.bar(q, 100 * np.array(row["usage_per_quantizer"]), width, color=color, label=name)
        right.bar(q, row["perplexity_per_quantizer"], width, color=color, label=name)
    left.set_title("Codes used at least once (% of the codebook)", loc="left", fontsize=10)
    left.set_ylabel("% of codes")
    left.set_ylim(0, 100)
    right.set_title(f"Perplexity per quantizer (uniform use = {size})", loc="left", fontsize=10)
    right.set_ylabel("effective number of codes")
    right.set_yscale("log")
    right.axhline(size, color="grey", linestyle="--", linewidth=1)
    right.set_ylim(0.8, size * 1.6)
    for ax in (left, right):
        ax.set_xlabel("quantizer (RVQ layer)")
        ax.set_xticks(range(1, n_q + 1))
        ax.grid(axis="y", alpha=0.3)
    handles, labels = left.get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=min(len(rows), 2), fontsize=9,
               frameon=False, bbox_to_anchor=(0.5, -0.04 - 0.045 * math.ceil(len(rows) / 2)))
    seconds = rows[0].get("seconds", 0.0)
    fig.suptitle(f"Codebook use over {rows[0]['utterances']} utterances ({seconds:.0f} s)",
                 x=0.01, ha="left", fontsize=11, fontweight="bold")
    fig.tight_layout()
    return _save(fig, path)


_PANELS = [
    ("wer", "WER (%)", "lower is better"),
    ("visqol", "ViSQOL (MOS-LQO)", "higher is better"),
    ("stoi", "STOI", "higher is better"),
    ("pesq", "PESQ wideband", "higher is better"),
    ("mel_distance", "Mel distance", "lower is better"),
    ("si_snr", "SI-SNR (dB)", "higher is better"),
]


def plot_metrics_vs_bitrate(path, rows):
    """Six metrics against bitrate; one line per model, original audio as a dashed line."""
    plt = _pyplot()
    reference = next((r for r in rows if r["system"] == "original"), None)
    models = {}
    for row in rows:
        if row["system"] != "original":
            models.setdefault(row["system"], []).append(row)
    if not models:
        return None
    fig, axes = plt.subplots(2, 3, figsize=(13, 7))
    for ax, (key, title, better) in zip(axes.flat, _PANELS, strict=True):
        for i, group in enumerate(models.values()):
            group = sorted(group, key=lambda r: r["kbps"])
            ax.plot([r["kbps"] for r in group], [r.get(key, math.nan) for r in group],
                    marker="o", color=_COLORS[i % len(_COLORS)], linewidth=1.8,
                    label=short_label(group[0]["label"]))
        # SI-SNR of a signal with itself is unbounded: no reference line for it.
        if (reference is not None and key != "si_snr"
                and math.isfinite(reference.get(key, math.nan))):
            ax.axhline(reference[key], color="grey", linestyle="--", linewidth=1.2,
                       label="original audio")
        ax.set_title(f"{title}  ({better})", loc="left", fontsize=10)
        ax.set_xlabel("bitrate (kbit/s)")
        ax.grid(alpha=0.3)
        kbps = sorted({r["kbps"] for g in models.values() for r in g})
        ax.set_xticks(kbps)
        ax.set_xlim(min(kbps) - 0.5, max(kbps) + 0.5)
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=min(len(labels), 3), fontsize=9,
               frameon=False, bbox_to_anchor=(0.5, -0.05))
    fig.suptitle("Reconstruction quality against bitrate", x=0.01, ha="left", fontsize=12,
                 fontweight="bold")
    fig.tight_layout()
    return _save(fig, path)


def write_plots(out_dir, rows, records, showcase_id=None):
    """Writes the three figures into ``out_dir``; returns the paths written.

    The spectrogram figure uses the showcased utterance's audio that the runner
    kept in ``audio/`` (the first utterance by id unless ``showcase_id`` is given).
    """
    out_dir = Path(out_dir)
    written = []
    by_key = {(r["system"], r["n_q"], r["id"]): r for r in records}
    ids = sorted({r["id"] for r in records})
    if showcase_id is None and ids:
        showcase_id = ids[0]
    panels = []
    for row in rows:
        wav = showcase_path(out_dir, row["system"], row["n_q"], showcase_id)
        record = by_key.get((row["system"], row["n_q"], showcase_id))
        if not wav.is_file() or record is None:
            continue
        audio, sr = load_audio(wav)
        if row["system"] == "original":
            title = f"Original: {showcase_id}  (ref: \u201c{record['text'].lower()}\u201d)"
            scores = ""
        else:
            title = f"{short_label(row['label'])}, n_q={row['n_q']} ({row['kbps']:.1f} kbit/s)"
            scores = (f"STOI {record['stoi']:.2f} \u00b7 ViSQOL {record['visqol']:.2f} "
                      f"\u00b7 PESQ {record['pesq']:.2f} \u00b7 ")
        heard = record["hypothesis"] or "(nothing)"
        if len(heard) > 70:
            heard = heard[:67] + "..."
        subtitle = f"{scores}WER {100 * record['wer']:.0f}%  ASR heard: \u201c{heard}\u201d"
        panels.append({"audio": audio, "title": title, "subtitle": subtitle, "sr": sr})
    if panels:
        written.append(plot_spectrograms(out_dir / "spectrograms.png", panels,
                                         sample_rate=panels[0]["sr"]))
    for name, fn in (("codebook_usage.png", plot_codebook_usage),
                     ("metrics_vs_bitrate.png", plot_metrics_vs_bitrate)):
        path = fn(out_dir / name, rows)
        if path is not None:
            written.append(path)
    return written
