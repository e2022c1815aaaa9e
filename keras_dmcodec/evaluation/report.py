"""Tables of an evaluation run: Markdown, CSV and JSON (summary + per-utterance values).

The main columns follow the paper's results table (DM-Codec, arXiv 2410.15017:
WER and WIL in %, lower is better; ViSQOL and STOI, higher is better); PESQ
(wideband), mel distance, SI-SNR, bitrate and codebook statistics follow. One row
per system and ``n_q``. WER/WIL are corpus-level (jiwer over all utterances);
the other metrics are means over utterances. Codebook usage and perplexity come
from code histograms summed over the corpus, per quantizer.
"""

import csv
import io
import json
import math
from pathlib import Path

import numpy as np

from keras_dmcodec.asr import error_rates
from keras_dmcodec.evaluation import metrics
from keras_dmcodec.utils.files import atomic_output

COLUMNS = [
    # (key, markdown header, format)
    ("label", "Model", "{}"),
    ("n_q", "n_q", "{}"),
    ("kbps", "kbit/s", "{:.2f}"),
    ("wer", "WER % ↓", "{:.2f}"),
    ("wil", "WIL % ↓", "{:.2f}"),
    ("visqol", "ViSQOL ↑", "{:.3f}"),
    ("stoi", "STOI ↑", "{:.3f}"),
    ("pesq", "PESQ-WB ↑", "{:.3f}"),
    ("mel_distance", "Mel dist. ↓", "{:.3f}"),
    ("si_snr", "SI-SNR dB ↑", "{:.2f}"),
    ("codebook_usage", "Codes used %", "{:.1f}"),
    ("perplexity", "Perplexity", "{:.1f}"),
    ("utterances", "Utts", "{}"),
]


def _counts(record):
    size = record["codebook_size"]
    hist = np.zeros((len(record["code_counts"]), size), dtype=np.int64)
    for q, row in enumerate(record["code_counts"]):
        for code, count in row:
            hist[q, code] += count
    return hist


def summarize(records, order=None):
    """One summary row per (system, n_q) from per-utterance records.

    Args:
        records: list of per-utterance dicts (``runner.evaluate``'s ``records``).
        order: optional list of ``(system_key, label, n_q)`` giving the row order.

    Returns:
        list of dicts with the ``COLUMNS`` keys plus ``system``, ``bitrate``,
        ``usage_per_quantizer`` and ``perplexity_per_quantizer``.
    """
    groups = {}
    for record in records:
        groups.setdefault((record["system"], record["n_q"]), []).append(record)
    if order is None:
        order = [(k[0], v[0]["label"], k[1]) for k, v in groups.items()]
    rows = []
    for key, label, n_q in order:
        group = groups.get((key, n_q))
        if not group:
            continue
        group = sorted(group, key=lambda r: r["id"])
        rates = error_rates([r["text"] for r in group], [r["hypothesis"] for r in group])
        row = {"system": key, "label": label, "n_q": n_q, "utterances": len(group),
               "bitrate": group[0]["bitrate"], "kbps": group[0]["bitrate"] / 1000.0,
               "wer": 100 * rates["wer"], "wil": 100 * rates["wil"],
               "seconds": float(sum(r["duration_s"] for r in group))}
        for name in ("visqol", "visqol_nsim", "stoi", "pesq", "mel_distance", "si_snr"):
            values = np.array([math.nan if r.get(name) is None else r[name] for r in group],
                              dtype=np.float64)
            row[name] = float(np.nanmean(values)) if np.isfinite(values).any() else math.nan
        if "code_counts" in group[0]:
            hist = sum(_counts(r) for r in group)
            usage = metrics.codebook_usage(hist)
            perplexity = metrics.codebook_perplexity(hist)
            row.update(codebook_usage=100 * float(np.mean(usage)),
                       perplexity=float(np.mean(perplexity)),
                       codebook_size=int(hist.shape[1]),
                       usage_per_quantizer=[float(u) for u in usage],
                       perplexity_per_quantizer=[float(p) for p in perplexity])
        rows.append(row)
    return rows


def format_cell(row, key, fmt):
    """One summary cell as text (``–`` for a missing or NaN value)."""
    value = row.get(key)
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return fmt.format(value)


def markdown_table(rows):
    """The summary as a Markdown table (paper layout first, then the extra columns)."""
    lines = ["| " + " | ".join(h for _, h, _ in COLUMNS) + " |",
             "|" + "|".join("---" if k == "label" else "---:" for k, _, _ in COLUMNS) + "|"]
    for row in rows:
        cells = [format_cell(row, k, f).replace("|", "/") for k, _, f in COLUMNS]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _csv_text(rows):
    buffer = io.StringIO()
    keys = [k for k, _, _ in COLUMNS] + ["system", "bitrate", "visqol_nsim", "seconds",
                                          "usage_per_quantizer", "perplexity_per_quantizer"]
    writer = csv.DictWriter(buffer, fieldnames=keys, extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        out = dict(row)
        for name in ("usage_per_quantizer", "perplexity_per_quantizer"):
            if name in out:
                out[name] = " ".join(f"{v:.4g}" for v in out[name])
        writer.writerow(out)
    return buffer.getvalue()


def _json_safe(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    return value


def write_reports(out_dir, result, notes=()):
    """Writes ``results.md``, ``results.csv`` and ``results.json``; returns the summary rows.

    Args:
        out_dir: output folder.
        result: ``runner.evaluate``'s return value.
        notes: extra lines for the Markdown file (e.g. about random weights).
    """
    out_dir = Path(out_dir)
    rows = summarize(result["records"], order=result["systems"])
    header = [
        "# Evaluation results",
        "",
        f"ASR judge: {result['judge']}; text normalised with Whisper's English normaliser; "
        "WER/WIL over the whole corpus (jiwer).",
        f"ViSQOL v3 speech mode ({result['visqol_mapper']} mapping; identical signals score "
        f"{'about 4.2-4.4' if result['visqol_mapper'] == 'lattice' else '5.0'}), STOI (pystoi), "
        "PESQ wideband, mel distance (L1 of natural-log mels), SI-SNR: means over utterances.",
        "",
    ]
    skipped = result.get("skipped", [])
    footer = [""] + [f"- {n}" for n in notes]
    if skipped:
        footer += ["", f"Skipped {len(skipped)} utterance(s):"] + [f"- {s}" for s in skipped]
    with atomic_output(out_dir / "results.md") as tmp:
        Path(tmp).write_text("\n".join(header) + "\n" + markdown_table(rows)
                             + "\n".join(footer) + "\n")
    with atomic_output(out_dir / "results.csv") as tmp:
        Path(tmp).write_text(_csv_text(rows))
    per_utt = [{k: v for k, v in r.items() if k != "code_counts"} for r in result["records"]]
    payload = {"judge": result["judge"], "visqol_mapper": result["visqol_mapper"],
               "summary": rows, "utterances": per_utt, "skipped": skipped, "notes": list(notes)}
    with atomic_output(out_dir / "results.json") as tmp:
        Path(tmp).write_text(json.dumps(_json_safe(payload), indent=1) + "\n")
    return rows
