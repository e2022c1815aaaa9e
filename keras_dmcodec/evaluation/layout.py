"""Where an evaluation run keeps its files inside the output folder.

The runner writes these files and the report, plot and HTML writers read them, so
the names live here, below all of them, rather than in any one of them.
"""

from pathlib import Path

RESULTS_FILE = "results.jsonl"
RUN_FILE = "run.json"
REPORT_FILE = "report.html"
# The listening report's audio (FLAC, linked by report.html) and spectrogram images.
AUDIO_DIR = "report_audio"
IMAGES_DIR = "report_images"


def showcase_path(out_dir, system_key, n_q, utt_id):
    """Where the runner keeps a showcased utterance's audio (original: ``n_q`` None)."""
    name = system_key if n_q is None else f"{system_key}_nq{n_q}"
    return Path(out_dir) / AUDIO_DIR / name / f"{utt_id}.flac"
