"""Where an evaluation run keeps its files inside the output folder.

The runner writes these files and the report and plot writers read them, so the
names live here, below all three, rather than in any one of them.
"""

from pathlib import Path

RESULTS_FILE = "results.jsonl"
RUN_FILE = "run.json"
AUDIO_DIR = "audio"


def showcase_path(out_dir, system_key, n_q, utt_id):
    """Where the runner keeps a showcased utterance's audio (original: ``n_q`` None)."""
    name = system_key if n_q is None else f"{system_key}_nq{n_q}"
    return Path(out_dir) / AUDIO_DIR / name / f"{utt_id}.wav"
